"""`messaging/redis_connections.py`: on uvloop, the loop the apps run on, a command written to
a connection whose transport was just closed is retried on a fresh connection, as on asyncio's
loop, instead of escaping as a `RuntimeError` (an upload's 500 in the chaos soak)."""

from __future__ import annotations

import asyncio

import uvloop

from tripline_common.messaging.queue import create_redis
from tripline_common.platform import CommonSettings


def test_a_command_on_a_closed_transport_reconnects_under_uvloop(make_settings) -> None:
    settings: CommonSettings = make_settings()

    async def closed_under_the_client() -> int:
        redis = create_redis(settings)
        try:
            await redis.ping()  # One connection, back in the pool.
            (connection,) = redis.connection_pool._available_connections  # type: ignore[attr-defined]
            # The server's side went away between two commands: the transport is closed, and the
            # client learns it only when it writes.
            connection._writer.transport.abort()
            return int(await redis.incr("tripline:test:closed-transport"))
        finally:
            await redis.aclose()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        assert runner.run(closed_under_the_client()) == 1
