"""Replicas of the four components as real processes, rolled as a Deployment rolls them: a new
replica passes its wait-for-schema step, starts, joins its Service's endpoints once `/readyz`
answers 200; then an old one leaves the endpoints (after the propagation delay) and gets SIGTERM
at once, and is SIGKILLed if it outlives its grace period."""

from __future__ import annotations

import asyncio
import itertools
import signal
import subprocess
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from rehearsal.chart import Rollout
from tripline_devstack import free_port

# Deadlines for a process that hangs, not measurements: a cold start on a loaded 2-core machine
# has needed over 30 s.
READY_DEADLINE_SECONDS = 120.0
SCHEMA_WAIT_SECONDS = 120
COMMAND_DEADLINE_SECONDS = 300  # a migration or the seed
# How often the rehearsal probes a starting replica; the kubelet's period (5 s in the chart) only
# delays when a replica joins, which changes nothing the rehearsal checks.
PROBE_INTERVAL_SECONDS = 0.25
COMMANDS = {
    "api": "tripline-api",
    "ingest": "tripline-ingest",
    "admin": "tripline-admin",
    "worker": "tripline-worker",
}
# Exit statuses of a graceful stop: uvicorn re-raises SIGTERM after its shutdown.
GRACEFUL_EXITS = (0, -signal.SIGTERM, 128 + signal.SIGTERM)


@dataclass(frozen=True)
class Build:
    """One release's code: where its console scripts are and what its processes need."""

    version: str
    """A short label in replica names: `prev` or `head`."""
    commit: str
    root: Path
    """Its source tree (scripts/seed.py)."""
    bin: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def seed_script(self) -> Path:
        return self.root / "scripts" / "seed.py"

    def run(self, env: dict[str, str], *argv: str) -> None:
        """One of its commands to its end (a hook Job, the seed); its stderr on a failure."""
        done = subprocess.run(  # noqa: S603 - our own console scripts
            [str(self.bin / argv[0]), *argv[1:]],
            env={**env, **self.env},
            capture_output=True,
            text=True,
            timeout=COMMAND_DEADLINE_SECONDS,
            check=False,
        )
        if done.returncode != 0:
            raise AssertionError(f"{self.version}: {' '.join(argv)} failed:\n{done.stderr[-3000:]}")


@dataclass
class Replica:
    """One running process of a component at a version."""

    name: str
    component: str
    version: str
    port: int
    ops_port: int
    popen: subprocess.Popen[bytes]
    log_path: Path
    exit_code: int | None = None
    killed: bool = False
    """It outlived its grace period and was SIGKILLed."""
    stop_seconds: float | None = None
    """From SIGTERM to exit."""
    start_seconds: float | None = None
    """From its schema wait's start to ready."""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ops_url(self) -> str:
        return f"http://127.0.0.1:{self.ops_port}"


class Service:
    """A Kubernetes Service, seen from its clients: the ready replicas of one component, picked
    in turn for each request (as kube-proxy picks an endpoint for each new connection)."""

    def __init__(self, component: str) -> None:
        self.component = component
        self.endpoints: list[Replica] = []
        self._turn = itertools.count()

    def pick(self) -> Replica:
        if not self.endpoints:
            raise LookupError(f"the {self.component} Service has no ready endpoint")
        return self.endpoints[next(self._turn) % len(self.endpoints)]


class RolloutError(AssertionError):
    """A replica did not start, did not turn ready, or its schema wait failed."""


