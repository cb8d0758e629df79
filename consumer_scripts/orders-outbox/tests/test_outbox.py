"""The relay's guarantees, checked against fakes of psycopg2's replication cursor and of
confluent-kafka's producer (no database, no Kafka): rows decode, an LSN is confirmed only after
Kafka acknowledged it and everything before it, SIGTERM flushes, confirms and closes without ever
dropping the slot, and a busy slot is retried until a deadline on a fake clock."""

import json
import os
import pathlib
import signal
import struct
import tempfile
import time
import unittest

from orders_outbox import healthcheck, heartbeat, settings
from orders_outbox.acks import Acks
from orders_outbox.app import serve
from orders_outbox.records import Malformed, PgOutputDecoder, Router, Wal2JsonDecoder
from orders_outbox.relay import Stop, run
from orders_outbox.slot import open_replication

ENV = {
    "PG_HOST": "db", "PG_DATABASE": "shop", "PG_USER": "outbox", "PG_PASSWORD": "pw",
    "KAFKA_BOOTSTRAP_SERVERS": "b-1:9098", "PG_OUTPUT_PLUGIN": "wal2json",
    "KAFKA_ALLOWED_TOPICS": "outbox.orders,outbox.payments", "SLOT_WAIT_SECONDS": "30",
}
ROW = {"id": "e-1", "aggregate_type": "orders", "aggregate_id": "o-7", "event_type": "OrderPlaced",
       "payload": '{"total": 12}'}


def w2j(row=None, action="I", table="outbox", **extra):
    row = ROW if row is None else row
    doc = {"action": action, "schema": "public", "table": table,
           "columns": [{"name": k, "type": "text", "value": v} for k, v in row.items()], **extra}
    return json.dumps(doc).encode()


def row_at(lsn, **changes):
    """A wal2json insert whose aggregate id names its LSN, so deliveries can be told apart."""
    return FakeMsg(w2j(dict(ROW, id=f"e-{lsn}", aggregate_id=f"A{lsn}", **changes)), lsn)


# --- pgoutput protocol 1, as the server writes it -------------------------------------------

def pg_relation(relid, namespace, name, columns):
    cols = b"".join(b"\x00" + c.encode() + b"\x00" + struct.pack(">ii", 25, -1) for c in columns)
    return (b"R" + struct.pack(">i", relid) + namespace.encode() + b"\x00" + name.encode() + b"\x00"
            + b"d" + struct.pack(">h", len(columns)) + cols)


def pg_insert(relid, values):
    data = b"".join(b"n" if v is None else b"t" + struct.pack(">i", len(v.encode())) + v.encode()
                    for v in values)
    return b"I" + struct.pack(">i", relid) + b"N" + struct.pack(">h", len(values)) + data


# --- fakes of psycopg2's replication connection and confluent-kafka's producer ----------------

class FakeMsg:
    def __init__(self, payload, data_start):
        self.payload, self.data_start = payload, data_start


class FakePgError(Exception):
    def __init__(self, message, pgcode):
        super().__init__(message)
        self.pgcode = pgcode


class FakeCursor:
    """Hands out a script of messages (None = nothing yet), then asks the loop to stop."""

    def __init__(self, events, script=(), stop=None, producer=None, on_read=None):
        self.events, self.script, self.stop = events, list(script), stop
        self.producer, self.on_read = producer, on_read
        self.flushed, self.last_start, self.reads = 0, 0, 0
        self.unsafe_reads = []

    def read_message(self):
        # psycopg2 moves the flush position to the server's WAL end on a keepalive when the last
        # message read is at or below the flushed position: that must never happen with rows in flight.
        if self.producer is not None and self.producer.pending and self.flushed >= self.last_start:
            self.unsafe_reads.append(self.last_start)
        self.reads += 1
        if self.on_read:
            self.on_read(self.reads)
        if not self.script:
            self.stop.event.set()
            return None
        msg = self.script.pop(0)
        if msg is not None:
            self.last_start = msg.data_start
        return msg

    def send_feedback(self, write_lsn=0, flush_lsn=0, apply_lsn=0, reply=False, force=False):
        self.flushed = max(self.flushed, flush_lsn)
        self.events.append(("feedback", flush_lsn, force))

    def drop_replication_slot(self, *a, **kw):
        self.events.append(("DROP", a, kw))

    def execute(self, sql, *a):
        self.events.append(("execute", sql))


