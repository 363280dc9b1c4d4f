"""The deprecation of `/v1/trips`: its dates and the headers every v1 trips response carries.

- `Deprecation: @<unix time>` (RFC 9745): deprecated since that moment.
- `Sunset: <HTTP-date>` (RFC 8594): after it, `/v1/trips` may answer 404 / 410.
- `Link`: `rel="deprecation"` to the migration note (the `trips-v2` section of the API
  reference) and `rel="successor-version"` (RFC 5829) to the same resource under `/v2`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime
from urllib.parse import quote

from fastapi import Request, Response

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


async def announce_v1_deprecation(request: Request, response: Response) -> None:
    """Router dependency: stamps the deprecation headers on every successful response."""
    response.headers["Deprecation"] = DEPRECATION_HEADER
    response.headers["Sunset"] = SUNSET_HEADER
    successor = quote(request.url.path.replace("/v1/", "/v2/", 1))
    response.headers.append(
        "Link",
        f'<{MIGRATION_NOTE_URL}>; rel="deprecation"; type="text/html", '
        f'<{successor}>; rel="successor-version"',
    )
