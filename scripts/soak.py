"""Run the chaos soak (`make soak`): the fleet against two replicas each of the API, ingest and
the worker, with faults injected for real, then the checker's verdict and the report
(test-artifacts/soak.md, soak.png, soak-record.json). The exit status is 1 if it found a problem.

    uv run python scripts/soak.py                         # 10 minutes, a fault every 30 s
    uv run python scripts/soak.py --minutes 60 --devices 8
    uv run python scripts/soak.py --short                 # the 90-second form of `make test`
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
from pathlib import Path

from chaos.checker import Bounds, verdict
from chaos.record import SoakRecord
from chaos.report import markdown, plot
from chaos.run import SoakPlan, soak
from chaos.schedule import SHORT, plan
from rehearse import ARTIFACTS, this_checkout

# Traffic after the last fault's start: the last fault recovers before the fleet stops.
COOLDOWN_SECONDS = 30.0


def short_plan() -> SoakPlan:
    """The 90-second form (`make test`): the fixed short fault plan."""
    return SoakPlan(faults=SHORT, seconds=90.0)


def write_report(name: str, record: SoakRecord) -> list[str]:
    """Judge a record, write its report under test-artifacts/ as `name`.md, `name`.png and
    `name`-record.json; the problems found."""
    bounds = Bounds()
    problems = verdict(record, bounds)
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / f"{name}-record.json").write_text(json.dumps(record.as_json()))
    plot(record, ARTIFACTS / f"{name}.png")
    (ARTIFACTS / f"{name}.md").write_text(markdown(record, problems, bounds, f"{name}.png"))
    return problems


def environment() -> dict[str, str]:
    """The apps' environment: ours without what would point them elsewhere."""
    return {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DATABASE_", "REDIS_", "SENTRY_", "OTEL_", "PYTEST_", "VIRTUAL_ENV"))
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="traffic time (default 10)")
    parser.add_argument("--interval", type=float, default=30.0, help="seconds between faults")
    parser.add_argument("--devices", type=int, default=6, help="simulated devices (the rate)")
    parser.add_argument("--seed", type=int, default=1, help="routes and fault order")
    parser.add_argument("--short", action="store_true", help="the 90-second form")
    parser.add_argument(
        "--keep", type=Path, help="work here and keep it: every process's log, the servers' data"
    )
    args = parser.parse_args(argv)
    if args.short:
        chosen = short_plan()
    else:
        seconds = args.minutes * 60
        warmup = SoakPlan(faults=()).warmup_seconds
        faults = plan(seconds - warmup - COOLDOWN_SECONDS, args.interval, args.seed)
        chosen = SoakPlan(faults=tuple(faults), seconds=seconds, devices=args.devices)
    name = "soak-short" if args.short else "soak"
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        record = asyncio.run(soak(chosen, this_checkout(), environment(), args.keep.resolve()))
    else:
        with tempfile.TemporaryDirectory(prefix="tripline-soak-") as work:
            record = asyncio.run(soak(chosen, this_checkout(), environment(), Path(work)))
    problems = write_report(name, record)
    print((ARTIFACTS / f"{name}.md").read_text())
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
