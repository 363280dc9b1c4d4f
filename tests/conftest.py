"""Cross-service fixtures: the four real processes, started from their console scripts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tripline_common.migrations.runner import upgrade
from tripline_devstack import free_port

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
# The scripts import each other by bare name (`python scripts/<name>.py`); the tests that drive
# them (the chart helpers, the previous release, the rehearsal) import them the same way.
sys.path.insert(0, str(ROOT / "scripts"))
# A deadline for a process that never gets ready, not a measurement: four processes importing
# at once on a loaded 2-core CI machine have needed over 30 s.
READY_DEADLINE_SECONDS = 60


@dataclass
class Process:
    """One running service process, its ports (the app's and the probes' and /metrics') and its
    log file."""

    name: str
    port: int
    ops_port: int
    popen: subprocess.Popen[bytes]
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ops_url(self) -> str:
        """Where /livez, /readyz, /startupz and /metrics answer (OPS_PORT)."""
        return f"http://127.0.0.1:{self.ops_port}"

    def log_lines(self) -> list[str]:
        return self.log_path.read_text(errors="replace").splitlines()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
        return self.popen.returncode


@dataclass
class ProcessRunner:
    """Starts service processes with a shared environment and stops them all at the end."""

    env: dict[str, str]
    log_dir: Path
    started: list[Process] = field(default_factory=list)
    ports: set[int] = field(default_factory=set)

    def _free_port(self) -> int:
        """A free port none of this runner's processes was given (the OS may hand out the
        same free port twice before a process listens on it)."""
        port = free_port()
        while port in self.ports:
            port = free_port()
        self.ports.add(port)
        return port

    def start(self, name: str, command: str, bin_dir: Path = BIN, **env: str) -> Process:
        """Start `command` from `bin_dir` (this virtualenv's, or the previous release's)."""
        port, ops_port = self._free_port(), self._free_port()
        log_path = self.log_dir / f"{name}.log"
        popen = subprocess.Popen(
            [str(bin_dir / command)],
            env={**self.env, "PORT": str(port), "OPS_PORT": str(ops_port), **env},
            stdout=log_path.open("wb"),
            stderr=subprocess.STDOUT,
            cwd=self.log_dir,
        )
        process = Process(name, port, ops_port, popen, log_path)
        self.started.append(process)
        return process

    def wait_ready(self, process: Process, timeout: float = READY_DEADLINE_SECONDS) -> None:
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            if process.popen.poll() is not None:
                raise AssertionError(
                    f"{process.name} exited with {process.popen.returncode}:\n"
                    + "\n".join(process.log_lines()[-30:])
                )
            try:
                last = httpx.get(f"{process.ops_url}/readyz", timeout=2)
                if last.status_code == 200:
                    return
            except httpx.HTTPError as exc:
                last = exc
            time.sleep(0.1)
        raise AssertionError(
            f"{process.name} not ready in {timeout}s ({last}):\n"
            + "\n".join(process.log_lines()[-30:])
        )

    def stop_all(self) -> None:
        for process in self.started:
            process.stop()


@pytest.fixture
def process_env(scratch_database: Callable[[], str], redis_url: str) -> dict[str, str]:
    """Environment for real processes: a migrated scratch database, this worker's Redis
    database emptied (no rate-limit window or queue of an earlier test leaks in), an isolated
    queue; no `OTEL_*` variable of the developer's own (tracing is off unless a test sets it)."""
    database_url = scratch_database()
    upgrade(database_url)
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DATABASE_", "REDIS_", "SENTRY_", "PYTEST_", "OTEL_"))
    }
    env.update(
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        ARQ_QUEUE_NAME=f"tripline:test:{uuid.uuid4().hex[:8]}",
        ENVIRONMENT="test",
        LOG_FORMAT="json",
        SHUTDOWN_DRAIN_SECONDS="0",
        PYTHONUNBUFFERED="1",
    )
    return env


@pytest.fixture
def processes(process_env: dict[str, str], tmp_path: Path) -> Iterator[ProcessRunner]:
    runner = ProcessRunner(process_env, tmp_path)
    try:
        yield runner
    finally:
        runner.stop_all()
