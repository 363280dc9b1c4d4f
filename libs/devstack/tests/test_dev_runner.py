"""scripts/dev.py end to end, with stand-in services (and once the real ingest and worker): it
starts everything, shows what happens in one log, and stops all of it."""

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
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from email.message import EmailMessage
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
from devstack_helpers import eventually, process_group_is_gone
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind
from prometheus_client.parser import text_string_to_metric_families

from scripts.seed import DEMO_DEVICE_KEY
from tripline_common.messaging.job_tracing import JOB_ENQUEUED, JOB_FUNCTION
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
print(
    name,
    "traces to",
    os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"),
    os.environ.get("OTEL_TRACES_SAMPLER"),
    os.environ.get("OTEL_BSP_SCHEDULE_DELAY"),
    flush=True,
)
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
    """Point the runner at closed ports, so that it starts embedded servers in `workspace`;
    no `OTEL_*` variable, so that it runs its trace collector."""
    closed = free_port()
    return {
        **{name: value for name, value in os.environ.items() if not name.startswith("OTEL_")},
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


# -- traces ------------------------------------------------------------------------------------


def trace_lines(run: DevRun) -> list[str]:
    return [line.split("│ ", 1)[1] for line in run.lines if line.startswith("trace   │ ")]


def line_of_trace(run: DevRun, trace_id: str) -> str:
    """The runner's line for `trace_id`, waited for."""
    run.wait_for(f"trace={trace_id}")
    [line] = [line for line in trace_lines(run) if line.endswith(f"trace={trace_id}")]
    return line


class Exporter:
    """Sends spans the way a process does: the SDK's OTLP/HTTP exporter, as each span ends."""

    def __init__(self, endpoint: str, service: str) -> None:
        self.provider = TracerProvider(resource=Resource({"service.name": service}))
        self.provider.add_span_processor(
            SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces"))
        )
        self.tracer = self.provider.get_tracer("test")

    def trace(self, root: str, kind: SpanKind, attributes: dict, *children: tuple) -> str:
        """A root span with `children` (name, kind, attributes) inside it; its trace ID."""
        with self.tracer.start_as_current_span(root, kind=kind, attributes=attributes) as span:
            for name, child_kind, child_attributes in children:
                with self.tracer.start_as_current_span(
                    name, kind=child_kind, attributes=child_attributes
                ):
                    pass
        return format(span.get_span_context().trace_id, "032x")


def cron_run(function: str) -> tuple[str, SpanKind, dict]:
    return f"process {function}", SpanKind.CONSUMER, {JOB_FUNCTION: function}


SELECT = ("SELECT tripline", SpanKind.CLIENT, {"db.system": "postgresql"})


def send(enqueued: bool) -> tuple[str, SpanKind, dict]:
    attributes = {JOB_FUNCTION: "process_batch", JOB_ENQUEUED: enqueued}
    return "send arq:queue", SpanKind.PRODUCER, attributes


def test_runner_prints_each_finished_trace_but_none_for_a_cron_run_that_handed_nothing_on(
    workspace: Path, runs: list[DevRun]
) -> None:
    services = [fake_service(workspace, "worker")]
    sampler = {"OTEL_TRACES_SAMPLER": "always_on"}  # the environment's own wins
    run = DevRun({**runner_env(workspace, services), **sampler})
    runs.append(run)
    run.wait_for(BANNER_END)
    # Every process is pointed at the runner's collector, keeping every trace, sending soon.
    told = re.search(r"worker traces to (http://127\.0\.0\.1:(\d+)) (\S+) (\S+)", run.output)
    assert told, run.output
    endpoint, port = told.group(1), int(told.group(2))
    assert (told.group(3), told.group(4)) == ("always_on", "250")
    assert f"traces    {endpoint}  (stand-in, every trace kept" in run.output

    worker, api = Exporter(endpoint, "worker"), Exporter(endpoint, "api")
    idle_sweep = worker.trace(*cron_run("requeue_stuck_batches"), SELECT)
    sweep_of_work_on_its_way = worker.trace(*cron_run("requeue_stuck_deliveries"), send(False))
    # Sent after those two, so by the time these lines are printed the runner has decided on
    # them (the collector takes traces in the order they went quiet).
    rescue = worker.trace(*cron_run("requeue_stuck_batches"), SELECT, send(True))
    alert = worker.trace(
        *cron_run("check_lost_signal"),
        ("publish tripline:alerts:{owner_id}", SpanKind.PRODUCER, {}),
    )
    rescued_job = worker.trace(*cron_run("process_batch"), SELECT)
    request = api.trace("POST /v1/telemetry", SpanKind.SERVER, {}, SELECT, send(True))

    assert re.fullmatch(
        rf"POST /v1/telemetry \(api\) \d+\.\d ms, 3 spans \[api\] trace={request}",
        line_of_trace(run, request),
    )
    assert line_of_trace(run, rescue).startswith("process requeue_stuck_batches (worker) ")
    assert line_of_trace(run, alert).startswith("process check_lost_signal (worker) ")
    assert line_of_trace(run, rescued_job).startswith("process process_batch (worker) ")
    assert not [line for line in trace_lines(run) if idle_sweep in line]
    assert not [line for line in trace_lines(run) if sweep_of_work_on_its_way in line]
    assert len(trace_lines(run)) == 4

    run.process.send_signal(signal.SIGTERM)
    assert run.finish() == 0, run.output
    assert port_is_free(port), "the collector stopped with the runner"


@pytest.mark.parametrize(
    ("setting", "banner"),
    [
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"},
            "http://127.0.0.1:4318/v1/traces",
        ),
        ({"OTEL_SDK_DISABLED": "true"}, "off  (OTEL_SDK_DISABLED)"),
    ],
    ids=["endpoint", "disabled"],
)
def test_runner_passes_a_configured_collector_or_tracing_off_through_and_runs_none(
    workspace: Path, runs: list[DevRun], setting: dict[str, str], banner: str
) -> None:
    services = [fake_service(workspace, "worker")]
    run = DevRun({**runner_env(workspace, services), **setting})
    runs.append(run)
    run.wait_for(BANNER_END)

    endpoint = setting.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    assert f"worker  │ worker traces to {endpoint} None None" in run.output
    assert f"traces    {banner}" in run.output
    assert "stand-in, every trace kept" not in run.output

    run.process.send_signal(signal.SIGTERM)
    assert run.finish() == 0, run.output


