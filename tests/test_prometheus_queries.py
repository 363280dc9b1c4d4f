"""Every query of the Grafana dashboard and every alerting and recording rule, run by a real
Prometheus (Debian's `prometheus`) scraping the four real processes after traffic that makes
each series exist: a user, a trip and a device made through the API, telemetry uploads (one
refused), the worker raising an alert and delivering it to a webhook receiver, and a WebSocket
and an SSE stream open.

A panel query that errors or returns no series is a blank panel in production; a rule that
errors, or a recording rule or alert input with no series, is an alert that can never fire.
Every failure is listed, not just the first.

The processes trace every request and job (`always_on`) to a real OTLP/HTTP receiver
(`DevTraceCollector`), and Prometheus keeps exemplars (`--enable-feature=exemplar-storage`): a
panel target that shows exemplars must get some from `/api/v1/query_exemplars`, as Grafana asks
for them, each the ID of a trace the receiver got.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from websockets.asyncio.client import connect

from tests.conftest import ROOT, Process
from tests.test_pipeline import FAST_WORKER, fixes, start_trip_through_api, wait_for
from tripline_devstack import DevMailServer, DevTraceCollector, free_port

DASHBOARD = ROOT / "deploy" / "grafana" / "tripline-overview.json"
RULES = ROOT / "deploy" / "prometheus" / "tripline-rules.yml"
APPS = ("api", "ingest", "admin", "worker")
NAMESPACE = "tripline"  # the target label the Prometheus Operator adds; the dashboard filters on it
WAIT = 30.0
STARTUP = 120.0
# Grafana's built-in interval variables, as Grafana would fill them with a 1s scrape interval.
GRAFANA_INTERVALS = {"__rate_interval": "1m", "__interval": "1m", "__range": "1m"}
# Every request and job traced, the spans sent within a fifth of a second.
TRACED = {"OTEL_TRACES_SAMPLER": "always_on", "OTEL_BSP_SCHEDULE_DELAY": "200"}


def prometheus_binary() -> str:
    found = shutil.which("prometheus") or "/usr/bin/prometheus"
    assert Path(found).exists(), "prometheus missing: `apt-get install -y prometheus` (.ci/run)"
    return found


def timestamp(rfc3339: str) -> float:
    """Seconds since the epoch of a time as Prometheus's API writes it (nanoseconds, `Z`)."""
    return datetime.fromisoformat(rfc3339).timestamp()


@dataclass
class Prometheus:
    """A real Prometheus on 127.0.0.1 and a client for its HTTP API."""

    url: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    def log_tail(self) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-20:])

    async def get(self, client: httpx.AsyncClient, path: str, **params: Any) -> dict[str, Any]:
        if self.popen.poll() is not None:
            raise AssertionError(f"prometheus exited:\n{self.log_tail()}")
        response = await client.get(f"{self.url}{path}", params=params)
        # Errors in a query come back as 400/422 with the same JSON envelope.
        body: dict[str, Any] = response.json()
        return body

    async def query(self, client: httpx.AsyncClient, promql: str) -> tuple[int, str | None]:
        """(number of series, error) of an instant query at the current time."""
        body = await self.get(client, "/api/v1/query", query=promql)
        if body["status"] != "success":
            return 0, f"{body.get('errorType')}: {body.get('error')}"
        return len(body["data"]["result"]), None

    async def wait_until_fresh(
        self, client: httpx.AsyncClient, since: float, jobs: set[str]
    ) -> None:
        """Until every target is up and was scraped, and every rule group evaluated, at least
        twice (1s intervals) after `since`."""

        async def fresh() -> bool:
            targets = (await self.get(client, "/api/v1/targets"))["data"]["activeTargets"]
            scraped = {
                t["labels"]["job"]
                for t in targets
                if t["health"] == "up" and timestamp(t["lastScrape"]) > since + 2
            }
            groups = (await self.get(client, "/api/v1/rules"))["data"]["groups"]
            evaluated = all(timestamp(g["lastEvaluation"]) > since + 2 for g in groups)
            return scraped == jobs and evaluated

        try:
            await wait_for(fresh, WAIT, "fresh scrapes of every target and rule evaluations")
        except AssertionError:
            targets = (await self.get(client, "/api/v1/targets"))["data"]["activeTargets"]
            states = [(t["labels"]["job"], t["health"], t["lastError"]) for t in targets]
            raise AssertionError(f"targets not scraped in time: {states}") from None


