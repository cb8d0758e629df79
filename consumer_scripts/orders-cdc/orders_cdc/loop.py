"""The consume loop: poll, handle, deliver, then commit. Offsets are committed only after every
message of the batch was handled, so a crash replays instead of losing events (at-least-once; the
idempotency key lets fulfilment drop the replays)."""

import logging
import signal
import threading

from . import envelope, heartbeat
from .handler import decide

log = logging.getLogger("orders_cdc")


class Stop:
    """Set by SIGTERM/SIGINT; the loop finishes its batch, commits and exits."""

    def __init__(self) -> None:
        self.event = threading.Event()

    def install(self) -> None:
        signal.signal(signal.SIGTERM, self._handle)
        signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum, _frame) -> None:
        log.info("signal %s: finishing the current batch", signum)
        self.event.set()

    def __bool__(self) -> bool:
        return self.event.is_set()


def run(consumer, sink, stop: Stop, heartbeat_file: str, batch_size: int = 100,
        poll_timeout: float = 1.0, emit_snapshot: bool = False) -> int:
    """Consume until stopped. Returns the number of messages handled."""
    handled = 0
    try:
        while not stop:
            heartbeat.beat(heartbeat_file)
            messages = consumer.consume(num_messages=batch_size, timeout=poll_timeout)
            if not messages:
                continue
            for msg in messages:
                if msg.error():
                    raise RuntimeError(f"kafka error: {msg.error()}")
                try:
                    event = envelope.parse(msg.value())
                except envelope.MalformedEvent as e:
                    # A poison message must not block the partition: log it with its position and go on.
                    log.error("skipping malformed event at %s[%s]@%s: %s",
                              msg.topic(), msg.partition(), msg.offset(), e)
                    continue
                if event is None:
                    continue
                action = decide(event, emit_snapshot=emit_snapshot)
                if action is not None:
                    sink.send(action)
                handled += 1
            consumer.commit(asynchronous=False)
    finally:
        consumer.close()
    return handled