def json_lines_of(run: DevRun, source: str) -> list[dict[str, Any]]:
    prefix = f"{source:<7} │ "
    return [json.loads(line[len(prefix) :]) for line in run.lines if line.startswith(prefix + "{")]


def finished_runs(ops_port: int, function: str) -> float:
    text = httpx.get(f"http://127.0.0.1:{ops_port}/metrics", timeout=5).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "tripline_worker_jobs_finished_total"
        and sample.labels.get("function") == function
    )


@pytest.mark.slow
def test_an_upload_under_make_dev_is_one_trace_line_with_the_trace_id_of_its_log_lines(
    workspace: Path, runs: list[DevRun]
) -> None:
    """The real runner, the real ingest and worker: the line names the request's route and
    carries the trace ID its log lines carry; the sweeps, which find nothing, print none."""
    services = [
        {"name": name, "cmd": [f"tripline-{name}"], "port": free_port(), "ops_port": free_port()}
        for name in ("ingest", "worker")
    ]
    env = runner_env(workspace, services, migrate=["tripline-migrate", "upgrade", "head"])
    env |= {
        "TRIPLINE_DEV_SEED_CMD": json.dumps([sys.executable, "scripts/seed.py"]),
        "TRIPLINE_DEV_READY_TIMEOUT": "60",
        "LOG_FORMAT": "json",
        "SHUTDOWN_DRAIN_SECONDS": "0",
        # Every sweeper and the lost-signal check run every second.
        "SWEEP_INTERVAL_SECONDS": "1",
        "LOST_SIGNAL_CHECK_SECONDS": "1",
    }
    run = DevRun(env)
    runs.append(run)
    run.wait_for(BANNER_END, timeout=120)
    ingest, worker = services
    assert eventually(lambda: finished_runs(worker["ops_port"], "requeue_stuck_batches") >= 3, 30)

    request_id = f"dev-trace-{uuid.uuid4().hex}"
    event = {"recorded_at": datetime.now(UTC).isoformat(), "lat": 52.5, "lon": 13.4}
    response = httpx.post(
        f"http://127.0.0.1:{ingest['port']}/v1/telemetry",
        json={"events": [event]},
        headers={"X-Device-Key": DEMO_DEVICE_KEY, "X-Request-ID": request_id},
        timeout=10,
    )
    assert response.status_code == 202, response.text

    def logged(source: str, event: str) -> list[dict[str, Any]]:
        return [
            line
            for line in json_lines_of(run, source)
            if line.get("request_id") == request_id and line["event"] == event
        ]

    assert eventually(
        lambda: bool(logged("ingest", "request") and logged("worker", "batch_processed")), 30
    )
    [request_line], [processed_line] = (
        logged("ingest", "request"),
        logged("worker", "batch_processed"),
    )
    trace_id = request_line["trace_id"]
    assert processed_line["trace_id"] == trace_id, "the batch's run is in the request's trace"
    assert re.fullmatch(
        rf"POST /v1/telemetry \(ingest\) \d+\.\d ms, \d+ spans \[ingest(, worker)?\] "
        rf"trace={trace_id}",
        line_of_trace(run, trace_id),
    )
    # The sweeps before the upload went quiet before it did: decided, and not printed.
    assert [line for line in trace_lines(run) if not line.startswith("POST ")] == []

    run.process.send_signal(signal.SIGTERM)
    assert run.finish() == 0, run.output


