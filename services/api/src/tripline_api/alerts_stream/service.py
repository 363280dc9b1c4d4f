"""The logic behind the alert streams: WebSocket sessions, SSE bodies, and the lifespan hooks.

Authentication of the WebSocket: the access token is taken, in this order, from
- the `access_token` query parameter: the primary way, because the browser `WebSocket` API
  cannot set request headers. A URL can end up in proxy logs: the token is the short-lived
  access token (never the refresh token), and it is only read during the handshake;
- the `Authorization: Bearer` header, for non-browser clients that can set it.
(`Sec-WebSocket-Protocol` smuggling is not supported: it needs the server to echo a protocol
and leaks the token into a header meant for something else.)
A missing, invalid, expired or revoked token is refused before the handshake completes (close
before accept, which the server answers with HTTP 403), so no unauthenticated socket is opened.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any, cast

import structlog
from fastapi import FastAPI, WebSocket
from starlette.websockets import WebSocketDisconnect, WebSocketState

from tripline_api.alerts_stream.manager import (
    CLOSE_HEARTBEAT_TIMEOUT,
    CLOSE_POLICY_VIOLATION,
    ConnectionManager,
    Subscriber,
)
from tripline_api.settings import ApiSettings
from tripline_common.app import Resources
from tripline_common.auth.service import Principal, resolve_principal
from tripline_common.auth.tokens import AccessClaims, decode_access_token
from tripline_common.errors import AppError
from tripline_common.pubsub import AlertEvent

log = structlog.get_logger("tripline.alerts_stream")

REPLAY_LIMIT = 1000

# Lifespan hooks -------------------------------------------------------------------------


async def start_alerts_stream(app: FastAPI, resources: Resources) -> None:
    """Start this process's one Redis subscription and its connection manager."""
    settings = cast(ApiSettings, resources.settings)
    manager = ConnectionManager(
        resources.redis, resources.lifecycle, settings.alerts_stream_queue_size
    )
    app.state.alerts_manager = manager
    manager.start()


async def stop_alerts_stream(app: FastAPI, _: Resources) -> None:
    """Close every stream (WebSocket: 1001) and stop listening."""
    manager: ConnectionManager | None = getattr(app.state, "alerts_manager", None)
    if manager is not None:
        await manager.stop()


def get_manager(app: Any) -> ConnectionManager:
    manager: ConnectionManager = app.state.alerts_manager
    return manager


# WebSocket ------------------------------------------------------------------------------


def websocket_token(websocket: WebSocket) -> str | None:
    token = websocket.query_params.get("access_token")
    if token:
        return token
    scheme, _, value = websocket.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


async def authenticate_websocket(websocket: WebSocket) -> tuple[Principal, AccessClaims] | None:
    resources: Resources = websocket.app.state.resources
    token = websocket_token(websocket)
    if not token:
        return None
    try:
        claims = decode_access_token(resources.settings, token)
        principal = await resolve_principal(pg=resources.pg, claims=claims)
    except AppError:
        return None
    return principal, claims


async def serve_websocket(websocket: WebSocket) -> None:
    """One client's socket: alerts out, `{"type":"ping"}` heartbeats, session re-checks."""
    resources: Resources = websocket.app.state.resources
    settings = cast(ApiSettings, resources.settings)
    manager = get_manager(websocket.app)
    authenticated = await authenticate_websocket(websocket)
    if authenticated is None:
        # Before accept: the server refuses the handshake (HTTP 403).
        await websocket.close(code=CLOSE_POLICY_VIOLATION, reason="authentication required")
        return
    principal, claims = authenticated
    if manager.closing:
        await websocket.close(code=1001, reason="server shutting down")
        return
    await websocket.accept()
    subscriber = manager.subscribe(principal.id, transport="websocket")
    log.info("alerts_ws_connected", user_id=str(principal.id))
    session = _WebSocketSession(websocket, subscriber, resources, settings, claims)
    try:
        await session.run()
    finally:
        manager.unsubscribe(subscriber)
        log.info("alerts_ws_disconnected", user_id=str(principal.id), code=subscriber.close_code)


