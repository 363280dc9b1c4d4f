"""The worker's autoscaler and the queue's alert rules, evaluated as written by a real
Prometheus scraping two real admin processes while a real backlog waits in Redis, no worker.

The queries are taken as they ship: from the ScaledObject the chart renders (for this test's
queue and namespace) and from the rules file. Each must return exactly one series holding the
backlog's value; an empty result is a failure, never a zero (KEDA is told the same:
`ignoreNullValues: "false"`). The backlog holds ready, deferred, running and retrying jobs, so
the queue's cardinality is not the number of ready jobs, and its oldest job is running, not
ready.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
import yaml
from arq.connections import RedisSettings, create_pool
from chart_render import render_profile

from tests.test_prometheus_queries import (
    NAMESPACE,
    RULES,
    Prometheus,
    prometheus_server,
    referenced_names,
)

__all__ = ["prometheus_server"]  # The fixture, used by name below.

WAIT = 30.0
READY = 5  # Due, not running: two of them long due.
OLDEST_READY_AGE = 600.0  # Seconds since the oldest ready job was due, when the backlog is made.


def rendered_scaler_queries(queue: str) -> dict[str, str]:
    """Trigger name -> query of the chart's ScaledObject, rendered for `queue` in NAMESPACE."""
    values = {
        "config": {"ARQ_QUEUE_NAME": queue},
        "keda": {"enabled": True},
        "components": {"worker": {"autoscaling": {"enabled": False}}},
    }
    [scaled] = render_profile("prod", values, namespace=NAMESPACE).kind("ScaledObject")
    return {t["name"]: t["metadata"]["query"] for t in scaled["spec"]["triggers"]}


def queue_rules() -> dict[str, str]:
    """What -> expression of every recording rule that reads the queue's gauges, and of every
    alert that reads only those recording rules. (`TriplineIngestBacklogGrowing` also reads
    ingest's and the worker's event rates: its queue input is the recording rule checked here,
    and tests/test_prometheus_queries.py runs it with those processes.)"""
    rules = [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]
    queue_records = {
        r["record"] for r in rules if "record" in r and "tripline_admin_queue_" in r["expr"]
    }
    found = {}
    for rule in rules:
        if "record" in rule and rule["record"] in queue_records:
            found[f"recording rule {rule['record']}"] = rule["expr"]
        elif "alert" in rule and set(referenced_names(rule["expr"]) or [""]) <= queue_records:
            found[f"alert {rule['alert']}"] = rule["expr"]
    return found


async def make_backlog(redis_url: str, queue: str) -> float:
    """Enqueue the backlog through ARQ and mark what a worker would have marked; returns when
    (epoch seconds) the oldest ready job's age was OLDEST_READY_AGE."""
    redis = await create_pool(RedisSettings.from_dsn(redis_url))
    try:
        for n in range(READY):
            await redis.enqueue_job("process_batch", n, _job_id=f"ready-{n}", _queue_name=queue)
        for n in range(2):
            await redis.enqueue_job(
                "process_batch", n, _job_id=f"deferred-{n}", _queue_name=queue, _defer_by=3600
            )
        await redis.enqueue_job("process_batch", _job_id="running", _queue_name=queue)
        now = time.time()
        # The running job is the oldest of all; the oldest ready job is a retry, due 600 s ago.
        await redis.zadd(queue, {"running": (now - 900) * 1000}, xx=True)
        await redis.set("arq:in-progress:running", b"1")
        await redis.zadd(queue, {"ready-0": (now - OLDEST_READY_AGE) * 1000}, xx=True)
        await redis.set("arq:retry:ready-0", b"1")
        await redis.set("arq:retry:deferred-0", b"1")
        assert await redis.zcard(queue) == READY + 3  # What a cardinality trigger would read.
        return now
    finally:
        await redis.aclose()


async def one_value(prometheus: Prometheus, client: httpx.AsyncClient, promql: str) -> float:
    """The value of the one series `promql` returns, polled for at most WAIT seconds (a rule's
    series appears at its next evaluation); no series, or more than one, fails."""
    deadline = time.monotonic() + WAIT
    while True:
        body = await prometheus.get(client, "/api/v1/query", query=promql)
        assert body["status"] == "success", f"{promql}: {body.get('error')}"
        result = body["data"]["result"]
        assert len(result) <= 1, f"{promql}: {len(result)} series, one expected: {result}"
        if result:
            return float(result[0]["value"][1])
        assert time.monotonic() < deadline, f"{promql}: no series (an error, not 0)"
        await asyncio.sleep(0.5)


async def until(predicate: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not await predicate():
        assert time.monotonic() < deadline, f"not in {WAIT}s: {what}"
        await asyncio.sleep(0.2)


@pytest.mark.timeout(120)
async def test_the_autoscaler_and_queue_alert_queries_read_the_backlog_from_a_real_prometheus(
    processes, process_env, prometheus_server
) -> None:
    queue = process_env["ARQ_QUEUE_NAME"]
    made_at = await make_backlog(process_env["REDIS_URL"], queue)
    # Two admin replicas, as the chart runs: each exports the whole queue.
    admins = {
        name: processes.start(name, "tripline-admin", QUEUE_METRICS_INTERVAL_SECONDS="0.5")
        for name in ("admin", "admin-2")
    }
    for admin in admins.values():
        processes.wait_ready(admin)

    async with httpx.AsyncClient(timeout=WAIT) as client:

        async def refreshed() -> bool:
            ready = f'tripline_admin_queue_jobs{{queue="{queue}",state="ready"}} {READY}.0'
            pages = [(await client.get(f"{a.ops_url}/metrics")).text for a in admins.values()]
            return all(ready in page for page in pages)

        # The first scrape already sees the backlog (the gauges start at 0 until the first read).
        await until(refreshed, "each admin replica's first read of the queue")
        prometheus = prometheus_server(admins)
        await prometheus.wait_until_fresh(client, time.time(), {f"tripline-{n}" for n in admins})
        summed = await one_value(
            prometheus, client, f'sum(tripline_admin_queue_jobs{{state="ready",queue="{queue}"}})'
        )

        scaler = rendered_scaler_queries(queue)
        rules = queue_rules()
        values: dict[str, Any] = {
            f"trigger {name}": await one_value(prometheus, client, query)
            for name, query in scaler.items()
        }
        values |= {what: await one_value(prometheus, client, expr) for what, expr in rules.items()}
        elapsed = time.time() - made_at

    assert set(scaler) == {"ready-jobs", "oldest-ready-age"}
    assert set(rules) == {
        "recording rule tripline:queue_ready_jobs:deriv15m",
        "recording rule tripline:queue_oldest_ready_age_seconds:max1m",
        "alert TriplineQueueOldestJobTooOld",
    }
    ages = (
        "trigger oldest-ready-age",
        "recording rule tripline:queue_oldest_ready_age_seconds:max1m",
        "alert TriplineQueueOldestJobTooOld",
    )
    assert values["trigger ready-jobs"] == READY  # Not 8 (the queue's size), not 5 x replicas,
    assert summed == READY * len(admins)  # which a sum over the replicas would be.
    assert values["recording rule tripline:queue_ready_jobs:deriv15m"] == 0  # A steady backlog.
    for what in ages:  # The ready retry's age, not the older running job's (900 s).
        assert OLDEST_READY_AGE <= values[what] <= OLDEST_READY_AGE + elapsed, (what, values)
