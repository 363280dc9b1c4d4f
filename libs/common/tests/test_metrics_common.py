"""The series every app exports: RED metrics, build info, readiness, pools."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from tripline_common.web import ServiceState


@asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its own pools (not the test transaction): the pools are what is measured."""
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client


async def scrape(client: httpx.AsyncClient) -> dict[tuple[str, frozenset], float]:
    response = await client.get("/metrics")
    assert response.status_code == 200
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def names(samples: dict[tuple[str, frozenset], float]) -> set[str]:
    return {name for name, _ in samples}


def value(samples: dict, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


async def test_requests_and_latency_are_counted_by_route_template_only(
    build_app, app_client
) -> None:
    async with app_client(build_app()) as client:
        await client.post("/v1/items/jobs/first")
        await client.post("/v1/items/jobs/second")
        await client.get("/no/such/path/42")
        samples = await scrape(client)

    requests = "tripline_testapp_http_requests_total"
    template = {"handler": "/v1/items/jobs/{name}", "method": "POST", "status": "202"}
    assert value(samples, requests, **template) == 2
    # An unmatched path is counted, grouped under "none", never under the raw path.
    assert value(samples, requests, handler="none", method="GET", status="404") == 1
    latency_count = value(
        samples,
        "tripline_testapp_http_request_duration_seconds_count",
        handler="/v1/items/jobs/{name}",
        method="POST",
    )
    assert latency_count == 2
    buckets = {
        dict(labels)["le"]
        for name, labels in samples
        if name == "tripline_testapp_http_request_duration_seconds_bucket"
    }
    assert {"0.005", "10.0", "+Inf"} <= buckets
    handlers = {dict(labels).get("handler") for _, labels in samples} - {None}
    assert not any(h.endswith(("first", "second", "42")) for h in handlers)
    # Dropped: the size histograms and the unlabelled high-resolution latency.
    assert not any("size" in name or "highr" in name for name in names(samples))


async def test_build_info_names_the_version_and_environment(build_app, app_client) -> None:
    async with app_client(build_app(version="9.8.7")) as client:
        samples = await scrape(client)
    assert value(samples, "tripline_testapp_build_info", version="9.8.7", environment="test") == 1


async def test_ready_follows_each_readyz_answer_and_flips_are_counted(
    build_app, app_client
) -> None:
    async def broken() -> None:
        raise ConnectionError("down")

    app = build_app()
    async with app_client(app) as client:
        assert (await client.get("/readyz")).status_code == 200
        samples = await scrape(client)
        assert value(samples, "tripline_testapp_ready") == 1
        assert value(samples, "tripline_testapp_readiness_changes_total") == 0

        ServiceState.of(app).lifecycle.extra_checks["broken"] = broken
        assert (await client.get("/readyz")).status_code == 503
        assert (await client.get("/readyz")).status_code == 503
        samples = await scrape(client)
        assert value(samples, "tripline_testapp_ready") == 0
        assert value(samples, "tripline_testapp_readiness_changes_total") == 1

        del ServiceState.of(app).lifecycle.extra_checks["broken"]
        assert (await client.get("/readyz")).status_code == 200
        samples = await scrape(client)
        assert value(samples, "tripline_testapp_ready") == 1
        assert value(samples, "tripline_testapp_readiness_changes_total") == 2


async def test_pool_gauges_show_connections_in_use_idle_and_the_limit(build_app) -> None:
    app = build_app(db_pool_size=3, db_max_overflow=2, db_fast_pool_size=4)
    db = "tripline_testapp_db_pool_connections"
    rds = "tripline_testapp_redis_pool_connections"
    async with serving(app) as client:
        resources = ServiceState.of(app).resources
        async with resources.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
            async with resources.pg.acquire() as raw:
                await raw.fetchval("SELECT 1")
                redis_conn = await resources.redis.connection_pool.get_connection()
                try:
                    held = await scrape(client)
                finally:
                    await resources.redis.connection_pool.release(redis_conn)
        released = await scrape(client)

    assert value(held, db, pool="orm", state="in_use") == 1
    assert value(held, db, pool="orm", state="max") == 5
    assert value(held, db, pool="raw", state="in_use") == 1
    assert value(held, db, pool="raw", state="max") == 4
    assert value(held, rds, state="in_use") == 1
    assert value(held, rds, state="max") == 64

    assert value(released, db, pool="orm", state="in_use") == 0
    assert value(released, db, pool="orm", state="idle") == 1
    assert value(released, db, pool="raw", state="in_use") == 0
    assert value(released, db, pool="raw", state="idle") == 1
    assert value(released, rds, state="in_use") == 0
    assert value(released, rds, state="idle") >= 1
