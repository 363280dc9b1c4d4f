"""The factory's shared behaviour: correlation IDs, logs, headers, probes, metrics, unit of work."""

from __future__ import annotations

import json

from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis
from sqlalchemy import text

from tripline_common.platform.correlation import MAX_REQUEST_ID_LENGTH
from tripline_common.web import ServiceState


def json_lines(captured: str) -> list[dict]:
    return [json.loads(line) for line in captured.splitlines() if line.startswith("{")]


async def test_incoming_request_id_is_returned_and_logged(build_app, app_client, capsys) -> None:
    async with app_client(build_app(log_format="json")) as client:
        response = await client.post(
            "/v1/items", json={"name": "a", "quantity": 1}, headers={"X-Request-ID": "abc-123"}
        )
    assert response.status_code == 201
    assert response.headers["x-request-id"] == "abc-123"
    access = [line for line in json_lines(capsys.readouterr().err) if line["event"] == "request"]
    assert len(access) == 1
    line = access[0]
    assert line["request_id"] == "abc-123"
    assert line["method"] == "POST" and line["path"] == "/v1/items" and line["status"] == 201
    assert isinstance(line["duration_ms"], float)
    assert line["service"] == "testapp" and line["environment"] == "test" and line["version"]


async def test_a_request_id_is_made_when_none_is_sent(build_app, app_client) -> None:
    async with app_client(build_app()) as client:
        first = await client.get("/livez")
        second = await client.get("/livez")
    assert len(first.headers["x-request-id"]) == 32
    assert first.headers["x-request-id"] != second.headers["x-request-id"]


async def test_malformed_or_oversized_request_ids_are_replaced(build_app, app_client) -> None:
    hostile = ["a b", "x" * (MAX_REQUEST_ID_LENGTH + 1), 'quote"', "new\\nline", "é"]
    async with app_client(build_app()) as client:
        for value in hostile:
            response = await client.get("/livez", headers={"X-Request-ID": value.encode("utf-8")})
            assert response.status_code == 200
            assert response.headers["x-request-id"] != value
            assert len(response.headers["x-request-id"]) == 32


async def test_every_log_line_has_the_required_keys(build_app, app_client, capsys) -> None:
    async with app_client(build_app(log_format="json")) as client:
        await client.get("/v1/nowhere")
    lines = json_lines(capsys.readouterr().err)
    assert lines, "expected log lines"
    for line in lines:
        for key in (
            "timestamp",
            "level",
            "event",
            "service",
            "environment",
            "version",
            "request_id",
        ):
            assert key in line, (key, line)


async def test_security_headers_on_every_response(build_app, app_client) -> None:
    async with app_client(build_app()) as client:
        ok = await client.get("/livez")
        missing = await client.get("/v1/nowhere")
    for response in (ok, missing):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert "default-src 'none'" in response.headers["content-security-policy"]
    assert "strict-transport-security" not in ok.headers  # Only where TLS is a given.


async def test_hsts_in_production(build_app, app_client) -> None:
    app = build_app(environment="prod", secret_key="k" * 40, trusted_hosts="testserver")
    async with app_client(app) as client:
        response = await client.get("/livez")
    assert response.headers["strict-transport-security"].startswith("max-age=")


async def test_large_responses_are_gzipped(build_app, app_client) -> None:
    async with app_client(build_app()) as client:
        response = await client.get("/v1/items/big", headers={"accept-encoding": "gzip"})
        raw = await client.get("/v1/items/big", headers={"accept-encoding": "identity"})
    assert response.headers["content-encoding"] == "gzip"
    assert "accept-encoding" in response.headers["vary"].lower()  # Caches keep them apart.
    assert response.json() == raw.json()
    assert "content-encoding" not in raw.headers


async def test_livez_and_readyz_and_startupz(build_app, app_client) -> None:
    async with app_client(build_app()) as client:
        live = await client.get("/livez")
        ready = await client.get("/readyz")
        started = await client.get("/startupz")
    assert live.json()["status"] == "alive"
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"postgres": "ok", "redis": "ok"}
    assert started.status_code == 200


async def test_readyz_fails_once_shutdown_begins(build_app, app_client) -> None:
    app = build_app()
    async with app_client(app) as client:
        ServiceState.of(app).lifecycle.shutting_down = True
        response = await client.get("/readyz")
        live = await client.get("/livez")
    assert response.status_code == 503
    assert response.json()["code"] == "shutting_down"
    assert live.status_code == 200  # Liveness never depends on readiness.


