"""Getting hold of the replication slot at start.

The slot is the relay's durable position: Postgres keeps the WAL from its confirmed LSN on, so a
new task continues exactly where the last one confirmed. That is why this code never drops the
slot and never creates a temporary one (a temporary slot dies with its connection, and the rows
written while no task runs would be lost): it creates the slot only when it does not exist yet, and
only when `PG_CREATE_SLOT` allows it.

A logical slot streams to one connection at a time. When ECS replaces the task, the previous
task's walsender may still hold the slot: until the old task closes its connection, or, if it was
killed, until Postgres notices (`wal_sender_timeout`, 60 s by default). START_REPLICATION then fails
with `replication slot "..." is active for PID ...` (SQLSTATE 55006, psycopg2's ObjectInUse), and
the new task retries with backoff until `SLOT_WAIT_SECONDS` have passed, then gives up (exit 1).
"""

import logging
import time
from typing import Callable, Dict, Optional, Tuple

log = logging.getLogger("orders_outbox")

OBJECT_IN_USE = "55006"
DUPLICATE_OBJECT = "42710"


class SlotBusy(RuntimeError):
    """The slot stayed active past the deadline: another task (or its walsender) holds it."""


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def slot_in_use(exc: BaseException) -> bool:
    return getattr(exc, "pgcode", None) == OBJECT_IN_USE or "is active for PID" in str(exc)


def ensure_slot(cursor, slot: str, plugin: str) -> bool:
    """Create the (permanent) logical slot unless it exists. True when it was created."""
    try:
        cursor.create_replication_slot(slot, output_plugin=plugin)
    except Exception as e:  # psycopg2.errors.DuplicateObject when it exists, active or not
        if getattr(e, "pgcode", None) == DUPLICATE_OBJECT or "already exists" in str(e):
            log.info("replication slot %r exists; continuing from its confirmed position", slot)
            return False
        raise
    log.info("created replication slot %r with the %s plugin", slot, plugin)
    return True


def _close(conn) -> None:
    try:
        conn.close()
    except Exception:  # the connection is being thrown away; its error is not the news
        pass


def open_replication(
    connect: Callable[[], object],
    slot: str,
    plugin: str,
    options: Dict[str, str],
    *,
    create_slot: bool,
    wait_seconds: float,
    sleep: Callable[[float], bool],
    clock: Callable[[], float] = time.monotonic,
    first_delay: float = 1.0,
    max_delay: float = 10.0,
    status_interval: float = 10.0,
) -> Optional[Tuple[object, object]]:
    """Connect and START_REPLICATION on the slot, retrying while it is active elsewhere.

    Returns ``(connection, cursor)``, or ``None`` when ``sleep`` reports a stop request (it
    returns True) during a wait. Raises :class:`SlotBusy` after ``wait_seconds``, and any other
    error at once: only a busy slot is worth waiting for.
    """
    deadline = clock() + wait_seconds
    delay, attempt = first_delay, 0
    while True:
        attempt += 1
        conn = connect()
        try:
            cursor = conn.cursor()
            if create_slot and attempt == 1:
                ensure_slot(cursor, slot, plugin)
            cursor.start_replication(slot_name=slot, decode=False, options=options,
                                     status_interval=status_interval)
        except Exception as e:
            _close(conn)
            if not slot_in_use(e):
                raise
            left = deadline - clock()
            if left <= 0:
                raise SlotBusy(
                    f"replication slot {slot!r} is still active after {wait_seconds:.0f}s and "
                    f"{attempt} attempts ({_first_line(e)}); another task or its walsender holds it: "
                    "is more than one task running? Giving up") from e
            pause = min(delay, left)
            log.warning("replication slot %r is active (attempt %d: %s); retrying in %.1fs, "
                        "giving up in %.0fs", slot, attempt, _first_line(e), pause, left)
            if sleep(pause):
                log.info("stop requested while waiting for replication slot %r", slot)
                return None
            delay = min(delay * 2, max_delay)
            continue
        log.info("streaming from replication slot %r (attempt %d)", slot, attempt)
        return conn, cursor
