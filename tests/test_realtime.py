"""Real-time alerts across replicas: two real `tripline-api` processes on one Redis.

A client connected to process B receives an alert published to Redis the way the worker does
(`publish_alert`), whichever replica it is connected to; SSE on process A sees it too. Streams
are opened the way a browser does, with single-use tickets, and no credential reaches a log.
"""

from __future__ import annotations

import asyncio
import json
import uuid

import httpx
import pytest
from redis.asyncio import Redis
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.support.alerts import alert_event
from tests.support.asyncapi import message_payload_validator
from tests.test_processes import seed
from tripline_common.messaging import publish_alert

WAIT = 15.0


def login_pair(api_url: str) -> dict[str, str]:
    """The demo user's access and refresh tokens."""
    from scripts.seed import DEMO_PASSWORD

    pair: dict[str, str] = (
        httpx.post(
            f"{api_url}/v1/auth/token",
            data={"username": "demo@tripline.dev", "password": DEMO_PASSWORD},
            timeout=10,
        )
        .raise_for_status()
        .json()
    )
    return pair


def login(api_url: str) -> tuple[str, uuid.UUID]:
    token = login_pair(api_url)["access_token"]
    me = httpx.get(
        f"{api_url}/v1/users/me", headers={"Authorization": f"Bearer {token}"}, timeout=10
    ).raise_for_status()
    return token, uuid.UUID(me.json()["id"])


def stream_ticket(api_url: str, token: str) -> str:
    """A single-use stream ticket, traded for the bearer token (as a browser client does)."""
    response = httpx.post(
        f"{api_url}/v1/alerts/stream-tickets",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    ).raise_for_status()
    ticket: str = response.json()["ticket"]
    return ticket


async def test_alert_reaches_websocket_and_sse_on_other_replicas(processes, process_env) -> None:
    seed(process_env)
    api_a = processes.start("api-a", "tripline-api")
    api_b = processes.start("api-b", "tripline-api")
    processes.wait_ready(api_a)
    processes.wait_ready(api_b)
    token, user_id = login(api_a.url)
    redis = Redis.from_url(process_env["REDIS_URL"])
    ws_url = f"ws://127.0.0.1:{api_b.port}/v1/alerts/ws?ticket={stream_ticket(api_b.url, token)}"
    try:
        async with (
            connect(ws_url, open_timeout=WAIT) as ws,
            httpx.AsyncClient(timeout=WAIT) as client,
            client.stream(
                "GET",
                f"{api_a.url}/v1/alerts/stream",
                params={"ticket": stream_ticket(api_a.url, token)},
            ) as sse,
        ):
            assert sse.status_code == 200
            lines = sse.aiter_lines()
            assert (await asyncio.wait_for(anext(lines), WAIT)).startswith("retry:")

            async def ws_alert() -> dict:
                while True:
                    message = json.loads(await ws.recv())
                    if message.get("type") == "ping":
                        await ws.send('{"type":"pong"}')
                    else:
                        return message

            async def sse_ids() -> set[str]:
                ids: set[str] = set()
                async for line in lines:
                    if line.startswith("id: "):
                        ids.add(line.removeprefix("id: "))
                        return ids
                return ids

            # Each replica subscribes at start-up, asynchronously: publish (a fresh alert each
            # time, as the worker would) until process B's socket has one.
            received = None
            sse_task = asyncio.create_task(sse_ids())
            published: list[str] = []
            for _ in range(int(WAIT / 0.25)):
                event = alert_event(user_id, request_id="req-realtime")
                published.append(str(event.alert.id))
                await publish_alert(redis, event)
                try:
                    received = await asyncio.wait_for(ws_alert(), 0.25)
                    break
                except TimeoutError:
                    continue
            assert received is not None, "no alert reached the WebSocket on process B"
            assert received["type"] == "alert.raised"
            # As the AsyncAPI document the process serves describes it.
            document = (await client.get(f"{api_b.url}/asyncapi.json")).raise_for_status().json()
            alert = "channels/alertsWebSocket/messages/alertRaised"
            assert list(message_payload_validator(document, alert).iter_errors(received)) == []
            assert received["alert"]["owner_id"] == str(user_id)
            assert received["alert"]["id"] in published
            sse_received = await asyncio.wait_for(sse_task, WAIT)
            assert sse_received
            assert sse_received <= set(published)
    finally:
        await redis.aclose()


async def test_stream_credentials_never_reach_the_log(processes, process_env) -> None:
    seed(process_env)
    api = processes.start("api", "tripline-api")
    processes.wait_ready(api)
    pair = login_pair(api.url)
    token, refresh = pair["access_token"], pair["refresh_token"]
    ws_base = f"ws://127.0.0.1:{api.port}/v1/alerts/ws"

    # An access token in the URL is refused, and even then not logged.
    with pytest.raises(InvalidStatus) as refused:
        async with connect(f"{ws_base}?access_token={token}", open_timeout=WAIT):
            pass
    assert refused.value.response.status_code == 400

    ws_ticket, sse_ticket = stream_ticket(api.url, token), stream_ticket(api.url, token)
    async with connect(f"{ws_base}?ticket={ws_ticket}", open_timeout=WAIT):
        pass
    # Used once: refused now, and the refused attempt is logged too (uvicorn's 403 line).
    with pytest.raises(InvalidStatus):
        async with connect(f"{ws_base}?ticket={ws_ticket}", open_timeout=WAIT):
            pass
    async with (
        httpx.AsyncClient(timeout=WAIT) as client,
        client.stream("GET", f"{api.url}/v1/alerts/stream", params={"ticket": sse_ticket}) as sse,
    ):
        assert sse.status_code == 200
        assert (await asyncio.wait_for(anext(sse.aiter_lines()), WAIT)).startswith("retry:")

    # Each handshake was logged (so the scan below is not vacuous), with its query redacted.
    log = api.log_path.read_text(errors="replace")
    assert log.count("/v1/alerts/ws?ticket=[redacted]") >= 2
    assert "/v1/alerts/ws?access_token=[redacted]" in log
    for secret in (token, refresh, ws_ticket, sse_ticket):
        assert secret not in log
