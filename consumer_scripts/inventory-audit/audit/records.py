"""From a Debezium change event to audit records: one record per changed column, so an audit
query can ask "when did the price of product 42 change" without diffing whole rows."""

import json
from typing import Iterable, Iterator, Optional

_OPS = {"c": "insert", "u": "update", "d": "delete", "r": "snapshot"}


def _envelope(raw: Optional[bytes]) -> Optional[dict]:
    if raw is None:
        return None
    doc = json.loads(raw)
    if isinstance(doc, dict) and "schema" in doc and "payload" in doc:
        doc = doc["payload"]
    return doc


def _key(row: dict) -> object:
    return row.get("id", row.get("sku"))


def changed_columns(before: Optional[dict], after: Optional[dict], ignored: Iterable[str] = ()) -> Iterator[tuple]:
    """Yield ``(column, old, new)`` for every column whose value differs."""
    before, after, skip = before or {}, after or {}, set(ignored)
    for column in sorted(set(before) | set(after)):
        if column in skip:
            continue
        old, new = before.get(column), after.get(column)
        if old != new:
            yield column, old, new


def audit_records(raw: Optional[bytes], ignored: Iterable[str] = ()) -> list:
    """The audit records for one message value; none for tombstones and truncates."""
    env = _envelope(raw)
    if env is None or env.get("op") not in _OPS:
        return []
    source = env.get("source") or {}
    before, after = env.get("before"), env.get("after")
    row = after if after is not None else (before or {})
    base = {
        "table": f"{source.get('db')}.{source.get('table')}",
        "key": _key(row),
        "action": _OPS[env["op"]],
        "committed_at_ms": source.get("ts_ms"),
        "binlog": f"{source.get('file')}:{source.get('pos')}",
    }
    return [dict(base, column=c, old=o, new=n) for c, o, n in changed_columns(before, after, ignored)]
