"""scripts/dev.py end to end, with stand-in services: it starts everything, and stops all of it."""

from __future__ import annotations

import json
import os
import re
import signal
import smtplib
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from email.message import EmailMessage
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from devstack_helpers import eventually, process_group_is_gone

from tripline_devstack import free_port, port_is_free, postgres_answers, redis_answers

DEV_SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "dev.py"

# A stand-in for api/admin/ingest/worker: answers GET /readyz with 200 on $OPS_PORT, records its
# pid, exits cleanly on SIGTERM, and, given a delay, crashes (exit code 3) that long after it is
# ready.
FAKE_SERVICE = """
import http.server, os, signal, sys, threading
name, pid_file = sys.argv[1], sys.argv[2]
crash_after = float(sys.argv[3]) if len(sys.argv) > 3 else None
open(pid_file, "w").write(str(os.getpid()))

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        ready = self.path == "/readyz"
        self.send_response(200 if ready else 404)
        self.end_headers()
        if ready and crash_after is not None:
            threading.Timer(crash_after, os._exit, [3]).start()

    def log_message(self, *args):
        pass

signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
print(name, "listening on", os.environ["PORT"], "in", os.environ["ENVIRONMENT"], flush=True)
print(name, "mails through", os.environ.get("SMTP_HOST"), os.environ.get("SMTP_PORT"), flush=True)
print(name, "links to", os.environ.get("PUBLIC_BASE_URL"), flush=True)
print(name, "allows origins", os.environ.get("CORS_ORIGINS"), flush=True)
http.server.HTTPServer(("127.0.0.1", int(os.environ["OPS_PORT"])), Handler).serve_forever()
"""

# Stand-in migrations: prove the database the runner prepared exists and is reachable.
FAKE_MIGRATE = """
import asyncio, os, asyncpg
async def main():
    connection = await asyncpg.connect(os.environ["DATABASE_URL"].replace("+asyncpg", ""))
    print("migrated", await connection.fetchval("SELECT current_database()"))
    await connection.close()
asyncio.run(main())
"""

BANNER_END = "Ctrl-C to stop"


class DevRun:
    """scripts/dev.py running in the background, its output collected line by line."""

    def __init__(self, env: dict[str, str]) -> None:
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            [sys.executable, str(DEV_SCRIPT)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # signals reach it only when the test sends them
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, text: str, timeout: float = 60) -> None:
        if not eventually(lambda: text in self.output or self.process.poll() is not None, timeout):
            pytest.fail(f"no {text!r} within {timeout}s:\n{self.output}")
        if text not in self.output:
            pytest.fail(f"the runner exited before printing {text!r}:\n{self.output}")

    def finish(self, timeout: float = 40) -> int:
        code = self.process.wait(timeout)
        self._reader.join(timeout=5)
        return code

    def embedded_ports(self) -> tuple[int, int]:
        """The ports of the embedded Postgres and Redis, from the runner's log."""
        postgres = re.search(r"postgres: embedded server at \S+@127\.0\.0\.1:(\d+)/", self.output)
        redis = re.search(r"redis: embedded server at redis://127\.0\.0\.1:(\d+)/", self.output)
        assert postgres, self.output
        assert redis, self.output
        return int(postgres.group(1)), int(redis.group(1))

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


@pytest.fixture
def workspace(data_dir: Path) -> Path:
    """Where the stand-in programs and their pid files live (the servers' data is in data/)."""
    (data_dir / "fake_service.py").write_text(FAKE_SERVICE)
    (data_dir / "fake_migrate.py").write_text(FAKE_MIGRATE)
    return data_dir


def runner_env(
    workspace: Path, services: list[dict[str, Any]], migrate: list[str] | None = None
) -> dict[str, str]:
    """Point the runner at closed ports, so that it starts embedded servers in `workspace`."""
    closed = free_port()
    return {
        **os.environ,
        "DATABASE_URL": f"postgresql+asyncpg://postgres@127.0.0.1:{closed}/tripline",
        "REDIS_URL": f"redis://127.0.0.1:{closed}/0",
        "TRIPLINE_DEV_DATA_DIR": str(workspace / "data"),
        "TRIPLINE_DEV_SERVICES": json.dumps(services),
        "TRIPLINE_DEV_MIGRATE_CMD": json.dumps(
            migrate or [sys.executable, str(workspace / "fake_migrate.py")]
        ),
        "TRIPLINE_DEV_SEED_CMD": json.dumps([sys.executable, "-c", "print('seeded')"]),
        "TRIPLINE_DEV_READY_TIMEOUT": "30",
        "DEV_SMTP_PORT": str(free_port()),
        "NO_COLOR": "1",
    }


def fake_service(workspace: Path, name: str, *extra: str) -> dict[str, Any]:
    """An entry of TRIPLINE_DEV_SERVICES running FAKE_SERVICE on a free port."""
    pid_file = workspace / f"{name}.pid"
    command = [sys.executable, str(workspace / "fake_service.py"), name, str(pid_file), *extra]
    return {"name": name, "cmd": command, "port": free_port(), "ops_port": free_port()}


def pid_in(path: Path) -> int:
    return int(path.read_text().split()[0])


