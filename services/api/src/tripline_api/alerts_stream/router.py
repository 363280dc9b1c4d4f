"""Routes of the real-time alert streams: `WS /v1/alerts/ws`, `GET /v1/alerts/stream`,
`POST /v1/alerts/stream-tickets` (the single-use credential for their URLs), and their AsyncAPI
document, `GET /asyncapi.json`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Request, WebSocket, status
from fastapi.responses import JSONResponse, StreamingResponse

from tripline_api.alerts_stream.asyncapi import ASYNCAPI_URL, asyncapi_document
from tripline_api.alerts_stream.deps import StreamCallerDep
from tripline_api.alerts_stream.schemas import StreamTicket
from tripline_api.alerts_stream.service import REPLAY_LIMIT, open_sse_stream, serve_websocket
from tripline_api.alerts_stream.tickets import issue_ticket
from tripline_api.responses import UNAUTHORIZED, documented_error
from tripline_api.state import ApiSettingsDep, ApiState
from tripline_api.streaming import ClosingStreamingResponse
from tripline_common.web import CurrentUser, RedisDep, TokenClaims

router = APIRouter(prefix="/alerts", tags=["alerts-stream"])
# The streams' AsyncAPI document, at the root beside /openapi.json (mounted when docs are on).
docs_router = APIRouter()

SSE_DESCRIPTION = f"""\
Your alerts as Server-Sent Events, as they are raised (on any API replica). Message shapes,
heartbeats and close codes of both streams: the AsyncAPI document, `{ASYNCAPI_URL}`.

Each event: `id:` the alert's id, `event: alert`, `data:` the alert event JSON (the same
document as on the WebSocket and in webhooks).
A `: ping` comment is sent when quiet, so proxies keep the connection open. On reconnect, send
the last `id:` you received as `Last-Event-ID`: alerts raised after it are replayed from the
record first (oldest first, at most {REPLAY_LIMIT}), then live ones follow, each sent once.

Authenticate with `?ticket=` (a single-use ticket from `POST /v1/alerts/stream-tickets`: the way
for a browser's `EventSource`, which cannot send headers) or an `Authorization: Bearer` header.
An access token in the URL (`?access_token=`, `?token=`) is refused with 400
`credential_in_url`: URLs end up in logs. The stream ends when its session is logged out,
revoked or its user disabled (checked every `ALERTS_WS_HEARTBEAT_SECONDS`, whatever the
traffic), and when the access token it was opened with expires: reconnect with a fresh ticket.
A user holds at most `ALERTS_STREAM_MAX_PER_USER` streams (SSE and WebSocket together, on all
replicas): one more is refused with 429 `too_many_streams`.
"""

TICKET_DESCRIPTION = """\
Trade your bearer token (in the `Authorization` header) for a stream ticket: a random,
single-use credential, valid for `STREAM_TICKET_TTL_SECONDS` (30 s by default), to put in the
URL of `WS /v1/alerts/ws?ticket=` or `GET /v1/alerts/stream?ticket=`. Only its hash is stored;
it is refused once used, after it expires, and with another session's bearer token. The stream
it opens is bound to your session and ends when the access token used here expires.
"""


@router.post(
    "/stream-tickets",
    status_code=status.HTTP_201_CREATED,
    response_model=StreamTicket,
    summary="Get a single-use ticket to open an alert stream",
    description=TICKET_DESCRIPTION,
    responses=UNAUTHORIZED,
)
async def create_stream_ticket(
    _: CurrentUser, claims: TokenClaims, redis: RedisDep, settings: ApiSettingsDep
) -> StreamTicket:
    ttl = settings.stream_ticket_ttl_seconds
    return StreamTicket(ticket=await issue_ticket(redis, claims, ttl_seconds=ttl), expires_in=ttl)


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
        **documented_error(400, "An access token in the URL (`credential_in_url`)."),
        **documented_error(
            401, "Missing, invalid, used or expired ticket; invalid or revoked token."
        ),
        **documented_error(
            429,
            "You hold `ALERTS_STREAM_MAX_PER_USER` streams already (`too_many_streams`, all "
            "replicas and both transports together).",
        ),
        **documented_error(
            503,
            "This server holds `ALERTS_STREAM_MAX_PER_PROCESS` streams (`streams_unavailable`); "
            "retry after `Retry-After`.",
        ),
    },
)
async def stream_alerts(
    request: Request,
    caller: StreamCallerDep,
    last_event_id: Annotated[
        str | None,
        Header(
            alias="Last-Event-ID",
            max_length=100,
            description="The last event id received: replay what came after it.",
        ),
    ] = None,
) -> StreamingResponse:
    body = await open_sse_stream(
        ApiState.of(request.app), caller.principal, caller.claims, last_event_id
    )
    return ClosingStreamingResponse(
        body,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.websocket("/ws")
async def alerts_websocket(websocket: WebSocket) -> None:
    """Your alerts over a WebSocket. Credentials: `?ticket=` (from `POST
    /v1/alerts/stream-tickets`) or `Authorization: Bearer`; a handshake without valid ones is
    refused (HTTP 403), one with `?access_token=` is answered 400 `credential_in_url`.

    Messages sent: alert events (`{"type":"alert.raised",...}`) and `{"type":"ping"}`, to be
    answered with `{"type":"pong"}` within the timeout or the socket is closed (4408).
    Resume with `?last_event_id=` (the last alert id received): the alerts raised after it are
    sent first, then live ones, each once.
    Closed with 1008 when the session is logged out, revoked or its user disabled (checked every
    heartbeat interval) and when the access token expires; 1001 when the server shuts down.
    Beyond the caps the socket is accepted and closed at once: 1008 `too many streams` (the user
    holds `ALERTS_STREAM_MAX_PER_USER`), 1013 `server at capacity` (this process is full).
    Every close code and message shape: the AsyncAPI document, `/asyncapi.json`.
    """
    await serve_websocket(websocket)


@docs_router.get(ASYNCAPI_URL, include_in_schema=False)
async def asyncapi(settings: ApiSettingsDep) -> JSONResponse:
    """The AsyncAPI 3.0 document of the alert streams."""
    return JSONResponse(asyncapi_document(settings))
