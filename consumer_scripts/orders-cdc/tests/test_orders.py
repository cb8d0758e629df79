import json
import os
import tempfile
import time
import unittest

from orders_cdc import envelope, heartbeat, healthcheck
from orders_cdc.handler import decide
from orders_cdc.loop import Stop, run

SOURCE = {"connector": "postgresql", "db": "shop", "schema": "public", "table": "orders", "lsn": 24023128}


def value(op, before=None, after=None, schema=False, source=SOURCE):
    payload = {"op": op, "before": before, "after": after, "source": source, "ts_ms": 1700000000000}
    doc = {"schema": {"type": "struct"}, "payload": payload} if schema else payload
    return json.dumps(doc).encode()


class EnvelopeTest(unittest.TestCase):
    def test_plain_and_schema_wrapped_envelopes(self):
        for schema in (False, True):
            e = envelope.parse(value("c", after={"id": 1, "status": "new"}, schema=schema))
            self.assertEqual(e.op, "c")
            self.assertEqual(e.table, "public.orders")
            self.assertEqual(e.position, "lsn:24023128")

    def test_tombstones_are_none(self):
        self.assertIsNone(envelope.parse(None))
        self.assertIsNone(envelope.parse(b'{"schema": {}, "payload": null}'))

    def test_malformed_events_are_refused(self):
        for bad in (b"not json", b"[1]", value("x", after={}), value("d", after=None),
                    json.dumps({"op": "c", "after": {"id": 1}}).encode(), b"\xff\xfe"):
            with self.assertRaises(envelope.MalformedEvent):
                envelope.parse(bad)

    def test_mysql_binlog_position(self):
        src = {"connector": "mysql", "db": "inv", "table": "t", "file": "binlog.000003", "pos": 154, "row": 2}
        e = envelope.parse(value("u", before={"id": 1}, after={"id": 1}, source=src))
        self.assertEqual(e.position, "binlog:binlog.000003:154:2")


class DecideTest(unittest.TestCase):
    def ev(self, op, before=None, after=None):
        return envelope.parse(value(op, before=before, after=after))

    def test_created_orders_are_placed(self):
        a = decide(self.ev("c", after={"id": 7, "status": "new"}))
        self.assertEqual((a.kind, a.order_id, a.status), ("placed", 7, "new"))
        self.assertEqual(a.idempotency_key, "lsn:24023128:7")

    def test_status_changes_are_sent_other_updates_are_not(self):
        a = decide(self.ev("u", before={"id": 7, "status": "new"}, after={"id": 7, "status": "paid"}))
        self.assertEqual((a.kind, a.previous_status, a.status), ("status_changed", "new", "paid"))
        self.assertIsNone(decide(self.ev("u", before={"id": 7, "status": "paid", "note": "a"},
                                         after={"id": 7, "status": "paid", "note": "b"})))

    def test_deletes_cancel(self):
        a = decide(self.ev("d", before={"id": 7, "status": "paid"}))
        self.assertEqual((a.kind, a.previous_status), ("cancelled", "paid"))

    def test_snapshot_reads_only_when_asked(self):
        e = self.ev("r", after={"id": 1, "status": "new"})
        self.assertIsNone(decide(e))
        self.assertEqual(decide(e, emit_snapshot=True).kind, "placed")


class FakeMessage:
    def __init__(self, value, offset):
        self._value, self._offset = value, offset

    def error(self):
        return None

    def value(self):
        return self._value

    def topic(self):
        return "dbserver1.public.orders"

    def partition(self):
        return 0

    def offset(self):
        return self._offset


class FakeConsumer:
    """Hands out batches, records commits; asks the loop to stop after the last batch."""

    def __init__(self, batches, stop, fail_on=None):
        self.batches, self.stop, self.commits, self.closed = list(batches), stop, [], False
        self.delivered = 0

    def consume(self, num_messages, timeout):
        if not self.batches:
            self.stop.event.set()
            return []
        batch = self.batches.pop(0)
        self.delivered += len(batch)
        return batch

    def commit(self, asynchronous):
        self.commits.append(self.delivered)

    def close(self):
        self.closed = True


class Sink:
    def __init__(self, fail=False):
        self.sent, self.fail = [], fail

    def send(self, event):
        if self.fail:
            raise ConnectionError("fulfilment is down")
        self.sent.append(event)


class LoopTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.hb = os.path.join(self.dir.name, "heartbeat")

    def tearDown(self):
        self.dir.cleanup()

    def test_commits_after_each_batch_and_stops_cleanly(self):
        stop = Stop()
        batches = [
            [FakeMessage(value("c", after={"id": 1, "status": "new"}), 0), FakeMessage(None, 1)],
            [FakeMessage(b"garbage", 2), FakeMessage(value("d", before={"id": 1, "status": "new"}), 3)],
        ]
        consumer, sink = FakeConsumer(batches, stop), Sink()
        handled = run(consumer, sink, stop, self.hb, poll_timeout=0)
        self.assertEqual(handled, 2)
        self.assertEqual([e.kind for e in sink.sent], ["placed", "cancelled"])
        self.assertEqual(consumer.commits, [2, 4])
        self.assertTrue(consumer.closed)
        self.assertTrue(os.path.exists(self.hb))

    def test_a_failed_delivery_commits_nothing_and_closes(self):
        stop = Stop()
        consumer = FakeConsumer([[FakeMessage(value("c", after={"id": 1}), 0)]], stop)
        with self.assertRaises(ConnectionError):
            run(consumer, Sink(fail=True), stop, self.hb, poll_timeout=0)
        self.assertEqual(consumer.commits, [], "the batch is replayed after a restart")
        self.assertTrue(consumer.closed)

    def test_sigterm_stops_the_loop(self):
        import signal
        stop = Stop()
        old = signal.getsignal(signal.SIGTERM)
        try:
            stop.install()
            os.kill(os.getpid(), signal.SIGTERM)
            self.assertTrue(stop)
        finally:
            signal.signal(signal.SIGTERM, old)


class HealthTest(unittest.TestCase):
    def test_fresh_heartbeat_is_healthy_and_stale_or_missing_is_not(self):
        with tempfile.TemporaryDirectory() as d:
            f = os.path.join(d, "hb")
            self.assertFalse(heartbeat.healthy(f, 60))
            heartbeat.beat(f)
            self.assertTrue(heartbeat.healthy(f, 60))
            self.assertFalse(heartbeat.healthy(f, 60, now=time.time() + 120))

    def test_healthcheck_exit_codes(self):
        with tempfile.TemporaryDirectory() as d:
            f = os.path.join(d, "hb")
            os.environ["HEARTBEAT_FILE"] = f
            try:
                self.assertEqual(healthcheck.main(), 1)
                heartbeat.beat(f)
                self.assertEqual(healthcheck.main(), 0)
                os.utime(f, (time.time() - 600, time.time() - 600))
                self.assertEqual(healthcheck.main(), 1)
            finally:
                del os.environ["HEARTBEAT_FILE"]


if __name__ == "__main__":
    unittest.main()
