"""Correlation IDs: accept or make one per request, return it, bind it to logs, Sentry and jobs."""

from __future__ import annotations

import re
import uuid
from contextvars import ContextVar

import sentry_sdk
import structlog
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUEST_ID_HEADER = "X-Request-ID"
MAX_REQUEST_ID_LENGTH = 128
# Letters, digits and the separators that common generators use (UUIDs, ULIDs, trace IDs).
# Anything else (spaces, quotes, newlines, control characters) could forge log lines.
_VALID_REQUEST_ID = re.compile(rf"^[A-Za-z0-9._:\-]{{1,{MAX_REQUEST_ID_LENGTH}}}$")

_request_id: ContextVar[str | None] = ContextVar("request_id", default=None)


def new_request_id() -> str:
    """A fresh correlation ID (32 hex characters)."""
    return uuid.uuid4().hex


def clean_request_id(value: str | None) -> str | None:
    """Return `value` when it is an acceptable correlation ID, else None."""
    if value and _VALID_REQUEST_ID.match(value):
        return value
    return None


def get_request_id() -> str | None:
    """The correlation ID of the request or job being handled, if any."""
    return _request_id.get()


def bind_request_id(request_id: str | None) -> None:
    """Make `request_id` current for logs, Sentry events and enqueued jobs."""
    _request_id.set(request_id)
    if request_id is None:
        structlog.contextvars.unbind_contextvars("request_id")
    else:
        structlog.contextvars.bind_contextvars(request_id=request_id)
        sentry_sdk.set_tag("request_id", request_id)


class CorrelationIdMiddleware:
    """Outermost middleware: every request gets a correlation ID, every response carries it.

    An incoming `X-Request-ID` is kept when it is well formed; a malformed or oversized one is
    replaced (and the original is logged, truncated), so a client can never inject log lines.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return

        incoming: str | None = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                incoming = value.decode("latin-1")
                break
        request_id = clean_request_id(incoming) or new_request_id()

        structlog.contextvars.clear_contextvars()
        bind_request_id(request_id)
        scope.setdefault("state", {})["request_id"] = request_id
        if incoming is not None and incoming != request_id:
            structlog.get_logger("tripline.correlation").warning(
                "request_id_rejected", received=incoming[:64]
            )

        async def send_with_request_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers[REQUEST_ID_HEADER] = request_id
            await send(message)

        try:
            await self.app(scope, receive, send_with_request_id)
        finally:
            structlog.contextvars.clear_contextvars()
            _request_id.set(None)
