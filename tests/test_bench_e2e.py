"""`scripts/bench_e2e.py` in its short form: real ingest, worker and API, a webhook receiver and
a WebSocket subscriber, a tiny ramp and two short phases. No timing is asserted: at this size
the figures are noise, so only that the report gives each of them, and the exit status that
follows from its verdicts."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests.conftest import ROOT

SHORT = [
    "--devices", "2", "--batch-size", "10", "--start-rate", "2", "--max-rate", "5",
    "--step-seconds", "2", "--measure-seconds", "2", "--floor-seconds", "1",
]  # fmt: skip


@pytest.mark.slow
@pytest.mark.timeout(600)  # Three process starts and a ramp on a shared 2-core machine.
def test_the_pipeline_benchmark_reports_latency_both_ways_and_cost_beside_their_baselines(
    pg_server_url: str, redis_url: str
) -> None:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DATABASE_", "REDIS_", "PYTEST_", "OTEL_"))
    }
    env.update(DATABASE_URL=f"{pg_server_url}/postgres", REDIS_URL=redis_url)

    done = subprocess.run(
        [sys.executable, "scripts/bench_e2e.py", *SHORT],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=540,
    )

    out = done.stdout
    number = r"[\d.]+"
    assert re.search(rf"^maximum sustainable rate: {number} uploads/s", out, re.M), (
        out + done.stderr[-3000:]
    )
    for phase in ("half the maximum", "the maximum"):
        section = out.split(f"at {phase} (", 1)[1]
        for label in (
            "baseline: 202 accepted",
            "alert on the WebSocket",
            "alert at the webhook",
            "bare Redis publish->receive",
        ):
            assert re.search(rf"^  {re.escape(label)}\s+{number}\s+{number}\s", section, re.M), (
                f"{label} at {phase}:\n{out}"
            )
    for part in ("ingest", "worker", "postgres", "total"):
        assert re.search(rf"^  {part}\s+{number}", out, re.M), f"no CPU cost of {part}:\n{out}"
    assert re.search(
        rf"^floor, same run: COPY loop {number} \+ worker writes only {number} = {number}",
        out,
        re.M,
    ), out
    verdicts = re.findall(r"^(PASS|FAIL)  ", out, re.M)
    assert len(verdicts) == 3, out
    assert done.returncode == (1 if "FAIL" in verdicts else 0), out + done.stderr[-3000:]
