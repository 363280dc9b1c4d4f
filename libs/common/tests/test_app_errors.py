"""Every error of every app has one shape: code, message, optional details, request ID."""

from __future__ import annotations

import json

import pytest
from fastapi import WebSocket
from sqlalchemy import text

from tripline_common.web import ServiceState

REQUIRED_KEYS = {"code", "message", "details", "request_id"}


def assert_error_shape(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == REQUIRED_KEYS
    assert body["code"] == code
    assert body["message"]
    assert body["request_id"] == response.headers["x-request-id"]
    return body


async def test_unknown_route_is_a_404_in_the_shared_shape(build_app, app_client) -> None:
    async with app_client(build_app()) as client:
        response = await client.get("/v1/nowhere")
    assert_error_shape(response, 404, "not_found")


async def test_domain_not_found_keeps_its_message(build_app, app_client) -> None:
    async with app_client(build_app()) as client:
        response = await client.get("/v1/items/missing")
    assert assert_error_shape(response, 404, "not_found")["message"] == "Item not found."


async def test_wrong_method_is_a_405_with_allow_header(build_app, app_client) -> None:
    async with app_client(build_app()) as client:
        response = await client.delete("/v1/items")
    assert_error_shape(response, 405, "method_not_allowed")
    assert "POST" in response.headers["allow"]


async def test_validation_error_lists_each_field_without_echoing_input(
    build_app, app_client
) -> None:
    async with app_client(build_app()) as client:
        response = await client.post("/v1/items", json={"name": "", "quantity": "lots"})
    body = assert_error_shape(response, 422, "validation_error")
    locations = {tuple(item["loc"]) for item in body["details"]}
    assert locations == {("body", "name"), ("body", "quantity")}
    assert "lots" not in response.text  # Inputs may be secrets: never echoed.


async def test_malformed_json_is_a_clear_422(build_app, app_client) -> None:
    async with app_client(build_app()) as client:
        response = await client.post(
            "/v1/items", content=b'{"name": "a",', headers={"content-type": "application/json"}
        )
    assert_error_shape(response, 422, "malformed_json")


async def test_wrong_json_type_is_a_422(build_app, app_client) -> None:
    async with app_client(build_app()) as client:
        response = await client.post("/v1/items", json=["not", "an", "object"])
    assert_error_shape(response, 422, "validation_error")


async def test_unhandled_exception_is_a_500_that_reveals_nothing(
    build_app, app_client, capsys
) -> None:
    async with app_client(build_app(log_format="json")) as client:
        response = await client.get("/v1/items/boom", headers={"X-Request-ID": "boom-1"})
    body = assert_error_shape(response, 500, "internal_error")
    assert body["request_id"] == "boom-1"
    assert "hunter2" not in response.text and "RuntimeError" not in response.text
    # The stack trace and context go to the log instead, tagged with the request ID.
    lines = [
        json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")
    ]
    crash = next(line for line in lines if line["event"] == "unhandled_exception")
    assert crash["request_id"] == "boom-1"
    assert crash["path"] == "/v1/items/boom"
    assert "Traceback" in crash["exception"] and "hunter2" in crash["exception"]
    # ...and the 500 response still carries the security headers.
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_oversized_body_is_a_413(build_app, app_client) -> None:
    async with app_client(build_app(max_body_bytes=2048)) as client:
        response = await client.post(
            "/v1/items", content=b"x" * 4096, headers={"content-type": "application/json"}
        )
    assert_error_shape(response, 413, "payload_too_large")


async def test_oversized_streamed_body_without_length_is_a_413(build_app, app_client) -> None:
    async def chunks():
        for _ in range(10):
            yield b"x" * 1024

    async with app_client(build_app(max_body_bytes=2048)) as client:
        response = await client.post(
            "/v1/items", content=chunks(), headers={"content-type": "application/json"}
        )
    assert_error_shape(response, 413, "payload_too_large")


async def test_invalid_content_length_is_a_400(build_app, app_client) -> None:
    async with app_client(build_app()) as client:
        response = await client.post(
            "/v1/items",
            content=b"{}",
            headers={"content-type": "application/json", "content-length": "-5"},
        )
    assert_error_shape(response, 400, "bad_request")


async def test_untrusted_host_header_is_a_400_in_the_shared_shape(build_app, app_client) -> None:
    async with app_client(build_app()) as client:
        response = await client.get("/v1/items/missing", headers={"host": "evil.example.com"})
    assert_error_shape(response, 400, "bad_request")


async def test_untrusted_host_on_a_websocket_is_refused_before_the_handshake(build_app) -> None:
    app = build_app()
    reached: list[str] = []

    @app.websocket("/v1/echo")
    async def echo(websocket: WebSocket) -> None:
        reached.append("handler")
        await websocket.accept()

    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "websocket.connect"}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {
        "type": "websocket",
        "asgi": {"version": "3.0"},
        "path": "/v1/echo",
        "raw_path": b"/v1/echo",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"evil.example.com")],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
        "subprotocols": [],
    }
    await app(scope, receive, send)

    assert sent == [{"type": "websocket.close", "code": 1008, "reason": "Invalid host"}]
    assert reached == []


