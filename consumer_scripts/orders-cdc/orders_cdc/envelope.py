"""Parsing of Debezium change-event envelopes.

A Debezium message value is either the envelope itself or, with the JSON converter's schemas
enabled, ``{"schema": ..., "payload": <envelope>}``. A delete is followed by a tombstone (a null
value) that only matters for log compaction.
"""

import json
from dataclasses import dataclass
from typing import Any, Optional

OPERATIONS = {"c": "create", "u": "update", "d": "delete", "r": "read", "t": "truncate"}


class MalformedEvent(ValueError):
    """The message is not a Debezium change event."""


@dataclass(frozen=True)
class ChangeEvent:
    op: str
    before: Optional[dict]
    after: Optional[dict]
    source: dict
    ts_ms: Optional[int]

    @property
    def table(self) -> str:
        return f"{self.source.get('schema') or self.source.get('db')}.{self.source.get('table')}"

    @property
    def position(self) -> str:
        """A position in the source log, unique per change: LSN for Postgres, binlog for MySQL."""
        s = self.source
        if s.get("lsn") is not None:
            return f"lsn:{s['lsn']}"
        if s.get("file") is not None:
            return f"binlog:{s['file']}:{s.get('pos')}:{s.get('row', 0)}"
        return f"ts:{s.get('ts_ms')}"

    @property
    def row(self) -> dict:
        """The row as it is now, or as it was before a delete."""
        return self.after if self.after is not None else (self.before or {})


def parse(value: Optional[bytes]) -> Optional[ChangeEvent]:
    """Parse a message value; ``None`` for a tombstone."""
    if value is None:
        return None
    try:
        doc: Any = json.loads(value)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise MalformedEvent(f"not JSON: {e}") from e
    if isinstance(doc, dict) and "payload" in doc and "schema" in doc:
        doc = doc["payload"]
    if doc is None:
        return None
    if not isinstance(doc, dict):
        raise MalformedEvent("the envelope is not an object")
    op = doc.get("op")
    if op not in OPERATIONS:
        raise MalformedEvent(f"unknown op {op!r}")
    before, after, source = doc.get("before"), doc.get("after"), doc.get("source")
    if not isinstance(source, dict):
        raise MalformedEvent("missing `source` block")
    if op in ("c", "r") and not isinstance(after, dict):
        raise MalformedEvent(f"op {op!r} without `after`")
    if op == "d" and not isinstance(before, dict):
        raise MalformedEvent("delete without `before`: set REPLICA IDENTITY FULL or include keys")
    if op == "u" and not isinstance(after, dict):
        raise MalformedEvent("update without `after`")
    return ChangeEvent(op=op, before=before, after=after, source=source, ts_ms=doc.get("ts_ms"))
