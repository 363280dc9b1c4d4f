"""Fixtures of the deployment tests: the chart helpers from scripts/, and tools installed on first
use under .local/tools/: checkov (a virtualenv of its own) and the custom resources' published
schemas (npm packages, crd-schemas/)."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

CHECKOV_REQUIREMENTS = Path(__file__).with_name("checkov-requirements.txt")
CRD_SCHEMAS = Path(__file__).with_name("crd-schemas")
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


@pytest.fixture(scope="session")
def crd_validator() -> list[str]:
    """The command validating custom resources (JSON array on stdin) against the schemas the
    pinned @kubernetes-models packages publish: crd-schemas/ copied to .local/tools/ and
    installed with `npm ci` from its lock file when missing or changed."""
    tool = TOOLS / "crd-schemas"
    files = ["package.json", "package-lock.json", "validate.mjs"]
    wanted = "".join((CRD_SCHEMAS / name).read_text() for name in files)
    stamp = tool / ".installed"
    TOOLS.mkdir(parents=True, exist_ok=True)
    # xdist workers share the directory: one installs while the others wait for it.
    with (TOOLS / "crd-schemas.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (stamp.exists() and stamp.read_text() == wanted):
            shutil.rmtree(tool, ignore_errors=True)
            tool.mkdir(parents=True)
            for name in files:
                shutil.copy(CRD_SCHEMAS / name, tool / name)
            npm = shutil.which("npm")
            assert npm, "npm missing: the machine's Node.js provides it"
            subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                cwd=tool,
                check=True,
                timeout=600,
            )
            stamp.write_text(wanted)
    node = shutil.which("node")
    assert node, "node missing: the machine's Node.js provides it"
    return [node, str(tool / "validate.mjs")]