class FakeConn:
    def __init__(self, events, cursor):
        self.events, self._cursor = events, cursor

    def cursor(self):
        return self._cursor

    def close(self):
        self.events.append(("close",))


class FakeProducer:
    """Delivers each message on the `delay`-th poll after it was produced, or at flush."""

    def __init__(self, events, delay=1, fail=(), hold=()):
        self.events, self.delay, self.fail, self.hold = events, delay, set(fail), set(hold)
        self.pending, self.topics = [], []

    def produce(self, topic, key, value, headers, on_delivery):
        self.topics.append(topic)
        self.pending.append([key.decode(), on_delivery, self.delay])

    def _deliver(self, p):
        if p[0] in self.hold:
            return
        self.pending.remove(p)
        err = "broker refused" if p[0] in self.fail else None
        self.events.append(("failed" if err else "delivered", int(p[0][1:])))
        p[1](err, None)

    def poll(self, timeout=0):
        for p in list(self.pending):
            p[2] -= 1
            if p[2] <= 0:
                self._deliver(p)

    def flush(self, timeout=None):
        self.events.append(("flush", timeout))
        for p in list(self.pending):
            self._deliver(p)
        return len(self.pending)


def feedbacks(events):
    return [e[1] for e in events if e[0] == "feedback"]


class DecodeTest(unittest.TestCase):
    def test_wal2json_insert_becomes_a_routed_kafka_message(self):
        rec = Wal2JsonDecoder("public.outbox").decode(w2j())
        msg = Router("outbox.", ["outbox.orders"]).message(rec, 0x16B374D848)
        self.assertEqual((msg["topic"], msg["key"], msg["value"]), ("outbox.orders", b"o-7", b'{"total": 12}'))
        self.assertEqual(dict(msg["headers"]), {"event_id": b"e-1", "event_type": b"OrderPlaced",
                                                "aggregate_type": b"orders", "source_lsn": b"16/B374D848"})
        # jsonb that arrives as an object is re-serialised, not refused
        rec = Wal2JsonDecoder("public.outbox").decode(w2j(dict(ROW, payload={"total": 12})))
        self.assertEqual(json.loads(rec.payload), {"total": 12})

    def test_wal2json_other_actions_and_tables_are_not_records(self):
        d = Wal2JsonDecoder("public.outbox")
        for payload in (b'{"action": "B"}', b'{"action": "C"}', w2j(action="D"), w2j(action="U"),
                        w2j(table="orders")):
            self.assertIsNone(d.decode(payload), payload)

    def test_pgoutput_relation_then_insert(self):
        d = PgOutputDecoder("public.outbox")
        columns = ["id", "aggregate_type", "aggregate_id", "event_type", "payload", "created_at"]
        self.assertIsNone(d.decode(struct.pack(">cqqi", b"B", 1, 2, 3)))
        self.assertIsNone(d.decode(pg_relation(16401, "public", "outbox", columns)))
        rec = d.decode(pg_insert(16401, ["e-9", "payments", "p-1", "PaymentTaken", '{"a": [1]}', None]))
        self.assertEqual((rec.event_id, rec.aggregate_type, rec.aggregate_id, rec.payload),
                         ("e-9", "payments", "p-1", b'{"a": [1]}'))
        self.assertIsNone(d.decode(pg_relation(16500, "public", "orders", ["id"])))
        self.assertIsNone(d.decode(pg_insert(16500, ["1"])), "other tables are not outbox rows")
        for bad in (pg_insert(99, ["x"]), pg_insert(16401, ["e-9"]), pg_insert(16401, ["e"])[:-3], b"Zzz"):
            with self.assertRaises(Malformed):
                d.decode(bad)

    def test_malformed_rows_are_refused(self):
        d, router = Wal2JsonDecoder("public.outbox"), Router("outbox.", ["outbox.orders"])
        bad_rows = [dict(ROW, payload="{not json"), {k: v for k, v in ROW.items() if k != "aggregate_id"},
                    dict(ROW, event_type=None), dict(ROW, payload=12)]
        for payload in [b"garbage", b"[1]", b'{"action": "X"}', w2j(columns="nope"),
                        *[w2j(r) for r in bad_rows]]:
            with self.assertRaises(Malformed, msg=payload):
                d.decode(payload)
        for aggregate_type in ("refunds", "bad/topic"):  # not writable / not a topic name
            with self.assertRaises(Malformed):
                router.message(d.decode(w2j(dict(ROW, aggregate_type=aggregate_type))), 1)