@pytest.fixture
def runs() -> Iterator[list[DevRun]]:
    """Runs started by a test; killed at the end if a failed assertion left one running."""
    started: list[DevRun] = []
    yield started
    for run in started:
        run.kill()


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_runner_starts_everything_and_a_stop_signal_stops_all_of_it(
    workspace: Path, runs: list[DevRun], stop_signal: signal.Signals
) -> None:
    services = [
        fake_service(workspace, "api"),
        fake_service(workspace, "admin"),
        fake_service(workspace, "worker"),
    ]
    run = DevRun(runner_env(workspace, services))
    runs.append(run)

    run.wait_for(BANNER_END)

    postgres_port, redis_port = run.embedded_ports()
    postmaster = pid_in(workspace / "data" / "postgres" / "pgdata" / "postmaster.pid")
    redis_server = pid_in(workspace / "data" / "redis" / "data" / "redis.pid")
    service_pids = [pid_in(workspace / f"{service['name']}.pid") for service in services]
    assert "migrate │ migrated tripline" in run.output, "the dev database exists before migrations"
    assert "seed    │ seeded" in run.output
    assert f"api     │ api listening on {services[0]['port']} in dev" in run.output
    assert f"http://127.0.0.1:{services[0]['port']}/docs" in run.output
    assert f"http://127.0.0.1:{services[2]['ops_port']}/metrics" in run.output
    # The admin docs' Authorize button logs in at the API, which allows the admin's origin.
    api, admin = (
        f"http://127.0.0.1:{services[0]['port']}",
        f"http://127.0.0.1:{services[1]['port']}",
    )
    assert f"admin   │ admin links to {api}" in run.output
    assert f"api     │ api allows origins {admin}" in run.output
    assert "worker  │ worker allows origins None" in run.output
    assert f"127.0.0.1:{postgres_port}/tripline  (embedded" in run.output

    run.process.send_signal(stop_signal)

    assert run.finish() == 0, run.output
    for pid in [postmaster, redis_server, *service_pids]:
        assert eventually(partial(process_group_is_gone, pid), 5), f"{pid} left running"
    for service in services:
        assert port_is_free(service["port"])
    assert not postgres_answers(f"postgresql://postgres@127.0.0.1:{postgres_port}/postgres", 1)
    assert not redis_answers(f"redis://127.0.0.1:{redis_port}/0", 1)


def test_runner_runs_a_mail_stand_in_and_prints_each_messages_link(
    workspace: Path, runs: list[DevRun]
) -> None:
    services = [fake_service(workspace, "worker")]
    env = runner_env(workspace, services)
    env.pop("SMTP_HOST", None)
    run = DevRun(env)
    runs.append(run)
    run.wait_for(BANNER_END)
    port = int(env["DEV_SMTP_PORT"])
    assert f"mail      smtp://127.0.0.1:{port}" in run.output
    assert f"worker  │ worker mails through 127.0.0.1 {port}" in run.output

    message = EmailMessage()
    message["From"], message["To"] = "no-reply@tripline.dev", "ada@example.com"
    message["Subject"] = "Confirm your email address for Tripline"
    message.set_content("Confirm: http://127.0.0.1:8000/v1/accounts/verify-email?token=abc\n")
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
        smtp.send_message(message)
    run.wait_for("link: http://127.0.0.1:8000/v1/accounts/verify-email?token=abc")
    assert "mail    │ to ada@example.com: Confirm your email address for Tripline" in run.output

    run.process.send_signal(signal.SIGTERM)
    assert run.finish() == 0, run.output
    assert port_is_free(port)


def test_runner_stops_everything_and_fails_when_a_service_dies(
    workspace: Path, runs: list[DevRun]
) -> None:
    services = [fake_service(workspace, "api"), fake_service(workspace, "ingest", "1.5")]
    run = DevRun(runner_env(workspace, services))
    runs.append(run)

    run.wait_for(BANNER_END)
    postgres_port, redis_port = run.embedded_ports()
    api = pid_in(workspace / "api.pid")

    assert run.finish() == 1, run.output
    assert "ingest exited unexpectedly with code 3" in run.output
    assert eventually(lambda: process_group_is_gone(api), 5)
    assert not postgres_answers(f"postgresql://postgres@127.0.0.1:{postgres_port}/postgres", 1)
    assert not redis_answers(f"redis://127.0.0.1:{redis_port}/0", 1)


def test_runner_stops_and_fails_when_migrations_fail(workspace: Path, runs: list[DevRun]) -> None:
    services = [fake_service(workspace, "api")]
    failing_migration = [sys.executable, "-c", "raise SystemExit('no such revision')"]
    started = time.monotonic()
    run = DevRun(runner_env(workspace, services, migrate=failing_migration))
    runs.append(run)

    assert run.finish() == 1, run.output
    assert "migrate │ no such revision" in run.output
    assert "migrate failed (exit code 1): stopping" in run.output
    assert BANNER_END not in run.output
    assert not (workspace / "api.pid").exists(), "no service starts after a failed migration"
    postgres_port, redis_port = run.embedded_ports()
    assert not postgres_answers(f"postgresql://postgres@127.0.0.1:{postgres_port}/postgres", 1)
    assert not redis_answers(f"redis://127.0.0.1:{redis_port}/0", 1)
    assert time.monotonic() - started < 30
