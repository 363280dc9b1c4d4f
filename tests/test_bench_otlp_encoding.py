"""`scripts/bench_otlp_encoding.py` in its short form: a round over a few spans of each shape.
No timing is asserted: at this size the figures are noise, so only that the script checked both
encoders gave equal requests and reports each figure beside the SDK's with their ratio."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.conftest import ROOT


def test_the_encoding_benchmark_reports_ours_beside_the_sdks_encoder_for_both_shapes() -> None:
    done = subprocess.run(
        [sys.executable, "scripts/bench_otlp_encoding.py", "--rounds", "1", "--spans", "40"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    number = r"[\d.]+"
    for shape in ("hot read", "upload"):
        assert re.search(
            rf"^{shape}\s+SDK encode_spans\s+{number} µs/span\s+ours\s+{number} µs/span\s+"
            rf"ratio {number}x",
            done.stdout,
            re.M,
        ), done.stdout
