"""Property-based contract tests: schemathesis drives each app from its own OpenAPI document.

Each app runs as a real process on a seeded scratch database, and schemathesis runs every
check and every phase (examples, coverage, fuzzing, stateful). Every generated request must get
an answer its documentation promises: no server error, a documented status code, content type
and body; a request off the schema refused; a request the schema allows accepted, unless its
refusal is one the document states (`DOCUMENTED_REFUSALS`). docs/api-contract.md explains.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis import Redis

from tests.conftest import BIN, ROOT, ProcessRunner
from tripline_common.migrations.runner import upgrade
from tripline_devstack import drop_database, ensure_database

# 20 keeps `make test` no slower than the 25-example run was before the positive-data check and
# the declared links joined (docs/api-contract.md has the timings); `make contract` runs 200.
EXAMPLES = int(os.environ.get("CONTRACT_EXAMPLES", "20"))
# A deadline for a hung run, not a timing: the API's run takes about 35 s at 20 examples on an
# idle machine and went past pytest's default 120 s on a loaded one.
pytestmark = pytest.mark.timeout(30 * EXAMPLES)


@pytest.fixture(scope="module")
def system(
    pg_server_url: str, worker_redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, object]]:
    """api, ingest and admin as real processes on a scratch database with demo data."""
    name = f"tripline_contract_{uuid.uuid4().hex[:10]}"
    ensure_database(pg_server_url, name)
    database_url = f"{pg_server_url}/{name}"
    upgrade(database_url)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "REDIS_"))}
    env.update(
        DATABASE_URL=database_url,
        # This worker's database: a fixed one was another worker's in some runs, whose sign-up
        # limit the contract's sign-ups then spent (a flaky 429 seen in CI).
        REDIS_URL=worker_redis_url,
        ARQ_QUEUE_NAME=f"tripline:contract:{uuid.uuid4().hex[:8]}",
        ENVIRONMENT="test",
        LOG_FORMAT="json",
        LOGIN_RATE_LIMIT="100000",
        PYTHONUNBUFFERED="1",
    )
    with Redis.from_url(worker_redis_url) as redis:
        redis.flushdb()  # What this worker's earlier tests counted (sign-ups, logins) is theirs.
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


@dataclass(frozen=True)
class Refusal:
    """A schema-valid request that `method path` refuses with `status`, by a rule JSON Schema
    cannot state (stored data, a cross-field rule, a word list, the clock); `documented` is the
    word (an error code, a field) by which the operation's document states the rule."""

    method: str
    path: str
    status: int
    documented: str


# What the positive-data check accepts besides these: schemathesis's default answers to valid
# input (success, redirects, 401/403/404/409 for credentials or data that do not exist, 429).
ACCEPTED_ANYWAY = ["2xx", "3xx", "401", "403", "404", "409", "429", "5xx"]

TRIP_WRITES = [
    (method, f"/{version}/trips{item}")
    for version in ("v1", "v2")
    for method, item in (("POST", ""), ("PUT", "/{trip_id}"), ("PATCH", "/{trip_id}"))
]

DOCUMENTED_REFUSALS = {
    "api": [
        # Tokens are opaque: only the server knows which it issued.
        Refusal("GET", "/v1/accounts/verify-email", 400, "invalid_token"),
        Refusal("POST", "/v1/accounts/verify-email", 400, "invalid_token"),
        Refusal("POST", "/v1/accounts/password-reset", 400, "invalid_token"),
        # Passwords are checked against a word list and the account's address.
        Refusal("POST", "/v1/accounts/password-reset", 422, "weak_password"),
        Refusal("POST", "/v1/accounts/password", 422, "weak_password"),
        Refusal("POST", "/v1/users", 422, "weak_password"),
        # email-validator's special-use domains: a pattern would need a look-ahead, which the
        # Rust regex dialect lacks.
        Refusal("POST", "/v1/users", 422, "special-use names"),
        Refusal("POST", "/v1/accounts/password-reset/request", 422, "special-use names"),
        # Port range, host, credentials and fragment of a webhook URL.
        Refusal("POST", "/v1/webhooks", 422, "without credentials or fragment"),
        # A file's content is sniffed; the schema can only say "a file".
        Refusal("POST", "/v1/trips/{trip_id}/waypoints/import", 415, "does not match its type"),
        Refusal("POST", "/v2/trips/{trip_id}/waypoints/import", 415, "does not match its type"),
        # A device that is not yours, and arrival after start (PATCH: on the stored trip too).
        *(Refusal(method, path, 422, "unknown_device") for method, path in TRIP_WRITES),
        *(
            Refusal(method, path, 422, "later than `planned_start`")
            for method, path in TRIP_WRITES
            if method != "PATCH"
        ),
        *(
            Refusal(method, path, 422, "must still follow `planned_start`")
            for method, path in TRIP_WRITES
            if method == "PATCH"
        ),
    ],
    "ingest": [
        # The newest accepted time follows the server's clock.
        Refusal("POST", "/v1/telemetry", 422, "MAX_FUTURE_SKEW_SECONDS"),
    ],
    "admin": [],
}


def _refusals(app: str, spec: dict[str, Any]) -> list[Refusal]:
    """`DOCUMENTED_REFUSALS` of `app`, and those its lists document on their parameters: a
    cursor the server did not issue (400), and a time range whose end is not after its start
    (422)."""
    refusals = list(DOCUMENTED_REFUSALS[app])
    for path, item in spec["paths"].items():
        for parameter in item.get("get", {}).get("parameters", []):
            description = parameter.get("description", "")
            if parameter["name"] == "cursor":
                refusals.append(Refusal("GET", path, 400, "`invalid_cursor`"))
            elif "must be later than" in description:
                refusals.append(Refusal("GET", path, 422, "must be later than"))
    return refusals


