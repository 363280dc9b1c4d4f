"""The chaos soak's parts on their own: the proxy it cuts and slows links with, and the fault
plan of its long form."""

from __future__ import annotations

import asyncio

import pytest
from chaos.proxy import TcpProxy, fixed
from chaos.schedule import KINDS, SHORT, plan


async def _echo_server() -> tuple[asyncio.Server, int]:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(1024):
            writer.write(data)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def _round_trip(port: int, payload: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(payload)
    await writer.drain()
    answer = await reader.readexactly(len(payload))
    writer.close()
    return answer


async def test_the_proxy_forwards_refuses_while_down_and_forwards_again_once_up() -> None:
    server, port = await _echo_server()
    proxy = TcpProxy("echo", fixed("127.0.0.1", port))
    await proxy.up()
    try:
        assert await _round_trip(proxy.port, b"before") == b"before"
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        writer.write(b"open")
        assert await reader.readexactly(4) == b"open"  # the link is up, end to end

        await proxy.down()

        # The open connection is cut, and new ones are refused.
        assert await reader.read() == b""
        writer.close()
        with pytest.raises(OSError):
            await _round_trip(proxy.port, b"down")
        await proxy.up()
        assert await _round_trip(proxy.port, b"after") == b"after"
    finally:
        await proxy.down()
        server.close()


async def test_a_slowed_proxy_still_delivers_every_byte_in_order() -> None:
    server, port = await _echo_server()
    proxy = TcpProxy("echo", fixed("127.0.0.1", port))
    await proxy.up()
    proxy.latency = 0.05
    try:
        payload = bytes(range(256)) * 1000
        assert await _round_trip(proxy.port, payload) == payload
    finally:
        await proxy.down()
        server.close()


async def test_a_balancing_proxy_with_no_ready_upstream_closes_the_connection() -> None:
    def nowhere() -> tuple[str, int]:
        raise LookupError("no ready endpoint")

    proxy = TcpProxy("api", nowhere)
    await proxy.up()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        assert await reader.read() == b""
        writer.close()
    finally:
        await proxy.down()


def test_the_long_form_plays_every_kind_of_fault_in_each_round() -> None:
    faults = plan(seconds=2 * len(KINDS) * 30, interval=30, seed=7)

    assert len(faults) == 2 * len(KINDS)
    for round_ in (faults[: len(KINDS)], faults[len(KINDS) :]):
        assert sorted(f.kind for f in round_) == sorted(KINDS)
    assert all(f.seconds > 0 for f in faults if f.kind.split("-")[0] in ("restart", "slow"))
    assert plan(seconds=300, interval=30, seed=7) == plan(seconds=300, interval=30, seed=7)


def test_the_short_form_injects_every_kind_of_fault_its_brief_names() -> None:
    kinds = {f.kind for f in SHORT}

    assert {"kill-worker", "term-api", "restart-redis", "restart-postgres", "webhook-down"} <= kinds
    assert kinds & {"slow-postgres", "slow-redis"}
    assert kinds <= set(KINDS)
