"""Entry point: read the settings, build the real Postgres replication connection and Kafka
producer, and hand them to app.serve. psycopg2 and confluent-kafka are imported here only, so the
tests need neither."""

import logging
import os
import sys

from . import settings as settings_mod
from .app import serve
from .relay import Stop

log = logging.getLogger("orders_outbox")


def msk_iam_token(_oauth_config):
    """confluent-kafka's oauth_cb for MSK IAM: a token signed with the task role's credentials."""
    from aws_msk_iam_sasl_signer import MSKAuthTokenProvider

    region = os.environ.get("AWS_REGION") or os.environ["AWS_DEFAULT_REGION"]
    token, expiry_ms = MSKAuthTokenProvider.generate_auth_token(region)
    return token, expiry_ms / 1000


def main() -> int:
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        s = settings_mod.from_env(os.environ)
    except settings_mod.Invalid as e:
        log.error("invalid settings: %s", e)
        return 1

    import psycopg2
    import psycopg2.extras
    from confluent_kafka import Producer

    stop = Stop()
    stop.install()

    def connect():
        return psycopg2.connect(connection_factory=psycopg2.extras.LogicalReplicationConnection,
                                **s.connect_kwargs())

    def on_error(err) -> None:
        log.error("kafka: %s", err)

    conf = s.producer_config(oauth_cb=msk_iam_token)
    conf["error_cb"] = on_error
    producer = Producer(conf)
    producer.poll(0)  # with MSK IAM, this fetches the first token
    return serve(s, connect, producer, stop)


if __name__ == "__main__":
    sys.exit(main())