@dataclass
class Cluster:
    """Deployments of the four components on one database and Redis, and their Services."""

    env: dict[str, str]
    log_dir: Path
    rollouts: dict[str, Rollout]
    propagation_seconds: float
    """From a replica's deletion to its removal from every client's endpoints."""
    extra_env: dict[str, dict[str, str]] = field(default_factory=dict)
    """Per component, added to every replica (the rehearsal's alert window, for example)."""
    replicas: dict[str, list[Replica]] = field(default_factory=dict)
    started: list[Replica] = field(default_factory=list)
    stopped: list[Replica] = field(default_factory=list)
    services: dict[str, Service] = field(default_factory=dict)
    _names: itertools.count[int] = field(default_factory=itertools.count)
    _ports: set[int] = field(default_factory=set)

    def _free_port(self) -> int:
        """A free port no replica of this cluster was given: replicas start together, and the
        OS may hand the same free port to two of them before either listens."""
        port = free_port()
        while port in self._ports:
            port = free_port()
        self._ports.add(port)
        return port

    def service(self, component: str) -> Service:
        return self.services.setdefault(component, Service(component))

    async def _wait_for_schema(self, build: Build) -> None:
        """The pod's initContainer: `tripline-migrate wait --allow-newer`, as the chart runs it."""
        wait = await asyncio.create_subprocess_exec(
            str(build.bin / "tripline-migrate"),
            *("wait", "--allow-newer", "--timeout", str(SCHEMA_WAIT_SECONDS)),
            env={**self.env, **build.env},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await wait.communicate()
        if wait.returncode != 0:
            raise RolloutError(f"wait-for-schema of {build.version} failed: {output.decode()}")

    async def start(self, component: str, build: Build) -> Replica:
        """Start one replica of `component` at `build`; return once it is ready and in its
        Service's endpoints."""
        began = time.monotonic()
        await self._wait_for_schema(build)
        port, ops_port = self._free_port(), self._free_port()
        name = f"{component}-{build.version}-{next(self._names)}"
        log_path = self.log_dir / f"{name}.log"
        env = {
            **self.env,
            **build.env,
            **self.rollouts[component].shutdown_env,
            **self.extra_env.get(component, {}),
            "PORT": str(port),
            "OPS_PORT": str(ops_port),
        }
        with log_path.open("wb") as log:
            popen = subprocess.Popen(  # noqa: S603, ASYNC220 - our own console script; a fork is quick
                [str(build.bin / COMMANDS[component])],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.log_dir,
            )
        replica = Replica(name, component, build.version, port, ops_port, popen, log_path)
        self.replicas.setdefault(component, []).append(replica)
        self.started.append(replica)
        await self._until_ready(replica)
        replica.start_seconds = time.monotonic() - began
        if component != "worker":
            self.service(component).endpoints.append(replica)
        return replica

    async def _until_ready(self, replica: Replica) -> None:
        deadline = time.monotonic() + READY_DEADLINE_SECONDS
        last = "no answer yet"
        async with httpx.AsyncClient(timeout=2) as client:
            while time.monotonic() < deadline:
                if replica.popen.poll() is not None:
                    raise RolloutError(
                        f"{replica.name} exited with {replica.popen.returncode}:\n"
                        + replica.log_path.read_text(errors="replace")[-3000:]
                    )
                try:
                    response = await client.get(f"{replica.ops_url}/readyz")
                    if response.status_code == 200:
                        return
                    last = f"{response.status_code} {response.text[:200]}"
                except httpx.HTTPError as exc:
                    last = repr(exc)
                await asyncio.sleep(PROBE_INTERVAL_SECONDS)
        raise RolloutError(f"{replica.name} not ready in {READY_DEADLINE_SECONDS:.0f} s: {last}")

    async def terminate(self, replica: Replica) -> None:
        """Delete a replica's pod: SIGTERM now (no preStop sleep in the chart's defaults), out of
        the endpoints after the propagation delay, SIGKILL past the grace period."""
        self.replicas[replica.component].remove(replica)
        rollout = self.rollouts[replica.component]
        sent = time.monotonic()
        replica.popen.send_signal(signal.SIGTERM)

        async def leave_endpoints() -> None:
            await asyncio.sleep(self.propagation_seconds)
            endpoints = self.service(replica.component).endpoints
            if replica in endpoints:
                endpoints.remove(replica)

        leaving = asyncio.create_task(leave_endpoints())
        try:
            code = await asyncio.wait_for(
                asyncio.to_thread(replica.popen.wait), rollout.termination_grace
            )
        except TimeoutError:
            replica.popen.kill()
            replica.killed = True
            code = await asyncio.to_thread(replica.popen.wait)
        await leaving
        replica.exit_code = code
        replica.stop_seconds = time.monotonic() - sent
        self.stopped.append(replica)

    async def kill(self, replica: Replica) -> None:
        """A replica's process dies at once (SIGKILL: an OOM kill, a node lost): nothing drains;
        its endpoint goes once the propagation delay has passed, as when its readiness probe
        fails."""
        self.replicas[replica.component].remove(replica)
        replica.popen.kill()
        replica.killed = True
        replica.exit_code = await asyncio.to_thread(replica.popen.wait)
        await asyncio.sleep(self.propagation_seconds)
        endpoints = self.service(replica.component).endpoints
        if replica in endpoints:
            endpoints.remove(replica)
        replica.stop_seconds = 0.0
        self.stopped.append(replica)

    async def deploy(self, component: str, build: Build, count: int) -> None:
        """A first install of `component`: `count` replicas, started together."""
        await asyncio.gather(*(self.start(component, build) for _ in range(count)))

    async def roll(self, component: str, build: Build) -> None:
        """Replace every replica of `component` with one at `build`, one at a time (maxSurge 1,
        maxUnavailable 0): a new replica turns ready, then an old one is deleted; the next new
        one starts while the old one drains (a terminating pod no longer counts)."""
        rollout = self.rollouts[component]
        if rollout.max_unavailable != 0 or rollout.max_surge != 1:
            raise RolloutError(f"{component}: the rehearsal models maxSurge 1, maxUnavailable 0")
        old = list(self.replicas.get(component, []))
        draining: list[Awaitable[None]] = []
        for replica in old:
            await self.start(component, build)
            draining.append(asyncio.create_task(self.terminate(replica)))
        await asyncio.gather(*draining)

    async def roll_all(self, build: Build) -> None:
        """`helm upgrade` (or `helm rollback`): every Deployment rolls at once, each on its own."""
        await asyncio.gather(*(self.roll(component, build) for component in self.rollouts))

    async def stop_all(self) -> None:
        await asyncio.gather(
            *(self.terminate(r) for replicas in self.replicas.values() for r in list(replicas))
        )
