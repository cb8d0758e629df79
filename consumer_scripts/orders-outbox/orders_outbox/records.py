"""From logical-decoding messages to outbox records, and from outbox records to Kafka messages.

The application writes its events into this table in the same transaction as its own changes:

    CREATE TABLE public.outbox (
        id             uuid        PRIMARY KEY,
        aggregate_type text        NOT NULL,  -- "orders" -> topic "outbox.orders"
        aggregate_id   text        NOT NULL,  -- the Kafka key: one partition, so one order, per aggregate
        event_type     text        NOT NULL,  -- "OrderPlaced"
        payload        jsonb       NOT NULL,
        created_at     timestamptz NOT NULL DEFAULT now()
    );
    CREATE PUBLICATION orders_outbox FOR TABLE public.outbox WITH (publish = 'insert');

Two output plugins are understood, one message per row either way:

- `pgoutput` (the default): built into Postgres, scoped by the publication. Its binary protocol
  (version 1) is parsed here: a Relation message names a table's columns before the first Insert
  into it on each connection, and column values come as text.
- `wal2json` with `format-version` 2: simpler (one JSON document per row), but an extension that
  must be installed on the server. jsonb values come as JSON text in a string.

Only inserts into the outbox table become records: updates, deletes (an application may delete
outbox rows once written), transactions' begin and commit, and other tables decode to ``None``.
A row that is not the expected shape raises :class:`Malformed`; the relay logs it with its LSN
and goes on, because a row that can never be published must not hold the slot (and with it the
database's WAL) forever.
"""

import json
import re
import struct
from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Tuple

REQUIRED_COLUMNS = ("id", "aggregate_type", "aggregate_id", "event_type", "payload")
# What Kafka accepts in a topic name.
_TOPIC = re.compile(r"[A-Za-z0-9._-]{1,249}")


class Malformed(ValueError):
    """The message or the row is not what the relay can publish."""


@dataclass(frozen=True)
class OutboxRecord:
    event_id: str
    aggregate_type: str
    aggregate_id: str
    event_type: str
    payload: bytes  # JSON, as the application wrote it


def format_lsn(lsn: int) -> str:
    """An LSN as Postgres writes it: `16/B374D848`."""
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


def record_from_row(row: Dict[str, object]) -> OutboxRecord:
    """Check an outbox row (column name -> value) and make it a record."""
    missing = [c for c in REQUIRED_COLUMNS if row.get(c) in (None, "")]
    if missing:
        raise Malformed(f"outbox row without {', '.join(missing)}")
    payload = row["payload"]
    if isinstance(payload, str):  # jsonb as text (pgoutput, wal2json) or a text column
        try:
            json.loads(payload)
        except ValueError as e:
            raise Malformed(f"payload is not JSON: {e}") from e
        value = payload.encode()
    elif isinstance(payload, (dict, list)):
        value = json.dumps(payload, separators=(",", ":")).encode()
    else:
        raise Malformed(f"payload is a {type(payload).__name__}, not a JSON document")
    return OutboxRecord(
        event_id=str(row["id"]),
        aggregate_type=str(row["aggregate_type"]),
        aggregate_id=str(row["aggregate_id"]),
        event_type=str(row["event_type"]),
        payload=value,
    )


class Wal2JsonDecoder:
    """wal2json `format-version` 2: `{"action": "I", "schema": ..., "table": ..., "columns": [...]}`."""

    plugin = "wal2json"
    _ACTIONS = {"I", "U", "D", "T", "B", "C", "M"}

    def __init__(self, table: str) -> None:
        self.table = table

    def options(self, publication: str) -> Dict[str, str]:
        # Only the outbox table, and no begin/commit records for every transaction of the database.
        return {"format-version": "2", "add-tables": self.table, "include-transaction": "false"}

    def decode(self, payload: bytes) -> Optional[OutboxRecord]:
        try:
            doc = json.loads(payload)
        except (UnicodeDecodeError, ValueError) as e:
            raise Malformed(f"not JSON: {e}") from e
        if not isinstance(doc, dict) or doc.get("action") not in self._ACTIONS:
            raise Malformed("not a wal2json format-version 2 record")
        if doc["action"] != "I" or f"{doc.get('schema')}.{doc.get('table')}" != self.table:
            return None
        columns = doc.get("columns")
        if not isinstance(columns, list) or not all(isinstance(c, dict) and "name" in c for c in columns):
            raise Malformed("insert without a list of columns")
        return record_from_row({c["name"]: c.get("value") for c in columns})


