"""The admin app exports the queue's gauges (no worker needed), refreshed by a background task
from the real Redis queue, never read from Redis by a scrape."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from asgi_lifespan import LifespanManager
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from tripline_admin.main import create_admin_app
from tripline_admin.queues.metrics import QueueMetrics, QueueMonitor
from tripline_admin.settings import AdminSettings
from tripline_admin.state import AdminState
from tripline_common.messaging import create_redis

WAIT = 10.0


@asynccontextmanager
async def admin_process(settings: AdminSettings) -> AsyncIterator[httpx.AsyncClient]:
    """The admin app with its lifespan run (its own pools, its background tasks)."""
    app = create_admin_app(settings)
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://admin") as client:
            yield client


async def queue_gauges(client: httpx.AsyncClient, queue: str) -> dict[str, float]:
    """`name` or `name{state}` -> value, for the series of `queue` on /metrics."""
    text = (await client.get("/metrics")).text
    return {
        sample.name + (f"{{{sample.labels['state']}}}" if "state" in sample.labels else ""): (
            sample.value
        )
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.labels.get("queue") == queue
    }


async def test_the_admin_app_exports_the_queue_breakdown_without_any_worker(
    make_settings,
) -> None:
    settings = make_settings(AdminSettings, queue_metrics_interval_seconds=0.05)
    queue = settings.arq_queue_name
    redis = create_redis(settings)
    try:
        async with admin_process(settings) as client:
            await redis.enqueue_job("noop", _job_id="due-1", _queue_name=queue)
            await redis.enqueue_job("noop", _job_id="due-2", _queue_name=queue)
            await redis.zadd(queue, {"due-1": time.time() * 1000 - 90_000}, xx=True)
            await redis.enqueue_job("noop", _job_id="later", _queue_name=queue, _defer_by=3600)
            await redis.set("arq:retry:later", b"1")  # As ARQ leaves a job that asked to retry.

            deadline = time.monotonic() + WAIT
            found = await queue_gauges(client, queue)
            while found["tripline_admin_queue_jobs{ready}"] != 2:
                assert time.monotonic() < deadline, f"never refreshed: {found}"
                await asyncio.sleep(0.05)
                found = await queue_gauges(client, queue)
    finally:
        await redis.delete(queue, "arq:retry:later")
        await redis.aclose()

    age = found.pop("tripline_admin_queue_oldest_ready_age_seconds")
    assert found == {
        "tripline_admin_queue_jobs{ready}": 2,
        "tripline_admin_queue_jobs{deferred}": 1,
        "tripline_admin_queue_jobs{in_progress}": 0,
        "tripline_admin_queue_jobs_retrying": 1,
    }
    assert 90 <= age < 3600


async def test_a_scrape_shows_the_last_refresh_and_never_reads_redis(make_settings) -> None:
    # One refresh at start, the next a minute later: what a scrape shows is that first read.
    settings = make_settings(AdminSettings, queue_metrics_interval_seconds=60)
    queue = settings.arq_queue_name
    redis = create_redis(settings)
    ready = "tripline_admin_queue_jobs{ready}"
    try:
        await redis.enqueue_job("noop", _job_id="before-the-refresh", _queue_name=queue)
        async with admin_process(settings) as client:
            deadline = time.monotonic() + WAIT
            while (await queue_gauges(client, queue))[ready] != 1:
                assert time.monotonic() < deadline, "the first refresh never came"
                await asyncio.sleep(0.05)
            await redis.enqueue_job("noop", _job_id="after-the-refresh", _queue_name=queue)
            scrapes = [(await queue_gauges(client, queue))[ready] for _ in range(3)]
    finally:
        await redis.delete(queue)
        await redis.aclose()
    assert scrapes == [1, 1, 1]


class CancelAbsorbingMonitor(QueueMonitor):
    """Its Redis read swallows the first cancel, as a redis-py call in flight can."""

    absorbed = 0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.reading = asyncio.Event()

    async def refresh(self) -> None:
        self.reading.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            if self.absorbed:
                raise
            self.absorbed += 1


async def test_stopping_the_queue_monitor_ends_it_even_when_a_cancel_is_absorbed(
    admin_settings,
) -> None:
    queue = admin_settings.arq_queue_name
    redis = create_redis(admin_settings)
    metrics = QueueMetrics(CollectorRegistry(), queue)
    monitor = CancelAbsorbingMonitor(metrics, redis, queue, interval=0.01)
    try:
        monitor.start()
        await asyncio.wait_for(monitor.reading.wait(), 10)  # Inside the read: the cancel lands.
        # A deadline for a hang (the old stop awaited the task forever), not a timing.
        await asyncio.wait_for(monitor.stop(), 10)
        assert monitor.absorbed == 1
    finally:
        await redis.aclose()


def test_the_gauges_are_exported_from_the_start(admin_settings) -> None:
    state = AdminState(admin_settings)
    queue = admin_settings.arq_queue_name
    for name in ("ready", "deferred", "in_progress"):
        labels = {"queue": queue, "state": name}
        assert state.registry.get_sample_value("tripline_admin_queue_jobs", labels) == 0
    assert (
        state.registry.get_sample_value("tripline_admin_queue_jobs_retrying", {"queue": queue}) == 0
    )
    assert (
        state.registry.get_sample_value(
            "tripline_admin_queue_oldest_ready_age_seconds", {"queue": queue}
        )
        == 0
    )