@pytest.fixture
def prometheus_server(tmp_path: Path) -> Iterator[Callable[[dict[str, Process]], Prometheus]]:
    """Starts Prometheus scraping the given processes' /metrics (on their OPS_PORT) every
    second, with the rules file loaded and evaluated every second; killed at teardown."""
    started: list[subprocess.Popen[bytes]] = []

    def start(processes: dict[str, Process]) -> Prometheus:
        config = {
            "global": {
                "scrape_interval": "1s",
                "scrape_timeout": "1s",
                "evaluation_interval": "1s",
            },
            "rule_files": [str(RULES)],
            "scrape_configs": [
                {
                    # Named as the chart's ServiceMonitors name them (the Service's name).
                    "job_name": f"tripline-{name}",
                    "static_configs": [
                        {
                            "targets": [f"127.0.0.1:{process.ops_port}"],
                            "labels": {"namespace": NAMESPACE},
                        }
                    ],
                }
                for name, process in processes.items()
            ],
        }
        config_path = tmp_path / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(config))
        port = free_port()
        log_path = tmp_path / "prometheus.log"
        popen = subprocess.Popen(
            [
                prometheus_binary(),
                f"--config.file={config_path}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--enable-feature=exemplar-storage",
            ],
            stdout=log_path.open("wb"),
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
        )
        started.append(popen)
        server = Prometheus(f"http://127.0.0.1:{port}", popen, log_path)
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            if popen.poll() is not None:
                raise AssertionError(f"prometheus exited:\n{server.log_tail()}")
            try:
                if httpx.get(f"{server.url}/-/ready", timeout=2).status_code == 200:
                    return server
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"prometheus not ready in {WAIT}s:\n{server.log_tail()}")

    try:
        yield start
    finally:
        for popen in started:
            if popen.poll() is None:
                popen.terminate()
                try:
                    popen.wait(10)
                except subprocess.TimeoutExpired:
                    popen.kill()
                    popen.wait(5)


# --- What must hold --------------------------------------------------------------------------


@dataclass
class Check:
    """One PromQL query that must succeed, and (`needs_series`) return at least one series."""

    what: str
    promql: str
    needs_series: bool = True
    exemplars: bool = False
    """The target shows exemplars: Grafana also asks `/api/v1/query_exemplars` for it."""


