"""The deprecation of `/v1/trips`: its dates and the headers every v1 trips response carries.

- `Deprecation: @<unix time>` (RFC 9745): deprecated since that moment.
- `Sunset: <HTTP-date>` (RFC 8594): after it, `/v1/trips` may answer 404 / 410.
- `Link`: `rel="deprecation"` to the migration note (the `trips-v2` section of the API
  reference) and `rel="successor-version"` (RFC 5829) to the same resource under `/v2`.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import quote

from fastapi import Request, Response

from tripline_common.web import IdempotentRoute

DEPRECATED_AT = datetime(2026, 12, 1, tzinfo=UTC)
SUNSET_AT = datetime(2027, 6, 30, 23, 59, 59, tzinfo=UTC)
MIGRATION_NOTE_URL = "/redoc#tag/trips-v2"
"""Where the breaking change and the way to migrate are explained (the `trips-v2` tag)."""

DEPRECATION_HEADER = f"@{int(DEPRECATED_AT.timestamp())}"
SUNSET_HEADER = format_datetime(SUNSET_AT, usegmt=True)
DEPRECATION_NOTE = (
    f"**Deprecated** since {DEPRECATED_AT:%Y-%m-%d}; removed after {SUNSET_AT:%Y-%m-%d} "
    "(`Sunset`). Use `/v2/trips`: the same operations, with coordinates as "
    "`{lat, lon}` objects."
)


_STAMP = (
    (b"deprecation", DEPRECATION_HEADER.encode()),
    (b"sunset", SUNSET_HEADER.encode()),
)
_DEPRECATION_LINK = f'<{MIGRATION_NOTE_URL}>; rel="deprecation"; type="text/html"'.encode()


def announce_v1_deprecation(response: Response, raw_path: bytes) -> None:
    """Stamp the deprecation headers on a `/v1/trips` response (once: a replayed response
    recorded with them keeps its own). `raw_path` is the request's path as sent
    (percent-encoded), so the successor link needs no re-quoting."""
    headers = response.raw_headers
    if any(name == b"deprecation" for name, _ in headers):
        return
    successor = raw_path.replace(b"/v1/", b"/v2/", 1)
    headers.extend(_STAMP)
    headers.append(
        (b"link", _DEPRECATION_LINK + b", <" + successor + b'>; rel="successor-version"')
    )


def _raw_path(request: Request) -> bytes:
    raw: bytes | None = request.scope.get("raw_path")  # Optional in ASGI; uvicorn sends it.
    return raw if raw else quote(request.scope["path"]).encode()


class DeprecatedV1Route(IdempotentRoute):
    """Route class of the `/v1/trips` routers: every response the endpoint returns (successes,
    idempotent replays) carries the deprecation headers.

    A route class rather than a router dependency: a dependency asking for the `Response` costs
    a node in FastAPI's per-request dependency resolution on every v1 call, including the hot
    `GET /v1/trips/{id}` (docs/performance.md).
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def deprecated_handler(request: Request) -> Response:
            response = await handler(request)
            announce_v1_deprecation(response, _raw_path(request))
            return response

        return deprecated_handler