class AcksTest(unittest.TestCase):
    def test_only_the_delivered_prefix_is_confirmable_and_never_past_a_failure(self):
        a = Acks()
        e1, e2 = a.track(100), a.track(200)
        a.skip(250)
        e3 = a.track(300)
        a.delivered(e2)
        self.assertEqual(a.advance(), 0, "200 is delivered but 100 is not")
        a.delivered(e1)
        self.assertEqual(a.advance(), 250)
        a.failed(e3, "timed out")
        a.skip(400)
        self.assertEqual(a.advance(), 250)
        self.assertEqual(a.failure, "timed out")


class RelayTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.hb = os.path.join(self.dir.name, "heartbeat")
        self.events, self.stop = [], Stop()

    def tearDown(self):
        self.dir.cleanup()

    def relay(self, script, **producer_kw):
        producer = FakeProducer(self.events, **producer_kw)
        cursor = FakeCursor(self.events, script, self.stop, producer)
        conn = FakeConn(self.events, cursor)
        code = run(conn, cursor, producer, Wal2JsonDecoder("public.outbox"),
                   Router("outbox.", ["outbox.orders"]), self.stop, self.hb,
                   flush_timeout=5, poll_timeout=0, wait=lambda c, t: None)
        return code, cursor, producer

    def assert_kept_the_slot(self):
        self.assertFalse([e for e in self.events if e[0] in ("DROP", "execute")])
        self.assertEqual(self.events[-1], ("close",))

    def test_lsn_is_confirmed_only_after_delivery(self):
        code, cursor, _ = self.relay([row_at(100), row_at(200), None, row_at(300), None, None],
                                     delay=3)
        self.assertEqual(code, 0)
        delivered = set()
        for e in self.events:
            if e[0] == "delivered":
                delivered.add(e[1])
            if e[0] == "feedback":
                self.assertTrue(all(lsn in delivered for lsn in (100, 200, 300) if lsn <= e[1]),
                                f"confirmed {e[1]} before its delivery: {self.events}")
        self.assertEqual(feedbacks(self.events)[-1], 300)
        self.assertTrue(os.path.exists(self.hb))
        self.assert_kept_the_slot()

    def test_a_failed_delivery_is_never_confirmed_and_exits_1(self):
        with self.assertLogs("orders_outbox", "ERROR") as logs:
            code, _, _ = self.relay([row_at(100), None, row_at(200), row_at(300), None, None],
                                    fail={"A200"})
        self.assertEqual(code, 1)
        self.assertEqual(max(feedbacks(self.events)), 100, "nothing at or after the failed row")
        self.assertIn("LSN 0/C8", "\n".join(logs.output))
        self.assert_kept_the_slot()

    def test_malformed_rows_are_logged_with_their_lsn_and_skipped(self):
        script = [row_at(100), FakeMsg(b"{oops", 0x150), row_at(0x175, payload="{not json"),
                  row_at(0x200), None]
        with self.assertLogs("orders_outbox", "ERROR") as logs:
            code, _, producer = self.relay(script)
        self.assertEqual(code, 0)
        self.assertEqual(len(producer.topics), 2)
        self.assertEqual(feedbacks(self.events)[-1], 0x200, "the slot moves past malformed rows")
        text = "\n".join(logs.output)
        self.assertIn("LSN 0/150", text)
        self.assertIn("LSN 0/175", text)

    def test_does_not_read_on_while_psycopg2_could_advance_past_a_row_in_flight(self):
        # 300 is delivered and confirmed, then 200 arrives (a transaction that began earlier and
        # committed later): until 200 is delivered, a keepalive must not reach psycopg2.
        code, cursor, _ = self.relay([row_at(300), None, None, row_at(200), row_at(400), None, None],
                                     delay=2)
        self.assertEqual(code, 0)
        self.assertEqual(cursor.unsafe_reads, [])
        self.assertEqual(feedbacks(self.events)[-1], 400)


