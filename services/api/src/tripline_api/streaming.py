"""Streamed responses that always clean up: `ClosingStreamingResponse` and `GuardedBody`."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable

from fastapi.responses import StreamingResponse
from starlette.types import Receive, Scope, Send


class ClosingStreamingResponse(StreamingResponse):
    """A `StreamingResponse` that closes its body iterator (`aclose()`) when the response ends:
    completed, failed, or cut short by the client going away.

    Starlette cancels the sending task when the client disconnects and leaves the body's
    generator suspended; its `finally` (giving back a slot, unsubscribing a stream) would wait
    for the garbage collector, which may be minutes on a quiet server.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            aclose = getattr(self.body_iterator, "aclose", None)
            if aclose is not None:
                await aclose()


class GuardedBody:
    """A response body holding something (a slot, a place on this process) until the body is
    exhausted or closed, even if it was never iterated (the client left before the first
    chunk): `release` then runs exactly once. Serve it with `ClosingStreamingResponse`."""

    def __init__(
        self,
        body: AsyncGenerator[bytes],
        release: Callable[[], Awaitable[None]],
        on_start: Callable[[], None] | None = None,
    ) -> None:
        self.body, self._release, self._on_start = body, release, on_start
        self._released = False

    def __aiter__(self) -> GuardedBody:
        if self._on_start is not None:
            self._on_start()
        return self

    async def __anext__(self) -> bytes:
        try:
            return await self.body.__anext__()
        except StopAsyncIteration:
            await self.aclose()
            raise

    async def aclose(self) -> None:
        try:
            await self.body.aclose()
        finally:
            if not self._released:
                self._released = True
                await self._release()
