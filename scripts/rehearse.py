"""Rehearse a rolling upgrade and its rollback under load, with real processes (`make rehearse`).

The previous release (scripts/previous_release.py) runs two replicas of api, ingest and admin
and two workers on a fresh database; steady traffic flows (reads, writes, uploads, WebSocket
subscribers, an operator); the expand migration runs, every Deployment rolls to this checkout's
code one replica at a time with the chart's drain, the contract migration runs, and then it all
rolls back. The report (printed, and written to test-artifacts/rehearsal.md) gives each step's
requests, failures and slowest request, and every problem found; the exit status is 1 if any.

    uv run python scripts/rehearse.py                 # the full form: 60 s holds
    uv run python scripts/rehearse.py --hold 10       # shorter
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

from dev import with_database
from previous_release import previous_release
from rehearsal.plan import Plan, rehearse
from rehearsal.replicas import Build

from tripline_devstack import drop_database, ensure_database, ensure_stack

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"


def builds() -> tuple[Build, Build]:
    """The previous release's build (made once per commit under .local/) and this checkout's."""
    release = previous_release(ROOT)
    previous = Build("prev", release.commit[:12], release.root, release.bin, release.env())
    return previous, this_checkout()


def this_checkout() -> Build:
    """This checkout's build: its commit, and its console scripts in the running venv."""
    head_commit = subprocess.run(
        ["git", "rev-parse", "--short=12", "HEAD"],  # noqa: S607 - git from PATH
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    dirty = subprocess.run(
        ["git", "status", "--porcelain"],  # noqa: S607
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    return Build(
        "head",
        head_commit + (" with uncommitted changes" if dirty else ""),
        ROOT,
        Path(sys.executable).parent,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hold", type=float, default=60.0, help="seconds of each steady step")
    parser.add_argument("--devices", type=int, default=4, help="devices uploading")
    parser.add_argument("--subscribers", type=int, default=3, help="WebSocket subscribers")
    args = parser.parse_args(argv)
    plan = Plan(hold_seconds=args.hold, devices=args.devices, subscribers=args.subscribers)

    previous, head = builds()
    stack = ensure_stack(
        os.environ.get("DATABASE_URL"), os.environ.get("REDIS_URL"), ROOT / ".local" / "data"
    )
    database = f"tripline_rehearsal_{uuid.uuid4().hex[:8]}"
    try:
        ensure_database(stack.postgres_url, database)
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("DATABASE_", "REDIS_", "SENTRY_", "OTEL_", "VIRTUAL_ENV"))
        }
        env.update(
            DATABASE_URL=with_database(stack.postgres_url, database),
            REDIS_URL=stack.redis_url,
            ARQ_QUEUE_NAME=f"tripline:rehearsal:{uuid.uuid4().hex[:8]}",
            ENVIRONMENT="dev",
            LOG_FORMAT="json",
            PYTHONUNBUFFERED="1",
        )
        with tempfile.TemporaryDirectory(prefix="tripline-rehearsal-") as logs:
            report = asyncio.run(rehearse(plan, previous, head, env, Path(logs)))
    finally:
        drop_database(stack.postgres_url, database)
        stack.stop()
    text = report.markdown()
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "rehearsal.md").write_text(text)
    print(text)
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main())