# -- the dev database and the fleet ------------------------------------------------------------


def test_runner_creates_and_uses_the_database_named_in_database_url(
    workspace: Path, runs: list[DevRun]
) -> None:
    services = [fake_service(workspace, "worker")]
    env = runner_env(workspace, services)
    env["DATABASE_URL"] = env["DATABASE_URL"].replace("/tripline", "/tripline_elsewhere")
    run = DevRun(env)
    runs.append(run)
    run.wait_for(BANNER_END)

    postgres_port, _ = run.embedded_ports()
    assert "migrate │ migrated tripline_elsewhere" in run.output
    assert f"127.0.0.1:{postgres_port}/tripline_elsewhere  (embedded" in run.output
    run.process.send_signal(signal.SIGTERM)
    assert run.finish() == 0, run.output


def test_runner_refuses_a_test_suites_scratch_database(workspace: Path, runs: list[DevRun]) -> None:
    env = runner_env(workspace, [fake_service(workspace, "worker")])
    env["DATABASE_URL"] = env["DATABASE_URL"].replace("/tripline", "/tripline_test_1_gw0")
    run = DevRun(env)
    runs.append(run)

    assert run.finish() == 1, run.output
    assert "a test suite's scratch database" in run.output
    assert "migrate │" not in run.output


# A stand-in for tripline-fleet: records its pid, prints its arguments, and says so when it is
# told to stop.
FAKE_FLEET = """
import os, signal, sys, time
open(sys.argv[1], "w").write(str(os.getpid()))
print("fleet args", " ".join(sys.argv[2:]), flush=True)
print("fleet logs in as", os.environ["FLEET_LOGIN"], flush=True)

def stop(*_):
    print("fleet completing its trips", flush=True)
    sys.exit(0)

signal.signal(signal.SIGTERM, stop)
while True:
    time.sleep(0.1)
"""


