"""Run an app under uvicorn the way Kubernetes needs: proxy headers, drain on SIGTERM, timeouts,
and a second listening socket (OPS_PORT) for the probes and /metrics."""

from __future__ import annotations

import asyncio
import gc
import socket
from types import FrameType

import structlog
import uvicorn
from fastapi import FastAPI

from tripline_common.platform.settings import CommonSettings
from tripline_common.web.state import Lifecycle, ServiceState

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
        tune_gc_for_serving()

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        draining = self.lifecycle.shutting_down
        self.lifecycle.request_shutdown()
        if draining or self.drain_seconds <= 0 or self._loop is None:
            super().handle_exit(sig, frame)
            return
        log.info("shutdown_requested", signal=sig, drain_seconds=self.drain_seconds)
        self._loop.call_soon_threadsafe(
            self._loop.call_later, self.drain_seconds, super().handle_exit, sig, frame
        )


# Young-generation collections every 50,000 net allocations instead of CPython's 700: each
# request allocates hundreds of objects, nearly all freed by reference counting, so the default
# ran a collection every couple of requests (more with hundreds in flight, whose objects survive
# into the older generations). Measured on GET /v1/trips/{id}: +9% req/s at 32 connections,
# +14% at 256 (docs/performance.md).
GC_THRESHOLDS = (50_000, 20, 20)


def tune_gc_for_serving() -> None:
    """Set the collector up for a long-running server, once it is listening.

    - Everything built at start-up (routes, models, pools, settings: ~160k objects for the
      API) is frozen out of the cyclic collector's reach: those objects live as long as the
      process, yet every full collection walked them, ~50-150 ms with the event loop stopped
      that every request in flight waited out. Objects created later are collected as usual.
    - Young collections run less often (`GC_THRESHOLDS`).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


# uvicorn's default backlog; asyncio sets it again when the server starts.
BACKLOG = 2048


def listen(host: str, port: int) -> socket.socket:
    """A TCP socket bound to `host:port` and listening, for uvicorn to serve on.

    It listens at once: with SO_REUSEADDR, two sockets that are bound but not yet listening may
    share a port, so two processes started together on one free port would both start and split
    its connections between them. Listening now makes the second one fail to start instead.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(BACKLOG)
    except OSError:
        sock.close()
        raise
    return sock


def serve(app: FastAPI, settings: CommonSettings) -> None:
    """Serve `app` until a signal stops it (the console entry point of each service).

    One server, two sockets: PORT for the app and OPS_PORT for the probes and /metrics.
    `EdgeMiddleware` tells them apart by the port each request arrived on (`scope["server"]`).
    """
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
    sockets = [listen(settings.host, settings.port), listen(settings.host, settings.ops_port)]
    server = DrainingServer(config, ServiceState.of(app).lifecycle, settings.shutdown_drain_seconds)
    server.run(sockets=sockets)
