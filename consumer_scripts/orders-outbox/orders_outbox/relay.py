"""The relay loop: read the replication stream, publish each outbox row, confirm what Kafka acked.

At-least-once: a row's LSN is confirmed to Postgres (send_feedback's flush position) only after
the producer's delivery report for it, and for every message before it, came back without error
(see acks.py). A crash at any point therefore replays from the last confirmed position instead of
losing rows; the idempotent producer removes the duplicates its own retries would make, and
consumers deduplicate replays on the `event_id` header.

A failed delivery (the producer gave up after `delivery.timeout.ms`) stops the relay with exit 1:
nothing at or after that row is confirmed, and ECS's next task publishes it again. Skipping it
would lose an event; carrying on past it could never confirm anything again.

On SIGTERM (ECS stopping the task) the loop stops reading, flushes the producer for at most
`flush_timeout` seconds, confirms the delivered prefix with a final, forced feedback, and closes
the replication connection, which ends its walsender and frees the slot at once for the next task.
It never drops the slot: the slot is the position the next task starts from.
"""

import logging
import select
import signal
import threading
from typing import Callable

from . import heartbeat
from .acks import Acks
from .records import Malformed, Router, format_lsn

log = logging.getLogger("orders_outbox")


class Stop:
    """Set by SIGTERM/SIGINT; the loop stops reading and shuts down cleanly."""

    def __init__(self) -> None:
        self.event = threading.Event()

    def install(self) -> None:
        signal.signal(signal.SIGTERM, self._handle)
        signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum, _frame) -> None:
        log.info("signal %s: stopping; flushing what is in flight", signum)
        self.event.set()

    def __bool__(self) -> bool:
        return self.event.is_set()


def wait_readable(cursor, timeout: float) -> None:
    """Block until the replication connection has data or `timeout` passes."""
    select.select([cursor.connection], [], [], timeout)


def run(conn, cursor, producer, decoder, router: Router, stop: Stop, heartbeat_file: str, *,
        flush_timeout: float = 20.0, poll_timeout: float = 1.0, batch_size: int = 500,
        wait: Callable[[object, float], None] = wait_readable) -> int:
    """Relay until stopped or a delivery fails, then shut down. Returns the exit code: 0 after a
    stop, 1 after a failed delivery. Other errors (the connection lost) propagate after the
    shutdown, which then confirms what it still can."""
    acks = Acks()
    published = 0
    try:
        published = _pump(cursor, producer, decoder, router, acks, stop, heartbeat_file,
                          poll_timeout, batch_size, wait)
    finally:
        _shutdown(conn, cursor, producer, acks, flush_timeout)
    if acks.failure is not None:
        log.error("stopped after a failed delivery (%s): rows from there on are published again "
                  "by the next task", acks.failure)
        return 1
    log.info("stopped cleanly after publishing %d events", published)
    return 0


def _confirm(cursor, acks: Acks) -> None:
    lsn = acks.advance()
    if lsn > acks.confirmed:
        # psycopg2 only records it here and sends it with its next status update (status_interval).
        cursor.send_feedback(write_lsn=lsn, flush_lsn=lsn)
        acks.confirmed = lsn


def _pump(cursor, producer, decoder, router, acks, stop, heartbeat_file, poll_timeout,
          batch_size, wait) -> int:
    published = 0
    while not stop and acks.failure is None:
        heartbeat.beat(heartbeat_file)
        producer.poll(0)  # serves delivery reports: Acks.delivered/failed run here
        _confirm(cursor, acks)
        if not acks.safe_to_read():
            producer.poll(poll_timeout)  # wait for Kafka before reading on (see acks.py)
            continue
        read = 0
        while read < batch_size and not stop and acks.failure is None and acks.safe_to_read():
            msg = cursor.read_message()
            if msg is None:
                break
            read += 1
            published += _relay(msg, producer, decoder, router, acks, stop, heartbeat_file,
                                poll_timeout)
        if read == 0 and acks.safe_to_read():
            wait(cursor, poll_timeout)
    return published


def _relay(msg, producer, decoder, router, acks, stop, heartbeat_file, poll_timeout) -> int:
    lsn = msg.data_start
    try:
        record = decoder.decode(msg.payload)
        message = router.message(record, lsn) if record is not None else None
    except Malformed as e:
        # Logged with its position and skipped: a row nobody can publish must not hold the slot.
        log.error("skipping malformed outbox change at LSN %s: %s", format_lsn(lsn), e)
        acks.skip(lsn)
        return 0
    if message is None:
        acks.skip(lsn)
        return 0
    entry = acks.track(lsn)

    def on_delivery(err, _msg) -> None:
        if err is None:
            acks.delivered(entry)
        else:
            log.error("delivery of event %s (LSN %s) to %s failed: %s",
                      record.event_id, format_lsn(lsn), message["topic"], err)
            acks.failed(entry, err)

    while True:
        try:
            producer.produce(on_delivery=on_delivery, **message)
            return 1
        except BufferError:
            # The producer's local queue is full: serve delivery reports to make room. If the
            # relay stops meanwhile, the row stays unconfirmed and the next task publishes it.
            producer.poll(poll_timeout)
            heartbeat.beat(heartbeat_file)
            if stop or acks.failure is not None:
                return 0


def _shutdown(conn, cursor, producer, acks: Acks, flush_timeout: float) -> None:
    try:
        left = producer.flush(flush_timeout)
        if left:
            log.warning("%d messages not acknowledged within %.0fs; they stay unconfirmed and are "
                        "published again by the next task", left, flush_timeout)
    except Exception as e:
        log.error("flushing the producer failed: %s", e)
    lsn = acks.advance()
    try:
        if lsn:
            cursor.send_feedback(write_lsn=lsn, flush_lsn=lsn, force=True)
            acks.confirmed = max(acks.confirmed, lsn)
            log.info("confirmed LSN %s to Postgres", format_lsn(lsn))
    except Exception as e:
        log.error("could not send the final feedback (%s); the next task resumes from the last "
                  "position Postgres received, publishing some events again", e)
    try:
        conn.close()  # ends the walsender: the slot is free for the next task at once
    except Exception as e:
        log.error("closing the replication connection failed: %s", e)
