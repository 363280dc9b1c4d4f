"""The logic behind the alert streams: authentication, WebSocket sessions, SSE bodies, hooks.

Authentication, for both streams, takes one of
- a stream ticket, `?ticket=` (`tickets.py`): the way for browsers, whose `WebSocket` and
  `EventSource` cannot set request headers. It is single-use and lives seconds, and it is
  redacted from every log line; the access token itself never travels in a URL, and a URL
  carrying one (`?access_token=`, `?token=`) is refused with 400 `credential_in_url`;
- the `Authorization: Bearer` header, for clients that can set it.
(`Sec-WebSocket-Protocol` smuggling is not supported: it needs the server to echo a protocol
and leaks the token into a header meant for something else.)
A WebSocket with missing, invalid, expired or revoked credentials is refused before the
handshake completes (close before accept, which the server answers with HTTP 403).

While a stream is open, `watch_session` re-checks its session every
`alerts_ws_heartbeat_seconds`, whatever the traffic, and ends the stream when the access token
it was opened with (directly or through a ticket) expires: logout, revocation, disabling the
user and expiry all end it within that bound (WebSocket: close 1008).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncGenerator
from datetime import UTC, datetime
from typing import Any

import structlog
from fastapi import WebSocket
from pydantic import ValidationError
from starlette.websockets import WebSocketDisconnect, WebSocketState

from tripline_api.alerts_stream.closes import (
    AUTHENTICATION_REQUIRED,
    NO_PONG,
    REPLAY_UNAVAILABLE,
    SERVER_AT_CAPACITY,
    SERVER_SHUTTING_DOWN,
    SESSION_CHECK_UNAVAILABLE,
    SESSION_REVOKED,
    TOKEN_EXPIRED,
    TOO_MANY_STREAMS,
    StreamClose,
)
from tripline_api.alerts_stream.manager import ConnectionManager, Subscriber
from tripline_api.alerts_stream.schemas import PING_TEXT, Pong
from tripline_api.alerts_stream.tickets import redeem_ticket
from tripline_api.settings import ApiSettings
from tripline_api.slots import HeldSlot, take_held_slot
from tripline_api.state import ApiState
from tripline_api.streaming import GuardedBody
from tripline_common.data.models import ALERT_EVENT_COLUMNS
from tripline_common.messaging import AlertEvent, alert_delivery_span
from tripline_common.platform import (
    AppError,
    BadRequestError,
    RateLimitedError,
    ServiceUnavailableError,
    UnauthorizedError,
    app_error_response,
)
from tripline_common.security import AccessClaims, Principal, decode_access_token, resolve_principal
from tripline_common.web import Resources

log = structlog.get_logger("tripline.alerts_stream")

REPLAY_LIMIT = 1000  # Most alerts a reconnect replays after the last event id it names.
# The WebSocket's query parameter for that id (a browser's `WebSocket` cannot send headers).
RESUME_QUERY = "last_event_id"
SSE_RETRY_MILLISECONDS = 3000  # The `retry:` an SSE stream opens with: EventSource's delay.
SSE_EVENT = "alert"  # The `event:` name of an alert on the SSE stream.
SEND_GRACE_SECONDS = 1.0  # How long closing waits for a send in flight to finish.

# Lifespan hooks -------------------------------------------------------------------------


async def start_alerts_stream(state: ApiState) -> None:
    """Start this process's one Redis subscription and its connection manager."""
    manager = ConnectionManager(
        state.resources.redis,
        state.lifecycle,
        state.settings.alerts_stream_queue_size,
        max_streams=state.settings.alerts_stream_max_per_process,
    )
    state.alerts_manager = manager
    manager.start()


async def stop_alerts_stream(state: ApiState) -> None:
    """Close every stream (WebSocket: 1001) and stop listening."""
    if state.alerts_manager is not None:
        await state.alerts_manager.stop()


def get_manager(state: ApiState) -> ConnectionManager:
    """The connection manager, which `start_alerts_stream` created at start-up."""
    if state.alerts_manager is None:
        raise RuntimeError("The alert streams start with the app's lifespan.")
    return state.alerts_manager


# Admission: caps per user (across replicas) and per process --------------------------------

STREAM_RETRY_AFTER_SECONDS = 5


def stream_slots_key(user_id: uuid.UUID) -> str:
    return f"tripline:streams:{user_id}"


class Admission:
    """A stream's place on this process and its slot among its user's streams; `release()`
    gives both back (once)."""

    def __init__(self, manager: ConnectionManager, slot: HeldSlot) -> None:
        self.manager, self.slot = manager, slot
        self._released = False

    def start(self) -> None:
        self.slot.start()

    async def release(self) -> None:
        if not self._released:
            self._released = True
            self.manager.give_place()
            await self.slot.release()


