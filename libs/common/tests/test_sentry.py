"""Sentry, for real: the SDK sends to a stand-in Sentry (an HTTP server on 127.0.0.1).

The stand-in (`conftest.py` — `fake_sentry`) records every envelope POSTed to
`/api/<project>/envelope/`, decompressed and parsed. The app is built by the real factory
with a DSN pointing at it, so what is checked is what would leave the process in production:
one event per unhandled error, tagged with the correlation ID, release and environment, and
free of request bodies and credentials.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import sentry_sdk
from fastapi import FastAPI

from tripline_common.web import ServiceState

FLUSH_TIMEOUT = 5.0
BOOM_SECRET = "secret-token-xyz"
COOKIE_SECRET = "cookie-secret-abc"
BODY_MARKER = "body-marker-must-not-leave-the-process"


@pytest.fixture
def sentry_app(build_app: Callable[..., FastAPI], fake_sentry) -> Iterator[Callable[..., FastAPI]]:
    """Builds apps reporting to `fake_sentry`; the SDK is switched off again afterwards."""
    try:
        yield lambda **overrides: build_app(sentry_dsn=fake_sentry.dsn, **overrides)
    finally:
        sentry_sdk.flush(timeout=FLUSH_TIMEOUT)
        sentry_sdk.get_client().close(timeout=FLUSH_TIMEOUT)
        # The SDK is process-global: leave a client that records nothing for later tests.
        sentry_sdk.get_global_scope().set_client(None)
        assert not sentry_sdk.get_client().is_active()


async def boom(client: httpx.AsyncClient, request_id: str | None = None) -> httpx.Response:
    """GET the route that raises, with credentials and a body that must not reach Sentry."""
    headers = {"Authorization": f"Bearer {BOOM_SECRET}", "Cookie": f"session={COOKIE_SECRET}"}
    if request_id is not None:
        headers["X-Request-ID"] = request_id
    response = await client.request(
        "GET", "/v1/items/boom", headers=headers, json={"marker": BODY_MARKER}
    )
    assert response.status_code == 500
    assert response.json()["code"] == "internal_error"
    return response


def flush() -> None:
    sentry_sdk.flush(timeout=FLUSH_TIMEOUT)


@pytest.mark.parametrize("log_format", ["console", "json"])
async def test_an_unhandled_error_sends_exactly_one_tagged_event(
    sentry_app: Callable[..., FastAPI],
    fake_sentry,
    app_client: Callable[..., Any],
    log_format: str,
) -> None:
    app = sentry_app(log_format=log_format)
    async with app_client(app) as client:
        response = await boom(client, "sentry-rid-1")
    assert response.headers["x-request-id"] == "sentry-rid-1"
    flush()

    assert fake_sentry.errors == []
    events = fake_sentry.events()
    assert len(events) == 1, [event.get("exception") for event in events]
    event = events[0]
    assert event["tags"]["request_id"] == "sentry-rid-1"
    assert event["tags"]["service"] == "testapp"
    assert event["environment"] == "test"
    assert event["release"] == f"testapp@{ServiceState.of(app).settings.version}"
    assert [value["type"] for value in event["exception"]["values"]] == ["RuntimeError"]
    assert event["level"] == "error"
    # No request body, no cookies; the credential header is masked in the request section.
    request = event["request"]
    assert "data" not in request
    assert "cookies" not in request
    assert request["headers"].get("authorization") == "[Filtered]"
    assert BODY_MARKER.encode() not in fake_sentry.raw()


async def test_credentials_never_leave_the_process(
    sentry_app: Callable[..., FastAPI], fake_sentry, app_client: Callable[..., Any]
) -> None:
    async with app_client(sentry_app()) as client:
        await boom(client, "sentry-rid-2")
    flush()
    assert len(fake_sentry.events()) == 1
    raw = fake_sentry.raw()
    assert BOOM_SECRET.encode() not in raw
    assert COOKIE_SECRET.encode() not in raw


async def test_client_errors_send_no_event(
    sentry_app: Callable[..., FastAPI], fake_sentry, app_client: Callable[..., Any]
) -> None:
    async with app_client(sentry_app()) as client:
        assert (await client.get("/v1/nowhere")).status_code == 404
        assert (await client.get("/v1/items/missing")).status_code == 404
        invalid = await client.post("/v1/items", json={"name": "", "quantity": -1})
        assert invalid.status_code == 422
        malformed = await client.post(
            "/v1/items", content=b"{not json", headers={"Content-Type": "application/json"}
        )
        assert malformed.status_code == 422
        assert (await client.delete("/v1/items")).status_code == 405
        flush()
        assert fake_sentry.errors == []
        assert fake_sentry.events() == []

        # The channel works: the same app, a real error, an event.
        await boom(client)
    flush()
    assert len(fake_sentry.events()) == 1


async def test_each_event_carries_its_own_request_id(
    sentry_app: Callable[..., FastAPI], fake_sentry, app_client: Callable[..., Any]
) -> None:
    async with app_client(sentry_app()) as client:
        first = await boom(client, "sentry-rid-a")
        assert (await client.get("/livez", headers={"X-Request-ID": "sentry-rid-b"})).is_success
        generated = await boom(client)
    flush()
    tags = [event["tags"]["request_id"] for event in fake_sentry.events()]
    assert tags == [first.headers["x-request-id"], generated.headers["x-request-id"]]
    assert tags[0] == "sentry-rid-a" and len(tags[1]) == 32


async def test_csrf_tokens_and_query_strings_never_leave_the_process(
    sentry_app: Callable[..., FastAPI], fake_sentry, app_client: Callable[..., Any]
) -> None:
    query_secret = "query-secret-in-the-url"
    csrf_secret = "csrf-secret-in-a-header"
    referer_secret = "referer-secret-in-a-link"
    outgoing_secret = "outgoing-secret-in-a-call"
    app = sentry_app()

    # A handler that calls out (as a webhook delivery does) with a token in the URL, then fails:
    # the call travels with the event as a breadcrumb.
    @app.get("/v1/calls-out-then-fails")
    async def calls_out_then_fails() -> None:
        async with httpx.AsyncClient() as outside:
            await outside.get(f"http://127.0.0.1:{fake_sentry.port}/hook?token={outgoing_secret}")
        raise RuntimeError("failed after calling out")

    async with app_client(app) as client:
        response = await client.get(
            f"/v1/calls-out-then-fails?access_token={query_secret}&page=2",
            headers={
                "X-CSRF-Token": csrf_secret,
                "Referer": f"https://console.example/console/devices?token={referer_secret}",
            },
        )
    assert response.status_code == 500
    flush()
    events = fake_sentry.events()
    assert len(events) == 1
    request = events[0]["request"]
    # What is kept still finds the failing route and the call.
    assert request["url"].endswith("/v1/calls-out-then-fails")
    assert request["headers"]["x-csrf-token"] == "[Filtered]"
    assert request["headers"]["referer"] == "https://console.example/console/devices"
    crumbs = [crumb for crumb in events[0]["breadcrumbs"]["values"] if crumb["type"] == "http"]
    assert [crumb["data"]["url"] for crumb in crumbs] == [
        f"http://127.0.0.1:{fake_sentry.port}/hook"
    ]
    raw = fake_sentry.raw()
    for secret in (query_secret, csrf_secret, referer_secret, outgoing_secret):
        assert secret.encode() not in raw, raw[raw.find(secret.encode()) - 300 :][:400]


async def test_an_event_carries_the_trace_id_of_its_request(
    sentry_app: Callable[..., FastAPI], fake_sentry, app_client: Callable[..., Any], spans
) -> None:
    trace_id = "5b8aa5a2d2c872e8321cf37308d69df2"
    async with app_client(sentry_app()) as client:
        response = await client.get(
            "/v1/items/boom", headers={"traceparent": f"00-{trace_id}-051581bf3cb55c13-01"}
        )
    assert response.status_code == 500
    flush()
    [event] = fake_sentry.events()
    [span] = [s for s in spans.finished() if s.name == "GET /v1/items/boom"]
    assert event["tags"]["trace_id"] == trace_id == format(span.context.trace_id, "032x")
    assert event["contexts"]["otel"] == {
        "trace_id": trace_id,
        "span_id": format(span.context.span_id, "016x"),
    }
