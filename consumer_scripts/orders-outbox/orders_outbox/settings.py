"""Settings from the environment (consumer.toml's `[environment]` and `[secrets]`), checked at start
so that a typo fails the task with one clear line instead of half-way through a stream."""

import re
from dataclasses import dataclass
from typing import Callable, Mapping, Optional, Tuple

PLUGINS = ("pgoutput", "wal2json")
KAFKA_AUTH = ("iam", "scram", "none")
_SLOT = re.compile(r"[a-z0-9_]{1,63}")  # what Postgres accepts as a slot name


class Invalid(ValueError):
    """A setting is missing or out of range."""


@dataclass(frozen=True)
class Settings:
    pg_host: str
    pg_port: int
    pg_database: str
    pg_user: str
    pg_password: str
    pg_sslmode: str
    slot: str
    publication: str
    plugin: str
    table: str
    create_slot: bool
    slot_wait: float
    bootstrap_servers: str
    kafka_auth: str
    sasl_username: str
    sasl_password: str
    topic_prefix: str
    allowed_topics: Tuple[str, ...]
    flush_timeout: float
    delivery_timeout_ms: int

    def connect_kwargs(self) -> dict:
        return {
            "host": self.pg_host, "port": self.pg_port, "dbname": self.pg_database,
            "user": self.pg_user, "password": self.pg_password, "sslmode": self.pg_sslmode,
            "application_name": "orders-outbox", "connect_timeout": 10,
            # A dead peer is noticed in about a minute rather than at the kernel's default of hours.
            "keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10, "keepalives_count": 3,
        }

    def producer_config(self, oauth_cb: Optional[Callable] = None) -> dict:
        conf = {
            "bootstrap.servers": self.bootstrap_servers,
            "client.id": "orders-outbox",
            # Retries inside the producer neither duplicate nor reorder a partition's messages.
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "delivery.timeout.ms": self.delivery_timeout_ms,
        }
        if self.kafka_auth == "iam":
            # MSK IAM: the task role signs a token (aws-msk-iam-sasl-signer-python).
            conf.update({"security.protocol": "SASL_SSL", "sasl.mechanisms": "OAUTHBEARER",
                         "oauth_cb": oauth_cb})
        elif self.kafka_auth == "scram":
            conf.update({"security.protocol": "SASL_SSL", "sasl.mechanisms": "SCRAM-SHA-512",
                         "sasl.username": self.sasl_username, "sasl.password": self.sasl_password})
        return conf


def _number(env: Mapping[str, str], name: str, default: float, low: float, high: float) -> float:
    raw = env.get(name, "")
    try:
        value = float(raw) if raw else default
    except ValueError:
        raise Invalid(f"{name}={raw!r} is not a number") from None
    if not low <= value <= high:
        raise Invalid(f"{name}={value:g} is out of range ({low:g} to {high:g})")
    return value


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("true", "1", "yes"):
        return True
    if raw in ("false", "0", "no"):
        return False
    raise Invalid(f"{name}={raw!r}: write true or false")


def _required(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise Invalid(f"{name} is not set")
    return value


def from_env(env: Mapping[str, str]) -> Settings:
    slot = env.get("PG_SLOT", "orders_outbox")
    if not _SLOT.fullmatch(slot):
        raise Invalid(f"PG_SLOT={slot!r}: a slot name is 1 to 63 lower-case letters, digits or _")
    plugin = env.get("PG_OUTPUT_PLUGIN", "pgoutput")
    if plugin not in PLUGINS:
        raise Invalid(f"PG_OUTPUT_PLUGIN={plugin!r}: use {' or '.join(PLUGINS)}")
    auth = env.get("KAFKA_AUTH", "iam")
    if auth not in KAFKA_AUTH:
        raise Invalid(f"KAFKA_AUTH={auth!r}: use {', '.join(KAFKA_AUTH)}")
    return Settings(
        pg_host=_required(env, "PG_HOST"),
        pg_port=int(_number(env, "PG_PORT", 5432, 1, 65535)),
        pg_database=_required(env, "PG_DATABASE"),
        pg_user=_required(env, "PG_USER"),
        pg_password=_required(env, "PG_PASSWORD"),
        pg_sslmode=env.get("PG_SSLMODE", "require"),
        slot=slot,
        publication=env.get("PG_PUBLICATION", "orders_outbox"),
        plugin=plugin,
        table=env.get("PG_OUTBOX_TABLE", "public.outbox"),
        create_slot=_flag(env, "PG_CREATE_SLOT", True),
        # Longer than wal_sender_timeout (60 s by default), shorter than the health check's start_period.
        slot_wait=_number(env, "SLOT_WAIT_SECONDS", 90, 0, 280),
        bootstrap_servers=_required(env, "KAFKA_BOOTSTRAP_SERVERS"),
        kafka_auth=auth,
        sasl_username=env.get("KAFKA_SASL_USERNAME", "orders-outbox"),
        sasl_password=_required(env, "KAFKA_SASL_PASSWORD") if auth == "scram" else "",
        topic_prefix=env.get("KAFKA_TOPIC_PREFIX", "outbox."),
        allowed_topics=tuple(t.strip() for t in env.get("KAFKA_ALLOWED_TOPICS", "").split(",") if t.strip()),
        # Well under the task's stop_timeout: the final feedback and the close come after it.
        flush_timeout=_number(env, "FLUSH_TIMEOUT_SECONDS", 20, 1, 100),
        delivery_timeout_ms=int(_number(env, "KAFKA_DELIVERY_TIMEOUT_MS", 120000, 35000, 900000)),
    )
