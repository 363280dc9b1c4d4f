"""Live alert fan-out over Redis pub/sub: the channel names, the message, publish and listen.

The worker publishes each newly raised alert, after the transaction that stored it has
committed, to `tripline:alerts:<owner id>`. Every API replica listens (one pattern subscription,
`tripline:alerts:*`, or one channel per connected user) and forwards to its WebSocket and SSE
clients. Pub/sub is at-most-once: a message published while a listener is disconnected is not
replayed. Postgres is the record; clients catch up from it (SSE `Last-Event-ID`, REST).
The message format is documented in docs/operations.md ("Alert events").

With client spans on (`tripline_common.platform.client_spans`), publishing makes a producer
span and the message carries its trace context in one more key, `trace_context`, after the
event's own: listeners of any version read the event as before (unknown keys are ignored), and
what clients are sent is the event alone. A stream's delivery of the event makes a span in the
publisher's trace (`alert_delivery_span`), linked to the publish span.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import Any, Literal

import orjson
import structlog
from opentelemetry import propagate, trace
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.trace import Link, SpanKind, StatusCode
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError
from redis.asyncio import Redis

from tripline_common.platform.client_spans import client_tracer

log = structlog.get_logger("tripline.pubsub")

ALERT_CHANNEL_PREFIX = "tripline:alerts:"
ALERT_CHANNEL_PATTERN = ALERT_CHANNEL_PREFIX + "*"
ALERT_RAISED = "alert.raised"
ALERT_CHANNEL_TEMPLATE = ALERT_CHANNEL_PREFIX + "{owner_id}"
TRACE_CONTEXT_KEY = "trace_context"


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

    # The trace context the event was published in, as a listener read it from the channel
    # (`listen_alerts`); private: never part of the JSON that clients and webhooks get.
    _trace_context: dict[str, str] | None = PrivateAttr(default=None)

    @property
    def trace_context(self) -> dict[str, str] | None:
        """The `traceparent` (and `tracestate`) the event was published with, if any."""
        return self._trace_context

    @trace_context.setter
    def trace_context(self, carrier: dict[str, str] | None) -> None:
        self._trace_context = carrier

    def to_json(self) -> bytes:
        """The exact bytes published and sent (compact JSON, UTF-8)."""
        return self.model_dump_json().encode()


class _ChannelMessage(AlertEvent):
    """What is read from the channel: the event, and the trace context it was published in
    (absent from a publisher without tracing)."""

    carried_context: dict[str, str] | None = Field(default=None, alias=TRACE_CONTEXT_KEY)

    def event(self) -> AlertEvent:
        """The event alone, carrying the trace context privately (never serialised)."""
        event = AlertEvent.model_construct(type=self.type, version=self.version, alert=self.alert)
        event.trace_context = self.carried_context
        return event


def _messaging_attributes(channel: str, event: AlertEvent) -> dict[str, str]:
    return {
        "messaging.system": "redis",
        "messaging.destination.name": channel,
        "messaging.destination.template": ALERT_CHANNEL_TEMPLATE,
        "messaging.message.id": str(event.alert.id),
    }


async def publish_alert(redis: Redis, event: AlertEvent) -> int:
    """Publish to the owner's channel; returns how many listeners received it."""
    channel, body = alert_channel(event.alert.owner_id), event.to_json()
    tracer = client_tracer()
    if tracer is None:
        receivers: int = await redis.publish(channel, body)
        return receivers
    attributes: dict[str, str | int] = {
        **_messaging_attributes(channel, event),
        "messaging.operation.type": "send",
        "messaging.operation.name": "publish",
        "messaging.message.body.size": len(body),
    }
    with tracer.start_as_current_span(
        f"publish {ALERT_CHANNEL_TEMPLATE}", kind=SpanKind.PRODUCER, attributes=attributes
    ):
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        if carrier:
            # The event's JSON object with one more key at its end: no re-serialisation.
            body = body[:-1] + b',"%s":%s}' % (TRACE_CONTEXT_KEY.encode(), orjson.dumps(carrier))
        # This span is the publish: the instrumented PUBLISH command under it would repeat it.
        with suppress_instrumentation():
            receivers = await redis.publish(channel, body)
    return receivers


def published_trace_ids(event: AlertEvent) -> dict[str, str]:
    """`trace_id` and `span_id` (W3C hex) of the span that published `event`, for a log line
    about the event written outside any span of its own (a replica's `alert_pushed`): the line
    then shows in the publisher's trace. Empty when the event carries no trace context."""
    carrier = event.trace_context
    if not carrier:
        return {}
    published = trace.get_current_span(propagate.extract(carrier)).get_span_context()
    if not published.is_valid:
        return {}
    return {
        "trace_id": trace.format_trace_id(published.trace_id),
        "span_id": trace.format_span_id(published.span_id),
    }


@contextmanager
def alert_delivery_span(event: AlertEvent, *, transport: str) -> Iterator[None]:
    """A span around handing one published event to one stream client (`transport`:
    websocket or sse). It continues the publisher's trace and links to the publish span, and
    to the stream's own span when one is current: a stream lives for hours, so a delivery is
    not its child. No span when tracing is off or the event carries no trace context."""
    tracer = client_tracer()
    carrier = event.trace_context
    if tracer is None or not carrier:
        yield
        return
    stream = trace.get_current_span().get_span_context()
    published = propagate.extract(carrier)
    links = [Link(trace.get_current_span(published).get_span_context())]
    if stream.is_valid:
        links.append(Link(stream))
    attributes = {
        **_messaging_attributes(alert_channel(event.alert.owner_id), event),
        "messaging.operation.type": "process",
        "messaging.operation.name": "deliver",
        "tripline.stream.transport": transport,
    }
    # Started, not made current: an SSE body yields inside the span, and a current span
    # would leak into the server's code between chunks.
    span = tracer.start_span(
        f"deliver {ALERT_CHANNEL_TEMPLATE}",
        context=published,
        kind=SpanKind.CONSUMER,
        links=links,
        attributes=attributes,
    )
    try:
        yield
    except BaseException as exc:
        span.set_attribute("error.type", type(exc).__qualname__)
        span.set_status(StatusCode.ERROR)
        raise
    finally:
        span.end()


async def listen_alerts(
    redis: Redis, *, owner_id: uuid.UUID | None = None
) -> AsyncIterator[AlertEvent]:
    """Yield alert events as they are published: one user's, or everyone's (`owner_id=None`),
    each with the trace context it was published in.

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
                yield _ChannelMessage.model_validate_json(message["data"]).event()
            except ValidationError as exc:
                log.warning("alert_event_unreadable", channel=message["channel"], error=str(exc))
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call]
