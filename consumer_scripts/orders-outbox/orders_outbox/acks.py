"""Which position may be confirmed to Postgres: the rule that makes the relay at-least-once.

Confirming an LSN (the flush position of a standby status update) tells Postgres it may forget
everything before it: after a restart the slot resends only transactions that commit after the
confirmed position, and the WAL before it can be recycled. So the relay confirms a message's LSN
only once Kafka has acknowledged it *and every message received before it*. Deliveries complete out
of order (different partitions, retries), so the tracker keeps messages in the order they came and
confirms the end of the delivered prefix; a message that failed is never passed. Messages that need
no delivery (other tables, begin/commit, malformed rows) join the same queue already done, so they
never overtake a row still in flight.

Confirming the LSN of a row inside a transaction is safe: that transaction commits after it, so a
restart resends it whole (the rows already published come again: at-least-once, consumers
deduplicate on the `event_id` header).

One more rule comes from psycopg2 itself: when a keepalive arrives and the last message received
is at or below the position explicitly confirmed, psycopg2 moves the flush position to the end of
the server's WAL on its own (so that an idle slot does not hold WAL). That is right when every
message received is processed, but a relay that confirms after delivery can have rows in flight,
and with concurrent transactions a later message may carry an LSN below one already confirmed (a
transaction that began earlier but committed later). :meth:`Acks.safe_to_read` says when reading on
would expose those rows to that automatic advance; the relay then waits for Kafka first.
"""

from collections import deque
from typing import Deque, Optional


class _Entry:
    __slots__ = ("lsn", "done")

    def __init__(self, lsn: int, done: bool) -> None:
        self.lsn, self.done = lsn, done


class Acks:
    def __init__(self) -> None:
        self._queue: Deque[_Entry] = deque()  # in the order the messages came
        self.confirmable = 0  # highest LSN of the delivered prefix
        self.confirmed = 0  # highest LSN handed to send_feedback
        self.last_received = 0  # LSN of the last message read from the stream
        self.failure: Optional[object] = None
        self.in_flight = 0

    def track(self, lsn: int) -> _Entry:
        """A message that must be delivered before its LSN may be confirmed."""
        self.last_received = lsn
        entry = _Entry(lsn, False)
        self._queue.append(entry)
        self.in_flight += 1
        return entry

    def skip(self, lsn: int) -> None:
        """A message with nothing to deliver: done, but confirmable only after those before it."""
        self.last_received = lsn
        self._queue.append(_Entry(lsn, True))

    def delivered(self, entry: _Entry) -> None:
        if not entry.done:
            entry.done = True
            self.in_flight -= 1

    def failed(self, entry: _Entry, error: object) -> None:
        """The entry stays undone: nothing at or after it is ever confirmed by this process."""
        if self.failure is None:
            self.failure = error

    def advance(self) -> int:
        """Drop the delivered prefix; the highest LSN that may be confirmed now."""
        while self._queue and self._queue[0].done:
            self.confirmable = max(self.confirmable, self._queue.popleft().lsn)
        return self.confirmable

    def safe_to_read(self) -> bool:
        """False while a row is in flight and psycopg2 would advance the flush position past it
        on the next keepalive (the position confirmed is at or beyond the last message read)."""
        return self.in_flight == 0 or self.confirmed < self.last_received
