"""`scripts/bench_scale.py` end to end at a tiny scale: it loads, drives every operation through
the real processes and reports each with a verdict. No timing is asserted: at this scale the
ratios are noise, so only the report's shape and the exit status that follows from it are."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid

import pytest
from scale_data import Subjects
from scale_ops import operations

from tests.conftest import ROOT


@pytest.mark.slow
@pytest.mark.timeout(600)  # Six process starts and a load on a shared 2-core machine.
def test_the_scale_benchmark_reports_every_operation_and_fails_exactly_when_a_row_fails(
    pg_server_url: str, redis_url: str
) -> None:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DATABASE_", "REDIS_", "PYTEST_", "OTEL_"))
    }
    env.update(DATABASE_URL=f"{pg_server_url}/postgres", REDIS_URL=redis_url)

    done = subprocess.run(
        [sys.executable, "scripts/bench_scale.py", "--scale", "0.001", "--reps", "1"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=540,
    )

    out = done.stdout
    assert re.search(r"^loaded in [\d.]+ s$", out, re.MULTILINE), done.stderr[-3000:]
    named = Subjects("h", "l", "a", *(uuid.uuid4() for _ in range(5)))
    for op in operations(named):
        row = re.search(rf"^{re.escape(op.name)}[\s,].*\s(PASS|FAIL|info)\s", out, re.MULTILINE)
        assert row, f"no row for {op.name!r}:\n{out}"
    verdicts = re.findall(r"^(PASS|FAIL)  ", out, re.MULTILINE)
    assert "PASS" in verdicts
    assert done.returncode == (1 if "FAIL" in verdicts else 0), out + done.stderr[-3000:]
