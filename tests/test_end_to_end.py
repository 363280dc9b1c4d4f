"""The whole story of one telemetry upload, with every process real: ingest stores it, the
worker raises a speeding alert, and the alert reaches the user four ways (REST, a WebSocket on
one API replica, Server-Sent Events on another, and a signed webhook), each carrying the
upload's correlation ID, which the ingest, worker and API logs all show."""

from __future__ import annotations

import asyncio
import json
import uuid

import httpx
import pytest
from redis.asyncio import Redis
from websockets.asyncio.client import connect

from tests.test_pipeline import (
    FAST_WORKER,
    SECRET,
    fixes,
    logged,
    seed,
    start_demo_trip,
    wait_for,
    window_aligned,
)
from tests.test_realtime import alert_for, login, stream_ticket
from tripline_common.messaging import publish_alert, verify_signature

WAIT = 20.0


@pytest.mark.slow
async def test_one_upload_reaches_rest_websocket_sse_and_webhook_with_one_correlation_id(
    processes, process_env, webhook_receiver
) -> None:
    from scripts.seed import DEMO_DEVICE_KEY

    seed(process_env)
    trip = await start_demo_trip(process_env["DATABASE_URL"], webhook_receiver.url)
    ingest = processes.start("ingest", "tripline-ingest")
    worker = processes.start("worker", "tripline-worker", **FAST_WORKER)
    api_a = processes.start("api-a", "tripline-api")
    api_b = processes.start("api-b", "tripline-api")
    for process in (ingest, worker, api_a, api_b):
        processes.wait_ready(process)
    token, user_id = login(api_a.url)
    auth = {"Authorization": f"Bearer {token}"}

    request_id = f"story-{uuid.uuid4().hex}"
    # Opened as a browser does: each stream with a single-use ticket in its URL.
    ws_url = f"ws://127.0.0.1:{api_b.port}/v1/alerts/ws?ticket={stream_ticket(api_b.url, token)}"
    sse_params = {"ticket": stream_ticket(api_a.url, token)}
    async with (
        connect(ws_url, open_timeout=WAIT) as ws,
        httpx.AsyncClient(timeout=WAIT) as client,
        client.stream("GET", f"{api_a.url}/v1/alerts/stream", params=sse_params) as sse,
    ):
        assert sse.status_code == 200
        lines = sse.aiter_lines()

        async def ws_alert(request_id: str | None = None) -> dict:
            """The next alert on the WebSocket (with this correlation ID, if given)."""
            while True:
                message = json.loads(await ws.recv())
                if message.get("type") == "ping":
                    await ws.send('{"type":"pong"}')
                elif request_id in (None, message["alert"]["request_id"]):
                    return message

        async def sse_alert(request_id: str | None = None) -> dict:
            """The next alert on the SSE stream (with this correlation ID, if given)."""
            async for line in lines:
                if line.startswith("data: "):
                    message = json.loads(line.removeprefix("data: "))
                    if request_id in (None, message["alert"]["request_id"]):
                        return message
            raise AssertionError("the SSE stream ended")

        # Both replicas subscribe to the alert channel at start-up, asynchronously: send probe
        # alerts (as the worker publishes them) until each stream has one, then go for real.
        redis = Redis.from_url(process_env["REDIS_URL"])
        try:
            ws_task = asyncio.create_task(ws_alert())
            sse_task = asyncio.create_task(sse_alert())
            for _ in range(int(WAIT / 0.25)):
                await publish_alert(redis, alert_for(user_id))
                await asyncio.wait({ws_task, sse_task}, timeout=0.25)
                if ws_task.done() and sse_task.done():
                    break
            assert ws_task.done() and sse_task.done(), "the probe alerts never arrived"
        finally:
            await redis.aclose()
        # Probes may still be queued on one stream: the real alert is told by its ID.
        ws_task = asyncio.create_task(ws_alert(request_id))
        sse_task = asyncio.create_task(sse_alert(request_id))

        upload = await client.post(
            f"{ingest.url}/v1/telemetry",
            json={
                "client_batch_id": "story-1",
                "events": fixes(6, start=window_aligned(), speed_kmh=118),
            },
            headers={"X-Device-Key": DEMO_DEVICE_KEY, "X-Request-ID": request_id},
        )
        assert upload.status_code == 202, upload.text
        assert upload.headers["x-request-id"] == request_id

        on_websocket = await asyncio.wait_for(ws_task, WAIT)
        on_sse = await asyncio.wait_for(sse_task, WAIT)
        [delivery] = await wait_for(
            lambda: _async(webhook_receiver.delivered()), WAIT, "the webhook delivery"
        )
        listed = await client.get(f"{api_a.url}/v1/alerts", headers=auth)

    # Four views of one alert, each with the upload's correlation ID.
    alert_id = on_websocket["alert"]["id"]
    assert on_websocket["alert"]["rule"] == "speeding"
    assert on_websocket["alert"]["trip_id"] == str(trip["id"])
    assert on_websocket["alert"]["owner_id"] == str(user_id)
    assert on_websocket["alert"]["request_id"] == request_id
    assert on_sse["alert"]["id"] == alert_id
    assert on_sse["alert"]["request_id"] == request_id
    assert delivery.headers["X-Request-ID"] == request_id
    assert verify_signature(
        SECRET,
        delivery.body,
        delivery.headers["X-Tripline-Timestamp"],
        delivery.headers["X-Tripline-Signature"],
    )
    assert json.loads(delivery.body)["alert"]["id"] == alert_id
    assert listed.status_code == 200
    [rest] = [item for item in listed.json()["items"] if item["id"] == alert_id]
    assert rest["request_id"] == request_id

    # And one grep of the ID across the processes' logs tells the story.
    assert logged(ingest, "request", request_id=request_id, status=202)
    assert logged(worker, "alert_raised", request_id=request_id, rule="speeding")
    assert logged(worker, "webhook_delivered", request_id=request_id)
    assert logged(api_b, "alert_pushed", request_id=request_id, alert_id=alert_id)
    assert logged(api_a, "alert_pushed", request_id=request_id, alert_id=alert_id)


async def _async(value):
    return value