def substitute(expr: str, values: dict[str, str]) -> str:
    """Fill Grafana's `$name` / `${name}` / `${name:format}` variables."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        return values.get(name, match.group(0))

    return re.sub(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)", value, expr)


def dashboard_checks() -> list[Check]:
    """Every target of every panel, with the variables set as a fresh dashboard has them
    (namespace: All)."""
    board = json.loads(DASHBOARD.read_text())
    values = dict(GRAFANA_INTERVALS)
    for variable in board["templating"]["list"]:
        if variable["type"] != "datasource":
            values[variable["name"]] = variable["allValue"]
    checks = []
    for panel in board["panels"] + [p for row in board["panels"] for p in row.get("panels", [])]:
        for target in panel.get("targets", []):
            expr = substitute(target["expr"], values)
            what = f"panel {panel['title']!r} {target['refId']}"
            checks.append(Check(what, expr, exemplars=target.get("exemplar", False)))
    return checks


def referenced_names(promql: str) -> list[str]:
    """The Tripline metrics and recording rules a query reads (names inside label matchers'
    strings, such as `job=~"tripline-.*"`, are not names)."""
    outside_strings = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', promql)
    return sorted(set(re.findall(r"\btripline[_:][a-zA-Z0-9_:]*", outside_strings)))


def rule_checks(groups: list[dict[str, Any]]) -> tuple[list[str], list[Check]]:
    """Problems with the rule groups as loaded, and the queries each rule must answer:
    a recording rule's series; an alert's expression (no error; empty unless firing), and
    every Tripline metric or recording rule it reads."""
    problems, checks = [], []
    if not RULES.exists():
        problems.append(f"{RULES.relative_to(ROOT)} is missing")
    elif not groups:
        problems.append(f"no rule group loaded from {RULES.relative_to(ROOT)}")
    for group in groups:
        for rule in group["rules"]:
            where = f"group {group['name']!r} rule {rule['name']!r}"
            if rule["health"] != "ok" or rule.get("lastError"):
                problems.append(f"{where}: health {rule['health']}, error {rule.get('lastError')}")
            if rule["type"] == "recording":
                checks.append(Check(f"recording {where}", rule["name"]))
                continue
            checks.append(Check(f"alert {where} expression", rule["query"], needs_series=False))
            for name in referenced_names(rule["query"]):
                checks.append(Check(f"alert {where} input {name}", f'{{__name__="{name}"}}'))
    return problems, checks


async def failing(
    prometheus: Prometheus, client: httpx.AsyncClient, checks: list[Check]
) -> list[str]:
    """The checks that still fail after polling for at most WAIT seconds (a gauge the worker
    refreshes every few seconds may need one more scrape), each with its reason."""
    pending = list(checks)
    reasons: dict[str, str] = {}
    deadline = time.monotonic() + WAIT
    while pending:
        still = []
        for check in pending:
            series, error = await prometheus.query(client, check.promql)
            if error or (check.needs_series and series == 0):
                reasons[check.what] = error or "no series"
                still.append(check)
        pending = still
        if not pending or time.monotonic() > deadline:
            break
        await asyncio.sleep(1)
    return [f"{c.what}: {reasons[c.what]}\n    {c.promql}" for c in pending]


async def exemplar_problems(
    prometheus: Prometheus,
    client: httpx.AsyncClient,
    checks: list[Check],
    since: float,
    collector: DevTraceCollector,
) -> list[str]:
    """The targets showing exemplars that get none from Prometheus since `since`, or one whose
    `trace_id` is no trace the receiver got (polled for at most WAIT seconds: a span reaches
    the receiver within its batch delay, an exemplar Prometheus at its next scrape)."""
    problems: list[str] = []
    deadline = time.monotonic() + WAIT
    for check in (c for c in checks if c.exemplars):
        while True:
            body = await prometheus.get(
                client, "/api/v1/query_exemplars", query=check.promql, start=since, end=time.time()
            )
            if body["status"] != "success":
                problem = f"{body.get('errorType')}: {body.get('error')}"
            else:
                trace_ids = {
                    exemplar["labels"].get("trace_id")
                    for series in body["data"]
                    for exemplar in series["exemplars"]
                }
                unknown = sorted(str(t) for t in trace_ids if not collector.trace(str(t)))
                problem = (
                    "no exemplar"
                    if not trace_ids
                    else f"trace IDs the receiver never got: {unknown}"
                    if unknown
                    else ""
                )
            if not problem or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        if problem:
            problems.append(f"{check.what} exemplars: {problem}\n    {check.promql}")
    return problems


# --- Traffic ---------------------------------------------------------------------------------


async def account_with_active_trip(
    client: httpx.AsyncClient, api: str, webhook_url: str, mail_server: DevMailServer
) -> dict[str, str]:
    """A new user (signed up, address confirmed by the mailed link, logged in) with a device,
    an active trip with an 80 km/h limit on that device, and a webhook endpoint; returns the
    token and the device's key."""
    email = f"metrics-{uuid.uuid4().hex[:8]}@example.com"
    password = "correct horse battery staple"
    registered = await client.post(
        f"{api}/v1/users",
        json={"email": email, "display_name": "Metrics", "password": password},
    )
    assert registered.status_code == 202, registered.text
    [mail] = await asyncio.to_thread(mail_server.wait_for, email)
    # The worker's PUBLIC_BASE_URL is the default (the API's port is picked at start).
    confirmed = await client.get(f"{api}/v1/" + mail.links[0].split("/v1/", 1)[1])
    assert confirmed.status_code == 200, confirmed.text
    login = await client.post(
        f"{api}/v1/auth/token", data={"username": email, "password": password}
    )
    assert login.status_code == 200, login.text
    auth = {"Authorization": f"Bearer {login.json()['access_token']}"}
    device_key, _ = await start_trip_through_api(client, api, auth, "Metrics run", webhook_url)
    listed = await client.get(f"{api}/v1/trips", headers=auth)
    assert listed.status_code == 200, listed.text
    return {"token": login.json()["access_token"], "device_key": device_key}


