"""The fleet's HTTP requests as the soak sees them: an httpx transport that records each one's
start, time to the answer's headers and status (or why no answer came)."""

from __future__ import annotations

import re
import time

import httpx

from chaos.record import Exchange

# IDs in paths, so that requests group by route in the report.
# A read timeout this short is the fleet giving up on purpose (`DeviceClient.upload`'s resend).
IMPATIENT_SECONDS = 0.01
_ID = re.compile(r"/[0-9a-f]{8}-[0-9a-f-]{27}|/[0-9a-f]{8}-\d+")


class RecordingTransport(httpx.AsyncBaseTransport):
    """httpx's own transport, with a record of every exchange appended to `exchanges`."""

    def __init__(self, exchanges: list[Exchange]) -> None:
        self.exchanges = exchanges
        self._inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        started, clock = time.time(), time.monotonic()
        path = _ID.sub("/{id}", request.url.path)
        try:
            response = await self._inner.handle_async_request(request)
        except httpx.HTTPError as error:
            read_timeout = request.extensions.get("timeout", {}).get("read")
            deliberate = isinstance(error, httpx.TimeoutException) and (
                read_timeout is not None and read_timeout <= IMPATIENT_SECONDS
            )
            self.exchanges.append(
                Exchange(
                    started,
                    time.monotonic() - clock,
                    request.method,
                    path,
                    None,
                    type(error).__name__,
                    deliberate,
                )
            )
            raise
        self.exchanges.append(
            Exchange(started, time.monotonic() - clock, request.method, path, response.status_code)
        )
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()
