"""Alert events as the worker publishes them, for tests of the live fan-out (pub/sub, WebSocket,
SSE) in any test folder."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from tripline_common.messaging import AlertData, AlertEvent


def alert_event(owner_id: uuid.UUID, **fields: Any) -> AlertEvent:
    """A speeding alert of `owner_id` raised now, on a trip of its own; `fields` override."""
    values: dict[str, Any] = {
        "id": uuid.uuid4(),
        "owner_id": owner_id,
        "trip_id": uuid.uuid4(),
        "device_id": None,
        "rule": "speeding",
        "severity": "warning",
        "status": "open",
        "message": "90 km/h, over the 80 km/h limit.",
        "details": {"speed_kmh": 90},
        "raised_at": datetime.now(UTC),
        "request_id": "rid-test",
        **fields,
    }
    return AlertEvent(alert=AlertData(**values))
