"""Benchmark: the CPU one authenticated hot read costs the API process, untraced and traced.

    uv run python scripts/bench_trace_cpu.py [--duration 6] [--rounds 9] [--settle 6]

Throughput on a shared machine moves with everybody else's load; the CPU a process spends per
request moves much less. This script starts the same servers as `scripts/bench_api.py` (the
bare FastAPI + asyncpg baseline, and the real `tripline-api` untraced, traced with a sampler
that keeps nothing, at the default sampler and at 100%, exporting over OTLP/HTTP to a real
receiver on 127.0.0.1), loads each in turn with `wrk -c32` for `--duration` seconds, in an
order that moves each round (`benchlib.rotated`), and reads each process's CPU time (all its
threads) from `/proc`. A traced process hands its spans to the exporter's thread in batches,
up to `OTEL_BSP_SCHEDULE_DELAY` (5 s) later, so each measurement also covers the `--settle`
seconds after the load: the spans of the run are encoded and sent inside its own window. The
receiver runs in this process; its CPU over the same window is reported beside the server's.

Printed: per server, the median over rounds of its CPU µs per request (with the rounds' spread)
and what it costs above the untraced server, and the receiver's CPU per request. `--variant
NAME:VAR=VALUE,...` adds a traced server with more environment (an `OTEL_BSP_*` setting, say).
docs/performance.md ("What tracing costs") records the figures.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

from bench_api import HotReads, Target
from benchlib import (
    TracingVariant,
    cpu_seconds,
    have_wrk,
    parse_wrk,
    rotated,
    tracing_variants,
    wrk_command,
)

from tripline_devstack import DevTraceCollector


def parse_variant(text: str) -> tuple[str, dict[str, str]]:
    """`NAME:VAR=VALUE,VAR=VALUE` -> (name, environment)."""
    name, _, assignments = text.partition(":")
    env = dict(item.split("=", 1) for item in assignments.split(",") if item)
    return name, env


def measure(target: Target, duration: int, settle: float) -> tuple[float, int, float]:
    """Load `target` for `duration` seconds; return its CPU seconds over the load and the
    `settle` seconds after it, the requests served, and this process's (the receiver's) CPU
    seconds over the same window."""
    command = wrk_command(32, duration)
    if target.token:
        command += ["-H", f"Authorization: Bearer {target.token}"]
    cpu, receiver = cpu_seconds(target.pid), time.process_time()
    done = subprocess.run([*command, target.url], capture_output=True, text=True, check=True)  # noqa: S603
    time.sleep(settle)
    stats = parse_wrk(done.stdout)
    if stats.errors:
        raise SystemExit(f"bench: {stats.errors} errors from {target.url}")
    return cpu_seconds(target.pid) - cpu, stats.requests, time.process_time() - receiver


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=6, help="seconds of load per run")
    parser.add_argument("--rounds", type=int, default=9, help="interleaved rounds")
    parser.add_argument(
        "--settle", type=float, default=6.0, help="seconds measured after each load"
    )
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME:VAR=VALUE,...",
        help="one more traced server, with this environment on top of the default sampler's",
    )
    args = parser.parse_args()
    if not have_wrk():
        return 2

    def variants_of(collector: DevTraceCollector) -> list[TracingVariant]:
        """The untraced server first (the report compares with it), then the traced ones."""
        untraced, default, everything = tracing_variants(collector, "api")
        nothing = TracingVariant(
            "traced 0%",
            {**default.env, "OTEL_SERVICE_NAME": "api-none", "OTEL_TRACES_SAMPLER_ARG": "0"},
        )
        variants = [untraced, nothing, default, everything]
        for text in args.variant:
            name, extra = parse_variant(text)
            variants.append(
                TracingVariant(name, {**default.env, "OTEL_SERVICE_NAME": f"api-{name}", **extra})
            )
        return variants

    with HotReads("trace_cpu", variants_of) as reads:
        targets = reads.targets
        for target in targets.values():  # Warm them up.
            measure(target, 2, 0)

        server: dict[str, list[float]] = {name: [] for name in targets}
        receiver: dict[str, list[float]] = {name: [] for name in targets}
        for round_number in range(1, args.rounds + 1):
            for name in rotated(list(targets), round_number):
                cpu, requests, received = measure(targets[name], args.duration, args.settle)
                server[name].append(cpu / requests * 1e6)
                receiver[name].append(received / requests * 1e6)
                print(
                    f"round {round_number} {name:<12} {requests / args.duration:7.0f} req/s "
                    f"{server[name][-1]:6.0f} µs CPU/req  "
                    f"receiver {receiver[name][-1]:5.1f} µs",
                    flush=True,
                )
        report(server, receiver, reads.variants[0].name)
        return 0


def report(server: dict[str, list[float]], receiver: dict[str, list[float]], untraced: str) -> None:
    """Medians over the rounds, and each server's cost above the untraced one."""
    plain = statistics.median(server[untraced])
    print("\nmedians of the rounds   CPU µs/req (rounds)   above untraced   receiver µs/req")
    for name, figures in server.items():
        median = statistics.median(figures)
        # Each round's difference to the untraced server's run of the same round.
        paired = statistics.median(a - b for a, b in zip(figures, server[untraced], strict=True))
        above = f"{paired:+6.0f} µs {paired / plain:+5.0%}" if name != "baseline" else ""
        print(
            f"{name:<22} {median:6.0f} ({min(figures):4.0f}-{max(figures):4.0f})   "
            f"{above:<16} {statistics.median(receiver[name]):6.1f}"
        )


if __name__ == "__main__":
    sys.exit(main())
