"""Property-based contract tests: schemathesis drives each app from its own OpenAPI document.

Each app runs as a real process on a migrated scratch database. Every generated request,
valid or not, must get an answer that its documentation promises: no server error, a
documented status code, a documented content type and a body matching the documented schema.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import BIN, ROOT, ProcessRunner
from tripline_common.migrations.runner import upgrade
from tripline_devstack import drop_database, ensure_database

EXAMPLES = int(os.environ.get("CONTRACT_EXAMPLES", "25"))


@pytest.fixture(scope="module")
def system(
    pg_server_url: str, redis_server_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, object]]:
    """api, ingest and admin as real processes on a scratch database with demo data."""
    name = f"tripline_contract_{uuid.uuid4().hex[:10]}"
    ensure_database(pg_server_url, name)
    database_url = f"{pg_server_url}/{name}"
    upgrade(database_url)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "REDIS_"))}
    env.update(
        DATABASE_URL=database_url,
        REDIS_URL=f"{redis_server_url}/15",
        ARQ_QUEUE_NAME=f"tripline:contract:{uuid.uuid4().hex[:8]}",
        ENVIRONMENT="test",
        LOG_FORMAT="json",
        LOGIN_RATE_LIMIT="100000",
        PYTHONUNBUFFERED="1",
    )
    subprocess.run([sys.executable, str(ROOT / "scripts" / "seed.py")], env=env, check=True)
    runner = ProcessRunner(env, Path(tmp_path_factory.mktemp("contract")))
    try:
        apps = {name: runner.start(name, f"tripline-{name}") for name in ("api", "ingest", "admin")}
        for process in apps.values():
            runner.wait_ready(process)
        yield {"apps": apps}
    finally:
        runner.stop_all()
        drop_database(pg_server_url, name)


def _token(api_url: str, email: str = "demo@tripline.dev") -> str:
    from scripts.seed import DEMO_PASSWORD

    response = httpx.post(
        f"{api_url}/v1/auth/token",
        data={"username": email, "password": DEMO_PASSWORD},
        timeout=10,
    )
    response.raise_for_status()
    return str(response.json()["access_token"])


def run_schemathesis(
    base_url: str, *headers: str, exclude: tuple[str, ...] = (), only: str | None = None
) -> None:
    """Run the schemathesis CLI against a live app; fail with its report if it finds anything."""
    command = [
        str(BIN / "schemathesis"),
        "run",
        f"{base_url}/openapi.json",
        "--checks",
        "all",
        # Schema-valid but refused is expected where business rules go beyond what OpenAPI can
        # say (an event time in the future, an email on a reserved domain): not checked.
        "--exclude-checks",
        "positive_data_acceptance",
        "--max-examples",
        str(EXAMPLES),
        "--seed",
        "20261126",  # Same cases every run: a failure here reproduces.
        "--request-timeout",
        "10",
        "--no-color",
        # Trips' input rules (coordinates, time windows, waypoint bounds) make most random bodies
        # invalid; that is the generator's problem, not the API's.
        "--suppress-health-check",
        "filter_too_much",
    ]
    for header in headers:
        command += ["--header", header]
    for path in exclude:
        command += ["--exclude-path", path]
    if only is not None:
        command += ["--include-path-regex", only]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-12000:] + done.stderr[-4000:]


@pytest.mark.slow
def test_api_honours_its_openapi_document(system) -> None:
    api_url = system["apps"]["api"].url
    # Logging out or revoking a session would end the shared session halfway through the run:
    # those routes get a run of their own, last.
    ending = ("/v1/auth/logout", "/v1/auth/sessions/{session_id}")
    # The SSE stream never ends by design: every request would run into the request timeout.
    # Its contract is covered by services/api/tests/test_alerts_stream.py.
    streaming = ("/v1/alerts/stream",)
    run_schemathesis(
        api_url, f"Authorization: Bearer {_token(api_url)}", exclude=ending + streaming
    )
    run_schemathesis(
        api_url, f"Authorization: Bearer {_token(api_url)}", only="^/v1/auth/(logout|sessions)"
    )


@pytest.mark.slow
def test_ingest_honours_its_openapi_document(system) -> None:
    from scripts.seed import DEMO_DEVICE_KEY

    run_schemathesis(system["apps"]["ingest"].url, f"X-Device-Key: {DEMO_DEVICE_KEY}")


@pytest.mark.slow
def test_admin_honours_its_openapi_document(system) -> None:
    # Every admin route needs an operator (a token from the public API's login); without one,
    # schemathesis would only ever see 401s. Its `ignored_auth` check still sends requests
    # without the token and expects them refused. Revoking sessions could end the operator's
    # own session halfway through, so those routes come last, in a run of their own.
    admin_url, api_url = system["apps"]["admin"].url, system["apps"]["api"].url
    sessions = ("/v1/users/{user_id}/sessions", "/v1/users/{user_id}/sessions/{session_id}")
    token = _token(api_url, email="operator@tripline.dev")
    run_schemathesis(admin_url, f"Authorization: Bearer {token}", exclude=sessions)
    token = _token(api_url, email="operator@tripline.dev")
    run_schemathesis(admin_url, f"Authorization: Bearer {token}", only="/sessions")