async def test_metrics_are_valid_prometheus_exposition(build_app, app_client) -> None:
    async with app_client(build_app()) as client:
        await client.post("/v1/items", json={"name": "a", "quantity": 1})
        await client.get("/v1/items/missing")
        response = await client.get("/metrics")
    assert response.status_code == 200
    families = {family.name: family for family in text_string_to_metric_families(response.text)}
    requests = families["tripline_testapp_http_requests"]
    by_handler = {
        (sample.labels["handler"], sample.labels["status"]): sample.value
        for sample in requests.samples
        if sample.name.endswith("_total")
    }
    assert by_handler[("/v1/items", "201")] == 1
    assert by_handler[("/v1/items/missing", "404")] == 1
    assert "process_cpu_seconds" in families or "process_cpu_seconds_total" in {
        s.name for f in families.values() for s in f.samples
    }


async def test_metrics_label_route_templates_not_raw_paths(build_app, app_client) -> None:
    async with app_client(build_app()) as client:
        for name in ("one", "two", "three"):
            await client.post(f"/v1/items/jobs/{name}")
        response = await client.get("/metrics")
    handlers = {
        sample.labels.get("handler")
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
        if "handler" in sample.labels
    }
    assert "/v1/items/jobs/{name}" in handlers
    assert not any(h and h.endswith(("/one", "/two", "/three")) for h in handlers)


async def test_jobs_are_enqueued_after_commit_with_the_request_id(
    build_app, app_client, redis_url
) -> None:
    app = build_app()
    async with app_client(app) as client:
        response = await client.post("/v1/items/jobs/ok", headers={"X-Request-ID": "rid-ok"})
        assert response.status_code == 202
        job = await ServiceState.of(app).resources.redis.enqueue_job("noop", _job_id="noop:ok")
    assert job is None  # Already queued under its deterministic ID: nothing is doubled.
    redis = Redis.from_url(redis_url)
    try:
        queue = ServiceState.of(app).settings.arq_queue_name
        assert await redis.zrange(queue, 0, -1) == [b"noop:ok"]
        from arq.jobs import deserialize_job

        payload = deserialize_job(await redis.get("arq:job:noop:ok"))
        assert payload.function == "noop"
        assert payload.args == ("ok",)
        assert payload.kwargs == {"request_id": "rid-ok"}
    finally:
        await redis.aclose()


async def test_jobs_deferred_in_a_failed_request_are_dropped(
    build_app, app_client, redis_url
) -> None:
    app = build_app()
    async with app_client(app) as client:
        response = await client.post("/v1/items/jobs/fail")
    assert response.status_code == 500
    redis = Redis.from_url(redis_url)
    try:
        assert await redis.zcard(ServiceState.of(app).settings.arq_queue_name) == 0
    finally:
        await redis.aclose()


async def test_session_rolls_back_on_error(session_factory) -> None:
    from tripline_common.data import unit_of_work

    async with session_factory() as session:
        await session.execute(text("CREATE TEMP TABLE probe (v int)"))
        await session.commit()
    try:
        async with unit_of_work(session_factory) as session:
            await session.execute(text("INSERT INTO probe VALUES (1)"))
            raise ValueError("boom")
    except ValueError:
        pass
    async with unit_of_work(session_factory) as session:
        await session.execute(text("INSERT INTO probe VALUES (2)"))
    async with session_factory() as session:
        values = (await session.execute(text("SELECT v FROM probe"))).scalars().all()
    assert values == [2]


async def test_probes_and_metrics_are_a_404_on_the_app_port_and_only_they_answer_on_ops(
    build_app, app_client
) -> None:
    """`EdgeMiddleware` routes by the port a request arrived on (PORT 8000, OPS_PORT 9000 here,
    the settings' defaults); a connection on neither (this in-process transport) sees all."""
    async with app_client(build_app()) as client:
        for path in ("/livez", "/readyz", "/startupz", "/metrics"):
            public = await client.get(f"http://testserver:8000{path}")
            assert public.status_code == 404, path
            assert public.json()["code"] == "not_found"
            assert public.headers["x-request-id"]
            assert (await client.get(f"http://testserver:9000{path}")).status_code == 200, path
        assert (await client.get("http://testserver:9000/openapi.json")).status_code == 404
        assert (await client.get("http://testserver:8000/openapi.json")).status_code == 200