async def admit_stream(state: ApiState, user_id: uuid.UUID) -> Admission:
    """Admit one more stream of `user_id`, or refuse: 503 `streams_unavailable` when this
    process holds `alerts_stream_max_per_process` streams, 429 `too_many_streams` when the user
    holds `alerts_stream_max_per_user` on all replicas together."""
    manager = get_manager(state)
    if not manager.take_place():
        raise ServiceUnavailableError(
            "This server holds as many alert streams as it can; reconnect later.",
            code="streams_unavailable",
            headers={"Retry-After": str(STREAM_RETRY_AFTER_SECONDS)},
        )
    limit = state.settings.alerts_stream_max_per_user
    try:
        slot = await take_held_slot(state.resources.redis, stream_slots_key(user_id), limit=limit)
    except BaseException:
        manager.give_place()
        raise
    if slot is None:
        manager.give_place()
        raise RateLimitedError(
            STREAM_RETRY_AFTER_SECONDS,
            f"You have {limit} alert streams open, the most allowed; close one first.",
            code="too_many_streams",
        )
    return Admission(manager, slot)


# WebSocket ------------------------------------------------------------------------------


# Query parameters that would put a long-lived credential in a URL: refused, never read.
CREDENTIAL_QUERY_PARAMS = ("access_token", "token")


def refuse_credentials_in_url(query_params: Any) -> None:
    """400 `credential_in_url` when the URL carries an access token (URLs are logged)."""
    if any(name in query_params for name in CREDENTIAL_QUERY_PARAMS):
        raise BadRequestError(
            "Access tokens are not accepted in the URL. Get a single-use ticket from "
            "POST /v1/alerts/stream-tickets and send it as `?ticket=`, or send the token in "
            "an `Authorization: Bearer` header.",
            code="credential_in_url",
        )


