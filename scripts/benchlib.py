"""What the benchmark scripts share: a scratch database on the Postgres and Redis that `make dev`
would use (found, or started embedded), the bench user and devices, starting and stopping our own
processes (untraced, or traced to a real OTLP/HTTP receiver at a given sampler), running `wrk`
and reading its numbers, and the PASS/FAIL verdict."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import asyncpg
import httpx

from tripline_common.data import asyncpg_dsn
from tripline_common.migrations.runner import upgrade
from tripline_common.platform.tracing import DEFAULT_RATIO
from tripline_common.security import issue_api_key
from tripline_devstack import (
    DevTraceCollector,
    drop_database,
    ensure_database,
    ensure_stack,
    free_port,
)
from tripline_devstack.stack import Stack

T = TypeVar("T")

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
SECRET = "bench-secret-key-" + "x" * 40


@dataclass
class ScratchDatabase:
    """A migrated database of the benchmark's own; `drop()` removes it and stops whatever
    `create` had to start."""

    url: str
    redis_url: str
    server_url: str
    name: str
    stack: Stack

    @property
    def dsn(self) -> str:
        """The URL as asyncpg takes it."""
        return asyncpg_dsn(self.url)

    @classmethod
    def create(
        cls, benchmark: str, *, name: str | None = None, revision: str = "head"
    ) -> ScratchDatabase:
        """A new database for `benchmark`, or the database `name` (kept by an earlier run)
        brought up to `revision` (the latest migration by default)."""
        stack = ensure_stack(
            os.environ.get("DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"),
            os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
            ROOT / ".local" / "bench",
        )
        server_url = stack.postgres_url.rsplit("/", 1)[0]
        name = name or f"tripline_bench_{benchmark}_{os.getpid()}"
        ensure_database(server_url, name)
        database = cls(f"{server_url}/{name}", stack.redis_url, server_url, name, stack)
        try:
            upgrade(database.url, revision)
        except BaseException:
            database.drop()
            raise
        return database

    def service_env(self, **extra: str) -> dict[str, str]:
        """The environment our processes run with against this database, plus `extra`. No
        `OTEL_*` variable is inherited: each process's tracing is the benchmark's choice
        (`TracingVariant`)."""
        return {
            **{name: value for name, value in os.environ.items() if not name.startswith("OTEL_")},
            "DATABASE_URL": self.url,
            "REDIS_URL": self.redis_url,
            "ENVIRONMENT": "staging",
            "SECRET_KEY": SECRET,
            "LOG_FORMAT": "json",
            "TRUSTED_HOSTS": "127.0.0.1,localhost",
            **extra,
        }

    def drop(self, *, keep: bool = False) -> None:
        """Drop the database (unless `keep`) and stop what `create` started."""
        if not keep:
            drop_database(self.server_url, self.name)
        self.stack.stop()


async def insert_bench_user(conn: asyncpg.Connection) -> uuid.UUID:
    """The one user every benchmark's data belongs to."""
    user_id: uuid.UUID = await conn.fetchval(
        "INSERT INTO users (email, password_hash, display_name) "
        "VALUES ('bench@example.com', 'x', 'Bench') RETURNING id"
    )
    return user_id


async def insert_bench_devices(
    conn: asyncpg.Connection, user_id: uuid.UUID, devices: int
) -> list[tuple[uuid.UUID, str]]:
    """`devices` devices of `user_id`, each with a fresh API key; returns (device id, key)."""
    made = []
    for n in range(devices):
        key = issue_api_key()
        device_id = await conn.fetchval(
            "INSERT INTO devices (owner_id, name, api_key_prefix, api_key_hash) "
            "VALUES ($1, $2, $3, $4) RETURNING id",
            user_id,
            f"bench-{n}",
            key.prefix,
            key.key_hash,
        )
        made.append((device_id, key.key))
    return made


@dataclass
class Service:
    """One of our processes, started by `start_service`."""

    process: subprocess.Popen[bytes]
    url: str
    """The base URL of its public port."""
    ops_url: str
    """The base URL of its operations port (probes, `/metrics`)."""


def start_service(
    command: str, env: dict[str, str], workdir: Path, *, name: str | None = None
) -> Service:
    """Start one of our console scripts on free ports, logging to `workdir`/`name`.log (the
    command's name by default); wait until its `/readyz` answers."""
    port, ops_port = free_port(), free_port()
    log = (workdir / f"{name or command}.log").open("ab")
    ports = {"PORT": str(port), "OPS_PORT": str(ops_port)}
    process = subprocess.Popen(  # noqa: S603 - our own console scripts
        [str(BIN / command)], env={**env, **ports}, stdout=log, stderr=log, cwd=workdir
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{command} exited with {process.returncode}; see {log.name}")
        try:
            if httpx.get(f"http://127.0.0.1:{ops_port}/readyz", timeout=1).status_code == 200:
                return Service(process, f"http://127.0.0.1:{port}", f"http://127.0.0.1:{ops_port}")
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{command} did not become ready")


def stop(process: subprocess.Popen[bytes]) -> None:
    """Terminate `process`, killing it if it has not exited within 30 s."""
    process.terminate()
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()


@dataclass
class WrkStats:
    """What one `wrk --latency` run measured."""

    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    requests: int = 0
    """Requests completed in the run."""
    cpu_us: float = 0.0
    """CPU time of the server process per request, in µs (`cpu_seconds`), when measured."""


def wrk_command(connections: int, duration: int) -> list[str]:
    """`wrk` with one thread, `connections` connections, for `duration` seconds, with latency."""
    return ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "--timeout", "10s"]


