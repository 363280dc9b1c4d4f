"""Sentry: on when SENTRY_DSN is set, tagged with release and environment, scrubbed of secrets."""

from __future__ import annotations

from typing import Any

import sentry_sdk

from tripline_common.settings import CommonSettings

_SENSITIVE_HEADERS = {"authorization", "cookie", "x-device-key", "x-api-key", "set-cookie"}


def _scrub(event: Any, _hint: Any) -> Any:
    """Drop request bodies, cookies, credentials and frame variables before anything leaves."""
    if not isinstance(event, dict):
        return event
    # Second guard behind include_local_variables=False: a frame's locals may hold the ASGI
    # scope (raw Authorization and Cookie headers) or a parsed body.
    for exception in (event.get("exception") or {}).get("values") or []:
        for frame in (exception.get("stacktrace") or {}).get("frames") or []:
            frame.pop("vars", None)
    request = event.get("request")
    if isinstance(request, dict):
        request.pop("data", None)
        request.pop("cookies", None)
        headers = request.get("headers")
        if isinstance(headers, dict):
            for name in list(headers):
                if name.lower() in _SENSITIVE_HEADERS:
                    headers[name] = "[Filtered]"
    return event


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
        before_send=_scrub,
    )
    sentry_sdk.set_tag("service", settings.service_name)
    return True
