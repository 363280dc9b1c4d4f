"""Counting refused uploads of `POST /v1/telemetry` by reason, whoever answered them.

An ASGI middleware rather than code in the route: the body-size limit answers 413 before any
route runs, and a database outage becomes a 503 in the error handlers. The status sent decides
the reason; the events are counted from the decoded body when the route got that far and it
parses, else the upload counts as one.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tripline_ingest.state import IngestState
from tripline_ingest.telemetry.body import BODY_SCOPE_KEY, RATE_LIMIT_SCOPE_KEY

UPLOAD_PATH = "/v1/telemetry"

REASONS_BY_STATUS = {
    400: "invalid",
    401: "unauthorized",
    413: "too_large",
    415: "invalid",
    422: "invalid",
    429: "rate_limited",
    503: "unavailable",
}


class RefusalCounter:
    """Counts `tripline_ingest_events_rejected_total{reason}` for refused uploads."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != UPLOAD_PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return

        async def watching_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                reason = REASONS_BY_STATUS.get(message["status"])
                if reason is not None:
                    count_refusal(scope, reason)
            await send(message)

        await self.app(scope, receive, watching_send)


def count_refusal(scope: Scope, reason: str) -> None:
    """Count one refused upload and its events (see the module docstring)."""
    state = IngestState.of(scope["app"])
    events = event_count(scope.get(BODY_SCOPE_KEY))
    if reason == "invalid" and events > state.settings.max_batch_events:
        reason = "too_large"  # The 422 `batch_too_large`: too many events in one batch.
    state.metrics.refused(reason, events, scope.get(RATE_LIMIT_SCOPE_KEY, "device"))


def event_count(body: Any) -> int:
    """The number of events in an upload's decoded body; 1 when it was not read or does not
    parse as a batch."""
    if not body:
        return 1
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return 1
    events = document.get("events") if isinstance(document, dict) else None
    return len(events) if isinstance(events, list) and events else 1
