"""The fault injector: each fault of the plan done for real to the running system (a signal to a
replica's process, the embedded Redis or Postgres stopped and started, a proxy cut or slowed),
and the window from its injection until the system had recovered, for the checker."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from rehearsal.replicas import Build, Cluster, Replica

from chaos.proxy import TcpProxy
from chaos.record import FaultWindow
from chaos.schedule import Fault
from tripline_devstack import EmbeddedPostgres, EmbeddedRedis

# How long a restarted server stays down before it starts again (the outage's default).
RESTART_PAUSE_SECONDS = 3.0
# Latency a slow network adds to each packet, each way.
SLOW_SECONDS = {"postgres": 0.2, "redis": 0.1}


@dataclass
class Injector:
    """Everything a fault can reach, and the windows of the faults injected so far."""

    cluster: Cluster
    build: Build
    replicas: int
    """Replicas each Deployment keeps: a replica fault waits until all are ready, so that a
    component is never killed outright (two faults on it at once)."""
    postgres: EmbeddedPostgres
    redis: EmbeddedRedis
    proxies: dict[str, TcpProxy]
    """`postgres`, `redis`, `webhook`: the links a fault can cut or slow."""
    log: Callable[[str], None]
    rng: random.Random = field(default_factory=lambda: random.Random(0))  # noqa: S311 - a plan
    windows: list[FaultWindow] = field(default_factory=list)
    restarts: int = 0

    async def run(self, plan: list[Fault], began: float, stop: asyncio.Event) -> None:
        """Inject each fault at its time after `began` (monotonic) until the plan ends or
        `stop` is set; faults overlap when the plan says so."""
        running: list[asyncio.Task[None]] = []
        for fault in plan:
            delay = began + fault.at - time.monotonic()
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
            if stop.is_set():
                break
            running.append(asyncio.create_task(self.inject(fault)))
        await asyncio.gather(*running)

    async def inject(self, fault: Fault) -> None:
        kind, _, what = fault.kind.partition("-")
        if kind in ("kill", "term"):
            await self._replace(what, kind == "kill", fault.kind)
        elif kind == "restart":
            await self._restart(what, fault.seconds or RESTART_PAUSE_SECONDS, fault.kind)
        elif fault.kind == "webhook-down":
            await self._cut(self.proxies["webhook"], fault.seconds, fault.kind)
        elif kind == "slow":
            await self._slow(self.proxies[what], SLOW_SECONDS[what], fault.seconds, fault.kind)
        else:
            raise ValueError(f"no such fault: {fault.kind}")

    def _window(self, kind: str, target: str, start: float) -> None:
        window = FaultWindow(kind, target, start, time.time())
        self.windows.append(window)
        self.log(f"fault {kind} on {target}: recovered after {window.end - window.start:.1f} s")

    async def _replace(self, component: str, kill: bool, kind: str) -> None:
        """Signal one replica; the ReplicaSet starts a new one at once (the old one's drain,
        if any, goes on meanwhile)."""
        while len(self._ready(component)) < self.replicas:  # noqa: ASYNC110 - polled state
            await asyncio.sleep(0.5)
        victim = self.rng.choice(self._ready(component))
        start = time.time()
        self.log(f"fault {kind}: {victim.name}")
        gone = self.cluster.kill(victim) if kill else self.cluster.terminate(victim)
        await asyncio.gather(gone, self.cluster.start(component, self.build))
        self._window(kind, victim.name, start)

    def _ready(self, component: str) -> list[Replica]:
        """Its replicas that turned ready and still run."""
        return [
            r
            for r in self.cluster.replicas.get(component, [])
            if r.start_seconds is not None and r.popen.poll() is None
        ]

    async def _restart(self, server: str, pause: float, kind: str) -> None:
        """Stop the server and start it again. Its link goes down with it, as a Service with
        no ready endpoint refuses connections (a proxy left listening would accept them and
        then drop them, a fault of another kind)."""
        embedded = self.postgres if server == "postgres" else self.redis
        start = time.time()
        self.log(f"fault {kind}")
        await self.proxies[server].down()
        await asyncio.to_thread(embedded.stop)
        # The server's log starts afresh with each start: keep the one that ends here.
        self.restarts += 1
        if embedded.log_path.exists():
            embedded.log_path.rename(embedded.log_path.with_suffix(f".{self.restarts}.log"))
        await asyncio.sleep(pause)
        await asyncio.to_thread(embedded.start)
        await self.proxies[server].up()
        self._window(kind, server, start)

    async def _cut(self, proxy: TcpProxy, seconds: float, kind: str) -> None:
        start = time.time()
        self.log(f"fault {kind} for {seconds:.0f} s")
        await proxy.down()
        await asyncio.sleep(seconds)
        await proxy.up()
        self._window(kind, proxy.name, start)

    async def _slow(self, proxy: TcpProxy, latency: float, seconds: float, kind: str) -> None:
        start = time.time()
        self.log(f"fault {kind}: +{latency * 1000:.0f} ms per packet for {seconds:.0f} s")
        proxy.latency = latency
        await asyncio.sleep(seconds)
        proxy.latency = 0.0
        self._window(kind, proxy.name, start)
