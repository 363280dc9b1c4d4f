"""The API's own series: open real-time connections by transport, login rate-limit refusals.

The streams run under a real uvicorn server (`test_alerts_stream.serve`: WebSocket handshakes
and streaming are the server's own); their user is committed and deleted after.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine
from test_alerts_stream import serve
from websockets.asyncio.client import connect

from tripline_api.main import create_api_app
from tripline_api.settings import ApiSettings
from tripline_common.data.models import User
from tripline_common.security import open_session

WAIT = 10.0
CONNECTIONS = "tripline_api_realtime_connections"


@asynccontextmanager
async def committed_token(database_url: str, settings: ApiSettings) -> AsyncIterator[str]:
    """An access token of a committed user (the server's pools cannot see the test's
    rolled-back transaction); the user is deleted after."""
    engine = create_async_engine(database_url, pool_size=1)
    factory = async_sessionmaker(engine, expire_on_commit=False)
    user = User(email=f"m-{uuid.uuid4().hex[:10]}@example.com", display_name="M", password_hash="x")
    try:
        async with factory() as session:
            session.add(user)
            await session.commit()
            issued = await open_session(session=session, settings=settings, user=user)
            await session.commit()
        yield issued.access_token
    finally:
        async with factory() as session:
            await session.execute(delete(User).where(User.id == user.id))  # type: ignore[arg-type]
            await session.commit()
        await engine.dispose()


async def connections(host: str) -> dict[str, float]:
    async with httpx.AsyncClient(timeout=WAIT) as client:
        text = (await client.get(f"http://{host}/metrics")).text
    return {
        s.labels["transport"]: s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == CONNECTIONS
    }


async def until_connections(host: str, expected: dict[str, float]) -> None:
    """Scrape until the gauge shows `expected` (a close is noticed by the server a moment
    after the client sends it)."""
    deadline = time.monotonic() + WAIT
    while (seen := await connections(host)) != expected:
        if time.monotonic() > deadline:
            raise AssertionError(f"{CONNECTIONS} is {seen}, not {expected}")
        await asyncio.sleep(0.05)


async def test_websocket_and_sse_connections_raise_and_lower_the_gauge(
    make_settings, database_url
) -> None:
    settings = make_settings(ApiSettings)
    async with committed_token(database_url, settings) as token, serve(settings) as (host, _):
        assert await connections(host) == {"websocket": 0, "sse": 0}

        headers = {"Authorization": f"Bearer {token}"}
        async with connect(
            f"ws://{host}/v1/alerts/ws", additional_headers=headers, open_timeout=WAIT
        ):
            await until_connections(host, {"websocket": 1, "sse": 0})
        await until_connections(host, {"websocket": 0, "sse": 0})

        async with (
            httpx.AsyncClient(timeout=WAIT) as client,
            client.stream("GET", f"http://{host}/v1/alerts/stream", headers=headers) as stream,
        ):
            assert stream.status_code == 200
            # Held, not dropped: a dropped iterator is finalised, which closes the stream.
            chunks = stream.aiter_bytes()
            await anext(chunks)  # The stream has started: it is subscribed.
            await until_connections(host, {"websocket": 0, "sse": 1})
            await chunks.aclose()
        await until_connections(host, {"websocket": 0, "sse": 0})


async def test_a_refused_login_attempt_is_counted(make_settings, app_client, make_user) -> None:
    # An hour's window: the fixed window cannot roll over between the two attempts.
    app = create_api_app(
        make_settings(ApiSettings, login_rate_limit=1, login_rate_window_seconds=3600)
    )
    user = await make_user()
    form = {"username": user.email, "password": "wrong password"}
    async with app_client(app) as client:
        first = await client.post("/v1/auth/token", data=form)
        second = await client.post("/v1/auth/token", data=form)
        text = (await client.get("/metrics")).text
    assert (first.status_code, second.status_code) == (401, 429)
    [sample] = [
        s
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "tripline_api_rate_limit_rejections_total" and s.labels["limit"] == "login"
    ]
    assert sample.value == 1
    assert user.email not in text
