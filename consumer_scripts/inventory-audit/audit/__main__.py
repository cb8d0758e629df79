"""Consume the inventory topics and write audit records as JSON lines to stdout, where the ECS
log driver ships them to CloudWatch Logs. Offsets are committed after each batch is written."""

import json
import logging
import os
import signal
import sys
import time

from .records import audit_records

log = logging.getLogger("audit")


def serve(consumer, out, heartbeat: str, ignored, should_stop) -> int:
    written = 0
    try:
        while not should_stop():
            with open(heartbeat, "w", encoding="utf-8") as f:
                f.write(str(int(time.time())))
            batch = consumer.consume(num_messages=500, timeout=1.0)
            for msg in batch:
                if msg.error():
                    raise RuntimeError(f"kafka error: {msg.error()}")
                try:
                    records = audit_records(msg.value(), ignored)
                except ValueError as e:
                    log.error("unreadable event at %s[%s]@%s: %s", msg.topic(), msg.partition(), msg.offset(), e)
                    continue
                for r in records:
                    out.write(json.dumps(r, default=str) + "\n")
                    written += 1
            if batch:
                out.flush()
                consumer.commit(asynchronous=False)
    finally:
        consumer.close()
    return written


def main() -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    from confluent_kafka import Consumer

    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    conf = {
        "bootstrap.servers": os.environ["KAFKA_BOOTSTRAP_SERVERS"],
        "group.id": os.environ["KAFKA_GROUP_ID"],
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
    }
    if os.environ.get("KAFKA_SASL_PASSWORD"):
        conf.update({"security.protocol": "SASL_SSL", "sasl.mechanisms": "SCRAM-SHA-512",
                     "sasl.username": os.environ.get("KAFKA_SASL_USERNAME", "inventory-audit"),
                     "sasl.password": os.environ["KAFKA_SASL_PASSWORD"]})
    consumer = Consumer(conf)
    consumer.subscribe(os.environ["KAFKA_TOPICS"].split(","))
    ignored = [c for c in os.environ.get("AUDIT_IGNORED_COLUMNS", "").split(",") if c]
    n = serve(consumer, sys.stdout, os.environ.get("AUDIT_HEARTBEAT", "/tmp/audit-heartbeat"),
              ignored, lambda: bool(stopping))
    log.info("stopped after writing %d audit records", n)
    return 0


if __name__ == "__main__":
    sys.exit(main())