class ServeTest(unittest.TestCase):
    """The whole life of a task, from START_REPLICATION to its exit code."""

    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.hb = os.path.join(self.dir.name, "heartbeat")
        self.events, self.stop, self.now, self.sleeps = [], Stop(), 1000.0, []

    def tearDown(self):
        self.dir.cleanup()

    def clock(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds
        return False

    def database(self, busy_attempts, slot_exists=False, cursor=None, error=None):
        """connect() for a server whose slot is held by another walsender for the first attempts."""
        db = {"attempts": 0, "slots": {"orders_outbox"} if slot_exists else set()}
        cursor = cursor or FakeCursor(self.events, [], self.stop)
        events = self.events

        def create_replication_slot(slot_name, slot_type=None, output_plugin=None):
            events.append(("create", slot_name, output_plugin))
            if slot_name in db["slots"]:
                raise FakePgError(f'replication slot "{slot_name}" already exists', "42710")
            db["slots"].add(slot_name)

        def start_replication(slot_name=None, decode=False, options=None, status_interval=10):
            db["attempts"] += 1
            if error is not None:
                raise error
            if db["attempts"] <= busy_attempts:
                raise FakePgError(f'replication slot "{slot_name}" is active for PID 4242', "55006")
            events.append(("start", slot_name, options))

        cursor.create_replication_slot = create_replication_slot
        cursor.start_replication = start_replication
        return lambda: FakeConn(self.events, cursor)

    def serve(self, connect, env=None, producer=None):
        s = settings.from_env(dict(ENV, **(env or {})))
        return serve(s, connect, producer or FakeProducer(self.events), self.stop,
                     heartbeat_file=self.hb, sleep=self.sleep, clock=self.clock,
                     wait=lambda c, t: None, poll_timeout=0)

    def test_a_busy_slot_is_retried_with_backoff_until_it_is_free(self):
        with self.assertLogs("orders_outbox", "WARNING") as logs:
            code = self.serve(self.database(busy_attempts=3))
        self.assertEqual(code, 0)
        self.assertEqual(self.sleeps, [1.0, 2.0, 4.0])
        self.assertEqual(len([m for m in logs.output if "is active" in m and "retrying" in m]), 3)
        self.assertEqual([e for e in self.events if e[0] == "create"],
                         [("create", "orders_outbox", "wal2json")], "created once, when missing")
        start = [e for e in self.events if e[0] == "start"]
        self.assertEqual(start[0][2]["format-version"], "2")

    def test_a_slot_still_busy_after_the_deadline_exits_1(self):
        with self.assertLogs("orders_outbox", "ERROR") as logs:
            code = self.serve(self.database(busy_attempts=10**6, slot_exists=True))
        self.assertEqual(code, 1)
        self.assertEqual(sum(self.sleeps), 30.0, "waits exactly SLOT_WAIT_SECONDS, no longer")
        self.assertEqual(self.sleeps, [1.0, 2.0, 4.0, 8.0, 10.0, 5.0])
        self.assertIn("is still active after 30s", logs.output[-1])
        self.assertEqual(len([e for e in self.events if e == ("close",)]), 7, "every attempt closed")
        self.assertFalse([e for e in self.events if e[0] in ("DROP", "execute")])

    def test_slot_is_created_only_when_missing_and_other_errors_are_not_retried(self):
        connect = self.database(busy_attempts=0, slot_exists=True)
        with self.assertLogs("orders_outbox", "INFO"):
            self.assertEqual(self.serve(connect), 0)
        self.events.clear()
        self.assertEqual(self.serve(self.database(busy_attempts=0), env={"PG_CREATE_SLOT": "false"}), 0)
        self.assertFalse([e for e in self.events if e[0] == "create"])
        with self.assertRaises(FakePgError):
            open_replication(self.database(0, error=FakePgError("password authentication failed", "28P01")),
                             "s", "pgoutput", {}, create_slot=False, wait_seconds=30,
                             sleep=self.sleep, clock=self.clock)
        self.assertEqual(self.sleeps, [])
        # Nothing in the package can drop the slot or make a temporary one.
        source = "".join(p.read_text() for p in pathlib.Path("orders_outbox").glob("*.py"))
        for forbidden in ("drop_replication_slot", "DROP_REPLICATION_SLOT", "TEMPORARY", "temporary="):
            self.assertNotIn(forbidden, source)

    def test_sigterm_flushes_within_its_deadline_confirms_closes_and_keeps_the_slot(self):
        old = signal.getsignal(signal.SIGTERM)
        self.stop.install()
        try:
            def on_read(n):
                if n == 3:
                    os.kill(os.getpid(), signal.SIGTERM)
            producer = FakeProducer(self.events, delay=10, hold={"A300"})
            script = [row_at(100), row_at(200), row_at(300), row_at(400)]
            cursor = FakeCursor(self.events, script, self.stop, on_read=on_read)
            with self.assertLogs("orders_outbox", "INFO") as logs:
                code = self.serve(self.database(0, cursor=cursor),
                                  env={"FLUSH_TIMEOUT_SECONDS": "7"}, producer=producer)
        finally:
            signal.signal(signal.SIGTERM, old)
        self.assertEqual(code, 0)
        self.assertEqual([m.data_start for m in cursor.script], [400], "stopped reading at SIGTERM")
        tail = [e for e in self.events if e[0] in ("flush", "feedback", "close")]
        self.assertEqual(tail, [("flush", 7.0), ("feedback", 200, True), ("close",)],
                         "flush, then the final feedback up to the last row Kafka acked, then close")
        self.assertTrue(any("not acknowledged within 7s" in m for m in logs.output))
        self.assertFalse([e for e in self.events if e[0] in ("DROP", "execute")])


class SettingsTest(unittest.TestCase):
    def test_idempotent_producer_with_msk_iam_and_checked_values(self):
        s = settings.from_env(ENV)
        conf = s.producer_config(oauth_cb=print)
        self.assertIs(conf["enable.idempotence"], True)
        self.assertEqual((conf["acks"], conf["sasl.mechanisms"], conf["oauth_cb"]), ("all", "OAUTHBEARER", print))
        self.assertEqual((s.slot, s.slot_wait, s.flush_timeout, s.create_slot), ("orders_outbox", 30, 20, True))
        for bad in ({"PG_SLOT": "Orders-Outbox"}, {"SLOT_WAIT_SECONDS": "soon"}, {"KAFKA_AUTH": "scram"},
                    {"PG_OUTPUT_PLUGIN": "test_decoding"}, {"PG_HOST": ""}, {"PG_CREATE_SLOT": "maybe"}):
            with self.assertRaises(settings.Invalid, msg=bad):
                settings.from_env(dict(ENV, **bad))


class HealthTest(unittest.TestCase):
    def test_heartbeat_and_healthcheck_exit_codes(self):
        with tempfile.TemporaryDirectory() as d:
            f = os.path.join(d, "hb")
            self.assertFalse(heartbeat.healthy(f, 60))
            os.environ["HEARTBEAT_FILE"] = f
            try:
                self.assertEqual(healthcheck.main(), 1)
                heartbeat.beat(f)
                self.assertTrue(heartbeat.healthy(f, 60))
                self.assertEqual(healthcheck.main(), 0)
                os.utime(f, (time.time() - 600, time.time() - 600))
                self.assertEqual(healthcheck.main(), 1)
            finally:
                del os.environ["HEARTBEAT_FILE"]


if __name__ == "__main__":
    unittest.main()
