"""Live alert fan-out over Redis pub/sub: the channel names, the message, publish and listen.

The worker publishes each newly raised alert, after the transaction that stored it has
committed, to `tripline:alerts:<owner id>`. Every API replica listens (one pattern subscription,
`tripline:alerts:*`, or one channel per connected user) and forwards to its WebSocket and SSE
clients. Pub/sub is at-most-once: a message published while a listener is disconnected is not
replayed. Postgres is the record; clients catch up from it (SSE `Last-Event-ID`, REST).
The message format is documented in docs/operations.md ("Alert events").
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Mapping
from datetime import datetime
from typing import Any, Literal

import structlog
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from redis.asyncio import Redis

log = structlog.get_logger("tripline.pubsub")

ALERT_CHANNEL_PREFIX = "tripline:alerts:"
ALERT_CHANNEL_PATTERN = ALERT_CHANNEL_PREFIX + "*"
ALERT_RAISED = "alert.raised"


def alert_channel(owner_id: uuid.UUID | str) -> str:
    """The channel of one user's alerts."""
    return f"{ALERT_CHANNEL_PREFIX}{owner_id}"


class AlertData(BaseModel):
    """An alert as clients see it: on WebSocket, SSE and in webhook bodies alike."""

    id: uuid.UUID = Field(description="The alert's id (`GET /v1/alerts/{alert_id}`).")
    owner_id: uuid.UUID = Field(description="The user the alert belongs to.")
    trip_id: uuid.UUID = Field(description="The trip whose rule was broken.")
    device_id: uuid.UUID | None = Field(description="The device whose telemetry raised it, if any.")
    rule: str = Field(description="speeding, corridor, late or lost_signal.")
    severity: str = Field(description="info, warning or critical.")
    status: str = Field(description="open, acknowledged or resolved.")
    message: str = Field(description="What happened, in a sentence for people.")
    details: dict[str, Any] = Field(description="The rule's figures (e.g. `speed_kmh`).")
    raised_at: datetime = Field(
        description="When the alert was raised (ISO 8601, with its offset)."
    )
    request_id: str | None = Field(description="Correlation ID of the request behind the alert.")


class AlertEvent(BaseModel):
    """The message on the alert channels, and the body of an alert webhook."""

    # Sent always: the serialization schema lists `type` and `version` as required.
    model_config = ConfigDict(json_schema_serialization_defaults_required=True)

    type: Literal["alert.raised"] = Field("alert.raised", description="What happened.")
    version: Literal[1] = Field(
        1, description="Changes only with an incompatible change; new fields may appear."
    )
    alert: AlertData

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> AlertEvent:
        """Build from an `alerts` row (a mapping of its columns)."""
        return cls(alert=AlertData.model_validate(dict(row)))

    def to_json(self) -> bytes:
        """The exact bytes published and sent (compact JSON, UTF-8)."""
        return self.model_dump_json().encode()


async def publish_alert(redis: Redis, event: AlertEvent) -> int:
    """Publish to the owner's channel; returns how many listeners received it."""
    receivers: int = await redis.publish(alert_channel(event.alert.owner_id), event.to_json())
    return receivers


async def listen_alerts(
    redis: Redis, *, owner_id: uuid.UUID | None = None
) -> AsyncIterator[AlertEvent]:
    """Yield alert events as they are published: one user's, or everyone's (`owner_id=None`).

    Runs until the consumer stops iterating (or is cancelled), then unsubscribes. A message
    that does not parse is logged and skipped. Redis errors propagate: the caller reconnects
    and catches up from Postgres.
    """
    pubsub = redis.pubsub(ignore_subscribe_messages=True)
    try:
        if owner_id is None:
            await pubsub.psubscribe(ALERT_CHANNEL_PATTERN)
        else:
            await pubsub.subscribe(alert_channel(owner_id))
        while True:
            # A bounded wait that returns None when quiet: a blocking read would hit the pool's
            # socket timeout on a quiet channel. The pool's health checks PING meanwhile.
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            if message is None or message["type"] not in ("message", "pmessage"):
                continue
            try:
                yield AlertEvent.model_validate_json(message["data"])
            except ValidationError as exc:
                log.warning("alert_event_unreadable", channel=message["channel"], error=str(exc))
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call]
