"""Routes of the real-time alert streams: `WS /v1/alerts/ws` and `GET /v1/alerts/stream`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Request, WebSocket
from fastapi.responses import StreamingResponse

from tripline_api.alerts_stream.service import serve_websocket, sse_body
from tripline_common.auth.deps import CurrentUser, TokenClaims
from tripline_common.errors import ErrorResponse

router = APIRouter(prefix="/alerts", tags=["alerts-stream"])

SSE_DESCRIPTION = """\
Your alerts as Server-Sent Events, as they are raised (on any API replica).

Each event: `id:` the alert's id, `event: alert`, `data:` the alert event JSON (the same
document as on the WebSocket and in webhooks; see `AlertEvent` in docs/operations.md).
A `: ping` comment is sent when quiet, so proxies keep the connection open. On reconnect, send
the last `id:` you received as `Last-Event-ID`: alerts raised after it are replayed from the
record first (oldest first, at most 1000), then live ones follow, each sent once.
"""


@router.get(
    "/stream",
    summary="Stream your alerts (Server-Sent Events)",
    description=SSE_DESCRIPTION,
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "An endless `text/event-stream`.",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        },
        401: {"model": ErrorResponse, "description": "Missing, invalid or revoked token."},
    },
)
async def stream_alerts(
    request: Request,
    user: CurrentUser,
    claims: TokenClaims,
    last_event_id: Annotated[
        str | None,
        Header(
            alias="Last-Event-ID",
            max_length=100,
            description="The last event id received: replay what came after it.",
        ),
    ] = None,
) -> StreamingResponse:
    return StreamingResponse(
        sse_body(request.app, user, claims, last_event_id),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.websocket("/ws")
async def alerts_websocket(websocket: WebSocket) -> None:
    """Your alerts over a WebSocket. Token: `?access_token=` (or `Authorization: Bearer`).

    Messages sent: alert events (`{"type":"alert.raised",...}`) and `{"type":"ping"}`, to be
    answered with `{"type":"pong"}` within the timeout or the socket is closed (4408).
    Closed with 1008 when the session is revoked, 1001 when the server shuts down.
    """
    await serve_websocket(websocket)
