"""Every line every process writes is one JSON object of the documented shape.

The four services run for real with `LOG_FORMAT=json` (and Python's warnings switched on), get
traffic that makes all kinds of lines (requests answered 2xx, 401, 404 and 422, an upload the
worker processes, a job that fails with a traceback, uvicorn's and ARQ's own lines, shutdown),
and then each line of their stdout and stderr is checked against the JSON Schema shipped in
`tripline_common/platform/log_schema.json` (documented in docs/operations.md, "Logs").
"""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.resources import files
from typing import Any

import httpx
import jsonschema
import pytest

from tests.test_pipeline import fixes, window_aligned
from tests.test_processes import GRACEFUL_EXIT, seed, wait_for
from tests.test_sentry_processes import enqueue, login
from tripline_common.messaging import PROCESS_BATCH

SCHEMA = json.loads(files("tripline_common.platform").joinpath("log_schema.json").read_text())

# What Python itself prints when nobody handles it, in a process set up like every service.
CRASHING_PROCESS = """
import logging, threading, warnings
from tripline_common.platform.logging import configure_logging
from tripline_common.platform.settings import CommonSettings

configure_logging(CommonSettings(service_name="crashy", log_format="json"))
warnings.warn("a warning from somewhere")
thread = threading.Thread(target=lambda: 1 / 0, name="doomed")
thread.start()
thread.join()


class Unraisable:
    def __del__(self):
        raise RuntimeError("raised in __del__")


Unraisable()
try:
    {}["missing"]
except KeyError:
    logging.getLogger("somelibrary").exception("a library logs a failure")
raise SystemError("nobody catches this")
"""


