"""Benchmark: CPU instructions one authenticated hot read costs the server, untraced and traced.

    uv run python scripts/bench_trace_instructions.py [--reads 1000] [--warmup 300]

Timing on a shared 2-core machine moves by ±20% from one run to the next, more than what a
sampled-out span costs; counted instructions do not (two untraced counts agree within 0.1%).
Needs valgrind (Debian: `apt-get install valgrind`) and Postgres/Redis (found or started like
`make dev` does). It builds the same scratch database as `scripts/bench_api.py`, then starts,
each under callgrind: the bare FastAPI + asyncpg baseline (`scripts/bench_baseline.py`), and
the real `tripline-api` untraced, traced with a sampler that keeps nothing, at the default
sampler and at 100%, the traced ones exporting over OTLP/HTTP to a real receiver on 127.0.0.1,
all on a Redis of the run's own (another process's alerts published on a shared one would
reach the API's listener and be counted as its work).
Each server, in turn, is sent `--warmup` reads, its exports are let settle, its counters are
zeroed, it is sent `--reads` reads (32 in flight, from this process, which callgrind does not
count) and its exports are let settle again, inside the count: the batch processor's thread,
the protobuf encoding and the HTTP posts are all counted. Everything runs under callgrind, so
everything is ~50 times slower: startup takes a minute or two.

Printed: per server, instructions per read, what that is as a share of the baseline's (a CPU
model of the `bench_api.py` ratio: on this machine the API process is the bottleneck, so its
requests/s go as the inverse of its CPU per request), and the cost above the untraced server.
`BENCH_KEEP=1` keeps each server's log and callgrind dumps (read them with
`callgrind_annotate`). docs/performance.md ("What tracing costs") records the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from bench_api import prepare
from benchlib import (
    BIN,
    ROOT,
    ScratchDatabase,
    TracingVariant,
    spans_received,
    stop,
    tracing_variants,
)

from tripline_devstack import DevTraceCollector, EmbeddedRedis, free_port

CONCURRENCY = 32
READY_WITHIN = 900.0
"""Seconds a server under callgrind gets to import everything and answer."""
EXPORT_DELAY_MS = 30_000
"""The traced servers' `OTEL_BSP_SCHEDULE_DELAY`. Served at full speed, a server sampling one
read in ten fills the batch processor's 512-span batches faster than its 5 s timer sends them;
under callgrind, fifty times slower, the timer would send batches of a few dozen spans, each
POST's cost shared by a few dozen spans instead of hundreds. With a 30 s timer the counted
reads' spans go out in full batches, or in one, as they would."""
SETTLE_QUIET = EXPORT_DELAY_MS / 1000 + 5
"""Seconds without a new span at the receiver before a traced server's exports count as
settled: more than the batch processor's schedule delay."""


@dataclass
class Counted:
    """A server running under callgrind, and how to ask it for a read."""

    name: str
    process: subprocess.Popen[bytes]
    url: str
    ready_url: str
    token: str | None
    out_dir: Path
    variant: TracingVariant | None = None


def callgrind(out_dir: Path, name: str) -> list[str]:
    """The command prefix that runs a Python program under callgrind, dumping into `out_dir`."""
    out_dir.mkdir(parents=True)
    return [
        "valgrind",
        "--tool=callgrind",
        "--instr-atstart=no",  # Startup and warm-up run uninstrumented: several times faster.
        f"--callgrind-out-file={out_dir}/{name}.%p",
        sys.executable,  # The venv's own interpreter: no shim whose exec valgrind would not follow.
    ]


def export_delay(variant: TracingVariant | None) -> dict[str, str]:
    """A traced server's batch processor timer (`EXPORT_DELAY_MS`)."""
    if variant is None or variant.service is None:
        return {}
    return {"OTEL_BSP_SCHEDULE_DELAY": str(EXPORT_DELAY_MS)}


def start(
    name: str, command: list[str], env: dict[str, str], workdir: Path, ports: tuple[int, int]
) -> subprocess.Popen[bytes]:
    log = (workdir / f"{name}.log").open("ab")
    port, ops_port = ports
    return subprocess.Popen(  # noqa: S603 - our own fixed command lines
        command,
        env={**env, "PORT": str(port), "OPS_PORT": str(ops_port)},
        stdout=log,
        stderr=log,
        cwd=ROOT,
    )


