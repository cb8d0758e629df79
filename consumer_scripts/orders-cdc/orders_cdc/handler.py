"""What the orders consumer does with each change: tell fulfilment about orders that were placed,
changed status or were removed. Pure decisions here; delivery is the sink's business."""

from dataclasses import dataclass
from typing import Optional

from .envelope import ChangeEvent


@dataclass(frozen=True)
class FulfilmentEvent:
    kind: str  # placed | status_changed | cancelled
    order_id: object
    status: Optional[str]
    previous_status: Optional[str]
    idempotency_key: str

    def to_json(self) -> dict:
        return {
            "kind": self.kind,
            "order_id": self.order_id,
            "status": self.status,
            "previous_status": self.previous_status,
            "idempotency_key": self.idempotency_key,
        }


def decide(event: ChangeEvent, emit_snapshot: bool = False) -> Optional[FulfilmentEvent]:
    """The fulfilment event a change calls for, or ``None``."""
    row = event.row
    order_id = row.get("id")
    if order_id is None:
        return None
    key = f"{event.position}:{order_id}"
    if event.op == "c" or (event.op == "r" and emit_snapshot):
        return FulfilmentEvent("placed", order_id, row.get("status"), None, key)
    if event.op == "u":
        old = (event.before or {}).get("status")
        new = row.get("status")
        if event.before is not None and old == new:
            return None  # another column changed; fulfilment does not care
        return FulfilmentEvent("status_changed", order_id, new, old, key)
    if event.op == "d":
        return FulfilmentEvent("cancelled", order_id, None, row.get("status"), key)
    return None
