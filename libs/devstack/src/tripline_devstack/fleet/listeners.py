"""What reaches a user: their alerts on the Server-Sent Events stream and the WebSocket, and
the signed webhooks their endpoint receives. Each listener keeps every alert it got, by id."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from websockets.asyncio.client import connect
from websockets.exceptions import WebSocketException

from tripline_devstack.fleet.client import FleetHTTPError, UserClient
from tripline_devstack.webhook_receiver import ReceivedRequest

RECONNECT_PAUSE_S = 1.0
# How far before a WebSocket dropped its catch-up reads: an alert committed a moment before
# the drop may not have reached the socket yet.
CATCH_UP_MARGIN = timedelta(seconds=30)


@dataclass
class Inbox:
    """The alerts one channel delivered to one user: each alert's id and how often it came."""

    alerts: dict[str, dict[str, Any]] = field(default_factory=dict)
    copies: dict[str, int] = field(default_factory=dict)

    def add(self, alert: dict[str, Any]) -> bool:
        """Record an alert; True the first time its id is seen."""
        alert_id = str(alert["id"])
        self.copies[alert_id] = self.copies.get(alert_id, 0) + 1
        new = alert_id not in self.alerts
        self.alerts[alert_id] = alert
        return new


@dataclass
class StreamListener:
    """The user's SSE stream (resumed with Last-Event-ID) and WebSocket, as long as it runs."""

    user: UserClient
    on_alert: Callable[[str, dict[str, Any]], None]
    sse: Inbox = field(default_factory=Inbox)
    websocket: Inbox = field(default_factory=Inbox)
    websocket_caught_up: int = 0
    """Alerts the WebSocket missed while it reconnected, read from the REST list."""
    sse_open: asyncio.Event = field(default_factory=asyncio.Event)
    websocket_open: asyncio.Event = field(default_factory=asyncio.Event)

    async def run_sse(self) -> None:
        """Read the SSE stream until cancelled; reconnect (resuming) when it ends."""
        last_id: str | None = None
        url = f"{self.user.api_url}/v1/alerts/stream"
        while True:
            headers = dict(self.user.auth)
            if last_id:
                headers["Last-Event-ID"] = last_id
            try:
                async with self.user.http.stream(
                    "GET", url, headers=headers, timeout=httpx.Timeout(10.0, read=None)
                ) as response:
                    if response.status_code == 401:
                        await self.user.call("GET", "/v1/users/me", 200)  # refreshes the token
                        continue
                    if response.status_code != 200:
                        await asyncio.sleep(RECONNECT_PAUSE_S)
                        continue
                    self.sse_open.set()
                    event_id, data = None, ""
                    async for line in response.aiter_lines():
                        if line.startswith("id:"):
                            event_id = line[3:].strip()
                        elif line.startswith("data:"):
                            data += line[5:].strip()
                        elif line == "" and data:
                            self._received("sse", self.sse, json.loads(data))
                            last_id, event_id, data = event_id or last_id, None, ""
            except httpx.HTTPError:
                pass
            await asyncio.sleep(RECONNECT_PAUSE_S)

    async def run_websocket(self) -> None:
        """Read the WebSocket until cancelled, answering pings; reconnect when it closes and
        catch up on what was raised meanwhile from `GET /v1/alerts`, from a margin before the
        drop. Not with `?last_event_id=`: that resume needs an alert received first, and replays
        by `(raised_at, id)` after it, so it misses an alert committed out of that order."""
        dropped_at: datetime | None = None
        while True:
            base = self.user.api_url.replace("http://", "ws://", 1).replace("https://", "wss://", 1)
            try:
                async with connect(
                    f"{base}/v1/alerts/ws", additional_headers=self.user.auth, open_timeout=10
                ) as socket:
                    self.websocket_open.set()
                    if dropped_at is not None:
                        # Subscribed first, then the gap: nothing falls between the two.
                        await self._catch_up(dropped_at - CATCH_UP_MARGIN)
                    dropped_at = datetime.now(UTC)
                    async for raw in socket:
                        message = json.loads(raw)
                        if message.get("type") == "ping":
                            await socket.send(json.dumps({"type": "pong"}))
                        elif message.get("type") == "alert.raised":
                            self._received("websocket", self.websocket, message)
                    dropped_at = datetime.now(UTC)
            except (OSError, WebSocketException, TimeoutError, httpx.HTTPError, FleetHTTPError):
                pass
            # Closed: perhaps the access token expired; the next call refreshes it.
            with contextlib.suppress(Exception):
                await self.user.call("GET", "/v1/users/me", 200)
            await asyncio.sleep(RECONNECT_PAUSE_S)

    async def _catch_up(self, since: datetime) -> None:
        """Add the user's alerts raised after `since` to the WebSocket's inbox."""
        params: dict[str, Any] = {"limit": 100, "raised_from": since.isoformat()}
        while True:
            page = await self.user.call("GET", "/v1/alerts", 200, params=params)
            for alert in page["items"]:
                if self.websocket.add(dict(alert)):
                    self.websocket_caught_up += 1
            if not page.get("next_cursor"):
                return
            params = {**params, "cursor": page["next_cursor"]}

    def _received(self, channel: str, inbox: Inbox, event: dict[str, Any]) -> None:
        alert = dict(event["alert"])
        if inbox.add(alert):
            self.on_alert(channel, alert)


@dataclass
class WebhookInbox:
    """The deliveries one user's webhook endpoint received, their signatures checked."""

    secret: str
    alerts: Inbox = field(default_factory=Inbox)
    deliveries: int = 0
    bad_signatures: int = 0

    def receive(self, request: ReceivedRequest) -> dict[str, Any] | None:
        """Record one delivery; the alert it carried, or None if its signature is wrong."""
        self.deliveries += 1
        headers = {key.lower(): value for key, value in request.headers.items()}
        if not signed_by(self.secret, request.body, headers):
            self.bad_signatures += 1
            return None
        alert = dict(json.loads(request.body)["alert"])
        self.alerts.add(alert)
        return alert


def signed_by(secret: str, body: bytes, headers: dict[str, str]) -> bool:
    """Whether `X-Tripline-Signature` holds `v1=` HMAC-SHA256(secret, "<timestamp>.<body>"),
    as the webhook documentation describes it."""
    timestamp = headers.get("x-tripline-timestamp", "")
    message = timestamp.encode() + b"." + body
    digest = "v1=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
    candidates = headers.get("x-tripline-signature", "").split(",")
    return any(hmac.compare_digest(digest, candidate.strip()) for candidate in candidates)
