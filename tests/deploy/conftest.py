"""Fixtures of the deployment tests: the chart helpers from scripts/, and tools that live in a
virtualenv of their own (checkov), installed on first use under .local/tools/."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

CHECKOV_REQUIREMENTS = Path(__file__).with_name("checkov-requirements.txt")
TOOLS = ROOT / ".local" / "tools"


def _uv() -> list[str]:
    found = shutil.which("uv")
    return [found] if found else [sys.executable, "-m", "uv"]


@pytest.fixture(scope="session")
def checkov() -> Path:
    """The checkov executable, from .local/tools/checkov (created with uv when missing or when
    checkov-requirements.txt changed). Heavy and with pins of its own, so not in the project env."""
    venv = TOOLS / "checkov"
    stamp = venv / "requirements.txt"
    wanted = CHECKOV_REQUIREMENTS.read_text()
    executable = venv / "bin" / "checkov"
    if not (executable.exists() and stamp.exists() and stamp.read_text() == wanted):
        shutil.rmtree(venv, ignore_errors=True)
        env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
        subprocess.run(
            [*_uv(), "venv", "--quiet", "--python", sys.executable, str(venv)], check=True, env=env
        )
        subprocess.run(
            [
                *_uv(),
                "pip",
                "install",
                "--quiet",
                "--python",
                str(venv / "bin" / "python"),
                "-r",
                str(CHECKOV_REQUIREMENTS),
            ],
            check=True,
            env=env,
            timeout=600,
        )
        stamp.write_text(wanted)
    return executable