class PgOutputDecoder:
    """pgoutput, protocol version 1. Keeps the Relation messages it has seen (relation id -> name
    and columns): the server sends one before the first change to a table on each connection."""

    plugin = "pgoutput"
    _OTHER = {b"B", b"C", b"O", b"Y", b"U", b"D", b"T", b"M"}

    def __init__(self, table: str) -> None:
        self.table = table
        self.relations: Dict[int, Tuple[str, List[str]]] = {}

    def options(self, publication: str) -> Dict[str, str]:
        return {"proto_version": "1", "publication_names": publication}

    def decode(self, payload: bytes) -> Optional[OutboxRecord]:
        payload = bytes(payload)
        kind = payload[:1]
        try:
            if kind == b"R":
                self._relation(_Reader(payload, 1))
                return None
            if kind == b"I":
                return self._insert(_Reader(payload, 1))
        except Malformed:
            raise
        except (struct.error, ValueError) as e:
            raise Malformed(f"truncated or undecodable pgoutput {kind!r} message: {e}") from e
        if kind in self._OTHER:
            return None
        raise Malformed(f"unknown pgoutput message type {kind!r}")

    def _relation(self, r: "_Reader") -> None:
        relid, namespace, name = r.int32(), r.cstring(), r.cstring()
        r.byte()  # replica identity
        columns = []
        for _ in range(r.int16()):
            r.byte()  # flags
            columns.append(r.cstring())
            r.int32()  # type oid
            r.int32()  # type modifier
        self.relations[relid] = (f"{namespace or 'pg_catalog'}.{name}", columns)

    def _insert(self, r: "_Reader") -> Optional[OutboxRecord]:
        relid = r.int32()
        if relid not in self.relations:
            raise Malformed(f"insert into relation {relid}, which no Relation message described")
        table, columns = self.relations[relid]
        if table != self.table:
            return None
        if r.byte() != b"N":
            raise Malformed("insert without a new tuple")
        values = list(_tuple(r))
        if len(values) != len(columns):
            raise Malformed(f"insert has {len(values)} values for {len(columns)} columns")
        return record_from_row(dict(zip(columns, values)))


def _tuple(r: "_Reader") -> Iterable[Optional[str]]:
    for _ in range(r.int16()):
        kind = r.byte()
        if kind == b"n":
            yield None
        elif kind == b"u":  # an unchanged TOASTed value: never in an insert
            yield None
        elif kind == b"t":
            yield r.take(r.int32()).decode("utf-8")
        else:
            raise Malformed(f"unknown tuple column kind {kind!r}")


class _Reader:
    def __init__(self, data: bytes, pos: int) -> None:
        self.data, self.pos = data, pos

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise struct.error(f"wanted {n} bytes at {self.pos}, message has {len(self.data)}")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def byte(self) -> bytes:
        return self.take(1)

    def int16(self) -> int:
        return struct.unpack(">h", self.take(2))[0]

    def int32(self) -> int:
        return struct.unpack(">i", self.take(4))[0]

    def cstring(self) -> str:
        end = self.data.index(b"\0", self.pos)
        text = self.data[self.pos:end].decode("utf-8")
        self.pos = end + 1
        return text


def decoder_for(plugin: str, table: str):
    if plugin == "pgoutput":
        return PgOutputDecoder(table)
    if plugin == "wal2json":
        return Wal2JsonDecoder(table)
    raise ValueError(f"unknown output plugin {plugin!r}: use pgoutput or wal2json")


class Router:
    """Where a record goes: topic `<prefix><aggregate_type>`, keyed by the aggregate id (so one
    aggregate's events keep their order), with the event's id and type as headers."""

    def __init__(self, prefix: str, allowed: Optional[Iterable[str]] = None) -> None:
        self.prefix = prefix
        self.allowed = frozenset(allowed) if allowed else None

    def message(self, record: OutboxRecord, lsn: int) -> dict:
        topic = self.prefix + record.aggregate_type
        if not _TOPIC.fullmatch(topic):
            raise Malformed(f"aggregate_type {record.aggregate_type!r} does not make a topic name")
        if self.allowed is not None and topic not in self.allowed:
            # The task role may write only its `[msk] write_topics`; an unknown aggregate type would
            # fail every delivery and stop the relay on the same row after each restart.
            raise Malformed(f"topic {topic!r} is not one of {', '.join(sorted(self.allowed))}")
        return {
            "topic": topic,
            "key": record.aggregate_id.encode(),
            "value": record.payload,
            "headers": [
                ("event_id", record.event_id.encode()),
                ("event_type", record.event_type.encode()),
                ("aggregate_type", record.aggregate_type.encode()),
                ("source_lsn", format_lsn(lsn).encode()),
            ],
        }
