"""The AsyncAPI 3.0 document of the alert streams, built from what the streams really use.

Payload schemas come from the models the streams send and read (`AlertEvent`, `Ping`, `Pong`),
close codes from `closes.CLOSES`, intervals and limits from the settings and the service's
constants: nothing here restates a fact the code holds. Served at `/asyncapi.json` beside
`/openapi.json` and committed as `docs/asyncapi/api.json` (`make openapi-snapshot`).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from tripline_api.alerts_stream.closes import CLOSES
from tripline_api.alerts_stream.schemas import Ping, Pong
from tripline_api.alerts_stream.service import (
    CREDENTIAL_QUERY_PARAMS,
    REPLAY_LIMIT,
    RESUME_QUERY,
    SSE_EVENT,
    SSE_RETRY_MILLISECONDS,
)
from tripline_api.settings import ApiSettings
from tripline_common.messaging import AlertData, AlertEvent

ASYNCAPI_URL = "/asyncapi.json"
ASYNCAPI_VERSION = "3.0.0"
WEBSOCKET_ADDRESS = "/v1/alerts/ws"
SSE_ADDRESS = "/v1/alerts/stream"
TICKETS_PATH = "/v1/alerts/stream-tickets"

# The document's own names: channels, messages, operations, security schemes.
WS_CHANNEL = "alertsWebSocket"
SSE_CHANNEL = "alertsEventStream"

EXAMPLE_ALERT = AlertEvent(
    alert=AlertData(
        id=uuid.UUID("4c1f2a9e-8d3b-4f6a-9c2e-1b7d5e3f9a01"),
        owner_id=uuid.UUID("9b2e7c4d-1a5f-4e8b-b3c6-2d9f0e1a7b44"),
        trip_id=uuid.UUID("07aa3d5e-6b1c-4f9d-8e2a-5c4b3d2e1f60"),
        device_id=uuid.UUID("5d10e8f7-3c2b-4a1d-9f6e-7b8c9d0e1f23"),
        rule="speeding",
        severity="warning",
        status="open",
        message="97 km/h, over the 80 km/h limit.",
        details={"speed_kmh": 97.0, "limit_kmh": 80.0, "fixes_over_limit": 3},
        raised_at=datetime(2026, 11, 27, 9, 14, 3, 512000, tzinfo=UTC),
        request_id="e2e-3f9c",
    )
)


TICKET_PARAM = {"type": "string", "description": f"A ticket from `POST {TICKETS_PATH}`."}
TICKET_QUERY = {"type": "object", "properties": {"ticket": TICKET_PARAM}}
"""The query parameter both streams take a ticket in."""
WS_QUERY = {
    "type": "object",
    "properties": {
        "ticket": TICKET_PARAM,
        RESUME_QUERY: {
            "type": "string",
            "description": "The last alert id received: replay the alerts raised after it.",
        },
    },
}
"""The WebSocket's query: the ticket, and where to resume."""


def _seconds(value: float) -> str:
    return f"{value:g} s"


def _example(name: str, summary: str, model: BaseModel) -> dict[str, Any]:
    return {"name": name, "summary": summary, "payload": model.model_dump(mode="json")}


def _schemas() -> dict[str, Any]:
    """JSON Schemas of the sent and read models, as they serialize, under components."""
    _, top = models_json_schema(
        [(AlertEvent, "serialization"), (Ping, "serialization"), (Pong, "validation")],
        ref_template="#/components/schemas/{model}",
    )
    schemas: dict[str, Any] = top["$defs"]
    return schemas


def _ref(path: str) -> dict[str, str]:
    return {"$ref": f"#/{path}"}