def wait_ready(server: Counted) -> None:
    deadline = time.monotonic() + READY_WITHIN
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise SystemExit(f"bench: {server.name} exited with {server.process.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(server.ready_url, timeout=30).status_code < 500:
                return
        time.sleep(1)
    raise SystemExit(f"bench: {server.name} did not start within {READY_WITHIN:.0f} s")


async def send_reads(server: Counted, count: int) -> None:
    """`count` reads of the trip, `CONCURRENCY` in flight; every one must answer 200."""
    headers = {"Authorization": f"Bearer {server.token}"} if server.token else {}
    limits = httpx.Limits(max_connections=CONCURRENCY)
    async with httpx.AsyncClient(limits=limits, timeout=120, headers=headers) as client:
        left = iter(range(count))

        async def reader() -> None:
            for _ in left:
                response = await client.get(server.url)
                if response.status_code != 200:
                    raise SystemExit(f"bench: {server.name} answered {response.status_code}")

        await asyncio.gather(*(reader() for _ in range(CONCURRENCY)))


def settle(collector: DevTraceCollector, server: Counted) -> None:
    """Wait until the receiver has had no new span of `server` for `SETTLE_QUIET` seconds."""
    if server.variant is None or server.variant.service is None:
        return
    seen, since = spans_received(collector, server.variant), time.monotonic()
    while time.monotonic() - since < SETTLE_QUIET:
        time.sleep(0.5)
        now = spans_received(collector, server.variant)
        if now != seen:
            seen, since = now, time.monotonic()


_SUMMARY = re.compile(r"^summary: (\d+)$", re.MULTILINE)
IDLE_SECONDS = 10.0
"""How long a server's idle work is counted before its reads."""


def callgrind_control(server: Counted, command: str) -> None:
    subprocess.run(  # noqa: S603 - our own fixed command line
        ["callgrind_control", command, str(server.process.pid)],  # noqa: S607
        check=True,
        capture_output=True,
    )


def dump(server: Counted) -> int:
    """The instructions `server` executed since its last dump (or since counting began)."""
    before = set(server.out_dir.iterdir())
    callgrind_control(server, "--dump")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        for made in set(server.out_dir.iterdir()) - before:
            if match := _SUMMARY.search(made.read_text()):
                return int(match.group(1))
        time.sleep(0.5)
    raise SystemExit(f"bench: no callgrind dump from {server.name}")


def count(collector: DevTraceCollector, server: Counted, warmup: int, reads: int) -> float:
    """Instructions `server` executed per read, its exports included, its idle work not.

    Timers and the alert listener's bounded waits run by the clock, and under callgrind the
    clock runs fifty times as long per read: what the server does idle, counted first for
    `IDLE_SECONDS`, is taken off at the same rate over the reads' window (a few percent)."""
    asyncio.run(send_reads(server, warmup))
    settle(collector, server)
    callgrind_control(server, "--instr=on")
    started = time.monotonic()
    time.sleep(IDLE_SECONDS)
    idle_rate = dump(server) / (time.monotonic() - started)
    started = time.monotonic()
    asyncio.run(send_reads(server, reads))
    settle(collector, server)
    window = dump(server)
    idle = idle_rate * (time.monotonic() - started)
    print(
        f"{server.name:<12} idle {idle_rate / 1e6:.2f}M instructions/s, "
        f"{idle / window:.1%} of the reads' window",
        flush=True,
    )
    return (window - idle) / reads


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reads", type=int, default=1000, help="reads counted per server")
    parser.add_argument("--warmup", type=int, default=300, help="reads before the count")
    parser.add_argument(
        "--only", nargs="*", help="servers to count (baseline, untraced, 'traced 0%%', ...)"
    )
    args = parser.parse_args()
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        print("bench: needs valgrind (apt-get install valgrind)", file=sys.stderr)
        return 2

    with contextlib.ExitStack() as stack:
        database = ScratchDatabase.create("instructions")
        stack.callback(database.drop)
        workdir = Path(tempfile.mkdtemp(prefix="bench-instructions-"))
        if os.environ.get("BENCH_KEEP"):
            print(f"keeping the servers' logs and callgrind dumps in {workdir}")
        else:
            stack.callback(shutil.rmtree, workdir, ignore_errors=True)
        collector = stack.enter_context(DevTraceCollector())
        trip_id, token = asyncio.run(prepare(database.url))
        # A Redis of its own: pub/sub is shared by every database of a server, and alerts that
        # another process publishes would be counted as this API's work.
        redis = EmbeddedRedis(workdir / "redis", port=free_port())
        redis.start()
        stack.callback(redis.stop)
        env = {**database.service_env(), "REDIS_URL": redis.url()}

        untraced, default, everything = tracing_variants(collector, "api")
        nothing = TracingVariant(
            "traced 0%",
            {**default.env, "OTEL_SERVICE_NAME": "api-none", "OTEL_TRACES_SAMPLER_ARG": "0"},
        )
        uvicorn = [str(BIN / "uvicorn"), "--no-access-log", "--log-level", "warning"]
        servers: list[Counted] = []
        for index, variant in enumerate((None, untraced, nothing, default, everything)):
            name = variant.name if variant else "baseline"
            if args.only and name not in args.only:
                continue
            port, ops_port = free_port(), free_port()
            out_dir = workdir / f"server-{index}"
            if variant is None:
                command = [*uvicorn, "--app-dir", "scripts", "bench_baseline:app"]
                command += ["--port", str(port)]
                url, ready = (
                    f"http://127.0.0.1:{port}/trips/{trip_id}",
                    f"http://127.0.0.1:{port}/docs",
                )
            else:
                command = [str(BIN / "tripline-api")]
                url = f"http://127.0.0.1:{port}/v1/trips/{trip_id}"
                ready = f"http://127.0.0.1:{ops_port}/readyz"
            process = start(
                f"server-{index}",
                [*callgrind(out_dir, "server"), *command],
                {**env, **(variant.env if variant else {}), **export_delay(variant)},
                workdir,
                (port, ops_port),
            )
            stack.callback(stop, process)
            servers.append(
                Counted(name, process, url, ready, token if variant else None, out_dir, variant)
            )

        per_read: dict[str, float] = {}
        for server in servers:
            wait_ready(server)
            per_read[server.name] = count(collector, server, args.warmup, args.reads)
            print(f"{server.name:<12} {per_read[server.name] / 1000:8,.0f}k instructions per read")
        report(per_read)
    return 0


def report(per_read: dict[str, float]) -> None:
    """Each server's instructions per read, as a share of the baseline's, and above untraced."""
    print("\nserver        instructions/read   baseline's share   above untraced")
    base, plain = per_read.get("baseline"), per_read.get("untraced")
    for name, figure in per_read.items():
        share = f"{base / figure:6.0%}" if base else ""
        above = (
            f"{figure - plain:+9,.0f} ({(figure - plain) / plain:+5.1%})"
            if plain and name not in ("baseline", "untraced")
            else ""
        )
        print(f"{name:<12} {figure / 1000:12,.0f}k   {share:>16}   {above}")


if __name__ == "__main__":
    sys.exit(main())
