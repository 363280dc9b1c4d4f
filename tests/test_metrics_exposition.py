"""The four real processes' `/metrics`, after a little traffic: `promtool check metrics` finds
nothing to complain about, every series of the metrics contract (docs/operations.md,
"Metrics") is exported by the process that owns it, and the OpenMetrics exposition a scraper
asks for (`Accept`) parses strictly and carries the same series as the classic one."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from datetime import UTC, datetime

import httpx
import pytest
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families

from tests.metric_contract import series_of
from tests.test_processes import SERVICES, seed

WAIT = 30.0

DROPPED = ("_request_size_bytes", "_response_size_bytes", "_highr_")
# What Prometheus 2.x asks for by default: OpenMetrics first.
OPENMETRICS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
    "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)


def exposed_names(text: str) -> set[str]:
    """Every series name in an exposition: sample names and the families' own names."""
    names = set()
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        names.add(family.name + "_total" if family.type == "counter" else family.name)
        names.update(sample.name for sample in family.samples)
    return names


def series_keys(samples: list[tuple[str, dict[str, str]]]) -> set[str]:
    """Sample names with their labels, `_created` aside: the classic format writes those as
    gauges of their own, OpenMetrics as part of their counter or histogram."""
    return {
        name + repr(sorted(labels.items()))
        for name, labels in samples
        if not name.endswith("_created")
    }


def openmetrics_problems(classic: str, openmetrics: str) -> list[str]:
    """What differs between the two expositions of one process: the strict OpenMetrics parser
    fails, or a series (labels included) is in one and not the other."""
    try:
        families = list(openmetrics_families(openmetrics))
    except ValueError as exc:
        return [f"OpenMetrics does not parse: {exc}"]
    ours = series_keys([(s.name, s.labels) for f in families for s in f.samples])
    theirs = series_keys(
        [(s.name, s.labels) for f in text_string_to_metric_families(classic) for s in f.samples]
    )
    return [f"only in OpenMetrics: {name}" for name in sorted(ours - theirs)] + [
        f"only in the classic format: {name}" for name in sorted(theirs - ours)
    ]


def promtool_problems(text: str) -> str:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is needed: apt-get install prometheus (.ci/run does)"
    result = subprocess.run(
        [promtool, "check", "metrics"], input=text.encode(), capture_output=True, timeout=30
    )
    output = (result.stdout + result.stderr).decode()
    return output if result.returncode or output.strip() else ""


@pytest.mark.slow
async def test_every_process_exports_the_contract_and_promtool_accepts_it(
    processes, process_env
) -> None:
    seed(process_env)
    from scripts.seed import DEMO_DEVICE_KEY

    # Hour-long windows: a fixed window cannot roll over between the two attempts.
    env = {
        "api": {"LOGIN_RATE_LIMIT": "1", "LOGIN_RATE_WINDOW_SECONDS": "3600"},
        "ingest": {"DEVICE_RATE_LIMIT": "1", "DEVICE_RATE_WINDOW_SECONDS": "3600"},
    }
    started = {
        name: processes.start(name, command, **env.get(name, {})) for name, command in SERVICES
    }
    for process in started.values():
        processes.wait_ready(process, timeout=120)  # Four cold starts on a shared machine.

    ingest, api = started["ingest"].url, started["api"].url
    event = {"recorded_at": datetime.now(UTC).isoformat(), "lat": 52.5, "lon": 13.4}
    device = {"X-Device-Key": DEMO_DEVICE_KEY}
    async with httpx.AsyncClient(timeout=10) as client:
        stored = await client.post(
            f"{ingest}/v1/telemetry", json={"events": [event]}, headers=device
        )
        limited = await client.post(
            f"{ingest}/v1/telemetry", json={"events": [event]}, headers=device
        )
        refused = await client.post(f"{ingest}/v1/telemetry", json={"events": [event]})
        assert (stored.status_code, limited.status_code, refused.status_code) == (202, 429, 401)
        login = {"username": "nobody@example.com", "password": "wrong"}
        attempts = [
            (await client.post(f"{api}/v1/auth/token", data=login)).status_code for _ in "ab"
        ]
        assert attempts == [401, 429]
        for process in started.values():
            assert (await client.get(f"{process.ops_url}/readyz")).status_code == 200

        async def batch_processed() -> str | None:
            text = (await client.get(f"{started['worker'].ops_url}/metrics")).text
            return text if "tripline_worker_batch_latency_seconds_count 1.0" in text else None

        deadline = time.monotonic() + WAIT
        while not await batch_processed():
            assert time.monotonic() < deadline, "the worker did not process the batch"
            await asyncio.sleep(0.1)

        expositions = {
            name: (await client.get(f"{process.ops_url}/metrics")).text
            for name, process in started.items()
        }
        openmetrics = {
            name: await client.get(
                f"{process.ops_url}/metrics", headers={"Accept": OPENMETRICS_ACCEPT}
            )
            for name, process in started.items()
        }

    for name, text in expositions.items():
        assert promtool_problems(text) == "", f"promtool on {name}:\n{promtool_problems(text)}"
        names = exposed_names(text)
        missing = [series for series in series_of(name) if series not in names]
        assert not missing, f"{name} lacks {missing}"
        assert not any(part in series for series in names for part in DROPPED), name
        response = openmetrics[name]
        assert response.headers["content-type"].startswith("application/openmetrics-text;")
        problems = openmetrics_problems(text, response.text)
        assert not problems, f"{name}:\n" + "\n".join(problems)