def asyncapi_document(settings: ApiSettings) -> dict[str, Any]:
    """The AsyncAPI document of `WS /v1/alerts/ws` and `GET /v1/alerts/stream`."""
    heartbeat = settings.alerts_ws_heartbeat_seconds
    pong_timeout = settings.alerts_ws_pong_timeout_seconds
    sse_heartbeat = settings.alerts_sse_heartbeat_seconds
    ticket_ttl = settings.stream_ticket_ttl_seconds
    refused_in_url = ", ".join(f"`?{name}=`" for name in CREDENTIAL_QUERY_PARAMS)
    security = [
        _ref("components/securitySchemes/streamTicket"),
        _ref("components/securitySchemes/bearerToken"),
    ]
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": "Tripline API: real-time alerts",
            "version": settings.version,
            "description": (
                "Your alerts as they are raised, on a WebSocket or as Server-Sent Events, from "
                "any API replica. Both streams send the same alert document (the body of alert "
                "webhooks too). The REST operations, including the ticket endpoint "
                f"`POST {TICKETS_PATH}`, are in the OpenAPI document at `/openapi.json`.\n\n"
                "**Authenticate** with a single-use ticket in the URL, `?ticket=`: trade your "
                f"access token for one at `POST {TICKETS_PATH}` (with `Authorization: Bearer`); "
                f"it is valid once, for {_seconds(ticket_ttl)} (`STREAM_TICKET_TTL_SECONDS`). "
                "This is the way for browsers, whose `WebSocket` and `EventSource` cannot send "
                "headers. Clients that can send headers may send `Authorization: Bearer "
                "<access token>` instead. An access token in the URL "
                f"({refused_in_url}) is refused with HTTP 400 `credential_in_url`.\n\n"
                "**Lifetime.** A stream ends when the access token it was opened with expires "
                "and when its session is logged out or revoked or its user disabled (re-checked "
                f"every {_seconds(heartbeat)}, `ALERTS_WS_HEARTBEAT_SECONDS`): get a fresh "
                "ticket and reconnect. A user holds at most "
                f"{settings.alerts_stream_max_per_user} streams (`ALERTS_STREAM_MAX_PER_USER`, "
                "both transports, all replicas).\n\n"
                "**Delivery** is at most once while connected; the record is "
                "`GET /v1/alerts`. Both streams resume: the SSE stream after `Last-Event-ID`, "
                f"a WebSocket after `?{RESUME_QUERY}=`."
            ),
        },
        "defaultContentType": "application/json",
        "servers": {
            "websocket": {
                "host": "{host}",
                "protocol": "ws",
                "description": "The public API (`wss` where it is served over TLS).",
                "variables": {"host": {"default": f"127.0.0.1:{settings.port}"}},
            },
            "http": {
                "host": "{host}",
                "protocol": "http",
                "description": "The public API (`https` where it is served over TLS).",
                "variables": {"host": {"default": f"127.0.0.1:{settings.port}"}},
            },
        },
        "channels": {
            WS_CHANNEL: {
                "address": WEBSOCKET_ADDRESS,
                "title": "Alerts on a WebSocket",
                "description": (
                    "Open with `?ticket=` or `Authorization: Bearer`; without valid credentials "
                    "the handshake is refused with HTTP 403 (400 `credential_in_url` for a token "
                    "in the URL). The server sends alert events and, every "
                    f"{_seconds(heartbeat)} (`ALERTS_WS_HEARTBEAT_SECONDS`), a ping; answer "
                    f"each ping with a pong within {_seconds(pong_timeout)} "
                    "(`ALERTS_WS_PONG_TIMEOUT_SECONDS`) or the socket is closed 4408. Other "
                    "client messages are ignored. **Resume** by opening with "
                    f"`?{RESUME_QUERY}=<the last alert id received>`: the alerts raised after "
                    f"it are replayed first, oldest first, at most {REPLAY_LIMIT}, then live "
                    "ones follow, each sent once. Close codes: `x-close-codes`."
                ),
                "servers": [_ref("servers/websocket")],
                "x-resume": {"query": RESUME_QUERY, "replayLimit": REPLAY_LIMIT},
                "messages": {
                    "alertRaised": _ref("components/messages/alertRaised"),
                    "ping": _ref("components/messages/ping"),
                    "pong": _ref("components/messages/pong"),
                },
                "bindings": {
                    "ws": {
                        "method": "GET",
                        "query": WS_QUERY,
                        "headers": {
                            "type": "object",
                            "properties": {
                                "Authorization": {
                                    "type": "string",
                                    "description": "`Bearer <access token>`, instead of a ticket.",
                                }
                            },
                        },
                        "bindingVersion": "0.1.0",
                    }
                },
                "x-close-codes": [
                    {
                        "code": close.code,
                        "reason": close.reason,
                        "meaning": close.meaning,
                        "handshake": close.handshake,
                    }
                    for close in CLOSES
                ],
                "x-heartbeat": {
                    "pingIntervalSeconds": heartbeat,
                    "pongTimeoutSeconds": pong_timeout,
                },
            },
            SSE_CHANNEL: {
                "address": SSE_ADDRESS,
                "title": "Alerts as Server-Sent Events",
                "description": (
                    "`GET`, with `?ticket=` or `Authorization: Bearer`; refused requests get "
                    "an HTTP error in the shared error shape (the OpenAPI document lists "
                    "them). The body opens "
                    f"with `retry: {SSE_RETRY_MILLISECONDS}`, then sends each alert as "
                    f"`id: <alert id>`, `event: {SSE_EVENT}`, `data: <alert event JSON>`, and "
                    f"a `: ping` comment after {_seconds(sse_heartbeat)} without an alert "
                    "(`ALERTS_SSE_HEARTBEAT_SECONDS`). **Resume** by sending the last `id:` "
                    "received as the `Last-Event-ID` header (`EventSource` does it by itself): "
                    "the alerts raised after it are replayed first, oldest first, at most "
                    f"{REPLAY_LIMIT}, then live ones follow, each sent once. The response ends "
                    "when the stream's session or token does: reconnect with a fresh ticket."
                ),
                "servers": [_ref("servers/http")],
                "messages": {"alert": _ref("components/messages/alertEvent")},
                "x-heartbeat": {"commentIntervalSeconds": sse_heartbeat, "comment": ": ping"},
                "x-resume": {
                    "header": "Last-Event-ID",
                    "replayLimit": REPLAY_LIMIT,
                    "retryMilliseconds": SSE_RETRY_MILLISECONDS,
                },
            },
        },
        "operations": {
            "sendAlertsOnWebSocket": {
                "action": "send",
                "channel": _ref(f"channels/{WS_CHANNEL}"),
                "title": "Alerts pushed on the WebSocket",
                "summary": "Each of your alerts, as it is raised.",
                "messages": [_ref(f"channels/{WS_CHANNEL}/messages/alertRaised")],
                "security": security,
            },
            "pingOnWebSocket": {
                "action": "send",
                "channel": _ref(f"channels/{WS_CHANNEL}"),
                "title": "Heartbeat",
                "summary": f"A ping every {_seconds(heartbeat)}; answer with a pong.",
                "messages": [_ref(f"channels/{WS_CHANNEL}/messages/ping")],
                "reply": {
                    "channel": _ref(f"channels/{WS_CHANNEL}"),
                    "messages": [_ref(f"channels/{WS_CHANNEL}/messages/pong")],
                },
                "security": security,
            },
            "sendAlertsAsServerSentEvents": {
                "action": "send",
                "channel": _ref(f"channels/{SSE_CHANNEL}"),
                "title": "Alerts as Server-Sent Events",
                "summary": "Replayed after `Last-Event-ID`, then each alert as it is raised.",
                "messages": [_ref(f"channels/{SSE_CHANNEL}/messages/alert")],
                "security": security,
                "bindings": {
                    "http": {
                        "method": "GET",
                        "query": TICKET_QUERY,
                        "bindingVersion": "0.3.0",
                    }
                },
            },
        },
        "components": {
            "schemas": _schemas(),
            "messages": {
                "alertRaised": {
                    "name": "alert.raised",
                    "title": "An alert was raised",
                    "summary": "One text frame of compact JSON per alert.",
                    "contentType": "application/json",
                    "payload": _ref("components/schemas/AlertEvent"),
                    "examples": [_example("speeding", "A speeding alert.", EXAMPLE_ALERT)],
                },
                "alertEvent": {
                    "name": SSE_EVENT,
                    "title": "An alert was raised",
                    "summary": f"An SSE event named `{SSE_EVENT}`: `id:` the alert's id, "
                    "`data:` this JSON on one line.",
                    "contentType": "application/json",
                    "payload": _ref("components/schemas/AlertEvent"),
                    "examples": [_example("speeding", "A speeding alert.", EXAMPLE_ALERT)],
                },
                "ping": {
                    "name": "ping",
                    "title": "Heartbeat",
                    "summary": "Answer with a pong.",
                    "contentType": "application/json",
                    "payload": _ref("components/schemas/Ping"),
                    "examples": [_example("ping", "A ping.", Ping())],
                },
                "pong": {
                    "name": "pong",
                    "title": "Heartbeat answer",
                    "summary": "Sent by the client after each ping.",
                    "contentType": "application/json",
                    "payload": _ref("components/schemas/Pong"),
                    "examples": [_example("pong", "A pong.", Pong(type="pong"))],
                },
            },
            "securitySchemes": {
                "streamTicket": {
                    "type": "httpApiKey",
                    "name": "ticket",
                    "in": "query",
                    "description": f"A single-use ticket from `POST {TICKETS_PATH}`, valid "
                    f"for {_seconds(ticket_ttl)}.",
                },
                "bearerToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "An access token from `POST /v1/auth/token`, in the "
                    "`Authorization` header.",
                },
            },
        },
    }
