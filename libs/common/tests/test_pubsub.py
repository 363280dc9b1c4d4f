"""Live alert fan-out over real Redis pub/sub: per-user channels and the catch-all pattern."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from tests.support.alerts import alert_event
from tripline_common.data.models.alerts import ALERT_EVENT_COLUMNS
from tripline_common.messaging import AlertData, AlertEvent, listen_alerts, publish_alert
from tripline_common.messaging.pubsub import alert_channel

SUBSCRIBE_DEADLINE_SECONDS = 15.0


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    # A short socket timeout: a quiet subscription must not trip over it.
    client = Redis.from_url(redis_url, socket_timeout=0.5)
    yield client
    await client.aclose()


async def next_event(redis: Redis, owner_id: uuid.UUID | None = None) -> asyncio.Future:
    """Start listening; return the future of the first event, once the subscription is live."""
    listener = listen_alerts(redis, owner_id=owner_id)
    first = asyncio.ensure_future(anext(listener))
    first.add_done_callback(lambda _: asyncio.ensure_future(listener.aclose()))
    # A deadline, not a timing: under a loaded CI machine 2 s were not always enough.
    deadline = asyncio.get_running_loop().time() + SUBSCRIBE_DEADLINE_SECONDS
    while asyncio.get_running_loop().time() < deadline:
        if first.done():
            return first  # The listener failed: awaiting it shows why.
        if owner_id is None:
            if await redis.pubsub_numpat():
                return first
        elif dict(await redis.pubsub_numsub(alert_channel(owner_id))).get(
            alert_channel(owner_id).encode()
        ):
            return first
        await asyncio.sleep(0.02)
    raise AssertionError("the listener never subscribed")


async def test_a_users_listener_gets_their_alerts_only(redis: Redis) -> None:
    mine, theirs = uuid.uuid4(), uuid.uuid4()
    received = await next_event(redis, mine)
    await publish_alert(redis, alert_event(theirs))
    sent = alert_event(mine)
    # At least ours: pub/sub is server-wide, so a pattern listener of another test or process
    # on the same Redis (xdist, a running `make dev`) may count too.
    assert await publish_alert(redis, sent) >= 1
    assert await asyncio.wait_for(received, 5) == sent  # Not `theirs`, published first.


async def test_the_pattern_listener_gets_everyones_alerts(redis: Redis) -> None:
    sent = [alert_event(uuid.uuid4()), alert_event(uuid.uuid4())]  # Two users'.
    waiting = list(sent)

    async def until_both_arrive() -> None:
        # Pub/sub is server-wide: other tests' workers (xdist) publish real alerts on it too.
        async for event in listen_alerts(redis):
            if event in waiting:
                waiting.remove(event)
                if not waiting:
                    return

    listening = asyncio.ensure_future(until_both_arrive())
    # When this listener's pattern subscription is live cannot be told from the server (it
    # counts every client's patterns): publish again until both have arrived.
    deadline = asyncio.get_running_loop().time() + SUBSCRIBE_DEADLINE_SECONDS
    while not listening.done() and asyncio.get_running_loop().time() < deadline:
        for event in list(waiting):  # The listener removes what arrives meanwhile.
            await publish_alert(redis, event)
        await asyncio.wait({listening}, timeout=0.2)
    assert listening.done(), f"still waiting for {len(waiting)} of the two alerts"
    await listening  # Raises the listener's own error, if it failed.


async def test_an_unreadable_message_is_skipped(redis: Redis) -> None:
    owner = uuid.uuid4()
    received = await next_event(redis, owner)
    await redis.publish(alert_channel(owner), b'{"type": "something else"}')
    sent = alert_event(owner)
    await publish_alert(redis, sent)
    assert await asyncio.wait_for(received, 5) == sent


async def test_a_quiet_channel_outlives_the_socket_timeout(redis: Redis) -> None:
    owner = uuid.uuid4()
    received = await next_event(redis, owner)
    await asyncio.sleep(1.2)  # More than twice the client's socket timeout.
    assert not received.done()
    sent = alert_event(owner)
    await publish_alert(redis, sent)
    assert await asyncio.wait_for(received, 5) == sent


def test_the_message_is_compact_json_with_a_type_and_version() -> None:
    event = alert_event(uuid.uuid4())
    data = event.to_json()
    assert data.startswith(b'{"type":"alert.raised","version":1,"alert":{"id":"')
    assert AlertEvent.model_validate_json(data) == event


def test_an_alert_event_carries_exactly_the_alert_event_columns() -> None:
    # The worker and the SSE replay read `ALERT_EVENT_COLUMNS` and build events from the row.
    assert [column.key for column in ALERT_EVENT_COLUMNS] == list(AlertData.model_fields)
