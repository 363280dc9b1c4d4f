"""The first SIGTERM/SIGINT tells the process's parts to stop at once, before the drain."""

from __future__ import annotations

import asyncio
import signal

import uvicorn
from fastapi import FastAPI

from tripline_common.web.server import DrainingServer
from tripline_common.web.state import Lifecycle


async def test_the_first_signal_runs_the_shutdown_hooks_once_before_the_drain_ends() -> None:
    lifecycle = Lifecycle()
    calls: list[bool] = []
    lifecycle.on_shutdown_requested.append(lambda: calls.append(lifecycle.shutting_down))
    server = DrainingServer(uvicorn.Config(FastAPI()), lifecycle, drain_seconds=60)
    server._loop = asyncio.get_running_loop()

    server.handle_exit(signal.SIGTERM, None)

    assert calls == [True]  # At once, readiness already failing.
    assert not server.should_exit  # The drain goes on: the server still serves.
    server.handle_exit(signal.SIGTERM, None)  # A second signal stops at once ...
    assert server.should_exit
    assert calls == [True]  # ... without running the hooks again.


def test_without_a_drain_the_hooks_still_run_at_the_signal() -> None:
    lifecycle = Lifecycle()
    calls: list[str] = []
    lifecycle.on_shutdown_requested.append(lambda: calls.append("stop taking jobs"))
    server = DrainingServer(uvicorn.Config(FastAPI()), lifecycle, drain_seconds=0)

    server.handle_exit(signal.SIGINT, None)

    assert calls == ["stop taking jobs"] and lifecycle.shutting_down and server.should_exit
