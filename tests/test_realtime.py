"""Real-time alerts across replicas: two real `tripline-api` processes on one Redis.

A client connected to process B receives an alert published to Redis the way the worker does
(`publish_alert`), whichever replica it is connected to; SSE on process A sees it too.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime

import httpx
from redis.asyncio import Redis
from websockets.asyncio.client import connect

from tests.test_processes import seed
from tripline_common.pubsub import AlertData, AlertEvent, publish_alert

WAIT = 15.0


def login(api_url: str) -> tuple[str, uuid.UUID]:
    from scripts.seed import DEMO_PASSWORD

    token = (
        httpx.post(
            f"{api_url}/v1/auth/token",
            data={"username": "demo@tripline.dev", "password": DEMO_PASSWORD},
            timeout=10,
        )
        .raise_for_status()
        .json()["access_token"]
    )
    me = httpx.get(
        f"{api_url}/v1/users/me", headers={"Authorization": f"Bearer {token}"}, timeout=10
    ).raise_for_status()
    return token, uuid.UUID(me.json()["id"])


def alert_for(owner_id: uuid.UUID) -> AlertEvent:
    return AlertEvent(
        alert=AlertData(
            id=uuid.uuid4(),
            owner_id=owner_id,
            trip_id=uuid.uuid4(),
            device_id=None,
            rule="speeding",
            severity="warning",
            status="open",
            message="Over the limit",
            details={"speed_kmh": 151},
            raised_at=datetime.now(UTC),
            request_id="req-realtime",
        )
    )


async def test_alert_reaches_websocket_and_sse_on_other_replicas(processes, process_env) -> None:
    seed(process_env)
    api_a = processes.start("api-a", "tripline-api")
    api_b = processes.start("api-b", "tripline-api")
    processes.wait_ready(api_a)
    processes.wait_ready(api_b)
    token, user_id = login(api_a.url)
    redis = Redis.from_url(process_env["REDIS_URL"])
    ws_url = f"ws://127.0.0.1:{api_b.port}/v1/alerts/ws?access_token={token}"
    try:
        async with (
            connect(ws_url, open_timeout=WAIT) as ws,
            httpx.AsyncClient(timeout=WAIT) as client,
            client.stream(
                "GET",
                f"{api_a.url}/v1/alerts/stream",
                headers={"Authorization": f"Bearer {token}"},
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
                event = alert_for(user_id)
                published.append(str(event.alert.id))
                await publish_alert(redis, event)
                try:
                    received = await asyncio.wait_for(ws_alert(), 0.25)
                    break
                except TimeoutError:
                    continue
            assert received is not None, "no alert reached the WebSocket on process B"
            assert received["type"] == "alert.raised"
            assert received["alert"]["owner_id"] == str(user_id)
            assert received["alert"]["id"] in published
            sse_received = await asyncio.wait_for(sse_task, WAIT)
            assert sse_received
            assert sse_received <= set(published)
    finally:
        await redis.aclose()
