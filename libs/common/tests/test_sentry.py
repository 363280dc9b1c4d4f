"""Sentry, for real: the SDK sends to a stand-in Sentry (an HTTP server on 127.0.0.1).

The stand-in records every envelope POSTed to `/api/<project>/envelope/`, decompressed and
parsed. The app is built by the real factory with a DSN pointing at it, so what is checked is
what would leave the process in production: one event per unhandled error, tagged with the
correlation ID, release and environment, and free of request bodies and credentials.
"""

from __future__ import annotations

import gzip
import json
import threading
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
import sentry_sdk
from fastapi import FastAPI

FLUSH_TIMEOUT = 5.0
BOOM_SECRET = "secret-token-xyz"
COOKIE_SECRET = "cookie-secret-abc"
BODY_MARKER = "body-marker-must-not-leave-the-process"


@dataclass
class Envelope:
    raw: bytes  # decompressed
    headers: dict[str, Any]
    items: list[tuple[dict[str, Any], bytes]]

    def payloads(self, item_type: str) -> list[dict[str, Any]]:
        return [json.loads(body) for header, body in self.items if header.get("type") == item_type]


@dataclass
class FakeSentry:
    """What the stand-in received; `dsn` points the SDK at it."""

    port: int
    envelopes: list[Envelope] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def dsn(self) -> str:
        return f"http://publickey@127.0.0.1:{self.port}/1"

    def events(self) -> list[dict[str, Any]]:
        with self.lock:
            return [event for env in self.envelopes for event in env.payloads("event")]

    def raw(self) -> bytes:
        with self.lock:
            return b"\n".join(env.raw for env in self.envelopes)


def decompress(body: bytes, encoding: str) -> bytes:
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "deflate":
        return zlib.decompress(body)
    if encoding == "br":
        try:
            import brotli  # type: ignore[import-not-found]  # only if the SDK chose it
        except ImportError:
            raise ValueError("brotli-compressed envelope, but brotli is not installed") from None
        return bytes(brotli.decompress(body))
    raise ValueError(f"unexpected Content-Encoding {encoding!r}")


def parse_envelope(raw: bytes) -> Envelope:
    """An envelope: a JSON header line, then per item a JSON header line and its payload."""
    header_line, _, rest = raw.partition(b"\n")
    items: list[tuple[dict[str, Any], bytes]] = []
    while rest.strip():
        item_line, _, rest = rest.partition(b"\n")
        item_header = json.loads(item_line)
        if "length" in item_header:
            length = int(item_header["length"])
            payload, rest = rest[:length], rest[length:]
            rest = rest.removeprefix(b"\n")
        else:
            payload, _, rest = rest.partition(b"\n")
        items.append((item_header, payload))
    return Envelope(raw=raw, headers=json.loads(header_line), items=items)


def make_handler(sentry: FakeSentry) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            try:
                parts = self.path.split("?", 1)[0].strip("/").split("/")
                if len(parts) != 3 or parts[0] != "api" or parts[2] != "envelope":
                    raise ValueError(f"unexpected path {self.path}")
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                raw = decompress(body, self.headers.get("Content-Encoding", ""))
                envelope = parse_envelope(raw)
            except Exception as exc:
                with sentry.lock:
                    sentry.errors.append(f"{type(exc).__name__}: {exc}")
                self.send_response(HTTPStatus.BAD_REQUEST)
            else:
                with sentry.lock:
                    sentry.envelopes.append(envelope)
                self.send_response(HTTPStatus.OK)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep test output quiet

    return Handler


@pytest.fixture
def fake_sentry() -> Iterator[FakeSentry]:
    sentry = FakeSentry(port=0)
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(sentry))
    server.daemon_threads = True
    sentry.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield sentry
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
        assert not thread.is_alive()


@pytest.fixture
def sentry_app(
    build_app: Callable[..., FastAPI], fake_sentry: FakeSentry
) -> Iterator[Callable[..., FastAPI]]:
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
    fake_sentry: FakeSentry,
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
    assert event["release"] == f"testapp@{app.state.settings.version}"
    assert [value["type"] for value in event["exception"]["values"]] == ["RuntimeError"]
    assert event["level"] == "error"
    # No request body, no cookies; the credential header is masked in the request section.
    request = event["request"]
    assert "data" not in request
    assert "cookies" not in request
    assert request["headers"].get("authorization") == "[Filtered]"
    assert BODY_MARKER.encode() not in fake_sentry.raw()


async def test_credentials_never_leave_the_process(
    sentry_app: Callable[..., FastAPI], fake_sentry: FakeSentry, app_client: Callable[..., Any]
) -> None:
    async with app_client(sentry_app()) as client:
        await boom(client, "sentry-rid-2")
    flush()
    assert len(fake_sentry.events()) == 1
    raw = fake_sentry.raw()
    assert BOOM_SECRET.encode() not in raw
    assert COOKIE_SECRET.encode() not in raw


async def test_client_errors_send_no_event(
    sentry_app: Callable[..., FastAPI], fake_sentry: FakeSentry, app_client: Callable[..., Any]
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
    sentry_app: Callable[..., FastAPI], fake_sentry: FakeSentry, app_client: Callable[..., Any]
) -> None:
    async with app_client(sentry_app()) as client:
        first = await boom(client, "sentry-rid-a")
        assert (await client.get("/livez", headers={"X-Request-ID": "sentry-rid-b"})).is_success
        generated = await boom(client)
    flush()
    tags = [event["tags"]["request_id"] for event in fake_sentry.events()]
    assert tags == [first.headers["x-request-id"], generated.headers["x-request-id"]]
    assert tags[0] == "sentry-rid-a" and len(tags[1]) == 32