class _WebSocketSession:
    def __init__(
        self,
        websocket: WebSocket,
        subscriber: Subscriber,
        resources: Resources,
        settings: ApiSettings,
        claims: AccessClaims,
    ) -> None:
        self.websocket = websocket
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
            asyncio.create_task(self.subscriber.closed.wait()),
        ]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if self.subscriber.closed.is_set():
            await self._close(self.subscriber.close_code, self.subscriber.close_reason)

    async def _close(self, code: int, reason: str) -> None:
        async with self.send_lock:
            if self.websocket.application_state == WebSocketState.CONNECTED:
                with contextlib.suppress(Exception):
                    await self.websocket.close(code=code, reason=reason)

    async def _send(self, text: str) -> None:
        async with self.send_lock:
            await self.websocket.send_text(text)

    async def _receive(self) -> None:
        """Read client messages: `{"type":"pong"}` answers a ping; others are ignored."""
        with contextlib.suppress(WebSocketDisconnect):
            while True:
                text = await self.websocket.receive_text()
                try:
                    message = json.loads(text)
                except ValueError:
                    continue
                if isinstance(message, dict) and message.get("type") == "pong":
                    self.pong.set()

    async def _send_alerts(self) -> None:
        while True:
            event = await self.subscriber.queue.get()
            if event is None:
                return
            await self._send(event.model_dump_json())

    async def _heartbeat(self) -> None:
        """Every interval: re-check the session (1008 when revoked), ping, await the pong."""
        interval = self.settings.alerts_ws_heartbeat_seconds
        timeout = self.settings.alerts_ws_pong_timeout_seconds
        while True:
            await asyncio.sleep(interval)
            try:
                await resolve_principal(pg=self.resources.pg, claims=self.claims)
            except AppError:
                self.subscriber.close(CLOSE_POLICY_VIOLATION, "session revoked")
                return
            if self.claims.expires_at <= datetime.now(UTC):
                self.subscriber.close(CLOSE_POLICY_VIOLATION, "token expired")
                return
            self.pong.clear()
            await self._send('{"type":"ping"}')
            try:
                await asyncio.wait_for(self.pong.wait(), timeout)
            except TimeoutError:
                self.subscriber.close(CLOSE_HEARTBEAT_TIMEOUT, "no pong")
                return


# Server-Sent Events ---------------------------------------------------------------------

_CURSOR_QUERY = "SELECT raised_at FROM alerts WHERE id = $1 AND owner_id = $2"
_REPLAY_QUERY = """
SELECT id, owner_id, trip_id, device_id, rule, severity, status, message, details,
       raised_at, request_id
FROM alerts
WHERE owner_id = $1 AND (raised_at, id) > ($2, $3)
ORDER BY raised_at, id
LIMIT $4
"""


def sse_event(event: AlertEvent) -> bytes:
    return b"id: %s\nevent: alert\ndata: %s\n\n" % (str(event.alert.id).encode(), event.to_json())


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


async def sse_body(
    app: Any, principal: Principal, claims: AccessClaims | None, last_event_id: str | None
) -> AsyncIterator[bytes]:
    """The event stream: replay after `Last-Event-ID`, then live alerts; `: ping` comments."""
    resources: Resources = app.state.resources
    settings = cast(ApiSettings, resources.settings)
    manager = get_manager(app)
    # Subscribe before reading Postgres, so nothing raised in between is missed; events both
    # replayed and received live are sent once.
    subscriber = manager.subscribe(principal.id, transport="sse")
    try:
        yield b"retry: 3000\n\n"
        sent: set[uuid.UUID] = set()
        if last_event_id:
            for event in await replay_after(resources.pg, principal.id, last_event_id):
                sent.add(event.alert.id)
                yield sse_event(event)
        while not subscriber.closed.is_set():
            try:
                event = await asyncio.wait_for(
                    subscriber.queue.get(), settings.alerts_sse_heartbeat_seconds
                )
            except TimeoutError:
                if claims is not None:
                    try:
                        await resolve_principal(pg=resources.pg, claims=claims)
                    except AppError:
                        return
                yield b": ping\n\n"
                continue
            if event is None:
                return
            if event.alert.id in sent:
                continue
            yield sse_event(event)
    finally:
        manager.unsubscribe(subscriber)
