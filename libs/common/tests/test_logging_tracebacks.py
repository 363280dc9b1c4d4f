"""Tracebacks in the logs show where an error happened, never the values the frames held."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SECRET = "tl_dev_9c1f4b7e0a2d4e55b8a1c3d6f7e8a9b0"

# A process set up like every service, in which a frame holding a secret fails and the failure
# reaches each way a traceback is written: our logger, a library's stdlib logger, and nobody.
FAILING_PROCESS = """
import logging
from tripline_common.platform.logging import configure_logging, get_logger
from tripline_common.platform.settings import CommonSettings
import sys

configure_logging(CommonSettings(service_name="leaky", log_format=sys.argv[1]))


def authenticate_device():
    device_key = sys.argv[2]
    database_url = f"postgresql://tripline:{device_key}@db/tripline"
    raise ValueError("device unknown")


for log in (get_logger("tripline.test"), logging.getLogger("somelibrary")):
    try:
        authenticate_device()
    except ValueError:
        log.exception("authentication_failed")
authenticate_device()
"""


@pytest.mark.parametrize("log_format", ["console", "json"])
def test_a_logged_traceback_names_the_failing_frame_but_not_its_secret_locals(
    log_format: str, tmp_path: Path
) -> None:
    # A real file, so that the tracebacks quote its source lines as they would a service's.
    script = tmp_path / "failing.py"
    script.write_text(FAILING_PROCESS)
    result = subprocess.run(
        [sys.executable, str(script), log_format, SECRET],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    output = result.stdout + result.stderr
    # All three tracebacks were written (two logged, one uncaught), each naming the frame.
    assert output.count("authenticate_device") >= 3, output
    assert output.count("device unknown") >= 3, output
    assert output.count("raise ValueError(") >= 3, output
    assert SECRET not in output