@pytest.mark.parametrize("switch", [None, "0"], ids=["default-on", "switched-off"])
def test_runner_starts_the_fleet_against_its_api_and_ingest_unless_switched_off(
    workspace: Path, runs: list[DevRun], switch: str | None
) -> None:
    (workspace / "fake_fleet.py").write_text(FAKE_FLEET)
    pid_file = workspace / "fleet.pid"
    api, ingest = fake_service(workspace, "api"), fake_service(workspace, "ingest")
    env = runner_env(workspace, [api, ingest])
    env["TRIPLINE_DEV_FLEET_CMD"] = json.dumps(
        [sys.executable, str(workspace / "fake_fleet.py"), str(pid_file)]
    )
    if switch is not None:
        env["TRIPLINE_DEV_FLEET"] = switch
    run = DevRun(env)
    runs.append(run)
    run.wait_for(BANNER_END)
    stream = f'curl -N -H "Authorization: Bearer $TOKEN" http://127.0.0.1:{api["port"]}'
    assert f"{stream}/v1/alerts/stream" in run.output, "the banner shows how to watch alerts"
    assert f"http://127.0.0.1:{api['port']}/v1/auth/token -d username=demo@" in run.output

    if switch == "0":
        assert "fleet     off" in run.output
    else:
        run.wait_for("fleet   │ fleet args")
        [args] = [line for line in run.lines if line.startswith("fleet   │ fleet args")]
        assert f"--api http://127.0.0.1:{api['port']}" in args
        assert f"--ingest http://127.0.0.1:{ingest['port']}" in args
        assert "--devices 3 --trips 0" in args
        assert "--login" not in args, "no password on a command line"
        # Printed right after the args: waited for, not assumed read already.
        run.wait_for("fleet   │ fleet logs in as demo@tripline.dev:tripline-demo-password")
        webhook_log = workspace / "data" / "fleet-webhooks.jsonl"
        assert f"--webhook-log {webhook_log}" in args
        assert f"the fleet's receiver logs each delivery to {webhook_log}" in run.output
        assert "TRIPLINE_DEV_FLEET=0 turns it off" in run.output

    run.process.send_signal(signal.SIGTERM)
    assert run.finish() == 0, run.output
    if switch == "0":  # the fleet starts right after the banner, long before the run ends
        assert not pid_file.exists()
        assert "fleet   │" not in run.output
    else:
        assert "fleet   │ fleet completing its trips" in run.output
        assert eventually(partial(process_group_is_gone, pid_in(pid_file)), 5)


@pytest.mark.slow
def test_make_dev_fleet_drives_so_alerts_stream_and_webhooks_arrive_within_a_minute(
    workspace: Path, runs: list[DevRun]
) -> None:
    """The real runner, api, ingest, worker and fleet, as `make dev` starts them."""
    services = [
        {"name": name, "cmd": [f"tripline-{name}"], "port": free_port(), "ops_port": free_port()}
        for name in ("api", "ingest", "worker")
    ]
    env = runner_env(workspace, services, migrate=["tripline-migrate", "upgrade", "head"])
    env |= {
        "TRIPLINE_DEV_SEED_CMD": json.dumps([sys.executable, "scripts/seed.py"]),
        "TRIPLINE_DEV_READY_TIMEOUT": "60",
        "SHUTDOWN_DRAIN_SECONDS": "0",
        "OTEL_SDK_DISABLED": "true",
    }
    env.pop("TRIPLINE_DEV_FLEET", None)
    env.pop("TRIPLINE_DEV_FLEET_CMD", None)
    run = DevRun(env)
    runs.append(run)
    run.wait_for(BANNER_END, timeout=120)

    run.wait_for("fleet   │ alert on the stream: ", timeout=60)
    run.wait_for("fleet   │ webhook delivered to /hooks/fleet-1", timeout=30)
    delivered = (workspace / "data" / "fleet-webhooks.jsonl").read_text().splitlines()
    assert delivered
    assert all(json.loads(line)["signature_valid"] for line in delivered)

    run.process.send_signal(signal.SIGTERM)
    assert run.finish() == 0, run.output
    assert re.search(r"fleet   │ Fleet van \d · trip 1 completed", run.output)
