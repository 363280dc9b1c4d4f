"""Sentry: on when SENTRY_DSN is set, tagged with release and environment, scrubbed of secrets.

What becomes an event, exactly once each (docs/operations.md, "Sentry"):

- an unhandled exception in a request: `middleware.EdgeMiddleware` captures it (the answer is
  the shared 500); errors the app answers on purpose (4xx, a 503 during an outage) are not
  events, so the framework integrations are told to leave HTTP statuses alone;
- a failed job: `report_job_failures` captures what the job raised, once, because ARQ does not
  run a job again after an ordinary exception. `Retry` (an outage being waited out) is never an
  event: the job runs again, and work outlasting its tries stays pending for the sweepers.

Log lines are not turned into events (`event_level=None`): an error that is logged *and*
captured would otherwise be reported twice, and ARQ logs every failed job a second time.
Log lines of level INFO and above still travel with an event as breadcrumbs.
"""

from __future__ import annotations

import functools
import logging
import re
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import sentry_sdk
from arq import Retry
from sentry_sdk.integrations.fastapi import FastApiIntegration
from sentry_sdk.integrations.logging import LoggingIntegration
from sentry_sdk.integrations.starlette import StarletteIntegration
from sentry_sdk.utils import event_from_exception

from tripline_common.platform.settings import CommonSettings
from tripline_common.platform.tracing import current_trace_ids

T = TypeVar("T")

_SENSITIVE_HEADERS = {
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-device-key",
    "x-api-key",
    "x-csrf-token",
}
# Headers that are kept but may carry a URL, whose query string may carry a token.
_URL_HEADERS = {"referer", "origin", "location"}
_FILTERED = "[Filtered]"
# A URL's query string and fragment inside free text (httpx logs each call's full URL).
_URL_QUERY = re.compile(r"(https?://[^\s?#\"']*)[?#][^\s\"']*")
_SQL_PARAMETERS = "[parameters: "
_SQL_BACKGROUND = "(Background on this error"


def _scrub_headers(headers: Any) -> None:
    if isinstance(headers, dict):
        for name in list(headers):
            if name.lower() in _SENSITIVE_HEADERS:
                headers[name] = _FILTERED
            elif name.lower() in _URL_HEADERS and isinstance(headers[name], str):
                headers[name] = _without_query(headers[name])


def _without_query(url: str) -> str:
    """A URL's query string and fragment may carry tokens (`?access_token=`, signed links)."""
    return url.split("?", 1)[0].split("#", 1)[0]


def _scrub_url_fields(data: dict[str, Any]) -> None:
    for key in ("query_string", "http.query", "http.fragment"):
        data.pop(key, None)
    if isinstance(data.get("url"), str):
        data["url"] = _without_query(data["url"])


def _without_sql_parameters(message: str) -> str:
    """SQLAlchemy's error messages quote the statement's parameters: request values, hashes."""
    start = message.find(_SQL_PARAMETERS)
    if start < 0:
        return message
    end = message.find(_SQL_BACKGROUND, start)
    rest = message[end:] if end >= 0 else ""
    return f"{message[:start]}{_SQL_PARAMETERS}{_FILTERED}]\n{rest}"


def _scrub(event: Any, _hint: Any) -> Any:
    """Drop request bodies, cookies, credentials, query strings and frame variables before
    anything leaves."""
    if not isinstance(event, dict):
        return event
    # Second guard behind include_local_variables=False: a frame's locals may hold the ASGI
    # scope (raw Authorization and Cookie headers) or a parsed body.
    for exception in (event.get("exception") or {}).get("values") or []:
        for frame in (exception.get("stacktrace") or {}).get("frames") or []:
            frame.pop("vars", None)
        if isinstance(exception.get("value"), str):
            exception["value"] = _without_sql_parameters(exception["value"])
    request = event.get("request")
    if isinstance(request, dict):
        request.pop("data", None)
        request.pop("cookies", None)
        _scrub_url_fields(request)
        _scrub_headers(request.get("headers"))
    # ARQ's integration would attach a job's arguments (it masks them without PII, but a job's
    # arguments are never needed: the job ID and the correlation ID find everything).
    extra = event.get("extra")
    if isinstance(extra, dict):
        extra.pop("arq-job", None)
    return event