@pytest.mark.parametrize("origin", ["https://app.example.com"])
async def test_cors_allows_listed_origins_only(build_app, app_client, origin: str) -> None:
    async with app_client(build_app(cors_origins=origin)) as client:
        allowed = await client.options(
            "/v1/items",
            headers={"origin": origin, "access-control-request-method": "POST"},
        )
        refused = await client.options(
            "/v1/items",
            headers={"origin": "https://evil.example.com", "access-control-request-method": "POST"},
        )
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == origin
    assert_error_shape(refused, 400, "bad_request")
    assert "access-control-allow-origin" not in refused.headers


async def test_a_database_constraint_violation_is_a_409(build_app, app_client, session_factory):
    async with session_factory() as session:
        await session.execute(text("CREATE TEMP TABLE uniq (v int CONSTRAINT uq_uniq_v UNIQUE)"))
        await session.execute(text("INSERT INTO uniq VALUES (1)"))
        await session.commit()
    async with app_client(build_app()) as client:
        response = await client.post("/v1/items/uniq/1")
        fresh = await client.post("/v1/items/uniq/2")
    body = assert_error_shape(response, 409, "conflict")
    assert body["details"] == {"constraint": "uq_uniq_v"}
    assert fresh.status_code == 201


async def test_probes_and_metrics_answer_whatever_the_host_header(build_app, app_client) -> None:
    """The kubelet and Prometheus address a pod by its IP; they must not be refused."""
    async with app_client(build_app()) as client:
        for path in ("/livez", "/readyz", "/startupz", "/metrics"):
            response = await client.get(path, headers={"host": "10.42.0.17:8000"})
            assert response.status_code == 200, path
        api = await client.get("/v1/items/missing", headers={"host": "10.42.0.17:8000"})
    assert_error_shape(api, 400, "bad_request")


async def test_an_exhausted_connection_pool_is_a_503_in_the_shared_shape(build_app) -> None:
    from asgi_lifespan import LifespanManager
    from httpx import ASGITransport, AsyncClient

    app = build_app(db_pool_size=1, db_max_overflow=0, db_pool_timeout=0.2)
    async with LifespanManager(app) as manager:
        # Every connection of the pool is taken (here: the only one) and stays taken.
        engine = ServiceState.of(app).resources.engine
        transport = ASGITransport(app=manager.app)
        async with (
            engine.connect() as held,
            AsyncClient(transport=transport, base_url="http://testserver") as client,
        ):
            await held.execute(text("SELECT 1"))
            response = await client.post("/v1/items/jobs/waiting")
    assert_error_shape(response, 503, "database_busy")
    assert response.headers["retry-after"] == "1"
