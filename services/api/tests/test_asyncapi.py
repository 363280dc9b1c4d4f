"""The alert streams' AsyncAPI document: valid AsyncAPI 3.0, served like the OpenAPI document,
built from the code's own models, settings and close table, and told the same in the README.

Real messages of the running streams are checked against it in `test_alerts_stream.py`
(`test_real_stream_messages_match_the_asyncapi_document`).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import pytest

from tests.support.asyncapi import asyncapi_errors, message_payload_validator
from tripline_api.alerts_stream import closes
from tripline_api.alerts_stream.asyncapi import (
    ASYNCAPI_URL,
    SSE_CHANNEL,
    WS_CHANNEL,
    asyncapi_document,
)
from tripline_api.alerts_stream.closes import CLOSES, StreamClose
from tripline_api.alerts_stream.service import REPLAY_LIMIT, SSE_RETRY_MILLISECONDS
from tripline_api.main import create_api_app
from tripline_api.settings import ApiSettings

ROOT = Path(__file__).resolve().parents[3]
STREAM_SOURCES = Path(closes.__file__).parent


def channel_messages(document: dict[str, Any]) -> list[str]:
    """A JSON pointer to each message of each channel."""
    return [
        f"channels/{channel}/messages/{message}"
        for channel, spec in document["channels"].items()
        for message in spec["messages"]
    ]


def resolve(document: dict[str, Any], pointer: str) -> Any:
    node: Any = document
    for part in pointer.removeprefix("#/").split("/"):
        node = node[part]
    while isinstance(node, dict) and "$ref" in node:
        node = resolve(document, node["$ref"])
    return node


async def test_the_api_serves_an_asyncapi_document_valid_against_the_official_3_0_schema(
    make_settings, app_client
) -> None:
    async with app_client(create_api_app(make_settings(ApiSettings))) as client:
        response = await client.get(ASYNCAPI_URL)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    document = response.json()
    assert document["asyncapi"] == "3.0.0"
    assert asyncapi_errors(document) == []


def test_the_asyncapi_schema_check_catches_a_broken_document(make_settings) -> None:
    document = asyncapi_document(make_settings(ApiSettings))
    document["operations"]["sendAlertsAsServerSentEvents"]["bindings"]["http"]["method"] = "GO"
    del document["channels"][WS_CHANNEL]["address"]
    document["channels"][WS_CHANNEL]["addres"] = "/v1/alerts/ws"
    assert len(asyncapi_errors(document)) == 2


async def test_the_asyncapi_document_is_not_served_when_docs_are_disabled(
    make_settings, app_client
) -> None:
    app = create_api_app(make_settings(ApiSettings, docs_enabled=False))
    async with app_client(app) as client:
        assert (await client.get(ASYNCAPI_URL)).status_code == 404
        assert (await client.get("/openapi.json")).status_code == 404


def test_every_reference_in_the_asyncapi_document_resolves(make_settings) -> None:
    document = asyncapi_document(make_settings(ApiSettings))
    refs: list[str] = []

    def collect(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str):
                refs.append(node["$ref"])
            for value in node.values():
                collect(value)
        elif isinstance(node, list):
            for value in node:
                collect(value)

    collect(document)
    assert refs
    for ref in refs:
        assert ref.startswith("#/"), ref
        resolve(document, ref)  # KeyError names a dangling reference.


def test_every_message_example_validates_against_its_payload_schema(make_settings) -> None:
    document = asyncapi_document(make_settings(ApiSettings))
    pointers = channel_messages(document)
    assert len(pointers) == 4  # alert, ping, pong on the WebSocket; alert on SSE.
    for pointer in pointers:
        examples = resolve(document, pointer)["examples"]
        assert examples, pointer
        validator = message_payload_validator(document, pointer)
        for example in examples:
            assert list(validator.iter_errors(example["payload"])) == [], (pointer, example)


def test_a_payload_schema_refuses_another_messages_payload(make_settings) -> None:
    # The schemas are tight enough to tell the messages apart: a check that passes everything
    # would prove nothing about real messages.
    document = asyncapi_document(make_settings(ApiSettings))
    ws = f"channels/{WS_CHANNEL}/messages"
    alert = resolve(document, f"{ws}/alertRaised")["examples"][0]["payload"]
    for pointer, payload in [
        (f"{ws}/ping", {"type": "pong"}),
        (f"{ws}/alertRaised", {"type": "ping"}),
        (f"{ws}/alertRaised", {**alert, "alert": {**alert["alert"], "id": "not-a-uuid"}}),
        (f"{ws}/alertRaised", {**alert, "version": 2}),
    ]:
        assert list(message_payload_validator(document, pointer).iter_errors(payload)), payload


def test_the_document_states_the_heartbeats_and_limits_of_its_settings(make_settings) -> None:
    settings = make_settings(
        ApiSettings,
        alerts_ws_heartbeat_seconds=7,
        alerts_ws_pong_timeout_seconds=3,
        alerts_sse_heartbeat_seconds=5,
        stream_ticket_ttl_seconds=12,
        alerts_stream_max_per_user=4,
    )
    document = asyncapi_document(settings)
    ws, sse = document["channels"][WS_CHANNEL], document["channels"][SSE_CHANNEL]
    assert ws["x-heartbeat"] == {"pingIntervalSeconds": 7, "pongTimeoutSeconds": 3}
    assert "every 7 s" in ws["description"]
    assert "within 3 s" in ws["description"]
    assert sse["x-heartbeat"]["commentIntervalSeconds"] == 5
    assert "after 5 s without an alert" in sse["description"]
    assert sse["x-resume"] == {
        "header": "Last-Event-ID",
        "replayLimit": REPLAY_LIMIT,
        "retryMilliseconds": SSE_RETRY_MILLISECONDS,
    }
    assert "for 12 s" in document["components"]["securitySchemes"]["streamTicket"]["description"]
    assert "at most 4 streams" in document["info"]["description"]


def test_the_document_lists_exactly_the_close_table(make_settings) -> None:
    document = asyncapi_document(make_settings(ApiSettings))
    documented = document["channels"][WS_CHANNEL]["x-close-codes"]
    assert [(c["code"], c["reason"], c["handshake"]) for c in documented] == [
        (c.code, c.reason, c.handshake) for c in CLOSES
    ]
    # A close frame's reason is at most 123 bytes (RFC 6455, 5.5).
    assert all(len(c.reason.encode()) <= 123 for c in CLOSES)


def _stream_sources() -> dict[str, ast.Module]:
    return {
        path.name: ast.parse(path.read_text())
        for path in sorted(STREAM_SOURCES.glob("*.py"))
        if path.name != "closes.py"
    }


def test_the_stream_code_sends_every_documented_close_and_no_other() -> None:
    constants = {name for name, value in vars(closes).items() if isinstance(value, StreamClose)}
    assert {getattr(closes, name) for name in constants} == set(CLOSES)
    used: set[str] = set()
    frames_sent_in: list[str] = []
    for module in _stream_sources().values():
        for function in ast.walk(module):
            if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(function):
                if isinstance(node, ast.Name) and node.id in constants:
                    used.add(node.id)
                # A close frame with a code: `websocket.close(code=...)`.
                if (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "close"
                    and any(keyword.arg == "code" for keyword in node.keywords)
                ):
                    frames_sent_in.append(function.name)
    # Every close frame goes through the one helper, which takes a documented `StreamClose`...
    assert frames_sent_in == ["close_websocket"]
    # ...and every documented close is one the code sends.
    assert used == constants


# The README's "Real-time alerts" section ---------------------------------------------------


def readme_section() -> str:
    text = (ROOT / "README.md").read_text()
    match = re.search(r"^## Real-time alerts\n(.*?)(?=^## )", text, re.DOTALL | re.MULTILINE)
    assert match, "README.md has no '## Real-time alerts' section"
    return match.group(1)


def test_the_readme_links_the_asyncapi_document_and_its_snapshot() -> None:
    section = readme_section()
    assert f"`{ASYNCAPI_URL}`" in section
    assert "(docs/asyncapi/api.json)" in section
    assert (ROOT / "docs/asyncapi/api.json").is_file()


def test_every_setting_the_readme_quotes_has_the_default_it_states() -> None:
    # The form is "`SETTING_NAME` (20 s)" or "`SETTING_NAME` (10)".
    quoted = re.findall(r"`([A-Z][A-Z0-9_]+)`\s+\((\d+(?:\.\d+)?)(?: s)?\)", readme_section())
    names = {name for name, _ in quoted}
    assert {
        "ALERTS_WS_HEARTBEAT_SECONDS",
        "ALERTS_WS_PONG_TIMEOUT_SECONDS",
        "ALERTS_SSE_HEARTBEAT_SECONDS",
        "STREAM_TICKET_TTL_SECONDS",
        "ALERTS_STREAM_MAX_PER_USER",
    } <= names
    for name, value in quoted:
        field = ApiSettings.model_fields[name.lower()]
        assert float(value) == field.default, name


def test_the_readme_states_the_replay_limit_and_retry_of_the_code() -> None:
    section = " ".join(readme_section().split())  # As read, whatever the line breaks.
    assert f"at most {REPLAY_LIMIT:,}" in section
    assert f"`retry: {SSE_RETRY_MILLISECONDS}`" in section


@pytest.mark.parametrize("close", CLOSES, ids=lambda close: close.reason)
def test_the_readme_close_table_has_each_close_of_the_code(close: StreamClose) -> None:
    rows = re.findall(r"^\| (\d{4}|HTTP 403) \| `([^`]+)` \|", readme_section(), re.MULTILINE)
    code = "HTTP 403" if close.handshake else str(close.code)
    assert (code, close.reason) in rows
    assert len(rows) == len(CLOSES)