async def upload_telemetry(client: httpx.AsyncClient, ingest: str, device_key: str) -> None:
    """A speeding batch (stored), the same batch again (duplicate), and two refused uploads:
    an invalid event and an unknown device key."""
    key = {"X-Device-Key": device_key}
    batch = {
        "client_batch_id": "metrics-1",
        "events": fixes(4, start=datetime.now(UTC), speed_kmh=120, step_s=1),
    }
    stored = await client.post(f"{ingest}/v1/telemetry", json=batch, headers=key)
    assert stored.status_code == 202, stored.text
    again = await client.post(f"{ingest}/v1/telemetry", json=batch, headers=key)
    assert again.status_code in (200, 202) and again.json()["duplicate"], again.text
    invalid = {"events": [{**batch["events"][0], "lat": 123.0}]}
    refused = await client.post(f"{ingest}/v1/telemetry", json=invalid, headers=key)
    assert refused.status_code == 422, refused.text
    unknown = await client.post(
        f"{ingest}/v1/telemetry", json=batch, headers={"X-Device-Key": "tl_not-a-key"}
    )
    assert unknown.status_code == 401, unknown.text


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_every_dashboard_query_and_rule_works_on_a_real_prometheus(
    processes, webhook_receiver, prometheus_server, mail_server, trace_collector
) -> None:
    mail = {
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(mail_server.port),
        "SMTP_STARTTLS": "false",
    }
    traced = {**TRACED, "OTEL_EXPORTER_OTLP_ENDPOINT": trace_collector.endpoint}
    since = time.time()
    started = {
        name: processes.start(
            name,
            f"tripline-{name}",
            **traced,
            **({**FAST_WORKER, **mail} if name == "worker" else {}),
        )
        for name in APPS
    }
    for process in started.values():
        # Four processes importing at once on a busy machine: a generous bound, not a target.
        processes.wait_ready(process, timeout=STARTUP)
    prometheus = prometheus_server(started)
    api, ingest, admin = (started[name].url for name in ("api", "ingest", "admin"))

    async with httpx.AsyncClient(timeout=WAIT) as client:
        account = await account_with_active_trip(client, api, webhook_receiver.url, mail_server)
        # The admin API refuses a caller without an operator session: still a request to a route.
        assert (await client.get(f"{admin}/v1/overview")).status_code == 401
        auth = {"Authorization": f"Bearer {account['token']}"}
        ws_url = f"ws://127.0.0.1:{started['api'].port}/v1/alerts/ws"
        async with (
            connect(ws_url, additional_headers=auth, open_timeout=WAIT),
            client.stream("GET", f"{api}/v1/alerts/stream", headers=auth) as sse,
        ):
            assert sse.status_code == 200
            await upload_telemetry(client, ingest, account["device_key"])

            async def delivered() -> list[Any]:
                return webhook_receiver.delivered()

            await wait_for(delivered, WAIT, "the speeding alert's webhook delivery")
            alerts = await client.get(f"{api}/v1/alerts", headers=auth)
            assert [a["rule"] for a in alerts.json()["items"]] == ["speeding"]

            # Streams still open: the realtime gauges are scraped with them counted.
            jobs = {f"tripline-{name}" for name in APPS}
            await prometheus.wait_until_fresh(client, time.time(), jobs)
            groups = (await prometheus.get(client, "/api/v1/rules"))["data"]["groups"]
            rule_problems, checks = rule_checks(groups)
            panels = dashboard_checks()
            problems = rule_problems + await failing(prometheus, client, panels + checks)
            problems += await exemplar_problems(prometheus, client, panels, since, trace_collector)
            namespaces = await prometheus.get(
                client, "/api/v1/label/namespace/values", **{"match[]": "tripline_api_build_info"}
            )

    # The dashboard's namespace variable (label_values on build_info) offers the release's.
    assert namespaces["data"] == [NAMESPACE], namespaces
    assert not problems, f"{len(problems)} failing:\n" + "\n".join(problems)
