"""Real-time alerts: `WS /v1/alerts/ws` and `GET /v1/alerts/stream` (SSE).

The API runs under a real uvicorn server in the test's event loop, on the test database and
Redis, so the WebSocket handshake, close codes and streaming are the server's own. Data is
committed (the server's pools cannot see the test's rolled-back transaction) and deleted after.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind
from redis.asyncio import Redis
from sqlalchemy import delete, text
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine
from trip_factories import store_alerts
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.support.alerts import alert_event
from tests.support.asyncapi import message_payload_validator
from tests.support.tracing import SpanRecorder, recording_spans
from tripline_api.alerts_stream.asyncapi import ASYNCAPI_URL, SSE_CHANNEL, WS_CHANNEL
from tripline_api.alerts_stream.closes import CLOSE_TRY_AGAIN, CLOSES, REPLAY_UNAVAILABLE
from tripline_api.alerts_stream.manager import ConnectionManager
from tripline_api.alerts_stream.service import stream_slots_key
from tripline_api.main import create_api_app
from tripline_api.settings import ApiSettings
from tripline_api.state import ApiState
from tripline_common.data.models import User
from tripline_common.messaging import AlertEvent, publish_alert
from tripline_common.security import create_access_token, open_session, revoke_session
from tripline_common.web import Lifecycle
from tripline_devstack import free_port

WAIT = 10.0


@asynccontextmanager
async def serve(settings: ApiSettings) -> AsyncIterator[tuple[str, FastAPI]]:
    """The API under uvicorn on a free port; yields (`127.0.0.1:<port>`, the app)."""
    app = create_api_app(settings)
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_config=None, ws="auto", lifespan="on"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())

    async def started() -> None:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.02)

    await asyncio.wait_for(started(), WAIT)
    try:
        yield f"127.0.0.1:{port}", app
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, WAIT)


@pytest.fixture
async def committed(database_url: str) -> AsyncIterator[async_sessionmaker[Any]]:
    """Sessions that really commit; every user created through `make_account` is deleted after."""
    engine = create_async_engine(database_url, pool_size=2)
    factory = async_sessionmaker(engine, expire_on_commit=False)
    factory.created_users = []  # type: ignore[attr-defined]
    try:
        yield factory
    finally:
        async with factory() as session:
            for user_id in factory.created_users:  # type: ignore[attr-defined]
                await session.execute(delete(User).where(User.id == user_id))  # type: ignore[arg-type]
            await session.commit()
        await engine.dispose()


@pytest.fixture
def make_account(
    committed: async_sessionmaker[Any], make_settings: Callable[..., Any]
) -> Callable[[], Awaitable[tuple[User, str, uuid.UUID]]]:
    """`await make_account()` -> (user, access token, session id), committed."""
    settings = make_settings(ApiSettings)

    async def make() -> tuple[User, str, uuid.UUID]:
        async with committed() as session:
            user = User(
                email=f"rt-{uuid.uuid4().hex[:10]}@example.com",
                display_name="Realtime",
                password_hash="x",
            )
            session.add(user)
            await session.commit()
            committed.created_users.append(user.id)  # type: ignore[attr-defined]
            issued = await open_session(session=session, settings=settings, user=user)
            await session.commit()
        return user, issued.access_token, issued.session.id

    return make


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    try:
        yield client
    finally:
        await client.aclose()


async def next_message(ws: ClientConnection, timeout: float = WAIT) -> dict[str, Any]:
    """The next non-ping message (pings are answered with pongs)."""

    async def read() -> dict[str, Any]:
        while True:
            message: dict[str, Any] = json.loads(await ws.recv())
            if message.get("type") == "ping":
                await ws.send(json.dumps({"type": "pong"}))
                continue
            return message

    return await asyncio.wait_for(read(), timeout)


async def publish_until_received(
    redis: Redis, ws: ClientConnection, owner_id: uuid.UUID
) -> dict[str, Any]:
    """Publish fresh alerts for `owner_id` until one arrives (the subscription is then live)."""
    for _ in range(int(WAIT / 0.2)):
        await publish_alert(redis, alert_event(owner_id))
        try:
            return await next_message(ws, 0.2)
        except TimeoutError:
            continue
    raise AssertionError("no alert arrived")


def ws_url(host: str, ticket: str | None = None) -> str:
    return f"ws://{host}/v1/alerts/ws" + (f"?ticket={ticket}" if ticket else "")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def get_ticket(host: str, token: str) -> str:
    """A stream ticket, traded for the bearer token the way a browser client does."""
    async with httpx.AsyncClient(timeout=WAIT) as client:
        response = await client.post(
            f"http://{host}/v1/alerts/stream-tickets", headers=bearer(token)
        )
    assert response.status_code == 201, response.text
    ticket: str = response.json()["ticket"]
    return ticket


async def ws_with_ticket(host: str, token: str) -> ClientConnection:
    return await connect(ws_url(host, await get_ticket(host, token)), open_timeout=WAIT)


def assert_documented_close(closed: ConnectionClosed) -> tuple[int, str]:
    """The close frame received, which must be a row of the documented close table."""
    assert closed.rcvd is not None
    received = (closed.rcvd.code, closed.rcvd.reason)
    assert received in {(c.code, c.reason) for c in CLOSES if not c.handshake}, received
    return received


async def assert_ws_refused(url: str, status: int = 403, **kwargs: Any) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with connect(url, open_timeout=WAIT, **kwargs):
            pass
    assert refused.value.response.status_code == status


async def test_websocket_refused_before_accept_without_or_with_bad_credentials(
    make_settings, make_account
) -> None:
    _, token, _ = await make_account()
    async with serve(make_settings(ApiSettings)) as (host, _):
        await assert_ws_refused(ws_url(host))
        await assert_ws_refused(ws_url(host, "not-a-ticket"))
        await assert_ws_refused(ws_url(host), additional_headers=bearer(token[:-4] + "AAAA"))


async def test_websocket_refused_before_accept_with_revoked_session(
    make_settings, make_account, committed
) -> None:
    _, token, session_id = await make_account()
    async with serve(make_settings(ApiSettings)) as (host, _):
        ticket = await get_ticket(host, token)
        async with committed() as session:
            await revoke_session(session=session, session_id=session_id, user_id=None, reason="t")
            await session.commit()
        # A ticket is bound to its session: issued before the logout, refused after it.
        await assert_ws_refused(ws_url(host, ticket))
        await assert_ws_refused(ws_url(host), additional_headers=bearer(token))


async def test_websocket_receives_own_alerts_only(make_settings, make_account, redis) -> None:
    user, token, _ = await make_account()
    other, _, _ = await make_account()
    # The Authorization header works too (non-browser clients).
    async with (
        serve(make_settings(ApiSettings)) as (host, _),
        connect(ws_url(host), additional_headers=bearer(token)) as ws,
    ):
        first = await publish_until_received(redis, ws, user.id)
        assert first["type"] == "alert.raised"
        assert first["alert"]["owner_id"] == str(user.id)

        # Pub/sub is ordered: if the other user's alert were forwarded, it would come first.
        await publish_alert(redis, alert_event(other.id))
        mine = alert_event(user.id)
        await publish_alert(redis, mine)
        received = await next_message(ws)
        assert received == json.loads(mine.model_dump_json())


async def test_websocket_closed_1008_when_session_revoked(
    make_settings, make_account, committed, redis
) -> None:
    user, token, session_id = await make_account()
    settings = make_settings(ApiSettings, alerts_ws_heartbeat_seconds=0.2)
    async with serve(settings) as (host, _), await ws_with_ticket(host, token) as ws:
        await publish_until_received(redis, ws, user.id)
        async with committed() as session:
            await revoke_session(session=session, session_id=session_id, user_id=None, reason="t")
            await session.commit()
        with pytest.raises(ConnectionClosed) as closed:
            await next_message(ws, WAIT)
        assert assert_documented_close(closed.value) == (1008, "session revoked")


async def test_heartbeat_drops_a_silent_client(make_settings, make_account) -> None:
    _, token, _ = await make_account()
    settings = make_settings(
        ApiSettings, alerts_ws_heartbeat_seconds=0.2, alerts_ws_pong_timeout_seconds=0.3
    )
    async with serve(settings) as (host, _), await ws_with_ticket(host, token) as ws:
        seen: list[dict[str, Any]] = []

        async def silent() -> None:
            while True:
                seen.append(json.loads(await ws.recv()))  # never answers

        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(silent(), WAIT)
        assert assert_documented_close(closed.value) == (4408, "no pong")
        assert {"type": "ping"} in seen


async def test_heartbeat_keeps_an_answering_client(make_settings, make_account, redis) -> None:
    user, token, _ = await make_account()
    settings = make_settings(
        ApiSettings, alerts_ws_heartbeat_seconds=0.1, alerts_ws_pong_timeout_seconds=0.3
    )
    async with serve(settings) as (host, _), await ws_with_ticket(host, token) as ws:
        await publish_until_received(redis, ws, user.id)
        pings = 0

        async def answer() -> None:
            nonlocal pings
            while pings < 5:
                message = json.loads(await ws.recv())
                if message.get("type") == "ping":
                    pings += 1
                    await ws.send(json.dumps({"type": "pong"}))

        await asyncio.wait_for(answer(), WAIT)
        mine = alert_event(user.id)
        await publish_alert(redis, mine)
        assert (await next_message(ws))["alert"]["id"] == str(mine.alert.id)


async def test_websocket_closed_1001_on_shutdown(make_settings, make_account, redis) -> None:
    user, token, _ = await make_account()
    async with (
        serve(make_settings(ApiSettings)) as (host, app),
        await ws_with_ticket(host, token) as ws,
    ):
        await publish_until_received(redis, ws, user.id)
        # What the SIGTERM handler does first: the drain begins, and streams are closed.
        ApiState.of(app).lifecycle.shutting_down = True
        with pytest.raises(ConnectionClosed) as closed:
            await next_message(ws, WAIT)
        assert assert_documented_close(closed.value) == (1001, "server shutting down")


async def test_manager_fans_out_per_user_and_closes_a_client_that_falls_behind(redis) -> None:
    manager = ConnectionManager(redis, Lifecycle(), queue_size=2)
    user, other = uuid.uuid4(), uuid.uuid4()
    slow, fast = manager.subscribe(user), manager.subscribe(user)
    bystander = manager.subscribe(other)
    assert manager.connections(user) == 2
    for _ in range(2):
        manager.dispatch(alert_event(user))
        await fast.queue.get()
    assert bystander.queue.empty()
    assert not slow.closed.is_set()
    manager.dispatch(alert_event(user))  # The third finds the slow one's queue full.
    assert slow.closed.is_set()
    assert slow.close_code == CLOSE_TRY_AGAIN
    assert not fast.closed.is_set()
    manager.unsubscribe(slow)
    assert manager.connections(user) == 1
    assert manager.connections() == 2


# Server-Sent Events ---------------------------------------------------------------------


async def sse_events(lines: AsyncIterator[str], count: int) -> list[dict[str, str]]:
    """Read `count` events (comments and `retry:` skipped) from an SSE line iterator."""
    events: list[dict[str, str]] = []
    current: dict[str, str] = {}
    async for line in lines:
        if line == "":
            if "data" in current:
                events.append(current)
                if len(events) == count:
                    return events
            current = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            current[name] = value.removeprefix(" ")
    raise AssertionError("stream ended")


async def test_sse_requires_a_token(make_settings) -> None:
    async with serve(make_settings(ApiSettings)) as (host, _), httpx.AsyncClient() as client:
        response = await client.get(f"http://{host}/v1/alerts/stream", timeout=WAIT)
    assert response.status_code == 401


async def test_sse_live_then_resume_after_last_event_id(
    make_settings, make_account, committed, redis
) -> None:
    user, token, _ = await make_account()
    other, _, _ = await make_account()
    alerts = await store_alerts(
        committed, user, 4, raised_from=datetime.now(UTC) - timedelta(minutes=10)
    )
    settings = make_settings(ApiSettings, alerts_sse_heartbeat_seconds=0.2)
    headers = bearer(token)
    async with serve(settings) as (host, _), httpx.AsyncClient(timeout=WAIT) as client:
        url = f"http://{host}/v1/alerts/stream"
        # Live: the stream opens (subscribed once `retry:` arrives), and gets only own alerts.
        async with client.stream("GET", url, headers=headers) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            lines = response.aiter_lines()
            first = await asyncio.wait_for(anext(lines), WAIT)
            assert first.startswith("retry:")
            await publish_alert(redis, alert_event(other.id))
            live = alert_event(user.id)
            await publish_alert(redis, live)
            (event,) = await asyncio.wait_for(sse_events(lines, 1), WAIT)
            assert event["id"] == str(live.alert.id)
            assert event["event"] == "alert"
            assert json.loads(event["data"]) == json.loads(live.model_dump_json())

            # Quiet: heartbeat comments keep it open.
            async def ping() -> None:
                async for line in lines:
                    if line == ": ping":
                        return

            await asyncio.wait_for(ping(), WAIT)

        # Resume after the second stored alert: the last two are replayed, in order, then live.
        resume = {**headers, "Last-Event-ID": str(alerts[1].id)}
        async with client.stream("GET", url, headers=resume) as response:
            lines = response.aiter_lines()
            replayed = await asyncio.wait_for(sse_events(lines, 2), WAIT)
            assert [e["id"] for e in replayed] == [str(alerts[2].id), str(alerts[3].id)]
            assert json.loads(replayed[0]["data"])["alert"]["message"] == alerts[2].message
            # A replayed alert published again is not sent twice; a new one comes next.
            stored_again = AlertEvent.from_row(
                {**alerts[3].model_dump(), "status": "open", "request_id": None}
            )
            await publish_alert(redis, stored_again)
            new = alert_event(user.id)
            await publish_alert(redis, new)
            (event,) = await asyncio.wait_for(sse_events(lines, 1), WAIT)
            assert event["id"] == str(new.alert.id)


async def test_a_websocket_resumes_after_last_event_id_then_goes_live_each_alert_once(
    make_settings, make_account, committed, redis
) -> None:
    user, token, _ = await make_account()
    other, _, _ = await make_account()
    alerts = await store_alerts(
        committed, user, 4, raised_from=datetime.now(UTC) - timedelta(minutes=10)
    )
    await store_alerts(committed, other, 1)  # Never replayed to `user`.
    async with serve(make_settings(ApiSettings)) as (host, _):
        url = f"{ws_url(host, await get_ticket(host, token))}&last_event_id={alerts[1].id}"
        async with connect(url, open_timeout=WAIT) as ws:
            replayed = [await next_message(ws), await next_message(ws)]
            assert [m["alert"]["id"] for m in replayed] == [str(alerts[2].id), str(alerts[3].id)]
            assert replayed[0]["alert"]["message"] == alerts[2].message
            # A replayed alert published again is not sent twice; a new one comes next.
            stored_again = AlertEvent.from_row(
                {**alerts[3].model_dump(), "status": "open", "request_id": None}
            )
            await publish_alert(redis, stored_again)
            new = alert_event(user.id)
            await publish_alert(redis, new)
            assert (await next_message(ws))["alert"]["id"] == str(new.alert.id)

        # An id that is no alert of the user's (another's, or not an id) replays nothing.
        for unknown in (str(uuid.uuid4()), "not-an-id"):
            url = f"{ws_url(host, await get_ticket(host, token))}&last_event_id={unknown}"
            async with connect(url, open_timeout=WAIT) as ws:
                live = await publish_until_received(redis, ws, user.id)
                assert live["alert"]["id"] not in {str(a.id) for a in alerts}


async def test_a_websocket_whose_replay_cannot_be_read_is_closed_to_reconnect_later(
    make_settings, make_account, committed, database_url
) -> None:
    user, token, _ = await make_account()
    (stored,) = await store_alerts(committed, user, 1)
    # The replay waits on a lock held elsewhere until its statement times out: the database
    # cannot answer it, while the ticket and the session are still checked.
    settings = make_settings(ApiSettings, db_statement_timeout_ms=300)
    engine = create_async_engine(database_url)
    try:
        async with serve(settings) as (host, _), engine.connect() as holder:
            await holder.execute(text("LOCK TABLE alerts IN ACCESS EXCLUSIVE MODE"))
            url = f"{ws_url(host, await get_ticket(host, token))}&last_event_id={stored.id}"
            async with connect(url, open_timeout=WAIT) as ws:
                with pytest.raises(ConnectionClosed) as closed:
                    await next_message(ws)
            assert assert_documented_close(closed.value) == (
                REPLAY_UNAVAILABLE.code,
                REPLAY_UNAVAILABLE.reason,
            )
            await holder.rollback()
    finally:
        await engine.dispose()


async def test_real_stream_messages_match_the_asyncapi_document(
    make_settings, make_account, committed, redis
) -> None:
    """Every message the running streams send validates against the payload the served AsyncAPI
    document gives it, the documented pong is one the server takes, and other client messages
    are ignored."""
    user, token, _ = await make_account()
    seen_before, stored = await store_alerts(
        committed, user, 2, raised_from=datetime.now(UTC) - timedelta(minutes=10)
    )
    # Pings come fast; a pong the server did not take would end the socket, not bring a ping.
    settings = make_settings(
        ApiSettings,
        alerts_ws_heartbeat_seconds=0.1,
        alerts_ws_pong_timeout_seconds=WAIT,
        alerts_sse_heartbeat_seconds=0.1,
    )
    async with serve(settings) as (host, _), httpx.AsyncClient(timeout=WAIT) as client:
        document = (await client.get(f"http://{host}{ASYNCAPI_URL}")).raise_for_status().json()
        ws_messages = f"channels/{WS_CHANNEL}/messages"
        by_type = {
            "alert.raised": message_payload_validator(document, f"{ws_messages}/alertRaised"),
            "ping": message_payload_validator(document, f"{ws_messages}/ping"),
        }
        pong = document["components"]["messages"]["pong"]["examples"][0]["payload"]

        # WebSocket: alerts and pings, each valid; answered with the documented pong.
        seen: dict[str, int] = {"alert.raised": 0, "ping": 0}
        async with connect(ws_url(host), additional_headers=bearer(token)) as ws:

            async def read() -> None:
                while seen["alert.raised"] < 1 or seen["ping"] < 3:
                    message = json.loads(await ws.recv())
                    assert list(by_type[message["type"]].iter_errors(message)) == [], message
                    seen[message["type"]] += 1
                    if message["type"] == "ping":
                        if seen["ping"] == 1:  # Documented as ignored: not an answer, no harm.
                            await ws.send("not json")
                            await ws.send(json.dumps({"type": "hello"}))
                        await ws.send(json.dumps(pong))

            async def publish() -> None:
                while not seen["alert.raised"]:
                    await publish_alert(redis, alert_event(user.id))
                    await asyncio.sleep(0.2)

            await asyncio.wait_for(asyncio.gather(read(), publish()), WAIT)

        # SSE: the replayed alert (read from Postgres) and a live one (from pub/sub).
        sse = document["channels"][SSE_CHANNEL]
        sse_alert = message_payload_validator(document, f"channels/{SSE_CHANNEL}/messages/alert")
        event_name = document["components"]["messages"]["alertEvent"]["name"]
        resume = {**bearer(token), sse["x-resume"]["header"]: str(seen_before.id)}
        async with client.stream(
            "GET", f"http://{host}{sse['address']}", headers=resume
        ) as response:
            lines = response.aiter_lines()
            retry = await asyncio.wait_for(anext(lines), WAIT)
            assert retry == f"retry: {sse['x-resume']['retryMilliseconds']}"
            (replayed,) = await asyncio.wait_for(sse_events(lines, 1), WAIT)
            assert replayed["id"] == str(stored.id)
            live = alert_event(user.id)
            await publish_alert(redis, live)
            (pushed,) = await asyncio.wait_for(sse_events(lines, 1), WAIT)
            assert pushed["id"] == str(live.alert.id)
            for event in (replayed, pushed):
                assert event["event"] == event_name
                data = json.loads(event["data"])
                assert list(sse_alert.iter_errors(data)) == [], data
                assert event["id"] == data["alert"]["id"]

            async def ping() -> None:
                async for line in lines:
                    if line == sse["x-heartbeat"]["comment"]:
                        return

            await asyncio.wait_for(ping(), WAIT)


def test_sse_is_documented_as_event_stream() -> None:
    schema = create_api_app(ApiSettings(_env_file=None)).openapi()  # type: ignore[call-arg]
    operation = schema["paths"]["/v1/alerts/stream"]["get"]
    assert "text/event-stream" in operation["responses"]["200"]["content"]
    assert "Last-Event-ID" in [p["name"] for p in operation["parameters"]]


# Stream tickets: no credential in a URL ----------------------------------------------------


async def test_ticket_opens_one_websocket_and_is_refused_on_reuse(
    make_settings, make_account, redis
) -> None:
    user, token, _ = await make_account()
    async with serve(make_settings(ApiSettings)) as (host, _):
        ticket = await get_ticket(host, token)
        async with connect(ws_url(host, ticket), open_timeout=WAIT) as ws:
            await publish_until_received(redis, ws, user.id)
            await assert_ws_refused(ws_url(host, ticket))
        async with httpx.AsyncClient(timeout=WAIT) as client:
            reused = await client.get(f"http://{host}/v1/alerts/stream", params={"ticket": ticket})
        assert reused.status_code == 401
        assert reused.json()["code"] == "invalid_ticket"


async def test_ticket_is_refused_after_it_expires(make_settings, make_account, redis) -> None:
    _, token, _ = await make_account()
    async with serve(make_settings(ApiSettings, stream_ticket_ttl_seconds=1)) as (host, _):
        ticket = await get_ticket(host, token)
        assert await redis.keys("tripline:stream-ticket:*")
        # Poll until Redis has let it expire (its TTL is the setting), then try it.
        deadline = asyncio.get_running_loop().time() + WAIT
        while await redis.keys("tripline:stream-ticket:*"):
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.1)
        await assert_ws_refused(ws_url(host, ticket))


async def test_ticket_is_only_stored_hashed(make_settings, make_account, redis) -> None:
    _, token, _ = await make_account()
    async with serve(make_settings(ApiSettings)) as (host, _):
        ticket = await get_ticket(host, token)
        (key,) = await redis.keys("tripline:stream-ticket:*")
        assert ticket.encode() not in key
        assert ticket.encode() not in await redis.get(key)


async def test_ticket_is_refused_with_another_users_token(make_settings, make_account) -> None:
    _, token, _ = await make_account()
    _, other_token, _ = await make_account()
    async with serve(make_settings(ApiSettings)) as (host, _):
        ticket = await get_ticket(host, token)
        async with httpx.AsyncClient(timeout=WAIT) as client:
            response = await client.get(
                f"http://{host}/v1/alerts/stream",
                params={"ticket": ticket},
                headers=bearer(other_token),
            )
        assert response.status_code == 401
        assert response.json()["code"] == "ticket_mismatch"
        await assert_ws_refused(
            ws_url(host, await get_ticket(host, token)), additional_headers=bearer(other_token)
        )


async def test_ticket_endpoint_requires_a_bearer_token(make_settings) -> None:
    async with serve(make_settings(ApiSettings)) as (host, _), httpx.AsyncClient() as client:
        response = await client.post(f"http://{host}/v1/alerts/stream-tickets", timeout=WAIT)
    assert response.status_code == 401


async def test_access_token_in_the_url_is_refused(make_settings, make_account) -> None:
    _, token, _ = await make_account()
    async with serve(make_settings(ApiSettings)) as (host, _):
        await assert_ws_refused(f"ws://{host}/v1/alerts/ws?access_token={token}", status=400)
        async with httpx.AsyncClient(timeout=WAIT) as client:
            for name in ("access_token", "token"):
                response = await client.get(f"http://{host}/v1/alerts/stream", params={name: token})
                assert response.status_code == 400
                assert response.json()["code"] == "credential_in_url"


async def test_sse_opens_with_a_ticket(make_settings, make_account, redis) -> None:
    user, token, _ = await make_account()
    async with (
        serve(make_settings(ApiSettings)) as (host, _),
        httpx.AsyncClient(timeout=WAIT) as client,
    ):
        ticket = await get_ticket(host, token)
        url = f"http://{host}/v1/alerts/stream"
        async with client.stream("GET", url, params={"ticket": ticket}) as response:
            assert response.status_code == 200
            lines = response.aiter_lines()
            assert (await asyncio.wait_for(anext(lines), WAIT)).startswith("retry:")
            live = alert_event(user.id)
            await publish_alert(redis, live)
            (event,) = await asyncio.wait_for(sse_events(lines, 1), WAIT)
            assert event["id"] == str(live.alert.id)


# Streams end with their session and their token, whatever the traffic ---------------------


@asynccontextmanager
async def alerts_flowing(redis: Redis, owner_id: uuid.UUID) -> AsyncIterator[None]:
    """Publish an alert for `owner_id` every 50 ms: a stream that is never quiet."""

    async def publish() -> None:
        while True:
            await publish_alert(redis, alert_event(owner_id))
            await asyncio.sleep(0.05)

    task = asyncio.create_task(publish())
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def read_until_end(lines: AsyncIterator[str]) -> int:
    """Read an SSE stream until the server ends it; the number of events seen."""
    events = 0
    async for line in lines:
        events += line.startswith("id: ")
    return events


def token_expiring_in(
    settings: ApiSettings, user: User, session_id: uuid.UUID, seconds: float
) -> str:
    issued = datetime.now(UTC) - timedelta(seconds=settings.access_token_ttl_seconds - seconds)
    return create_access_token(
        settings, user_id=user.id, session_id=session_id, role=user.role.value, now=issued
    )


async def test_busy_sse_stream_is_ended_within_the_bound_after_logout(
    make_settings, make_account, redis
) -> None:
    user, token, _ = await make_account()
    # Quiet-time pings far off: only the session timer can end this stream in time.
    settings = make_settings(
        ApiSettings, alerts_ws_heartbeat_seconds=0.2, alerts_sse_heartbeat_seconds=3600
    )
    async with (
        serve(settings) as (host, _),
        httpx.AsyncClient(timeout=WAIT) as client,
        alerts_flowing(redis, user.id),
        client.stream("GET", f"http://{host}/v1/alerts/stream", headers=bearer(token)) as sse,
    ):
        lines = sse.aiter_lines()
        assert await asyncio.wait_for(sse_events(lines, 3), WAIT)  # Events are flowing.
        logout = await client.post(f"http://{host}/v1/auth/logout", headers=bearer(token))
        assert logout.status_code == 204
        await asyncio.wait_for(read_until_end(lines), WAIT)


async def test_busy_sse_stream_is_ended_when_its_token_expires(
    make_settings, make_account, redis
) -> None:
    user, token, session_id = await make_account()
    settings = make_settings(
        ApiSettings, alerts_ws_heartbeat_seconds=3600, alerts_sse_heartbeat_seconds=3600
    )
    expiring = token_expiring_in(settings, user, session_id, 2)
    async with (
        serve(settings) as (host, _),
        httpx.AsyncClient(timeout=WAIT) as client,
        alerts_flowing(redis, user.id),
        client.stream("GET", f"http://{host}/v1/alerts/stream", headers=bearer(expiring)) as short,
        client.stream("GET", f"http://{host}/v1/alerts/stream", headers=bearer(token)) as fresh,
    ):
        short_lines, fresh_lines = short.aiter_lines(), fresh.aiter_lines()
        assert await asyncio.wait_for(sse_events(short_lines, 1), WAIT)
        await asyncio.wait_for(read_until_end(short_lines), WAIT)
        # The stream of the session's unexpired token goes on.
        assert await asyncio.wait_for(sse_events(fresh_lines, 3), WAIT)


async def test_websocket_is_closed_1008_when_its_token_expires(
    make_settings, make_account, redis
) -> None:
    user, _, session_id = await make_account()
    settings = make_settings(
        ApiSettings, alerts_ws_heartbeat_seconds=3600, alerts_ws_pong_timeout_seconds=3600
    )
    expiring = token_expiring_in(settings, user, session_id, 2)
    async with (
        serve(settings) as (host, _),
        alerts_flowing(redis, user.id),
        connect(ws_url(host), additional_headers=bearer(expiring), open_timeout=WAIT) as ws,
    ):

        async def drain() -> None:
            while True:
                await ws.recv()

        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(drain(), WAIT)
        assert assert_documented_close(closed.value) == (1008, "token expired")


# Caps on open streams ---------------------------------------------------------------------


@asynccontextmanager
async def open_sse(client: httpx.AsyncClient, host: str, token: str) -> AsyncIterator[Any]:
    """An SSE stream, held open (subscribed once its first line arrived) if it was admitted."""
    async with client.stream(
        "GET", f"http://{host}/v1/alerts/stream", headers=bearer(token)
    ) as response:
        if response.status_code == 200:
            lines = response.aiter_lines()
            assert (await asyncio.wait_for(anext(lines), WAIT)).startswith("retry:")
        else:
            await response.aread()
        yield response


async def refused_ws(url: str, **kwargs: Any) -> tuple[int, str]:
    """The close code and reason of a WebSocket that is accepted and closed at once."""
    async with connect(url, open_timeout=WAIT, **kwargs) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), WAIT)
    return assert_documented_close(closed.value)


async def test_streams_beyond_the_per_user_cap_are_refused(make_settings, make_account) -> None:
    _, token, _ = await make_account()
    _, other_token, _ = await make_account()
    settings = make_settings(ApiSettings, alerts_stream_max_per_user=2)
    async with serve(settings) as (host, _), httpx.AsyncClient(timeout=WAIT) as client:
        async with (
            open_sse(client, host, token) as first,
            connect(ws_url(host), additional_headers=bearer(token), open_timeout=WAIT),
        ):
            assert first.status_code == 200
            async with open_sse(client, host, token) as third:
                assert third.status_code == 429
                assert third.json()["code"] == "too_many_streams"
                assert int(third.headers["retry-after"]) > 0
            code, reason = await refused_ws(ws_url(host), additional_headers=bearer(token))
            assert (code, reason) == (1008, "too many streams")
            # Another user is not affected.
            async with open_sse(client, host, other_token) as others:
                assert others.status_code == 200
        # Closed streams give their places back (once the server has seen them go).
        deadline = asyncio.get_running_loop().time() + WAIT
        while True:
            async with (
                open_sse(client, host, token) as again,
                open_sse(client, host, token) as more,
            ):
                if again.status_code == more.status_code == 200:
                    break
            assert asyncio.get_running_loop().time() < deadline, "places were not given back"
            await asyncio.sleep(0.05)


async def test_the_per_user_cap_holds_across_replicas(make_settings, make_account) -> None:
    _, token, _ = await make_account()
    settings = make_settings(ApiSettings, alerts_stream_max_per_user=2)
    async with (
        serve(settings) as (host_a, _),
        serve(settings) as (host_b, _),
        httpx.AsyncClient(timeout=WAIT) as client,
        open_sse(client, host_a, token) as on_a,
        open_sse(client, host_b, token) as on_b,
    ):
        assert on_a.status_code == on_b.status_code == 200
        for host in (host_a, host_b):
            async with open_sse(client, host, token) as refused:
                assert refused.status_code == 429


async def test_streams_beyond_the_per_process_cap_are_refused(make_settings, make_account) -> None:
    tokens = [(await make_account())[1] for _ in range(3)]
    settings = make_settings(ApiSettings, alerts_stream_max_per_process=2)
    async with (
        serve(settings) as (host, _),
        httpx.AsyncClient(timeout=WAIT) as client,
        open_sse(client, host, tokens[0]) as first,
        connect(ws_url(host), additional_headers=bearer(tokens[1]), open_timeout=WAIT),
    ):
        assert first.status_code == 200
        async with open_sse(client, host, tokens[2]) as refused:
            assert refused.status_code == 503
            assert refused.json()["code"] == "streams_unavailable"
        code, reason = await refused_ws(ws_url(host), additional_headers=bearer(tokens[2]))
        assert (code, reason) == (1013, "server at capacity")


async def test_a_crashed_replicas_stream_slots_free_themselves(
    make_settings, make_account, redis
) -> None:
    user, token, _ = await make_account()
    settings = make_settings(ApiSettings, alerts_stream_max_per_user=1)
    # A replica that crashed left a slot whose lease it no longer refreshes: it has run out.
    await redis.zadd(stream_slots_key(user.id), {"crashed": 1.0})
    async with (
        serve(settings) as (host, _),
        httpx.AsyncClient(timeout=WAIT) as client,
        open_sse(client, host, token) as stream,
    ):
        assert stream.status_code == 200


# Trace context: the delivery of a published alert joins the publisher's trace ----------------


async def publish_traced_until_received(
    spans: SpanRecorder, redis: Redis, receive: Callable[[], Awaitable[str]], owner_id: uuid.UUID
) -> tuple[AlertEvent, str]:
    """Publish alerts for `owner_id`, each inside a span of a stand-in job, until one arrives;
    returns the event and the exact text the client got."""
    for _ in range(int(WAIT / 0.2)):
        event = alert_event(owner_id)
        with spans.tracer.start_as_current_span("job"):
            await publish_alert(redis, event)
        try:
            return event, await asyncio.wait_for(receive(), 0.2)
        except TimeoutError:
            continue
    raise AssertionError("no alert arrived")


async def delivery_span_of(spans: SpanRecorder, event: AlertEvent) -> ReadableSpan:
    """The stream's delivery span of `event`: it ends once the send returns, which can be just
    after the client has read the message."""
    for _ in range(int(WAIT / 0.02)):
        for span in spans.starting("deliver"):
            if (span.attributes or {}).get("messaging.message.id") == str(event.alert.id):
                return span
        await asyncio.sleep(0.02)
    raise AssertionError("no delivery span")


def assert_delivery_continues_the_publish(
    spans: SpanRecorder, event: AlertEvent, delivery: ReadableSpan, transport: str
) -> None:
    [publish] = [
        span
        for span in spans.starting("publish")
        if (span.attributes or {}).get("messaging.message.id") == str(event.alert.id)
    ]
    assert delivery.kind is SpanKind.CONSUMER
    assert delivery.context.trace_id == publish.context.trace_id
    assert delivery.parent is not None and delivery.parent.span_id == publish.context.span_id
    links = [link.context.span_id for link in delivery.links]
    # A stream lives for hours: the delivery links its stream's request span, never a child of it.
    streams = [span for span in spans.finished() if span.kind is SpanKind.SERVER]
    if transport == "sse":
        [stream] = [span for span in streams if span.name == "GET /v1/alerts/stream"]
        assert links == [publish.context.span_id, stream.context.span_id]
        assert stream.context.trace_id != delivery.context.trace_id
    else:  # A WebSocket connection makes no server span (the edge middleware spans HTTP only).
        assert streams == []
        assert links == [publish.context.span_id]
    assert (delivery.attributes or {})["tripline.stream.transport"] == transport


async def test_a_websocket_delivery_span_continues_and_links_the_publish_span_same_text_sent(
    make_settings, make_account, redis
) -> None:
    user, token, _ = await make_account()
    with recording_spans() as spans:
        async with (
            serve(make_settings(ApiSettings)) as (host, _),
            connect(ws_url(host), additional_headers=bearer(token)) as ws,
        ):

            async def receive() -> str:
                return str(await ws.recv())

            event, text = await publish_traced_until_received(spans, redis, receive, user.id)
            delivery = await delivery_span_of(spans, event)
    assert text == event.model_dump_json()  # The trace context stays on the server's side.
    assert_delivery_continues_the_publish(spans, event, delivery, "websocket")


async def test_an_sse_delivery_span_continues_and_links_the_publish_span_same_data_sent(
    make_settings, make_account, redis
) -> None:
    user, token, _ = await make_account()
    with recording_spans() as spans:
        async with (
            serve(make_settings(ApiSettings)) as (host, _),
            httpx.AsyncClient(timeout=WAIT) as client,
            client.stream(
                "GET", f"http://{host}/v1/alerts/stream", headers=bearer(token)
            ) as response,
        ):
            lines = response.aiter_lines()
            assert (await asyncio.wait_for(anext(lines), WAIT)).startswith("retry:")

            async def receive() -> str:
                (received,) = await sse_events(lines, 1)
                return received["data"]

            event, data = await publish_traced_until_received(spans, redis, receive, user.id)
            delivery = await delivery_span_of(spans, event)
    assert data == event.model_dump_json()
    assert_delivery_continues_the_publish(spans, event, delivery, "sse")