def _before_send(event: Any, hint: Any) -> Any:
    """Scrub the event, and tag it with the OpenTelemetry trace it happened in (`trace_id`, and
    an `otel` context with the span ID), so an event and its trace find each other."""
    event = _scrub(event, hint)
    ids = current_trace_ids()
    if ids is not None and isinstance(event, dict):
        event.setdefault("tags", {})["trace_id"] = ids[0]
        event.setdefault("contexts", {})["otel"] = {"trace_id": ids[0], "span_id": ids[1]}
    return event


def _scrub_breadcrumb(crumb: Any, hint: Any) -> Any:
    """Outgoing HTTP calls (webhooks) keep no credential headers and no query string; a log
    line keeps its event name only: its fields, and a traceback with SQL parameters in it, stay
    in the logs."""
    if not isinstance(crumb, dict):
        return crumb
    data = crumb.get("data")
    if isinstance(data, dict):
        _scrub_headers(data.get("headers"))
        _scrub_url_fields(data)
    if crumb.get("type") == "log":
        crumb["data"] = {}
        record = hint.get("log_record") if isinstance(hint, dict) else None
        if record is not None:
            crumb["message"] = _URL_QUERY.sub(r"\1", _log_message(record))
    return crumb


def _log_message(record: logging.LogRecord) -> str:
    if isinstance(record.msg, dict):  # structlog's event dict: its event name.
        return str(record.msg.get("event", ""))
    try:
        return record.getMessage()
    except Exception:  # A malformed %-format in a library's log call.
        return str(record.msg)


def init_sentry(settings: CommonSettings) -> bool:
    """Initialise the SDK from settings; returns False (and does nothing) without a DSN."""
    if settings.sentry_dsn is None:
        return False
    sentry_sdk.init(
        dsn=settings.sentry_dsn.get_secret_value(),
        environment=settings.environment.value,
        release=f"{settings.service_name}@{settings.version}",
        server_name=settings.service_name,
        traces_sample_rate=settings.sentry_traces_sample_rate,
        # PII stays off (the SDK default); frame locals would carry raw headers and bodies.
        include_local_variables=False,
        max_request_body_size="never",
        before_send=_before_send,
        before_breadcrumb=_scrub_breadcrumb,
        integrations=[
            # Breadcrumbs from log lines, but no events: see the module docstring.
            LoggingIntegration(level=logging.INFO, event_level=None),
            # An HTTP status is an answer, not a crash: only unhandled exceptions are events.
            StarletteIntegration(failed_request_status_codes=set()),
            FastApiIntegration(failed_request_status_codes=set()),
        ],
    )
    sentry_sdk.set_tag("service", settings.service_name)
    return True


def set_user_id(user_id: object) -> None:
    """Name the user behind the current request or job in its Sentry events, as the event's
    user and as a `user_id` tag (to search and group by); nothing else about them leaves.
    Free when Sentry is off."""
    if sentry_sdk.get_client().is_active():
        scope = sentry_sdk.get_isolation_scope()
        scope.set_user({"id": str(user_id)})
        scope.set_tag("user_id", str(user_id))


def report_job_failures(func: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
    """Wrap an ARQ job so that a run ending in an exception sends exactly one event.

    Goes inside `queue.correlated_job` (whose isolation scope already carries the `request_id`
    tag); adds the `job_function`, `job_id` and `job_try` tags. `Retry` is not an event.
    """
    name = func.__name__

    @functools.wraps(func)
    async def wrapper(ctx: dict[str, Any], *args: Any, **kwargs: Any) -> T:
        client = sentry_sdk.get_client()
        if not client.is_active():
            return await func(ctx, *args, **kwargs)
        scope = sentry_sdk.get_isolation_scope()
        scope.set_tag("job_function", name)
        scope.set_tag("job_id", ctx.get("job_id"))
        scope.set_tag("job_try", ctx.get("job_try"))
        try:
            return await func(ctx, *args, **kwargs)
        except Retry:
            raise
        except Exception:
            event, hint = event_from_exception(
                sys.exc_info(),
                client_options=client.options,
                mechanism={"type": "arq", "handled": False},
            )
            sentry_sdk.capture_event(event, hint=hint)
            raise

    return wrapper