def bearer_token(authorization: str | None) -> str | None:
    scheme, _, value = (authorization or "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


async def authenticate_stream(
    state: ApiState, *, ticket: str | None, bearer: str | None
) -> tuple[Principal, AccessClaims]:
    """The user and claims behind a stream's ticket or bearer token, or an `AppError` (401).

    A ticket sent together with a bearer token must belong to the same session: a ticket
    that leaked to another user cannot be combined with that user's own token."""
    if ticket:
        claims = await redeem_ticket(state.resources.redis, ticket)
        if bearer and decode_access_token(state.settings, bearer).session_id != (claims.session_id):
            raise UnauthorizedError(
                "The ticket was issued to another session.", code="ticket_mismatch"
            )
    elif bearer:
        claims = decode_access_token(state.settings, bearer)
    else:
        raise UnauthorizedError(
            "Send a stream ticket (`?ticket=`) or an `Authorization: Bearer` header."
        )
    principal = await resolve_principal(pg=state.resources.pg, claims=claims)
    return principal, claims


async def watch_session(
    resources: Resources, claims: AccessClaims, subscriber: Subscriber, interval: float
) -> None:
    """Close `subscriber` (1008) when its token expires or its session stops being live.

    Runs beside the stream on its own timer, so a stream busy with events is checked as
    often as a quiet one: every `interval` seconds, and at the token's expiry exactly."""
    while True:
        remaining = (claims.expires_at - datetime.now(UTC)).total_seconds()
        if remaining <= 0:
            subscriber.close(TOKEN_EXPIRED)
            return
        await asyncio.sleep(min(interval, remaining))
        if claims.expires_at <= datetime.now(UTC):
            continue  # Closed at the top of the loop.
        try:
            await resolve_principal(pg=resources.pg, claims=claims)
        except AppError:
            subscriber.close(SESSION_REVOKED)
            return
        except Exception as exc:
            # The session cannot be checked (database down): fail closed; clients reconnect.
            log.warning("stream_session_check_failed", error_type=type(exc).__name__)
            subscriber.close(SESSION_CHECK_UNAVAILABLE)
            return


async def close_websocket(websocket: WebSocket, close: StreamClose) -> None:
    """Close `websocket` the one way the streams do: with a documented `StreamClose`."""
    await websocket.close(code=close.code, reason=close.reason)


async def authenticate_websocket(websocket: WebSocket) -> tuple[Principal, AccessClaims] | None:
    try:
        return await authenticate_stream(
            ApiState.of(websocket.app),
            ticket=websocket.query_params.get("ticket"),
            bearer=bearer_token(websocket.headers.get("authorization")),
        )
    except AppError:
        return None


async def serve_websocket(websocket: WebSocket) -> None:
    """One client's socket: alerts out, `{"type":"ping"}` heartbeats, session re-checks."""
    state = ApiState.of(websocket.app)
    manager = get_manager(state)
    try:
        refuse_credentials_in_url(websocket.query_params)
    except AppError as error:
        # Before accept, as an HTTP answer in the shared error shape (ASGI denial response).
        await websocket.send_denial_response(app_error_response(error))
        return
    authenticated = await authenticate_websocket(websocket)
    if authenticated is None:
        # Before accept: the server refuses the handshake (HTTP 403).
        await close_websocket(websocket, AUTHENTICATION_REQUIRED)
        return
    principal, claims = authenticated
    if manager.closing:
        await close_websocket(websocket, SERVER_SHUTTING_DOWN)
        return
    try:
        admission = await admit_stream(state, principal.id)
    except AppError as error:
        # Accepted, then closed at once: a browser sees the close code and reason (a refused
        # handshake is only "1006, failed"). 1013 Try Again Later when this process is full,
        # 1008 when the user holds too many streams.
        await websocket.accept()
        await close_websocket(
            websocket, SERVER_AT_CAPACITY if error.status_code == 503 else TOO_MANY_STREAMS
        )
        log.info("alerts_ws_refused", user_id=str(principal.id), code=error.code)
        return
    try:
        admission.start()
        await websocket.accept()
        # Subscribe before reading Postgres, as the SSE stream does: nothing raised in between
        # is missed, and what is both replayed and live is sent once.
        subscriber = manager.subscribe(principal.id, transport="websocket")
        try:
            missed = await _replay(state, principal.id, websocket.query_params.get(RESUME_QUERY))
        except Exception as exc:
            log.warning("alerts_ws_replay_failed", error_type=type(exc).__name__)
            manager.unsubscribe(subscriber)
            await close_websocket(websocket, REPLAY_UNAVAILABLE)
            return
        log.info("alerts_ws_connected", user_id=str(principal.id), replayed=len(missed))
        session = _WebSocketSession(
            websocket, subscriber, state.resources, state.settings, claims, missed
        )
        try:
            await session.run()
        finally:
            manager.unsubscribe(subscriber)
            log.info(
                "alerts_ws_disconnected", user_id=str(principal.id), code=subscriber.close_code
            )
    finally:
        await admission.release()


async def _replay(
    state: ApiState, user_id: uuid.UUID, last_event_id: str | None
) -> list[AlertEvent]:
    return await replay_after(state.resources.pg, user_id, last_event_id) if last_event_id else []


class _WebSocketSession:
    def __init__(
        self,
        websocket: WebSocket,
        subscriber: Subscriber,
        resources: Resources,
        settings: ApiSettings,
        claims: AccessClaims,
        missed: list[AlertEvent],
    ) -> None:
        self.websocket = websocket
        self.missed = missed  # Replayed first, after `?last_event_id=`.
        self.subscriber = subscriber
        self.resources = resources
        self.settings = settings
        self.claims = claims
        self.pong = asyncio.Event()
        self.send_lock = asyncio.Lock()

    async def run(self) -> None:
        tasks = [
            asyncio.create_task(self._receive()),
            asyncio.create_task(self._send_alerts()),
            asyncio.create_task(self._heartbeat()),
            asyncio.create_task(
                watch_session(
                    self.resources,
                    self.claims,
                    self.subscriber,
                    self.settings.alerts_ws_heartbeat_seconds,
                )
            ),
            asyncio.create_task(self.subscriber.closed.wait()),
        ]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            # Stop the tasks between frames: a send cancelled halfway can leave the socket
            # unable to send the close frame, and the client waits out its own timeout. A send
            # stuck on a client that does not read is cancelled after a short grace anyway.
            try:
                await asyncio.wait_for(self.send_lock.acquire(), SEND_GRACE_SECONDS)
                locked = True
            except TimeoutError:
                locked = False
            try:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                if self.subscriber.closed.is_set():
                    await self._close(self.subscriber.closed_with)
            finally:
                if locked:
                    self.send_lock.release()

    async def _close(self, close: StreamClose) -> None:
        """Send the close frame (no send is in flight: see `run`)."""
        if self.websocket.application_state == WebSocketState.CONNECTED:
            with contextlib.suppress(Exception):
                await close_websocket(self.websocket, close)

    async def _send(self, text: str) -> None:
        async with self.send_lock:
            await self.websocket.send_text(text)

    async def _receive(self) -> None:
        """Read client messages: `{"type":"pong"}` answers a ping; others are ignored."""
        with contextlib.suppress(WebSocketDisconnect):
            while True:
                text = await self.websocket.receive_text()
                try:
                    Pong.model_validate_json(text)
                except ValidationError:
                    continue
                self.pong.set()

    async def _send_alerts(self) -> None:
        sent = {missed.alert.id for missed in self.missed}
        for missed in self.missed:
            await self._send(missed.model_dump_json())
        while True:
            event = await self.subscriber.queue.get()
            if event is None:
                return
            if event.alert.id in sent:
                continue
            with alert_delivery_span(event, transport="websocket"):
                await self._send(event.model_dump_json())

    async def _heartbeat(self) -> None:
        """Every interval: ping, await the pong (the session is watched by `watch_session`)."""
        interval = self.settings.alerts_ws_heartbeat_seconds
        timeout = self.settings.alerts_ws_pong_timeout_seconds
        while True:
            await asyncio.sleep(interval)
            self.pong.clear()
            await self._send(PING_TEXT)
            try:
                await asyncio.wait_for(self.pong.wait(), timeout)
            except TimeoutError:
                self.subscriber.close(NO_PONG)
                return


# Server-Sent Events ---------------------------------------------------------------------

_CURSOR_QUERY = "SELECT raised_at FROM alerts WHERE id = $1 AND owner_id = $2"
_REPLAY_QUERY = f"""
SELECT {", ".join(column.key for column in ALERT_EVENT_COLUMNS)}
FROM alerts
WHERE owner_id = $1 AND (raised_at, id) > ($2, $3)
ORDER BY raised_at, id
LIMIT $4
"""  # noqa: S608 - the interpolated part is the model's own column names, not input.


def sse_event(event: AlertEvent) -> bytes:
    return b"id: %s\nevent: %s\ndata: %s\n\n" % (
        str(event.alert.id).encode(),
        SSE_EVENT.encode(),
        event.to_json(),
    )


async def replay_after(pg: Any, user_id: uuid.UUID, last_event_id: str) -> list[AlertEvent]:
    """The user's alerts raised after `last_event_id` (an alert id), oldest first."""
    try:
        alert_id = uuid.UUID(last_event_id.strip())
    except ValueError:
        return []
    raised_at = await pg.fetchval(_CURSOR_QUERY, alert_id, user_id)
    if raised_at is None:
        return []
    rows = await pg.fetch(_REPLAY_QUERY, user_id, raised_at, alert_id, REPLAY_LIMIT)
    return [AlertEvent.from_row(_decoded(row)) for row in rows]


def _decoded(row: Any) -> dict[str, Any]:
    values = dict(row)
    if isinstance(values.get("details"), str):
        values["details"] = json.loads(values["details"])
    return values


async def open_sse_stream(
    state: ApiState, principal: Principal, claims: AccessClaims, last_event_id: str | None
) -> GuardedBody:
    """Admit the stream (`admit_stream`: 429/503 beyond the caps), then its body, which holds
    the admission until it ends."""
    admission = await admit_stream(state, principal.id)
    body = sse_body(state, principal, claims, last_event_id)
    return GuardedBody(body, admission.release, on_start=admission.start)


async def sse_body(
    state: ApiState, principal: Principal, claims: AccessClaims, last_event_id: str | None
) -> AsyncGenerator[bytes]:
    """The event stream: replay after `Last-Event-ID`, then live alerts; `: ping` comments.
    Ends when the session stops being live or the token expires (`watch_session`)."""
    resources, settings = state.resources, state.settings
    manager = get_manager(state)
    # Subscribe before reading Postgres, so nothing raised in between is missed; events both
    # replayed and received live are sent once.
    subscriber = manager.subscribe(principal.id, transport="sse")
    watch = asyncio.create_task(
        watch_session(resources, claims, subscriber, settings.alerts_ws_heartbeat_seconds)
    )
    try:
        yield b"retry: %d\n\n" % SSE_RETRY_MILLISECONDS
        sent: set[uuid.UUID] = set()
        if last_event_id:
            for missed in await replay_after(resources.pg, principal.id, last_event_id):
                sent.add(missed.alert.id)
                yield sse_event(missed)
        while not subscriber.closed.is_set():
            try:
                event = await asyncio.wait_for(
                    subscriber.queue.get(), settings.alerts_sse_heartbeat_seconds
                )
            except TimeoutError:
                yield b": ping\n\n"
                continue
            if event is None:
                return
            if event.alert.id in sent:
                continue
            # The span ends when the server asks for the next chunk: it has written this one.
            with alert_delivery_span(event, transport="sse"):
                yield sse_event(event)
    finally:
        watch.cancel()
        manager.unsubscribe(subscriber)