def parsed(lines: list[str], name: str) -> list[dict[str, Any]]:
    """Every line as JSON, validated; the first offender fails the test with its text."""
    validator = jsonschema.Draft202012Validator(SCHEMA)
    records = []
    for number, line in enumerate(lines, 1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            raise AssertionError(f"{name} line {number} is not JSON: {line!r}") from None
        errors = [error.message for error in validator.iter_errors(record)]
        assert not errors, f"{name} line {number} breaks the schema: {errors}\n{line}"
        records.append(record)
    return records


def test_the_schema_is_valid_and_catches_a_bad_line() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    validator = jsonschema.Draft202012Validator(SCHEMA)
    good = {
        "timestamp": "2026-11-27T00:00:00.123456Z",
        "level": "info",
        "event": "request",
        "logger": "tripline.access",
        "service": "api",
        "environment": "prod",
        "version": "1.2.3",
        "request_id": "abc",
        "method": "GET",
        "path": "/v1/trips",
        "status": 200,
        "duration_ms": 1.5,
        "client": "10.0.0.1",
    }
    assert validator.is_valid(good)
    assert not validator.is_valid({**good, "timestamp": "2026-11-27 00:00:00"})  # not ISO/UTC
    assert not validator.is_valid({**good, "level": "INFO"})
    assert not validator.is_valid({k: v for k, v in good.items() if k != "status"})
    assert not validator.is_valid({k: v for k, v in good.items() if k != "request_id"})
    job_line = {**good, "event": "job_started", "logger": "tripline.queue", "job_try": 1}
    assert not validator.is_valid(job_line)  # A job line without its job and job ID.
    traced = {**good, "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "span_id": "00f067aa0ba902b7"}
    assert validator.is_valid(traced)
    assert not validator.is_valid({**traced, "trace_id": "4BF92F3577B34DA6A3CE929D0E0E4736"})
    assert not validator.is_valid({**traced, "span_id": "00f067aa"})
    assert not validator.is_valid({k: v for k, v in traced.items() if k != "span_id"})


def test_warnings_and_uncaught_exceptions_are_json_lines_too() -> None:
    result = subprocess.run(
        [sys.executable, "-c", CRASHING_PROCESS],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    lines = parsed((result.stdout + result.stderr).splitlines(), "crashing process")
    by_event = {line["event"]: line for line in lines}
    [warning] = [line for line in lines if line["logger"] == "py.warnings"]
    assert "a warning from somewhere" in warning["event"] and warning["level"] == "warning"
    assert by_event["uncaught_exception_in_thread"]["thread_name"] == "doomed"
    assert "ZeroDivisionError" in by_event["uncaught_exception_in_thread"]["exception"]
    assert "raised in __del__" in by_event["unraisable_exception"]["exception"]
    assert "KeyError" in by_event["a library logs a failure"]["exception"]
    crash = by_event["uncaught_exception"]
    assert crash["level"] == "critical" and "nobody catches this" in crash["exception"]


@pytest.mark.slow
async def test_every_line_of_every_process_matches_the_log_schema(processes, process_env) -> None:
    from scripts.seed import DEMO_DEVICE_KEY

    seed(process_env)
    # Warnings on, as a developer would run it: they must come out as JSON lines too.
    env = {"PYTHONWARNINGS": "default"}
    started = {
        name: processes.start(name, f"tripline-{name}", **env)
        for name in ("api", "admin", "ingest", "worker")
    }
    for process in started.values():
        processes.wait_ready(process)
    api, admin, ingest, worker = (started[n] for n in ("api", "admin", "ingest", "worker"))

    token, _ = login(api.url, "operator@tripline.dev")
    auth = {"Authorization": f"Bearer {token}", "X-Request-ID": "rid-logs"}
    async with httpx.AsyncClient(timeout=10) as client:
        for process in (api, admin, ingest):
            assert (await client.get(f"{process.url}/v1/nowhere")).status_code == 404
        assert (await client.get(f"{api.url}/v1/users/me", headers=auth)).status_code == 200
        assert (await client.get(f"{api.url}/v1/trips")).status_code == 401
        invalid = await client.post(f"{api.url}/v1/auth/token", data={"username": "x"})
        assert invalid.status_code == 422
        assert (await client.get(f"{admin.url}/v1/audit-log", headers=auth)).status_code == 200
        rejected = await client.post(
            f"{ingest.url}/v1/telemetry",
            json={"events": [{"lat": 500}]},
            headers={"X-Device-Key": DEMO_DEVICE_KEY},
        )
        assert rejected.status_code == 422
        upload = await client.post(
            f"{ingest.url}/v1/telemetry",
            json={"client_batch_id": "logs-1", "events": fixes(3, start=window_aligned())},
            headers={"X-Device-Key": DEMO_DEVICE_KEY, "X-Request-ID": "rid-upload"},
        )
        assert upload.status_code == 202, upload.text
    failing_id = await enqueue(
        process_env["REDIS_URL"],
        process_env["ARQ_QUEUE_NAME"],
        PROCESS_BATCH.name,
        "not-a-batch-id",
        request_id="rid-failing-job",
    )

    async def worker_done() -> bool:
        text = worker.log_path.read_text()
        return '"batch_processed"' in text and failing_id in text and '"job_failed"' in text

    await wait_for(worker_done, timeout=30)
    for process in started.values():
        assert process.stop() in GRACEFUL_EXIT, process.name

    records = {name: parsed(p.log_lines(), name) for name, p in started.items()}
    for name, lines in records.items():
        assert lines, name
        assert {line["service"] for line in lines} == {name}
        assert any(line["logger"] == "uvicorn.error" for line in lines), name
        assert any(line["event"] == "stopped" for line in lines), name

    def access(name: str, status: int) -> list[dict[str, Any]]:
        return [
            line
            for line in records[name]
            if line["logger"] == "tripline.access" and line["status"] == status
        ]

    assert access("api", 404) and access("api", 422) and access("api", 401)
    [me] = [line for line in access("api", 200) if line["request_id"] == "rid-logs"]
    assert me["path"] == "/v1/users/me" and me["user_id"]
    assert access("admin", 200) and access("admin", 404)
    assert access("ingest", 202) and access("ingest", 422) and access("ingest", 404)

    worker_lines = records["worker"]
    assert any(line["logger"].startswith("arq") for line in worker_lines)
    [failed] = [
        line
        for line in worker_lines
        if line["event"] == "job_failed" and line.get("job_id") == failing_id
    ]
    assert failed["request_id"] == "rid-failing-job"
    # ARQ's own report of the failure, with its traceback, is a JSON line like the rest.
    assert any(
        line["logger"] == "arq.worker" and "ValueError" in line.get("exception", "")
        for line in worker_lines
    )
    assert any(
        line["event"] == "batch_processed" and line["request_id"] == "rid-upload"
        for line in worker_lines
    )
