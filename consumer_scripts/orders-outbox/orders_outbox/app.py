"""The relay's life from start to exit code, with its outside world passed in (a Postgres
connect function, a Kafka producer, a clock) so that the tests drive it without either.

Exit codes: 0 after SIGTERM (flushed, final feedback sent, connection closed; the slot is kept for
the next task), 1 when the slot stayed busy past SLOT_WAIT_SECONDS, a delivery failed, or the
stream broke. ECS starts a new task after either; the slot's confirmed position is where it goes on.
"""

import logging
import time
from typing import Callable, Optional

from . import heartbeat
from .records import Router, decoder_for
from .relay import Stop, run, wait_readable
from .settings import Settings
from .slot import SlotBusy, open_replication

log = logging.getLogger("orders_outbox")


def serve(settings: Settings, connect: Callable[[], object], producer, stop: Stop, *,
          heartbeat_file: Optional[str] = None,
          sleep: Optional[Callable[[float], bool]] = None,
          clock: Callable[[], float] = time.monotonic,
          wait=wait_readable, poll_timeout: float = 1.0) -> int:
    decoder = decoder_for(settings.plugin, settings.table)
    router = Router(settings.topic_prefix, settings.allowed_topics)
    try:
        opened = open_replication(
            connect, settings.slot, settings.plugin, decoder.options(settings.publication),
            create_slot=settings.create_slot, wait_seconds=settings.slot_wait,
            sleep=sleep or stop.event.wait, clock=clock)
    except SlotBusy as e:
        log.error("%s", e)
        return 1
    except Exception as e:
        log.error("could not start streaming from replication slot %r: %s", settings.slot, e)
        return 1
    if opened is None:
        return 0  # stopped while waiting for the slot: nothing was read, nothing to confirm
    conn, cursor = opened
    try:
        return run(conn, cursor, producer, decoder, router, stop,
                   heartbeat_file or heartbeat.path(), flush_timeout=settings.flush_timeout,
                   poll_timeout=poll_timeout, wait=wait)
    except Exception as e:
        log.error("the replication stream failed: %s", e)
        return 1
