"""Correlation IDs: the current one, and binding it to logs, Sentry and jobs.

`tripline_common.web.middleware.EdgeMiddleware` accepts or makes one per request and returns it."""

from __future__ import annotations

import re
import uuid
from contextvars import ContextVar

import sentry_sdk
import structlog

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
    """Make `request_id` current for logs, Sentry events and enqueued jobs.

    (The edge middleware calls it for every request, after `unbind_request_id` has cleared
    what a previous request on the same task may have left.)"""
    _request_id.set(request_id)
    if request_id is None:
        structlog.contextvars.unbind_contextvars("request_id")
    else:
        structlog.contextvars.bind_contextvars(request_id=request_id)
        sentry_sdk.set_tag("request_id", request_id)


def unbind_request_id() -> None:
    """Forget the request's correlation ID and every other log binding (end of a request)."""
    structlog.contextvars.clear_contextvars()
    _request_id.set(None)