def parse_wrk(output: str) -> WrkStats:
    """Requests/s, p50, p99 and errors (non-2xx/3xx answers plus socket errors) from `wrk
    --latency` output."""

    def ms(label: str) -> float:
        match = re.search(rf"^\s*{label}\s+([\d.]+)(us|ms|s)\s*$", output, re.MULTILINE)
        if not match:
            raise ValueError(f"no {label} latency in wrk output:\n{output}")
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    errors = 0
    if non2xx := re.search(r"Non-2xx or 3xx responses: (\d+)", output):
        errors += int(non2xx.group(1))
    if sock := re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    ):
        errors += sum(int(n) for n in sock.groups())
    requests = int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
    return WrkStats(rps=rps, p50_ms=ms("50%"), p99_ms=ms("99%"), errors=errors, requests=requests)


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system, every thread) process `pid` has used so far, from /proc (Linux).

    On a shared machine, requests/s move with the load of the other processes; the CPU a
    process spends per request moves much less, so the scripts print both."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def backend_cpu_seconds(connections: list[asyncpg.Connection]) -> float:
    """CPU time the Postgres backends of `connections` have used so far (Postgres on this
    machine: their /proc entries)."""
    return sum(cpu_seconds(conn.get_server_pid()) for conn in connections)


async def database_backends(conn: asyncpg.Connection) -> dict[int, float]:
    """CPU time used so far by each backend of `conn`'s database, but `conn`'s own, by pid."""
    pids = await conn.fetch(
        "SELECT pid FROM pg_stat_activity"
        " WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )
    used = {}
    for (pid,) in pids:
        with contextlib.suppress(FileNotFoundError):  # Gone since.
            used[pid] = cpu_seconds(pid)
    return used


def verdict(checks: list[tuple[str, bool]]) -> int:
    """Print PASS or FAIL before each target; 0 when all of them are met, else 1."""
    for text, ok in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {text}")
    return 0 if all(ok for _, ok in checks) else 1


def have_wrk() -> bool:
    """True when `wrk` is installed; else says how to get it."""
    if shutil.which("wrk") is None:
        print("bench: needs wrk (apt-get install wrk)", file=sys.stderr)
        return False
    return True


# --- tracing: the same process untraced, and traced at the default sampler and at 100% ---------


@dataclass(frozen=True)
class TracingVariant:
    """How a Tripline process of a benchmark traces: `env` is added to its environment; a
    traced one exports as `service` (so the receiver tells the variants apart)."""

    name: str
    env: Mapping[str, str] = field(default_factory=dict)

    @property
    def service(self) -> str | None:
        return self.env.get("OTEL_SERVICE_NAME")


def tracing_variants(collector: DevTraceCollector, service: str) -> tuple[TracingVariant, ...]:
    """Untraced (no endpoint: no SDK, the middleware's one check); traced to `collector` at the
    default sampler (parent-based, ratio `DEFAULT_RATIO`: wrk's requests carry no `traceparent`,
    so each starts a trace, kept with that probability); traced with every trace kept. The
    receiver is real, so the exporter does its real work (encoding, HTTP); it shares the cores
    with the processes measured, so its CPU counts against the traced figures."""

    def traced(sampled: str, **more: str) -> dict[str, str]:
        return {
            "OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint,
            "OTEL_SERVICE_NAME": f"{service}-{sampled}",
            **more,
        }

    return (
        TracingVariant("untraced"),
        TracingVariant(f"traced {DEFAULT_RATIO:.0%}", traced("default")),
        TracingVariant("traced 100%", traced("all", OTEL_TRACES_SAMPLER_ARG="1")),
    )


def spans_received(collector: DevTraceCollector, variant: TracingVariant) -> int:
    """The spans `collector` has received from the processes of `variant`."""
    return sum(1 for span in collector.spans if span.service == variant.service)


_DROPPED = re.compile(r'^\w+_trace_spans_dropped_total\{reason="(\w+)"\} ([\d.e+]+)$', re.M)


def spans_dropped(service: Service) -> dict[str, int]:
    """The spans `service` dropped before export, by reason (`queue_full`, `export_failed`),
    from its `/metrics`."""
    text = httpx.get(f"{service.ops_url}/metrics", timeout=10).text
    return {reason: int(float(value)) for reason, value in _DROPPED.findall(text)}


def spread(values: list[float]) -> str:
    """`low-high%` of ratios (`61-72%`), or the one value."""
    low, high = round(min(values) * 100), round(max(values) * 100)
    return f"{low}%" if low == high else f"{low}-{high}%"


def rotated(names: list[T], round_number: int) -> list[T]:
    """`names` in the order of round `round_number` (from 1): the first moves one place later
    each round, so no variant is always measured right after the same other one."""
    shift = (round_number - 1) % len(names)
    return names[shift:] + names[:shift]
