"""Entry point: wire Kafka, the fulfilment webhook and the loop together from the environment."""

import json
import logging
import os
import sys
import urllib.request

from . import heartbeat
from .loop import Stop, run


class WebhookSink:
    def __init__(self, url: str, token: str, timeout: float = 10.0) -> None:
        self.url, self.token, self.timeout = url, token, timeout

    def send(self, event) -> None:
        body = json.dumps(event.to_json()).encode()
        req = urllib.request.Request(self.url, data=body, method="POST", headers={
            "Content-Type": "application/json",
            "Authorization": f"Bearer {self.token}",
            "Idempotency-Key": event.idempotency_key,
        })
        with urllib.request.urlopen(req, timeout=self.timeout) as resp:
            if resp.status >= 300:
                raise RuntimeError(f"fulfilment answered {resp.status}")


def main() -> int:
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    from confluent_kafka import Consumer  # imported here so the handler's tests need no Kafka

    conf = {
        "bootstrap.servers": os.environ["KAFKA_BOOTSTRAP_SERVERS"],
        "group.id": os.environ["KAFKA_GROUP_ID"],
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
    }
    if os.environ.get("KAFKA_SASL_PASSWORD"):
        conf.update({
            "security.protocol": "SASL_SSL",
            "sasl.mechanisms": "SCRAM-SHA-512",
            "sasl.username": os.environ.get("KAFKA_SASL_USERNAME", "orders-cdc"),
            "sasl.password": os.environ["KAFKA_SASL_PASSWORD"],
        })
    consumer = Consumer(conf)
    consumer.subscribe([os.environ["KAFKA_TOPIC"]])
    stop = Stop()
    stop.install()
    sink = WebhookSink(os.environ["FULFILMENT_WEBHOOK_URL"], os.environ["FULFILMENT_TOKEN"])
    handled = run(consumer, sink, stop, heartbeat.path(),
                  emit_snapshot=os.environ.get("EMIT_SNAPSHOT", "false") == "true")
    logging.getLogger("orders_cdc").info("stopped cleanly after %d events", handled)
    return 0


if __name__ == "__main__":
    sys.exit(main())
