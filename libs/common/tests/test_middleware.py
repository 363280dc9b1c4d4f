"""`middleware.py`'s edge layer driven as a bare ASGI app: hand-written scopes, `receive` and
`send`, no server, no database (what a whole app does with it is proved by
`test_app_errors.py`, `test_app_behaviour.py` and `test_security_headers.py`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson
import pytest
from starlette.types import Message, Receive, Scope, Send

from tripline_common.platform import CommonSettings, get_request_id
from tripline_common.web.middleware import API_CSP, EdgeMiddleware

LIMIT = 1024
PORT, OPS_PORT, ELSEWHERE = 8000, 9000, 1234

SETTINGS = CommonSettings(
    _env_file=None,  # type: ignore[call-arg]
    environment="test",
    database_url="postgresql+asyncpg://unused@127.0.0.1/unused",
    port=PORT,
    ops_port=OPS_PORT,
    trusted_hosts=["api.example.com", "*.tripline.test"],
    max_body_bytes=LIMIT,
    access_log=False,
)


async def echo(scope: Scope, receive: Receive, send: Send) -> None:
    """The app behind the edge: reads the whole body, answers how many bytes it got."""
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body", False):
            break
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": orjson.dumps({"received": len(body)})})


def http_scope(
    path: str = "/v1/things",
    *,
    host: bytes = b"api.example.com",
    port: int = PORT,
    headers: Sequence[tuple[bytes, bytes]] = (),
) -> Scope:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", host), *headers],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", port),
    }


class Answer:
    """What the edge sent back for one request."""

    def __init__(self, sent: list[Message]) -> None:
        starts = [m for m in sent if m["type"] == "http.response.start"]
        assert len(starts) == 1, sent  # One answer, never two.
        self.status: int = starts[0]["status"]
        self.headers: list[tuple[bytes, bytes]] = list(starts[0]["headers"])
        self.body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")

    def header(self, name: bytes) -> bytes:
        (value,) = [v for k, v in self.headers if k.lower() == name]
        return value

    def json(self) -> Any:
        return orjson.loads(self.body)


async def call(
    scope: Scope,
    app: Any = echo,
    *,
    body: Sequence[bytes] = (b"",),
    csp_by_prefix: Mapping[str, str] | None = None,
) -> Answer:
    """One request through `EdgeMiddleware(app)`, its body sent in the `body` chunks."""
    messages: list[Message] = [
        {"type": "http.request", "body": chunk, "more_body": index < len(body) - 1}
        for index, chunk in enumerate(body)
    ]

    async def receive() -> Message:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    edge = EdgeMiddleware(app, settings=SETTINGS, csp_by_prefix=csp_by_prefix)
    await edge(scope, receive, send)
    return Answer(sent)


def declared(size: int) -> list[tuple[bytes, bytes]]:
    return [(b"content-length", str(size).encode())]


# --- body size ----------------------------------------------------------------------------------


async def test_a_declared_body_at_the_limit_reaches_the_app_and_a_byte_more_is_a_413() -> None:
    at_limit = await call(http_scope(headers=declared(LIMIT)), body=[b"x" * LIMIT])
    over = await call(http_scope(headers=declared(LIMIT + 1)), body=[b"x" * (LIMIT + 1)])

    assert (at_limit.status, at_limit.json()) == (200, {"received": LIMIT})
    assert over.status == 413
    assert over.json()["code"] == "payload_too_large"


async def test_a_streamed_body_a_byte_past_the_limit_is_cut_off_with_a_413() -> None:
    at_limit = await call(http_scope(), body=[b"x" * 1000, b"x" * (LIMIT - 1000)])
    over = await call(http_scope(), body=[b"x" * 1000, b"x" * (LIMIT - 1000 + 1)])

    assert (at_limit.status, at_limit.json()) == (200, {"received": LIMIT})
    assert over.status == 413  # `Answer` also checks the app's own answer was never sent.
    assert over.header(b"connection") == b"close"


@pytest.mark.parametrize("length", [b"+5", b"1e3", b"0x10", b""])
async def test_a_content_length_that_is_not_a_plain_number_is_a_400(length: bytes) -> None:
    answer = await call(http_scope(headers=[(b"content-length", length)]))

    assert answer.status == 400
    assert answer.json()["message"] == "Invalid Content-Length header."


# --- hosts and ports ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "status"),
    [
        (b"api.example.com", 200),
        (b"api.example.com:443", 200),
        (b"eu.tripline.test", 200),
        (b"eu.tripline.test:8443", 200),
        (b"tripline.test", 400),  # `*.tripline.test` is its subdomains, not the domain itself.
        (b"eviltripline.test", 400),
        (b"api.example.com.evil.test", 400),
        (b"", 400),
    ],
)
async def test_hosts_are_matched_by_name_and_wildcard_suffix_whatever_the_port(
    host: bytes, status: int
) -> None:
    assert (await call(http_scope(host=host))).status == status


@pytest.mark.parametrize(
    ("path", "port", "status"),
    [
        ("/readyz", OPS_PORT, 200),
        ("/readyz", PORT, 404),
        ("/v1/things", PORT, 200),
        ("/v1/things", OPS_PORT, 404),
        ("/readyz", ELSEWHERE, 200),  # Neither port (an in-process transport): every path.
        ("/v1/things", ELSEWHERE, 200),
    ],
)
async def test_probes_answer_only_on_the_ops_port_and_the_api_only_on_the_public_one(
    path: str, port: int, status: int
) -> None:
    assert (await call(http_scope(path, port=port))).status == status


async def test_probes_on_the_ops_port_skip_the_host_check() -> None:
    # The kubelet and Prometheus address a pod by its IP.
    assert (await call(http_scope("/metrics", host=b"10.42.0.17", port=OPS_PORT))).status == 200


async def test_a_websocket_on_the_ops_port_is_closed_before_the_app_sees_it() -> None:
    reached: list[Scope] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        reached.append(scope)

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    async def receive() -> Message:
        return {"type": "websocket.connect"}

    scope = {**http_scope("/v1/stream", port=OPS_PORT), "type": "websocket", "subprotocols": []}
    await EdgeMiddleware(app, settings=SETTINGS)(scope, receive, send)

    assert sent == [{"type": "websocket.close", "code": 1008, "reason": "Not served here"}]
    assert reached == []


# --- headers ------------------------------------------------------------------------------------


async def test_security_headers_are_added_but_those_the_app_set_are_kept_once() -> None:
    async def framed(scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"x-frame-options", b"SAMEORIGIN")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"{}"})

    answer = await call(http_scope(), framed)

    assert answer.header(b"x-frame-options") == b"SAMEORIGIN"  # Exactly one, the app's.
    assert answer.header(b"x-content-type-options") == b"nosniff"
    assert answer.header(b"content-security-policy") == API_CSP.encode()


@pytest.mark.parametrize(
    ("path", "policy"),
    [
        ("/docs", "docs"),
        ("/docs/swagger.js", "docs"),
        ("/docs/oauth2-redirect", "redirect"),  # The longer prefix wins.
        ("/docsearch", API_CSP),  # A prefix is a path segment, not a string prefix.
        ("/v1/things", API_CSP),
    ],
)
async def test_the_content_security_policy_is_that_of_the_longest_matching_prefix(
    path: str, policy: str
) -> None:
    answer = await call(
        http_scope(path), csp_by_prefix={"/docs": "docs", "/docs/oauth2-redirect": "redirect"}
    )

    assert answer.header(b"content-security-policy") == policy.encode()


# --- errors -------------------------------------------------------------------------------------


async def test_a_plain_text_error_from_inner_middleware_is_answered_in_the_shared_shape() -> None:
    async def cors_refusal(scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"22")]
        await send({"type": "http.response.start", "status": 400, "headers": headers})
        await send({"type": "http.response.body", "body": b"Disallowed ", "more_body": True})
        await send({"type": "http.response.body", "body": b"CORS origin"})

    answer = await call(http_scope(headers=[(b"x-request-id", b"rid-cors")]), cors_refusal)

    assert answer.status == 400
    assert answer.header(b"content-type") == b"application/json"
    assert int(answer.header(b"content-length")) == len(answer.body)
    assert answer.json() == {
        "code": "bad_request",
        "message": "Disallowed CORS origin",
        "details": None,
        "request_id": "rid-cors",
    }


async def test_a_crash_before_answering_is_a_500_in_the_shared_shape() -> None:
    async def crash(scope: Scope, receive: Receive, send: Send) -> None:
        raise RuntimeError("password=hunter2")

    answer = await call(http_scope(), crash)

    assert answer.status == 500
    assert answer.json()["code"] == "internal_error"
    assert b"hunter2" not in answer.body


async def test_a_crash_after_the_answer_started_is_left_to_the_server() -> None:
    # Too late for a clean 500: a second response start would be a protocol error.
    async def crash_midway(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        raise RuntimeError("midway")

    with pytest.raises(RuntimeError, match="midway"):
        await call(http_scope(), crash_midway)


# --- correlation --------------------------------------------------------------------------------


async def test_a_request_id_of_128_characters_is_kept_and_one_of_129_is_replaced() -> None:
    longest, too_long = b"a" * 128, b"a" * 129

    kept = await call(http_scope(headers=[(b"x-request-id", longest)]))
    replaced = await call(http_scope(headers=[(b"x-request-id", too_long)]))

    assert kept.header(b"x-request-id") == longest
    assert len(replaced.header(b"x-request-id")) == 32


async def test_the_request_id_is_forgotten_when_the_request_ends() -> None:
    seen: list[str | None] = []

    async def remember(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(get_request_id())
        await echo(scope, receive, send)

    await call(http_scope(headers=[(b"x-request-id", b"rid-1")]), remember)

    assert seen == ["rid-1"]
    assert get_request_id() is None  # A later request on this task starts clean.
