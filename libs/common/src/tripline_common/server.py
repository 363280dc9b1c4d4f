"""Run an app under uvicorn the way Kubernetes needs: proxy headers, drain on SIGTERM, timeouts."""

from __future__ import annotations

import asyncio
import gc
import socket
from types import FrameType

import structlog
import uvicorn
from fastapi import FastAPI

from tripline_common.health import Lifecycle
from tripline_common.settings import CommonSettings

log = structlog.get_logger("tripline.server")


class DrainingServer(uvicorn.Server):
    """A uvicorn server that, on the first SIGTERM/SIGINT, fails readiness and keeps serving for
    `drain_seconds` (so load balancers stop sending traffic), then shuts down gracefully.
    A second signal stops at once."""

    def __init__(self, config: uvicorn.Config, lifecycle: Lifecycle, drain_seconds: float) -> None:
        super().__init__(config)
        self.lifecycle = lifecycle
        self.drain_seconds = drain_seconds
        self._loop: asyncio.AbstractEventLoop | None = None

    async def serve(self, sockets: list[object] | None = None) -> None:  # type: ignore[override]
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)  # type: ignore[arg-type]

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        freeze_startup_objects()

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        draining = self.lifecycle.shutting_down
        self.lifecycle.shutting_down = True
        if draining or self.drain_seconds <= 0 or self._loop is None:
            super().handle_exit(sig, frame)
            return
        log.info("shutdown_requested", signal=sig, drain_seconds=self.drain_seconds)
        self._loop.call_soon_threadsafe(
            self._loop.call_later, self.drain_seconds, super().handle_exit, sig, frame
        )


def freeze_startup_objects() -> None:
    """Move everything built at start-up (routes, models, pools, settings: ~160k objects for
    the API) out of the cyclic garbage collector's reach.

    Those objects live as long as the process, yet every full collection walked all of them:
    ~50-150 ms with the event loop stopped, which every request in flight waited out (the p99
    of docs/performance.md). Objects created later are collected as usual.
    """
    gc.collect()
    gc.freeze()


def serve(app: FastAPI, settings: CommonSettings) -> None:
    """Serve `app` until a signal stops it (the console entry point of each service)."""
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
        timeout_graceful_shutdown=settings.graceful_shutdown_timeout,
        access_log=False,  # One line per request comes from our middleware instead.
        log_config=None,  # Keep the structlog configuration create_app installed.
        server_header=False,
        date_header=True,
    )
    DrainingServer(config, app.state.lifecycle, settings.shutdown_drain_seconds).run()