def _operation_text(spec: dict[str, Any], method: str, path: str) -> str:
    """The operation's document with every schema it refers to, as one text to search."""
    seen: set[str] = set()
    texts = [json.dumps(spec["paths"][path][method.lower()])]
    for text in texts:
        for ref in re.findall(r'"#/components/schemas/([^"]+)"', text):
            if ref not in seen:
                seen.add(ref)
                texts.append(json.dumps(spec["components"]["schemas"][ref]))
    return "\n".join(texts)


def _assert_stated(spec: dict[str, Any], refusal: Refusal) -> None:
    operation = spec["paths"][refusal.path][refusal.method.lower()]
    assert str(refusal.status) in operation["responses"], f"{refusal}: status not documented"
    assert refusal.documented in _operation_text(spec, refusal.method, refusal.path), (
        f"{refusal}: the document does not state the rule"
    )


def _config_file(app: str, base_url: str, directory: Path) -> Path:
    """A schemathesis config letting each documented refusal through the positive-data check,
    on its own operation only; fails first if a refusal is not stated in the document."""
    spec = httpx.get(f"{base_url}/openapi.json", timeout=10).json()
    by_operation: dict[str, list[str]] = {}
    for refusal in _refusals(app, spec):
        _assert_stated(spec, refusal)
        name = f"{refusal.method} {refusal.path}"  # One operation (include-method and
        # include-path would be two filters, either of which matches).
        by_operation.setdefault(name, list(ACCEPTED_ANYWAY)).append(str(refusal.status))
    lines = []
    for name, statuses in by_operation.items():
        lines += [
            "[[operations]]",
            f"include-name = {json.dumps(name)}",
            "checks.positive_data_acceptance.expected-statuses = "
            f"{json.dumps(sorted(set(statuses)))}",
            "",
        ]
    config = directory / f"schemathesis-{app}.toml"
    config.write_text("\n".join(lines))
    return config


def run_schemathesis(
    app: str,
    base_url: str,
    *headers: str,
    directory: Path,
    exclude: tuple[str, ...] = (),
    only: str | None = None,
) -> None:
    """Run the schemathesis CLI against a live app, every check and every phase (examples,
    coverage, fuzzing, stateful); fail with its report if it finds anything."""
    command = [
        str(BIN / "schemathesis"),
        "--config-file",
        str(_config_file(app, base_url, directory)),
        "run",
        f"{base_url}/openapi.json",
        "--checks",
        "all",
        "--phases",
        "examples,coverage,fuzzing,stateful",
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
    # Bounded by pytest-timeout (`pytestmark`, which grows with the examples).
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-12000:] + done.stderr[-4000:]


@pytest.mark.slow
def test_api_honours_its_openapi_document(system, tmp_path: Path) -> None:
    api_url = system["apps"]["api"].url
    # Logging out, revoking a session or refreshing (which ends the access token it replaces,
    # and a reused refresh token ends the whole session) would end the shared session halfway
    # through the run: those routes get a run of their own, last.
    ending = ("/v1/auth/logout", "/v1/auth/refresh", "/v1/auth/sessions/{session_id}")
    # The SSE stream never ends by design: every request would run into the request timeout.
    # Its contract is covered by services/api/tests/test_alerts_stream.py.
    streaming = ("/v1/alerts/stream",)
    token = f"Authorization: Bearer {_token(api_url)}"
    run_schemathesis("api", api_url, token, directory=tmp_path, exclude=ending + streaming)
    token = f"Authorization: Bearer {_token(api_url)}"
    run_schemathesis(
        "api", api_url, token, directory=tmp_path, only="^/v1/auth/(logout|refresh|sessions)"
    )


@pytest.mark.slow
def test_ingest_honours_its_openapi_document(system, tmp_path: Path) -> None:
    from scripts.seed import DEMO_DEVICE_KEY

    ingest_url = system["apps"]["ingest"].url
    run_schemathesis("ingest", ingest_url, f"X-Device-Key: {DEMO_DEVICE_KEY}", directory=tmp_path)


@pytest.mark.slow
def test_admin_honours_its_openapi_document(system, tmp_path: Path) -> None:
    # Every admin route needs an operator (a token from the public API's login); without one,
    # schemathesis would only ever see 401s. Its `ignored_auth` check still sends requests
    # without the token and expects them refused. Revoking sessions could end the operator's
    # own session halfway through, so those routes come last, in a run of their own.
    admin_url, api_url = system["apps"]["admin"].url, system["apps"]["api"].url
    sessions = ("/v1/users/{user_id}/sessions", "/v1/users/{user_id}/sessions/{session_id}")
    token = f"Authorization: Bearer {_token(api_url, email='operator@tripline.dev')}"
    run_schemathesis("admin", admin_url, token, directory=tmp_path, exclude=sessions)
    token = f"Authorization: Bearer {_token(api_url, email='operator@tripline.dev')}"
    run_schemathesis("admin", admin_url, token, directory=tmp_path, only="/sessions")


@pytest.mark.parametrize("app", list(DOCUMENTED_REFUSALS))
def test_every_refusal_let_through_is_stated_in_the_published_document(app: str) -> None:
    spec = json.loads((ROOT / "docs" / "openapi" / f"{app}.json").read_text())
    for refusal in _refusals(app, spec):
        _assert_stated(spec, refusal)
