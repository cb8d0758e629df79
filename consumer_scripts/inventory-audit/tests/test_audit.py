import io
import json
import os
import tempfile
import unittest

from audit.__main__ import serve
from audit.records import audit_records, changed_columns

SRC = {"connector": "mysql", "db": "inventory", "table": "products", "file": "binlog.000007", "pos": 981, "ts_ms": 17}


def msg_value(op, before=None, after=None, wrapped=False):
    payload = {"op": op, "before": before, "after": after, "source": SRC}
    return json.dumps({"schema": {}, "payload": payload} if wrapped else payload).encode()


class RecordsTest(unittest.TestCase):
    def test_one_record_per_changed_column(self):
        v = msg_value("u", before={"id": 42, "price": 10, "name": "bolt", "updated_at": 1},
                      after={"id": 42, "price": 12, "name": "bolt", "updated_at": 2}, wrapped=True)
        recs = audit_records(v, ignored=["updated_at"])
        self.assertEqual(len(recs), 1)
        r = recs[0]
        self.assertEqual((r["table"], r["key"], r["action"], r["column"], r["old"], r["new"]),
                         ("inventory.products", 42, "update", "price", 10, 12))
        self.assertEqual(r["binlog"], "binlog.000007:981")

    def test_inserts_and_deletes_record_every_column(self):
        ins = audit_records(msg_value("c", after={"id": 1, "name": "nut"}))
        self.assertEqual({(r["column"], r["old"], r["new"]) for r in ins}, {("id", None, 1), ("name", None, "nut")})
        dele = audit_records(msg_value("d", before={"id": 1, "name": "nut"}))
        self.assertEqual({r["action"] for r in dele}, {"delete"})
        self.assertEqual(dele[0]["key"], 1)

    def test_tombstones_and_truncates_record_nothing(self):
        self.assertEqual(audit_records(None), [])
        self.assertEqual(audit_records(msg_value("t")), [])

    def test_changed_columns_sees_added_and_removed_columns(self):
        self.assertEqual(list(changed_columns({"a": 1}, {"b": 2})), [("a", 1, None), ("b", None, 2)])


class Msg:
    def __init__(self, v, off):
        self.v, self.off = v, off

    def error(self):
        return None

    def value(self):
        return self.v

    def topic(self):
        return "t"

    def partition(self):
        return 0

    def offset(self):
        return self.off


class Consumer:
    def __init__(self, batches):
        self.batches, self.commits, self.closed = batches, 0, False

    def consume(self, num_messages, timeout):
        return self.batches.pop(0) if self.batches else []

    def commit(self, asynchronous):
        self.commits += 1

    def close(self):
        self.closed = True


class ServeTest(unittest.TestCase):
    def test_writes_commits_and_stops(self):
        c = Consumer([[Msg(msg_value("c", after={"id": 1}), 0), Msg(b"{bad", 1)], []])
        out = io.StringIO()
        polls = []
        with tempfile.TemporaryDirectory() as d:
            hb = os.path.join(d, "hb")
            n = serve(c, out, hb, [], lambda: len(polls.append(1) or polls) > 2)
            self.assertTrue(os.path.exists(hb))
        self.assertEqual(n, 1)
        self.assertEqual(json.loads(out.getvalue())["column"], "id")
        self.assertEqual(c.commits, 1, "only batches with messages are committed")
        self.assertTrue(c.closed)


if __name__ == "__main__":
    unittest.main()
