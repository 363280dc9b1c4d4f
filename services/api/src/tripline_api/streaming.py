"""`ClosingStreamingResponse`: a streamed response whose body is closed however it ends."""

from __future__ import annotations

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
