"""Every way the alert WebSocket is closed: code, reason and meaning, in one table.

The stream code closes sockets only with these constants, and the AsyncAPI document
(`asyncapi.py`) and the README list exactly this table, so what a client reads is what it gets
(`services/api/tests/test_asyncapi.py` holds both sides to it).
"""

from __future__ import annotations

from dataclasses import dataclass

# Close codes: RFC 6455 (1000-2999) and the application range (4000-4999).
CLOSE_GOING_AWAY = 1001
CLOSE_POLICY_VIOLATION = 1008
CLOSE_TRY_AGAIN = 1013
CLOSE_HEARTBEAT_TIMEOUT = 4408  # 4000 + HTTP 408 Request Timeout.


@dataclass(frozen=True)
class StreamClose:
    """One way a stream's WebSocket is closed: the close frame's code and reason, and what a
    client should make of it. `handshake` closes happen before the socket is accepted, so the
    client sees the HTTP answer to its handshake (403), not a close frame."""

    code: int
    reason: str
    meaning: str
    handshake: bool = False


AUTHENTICATION_REQUIRED = StreamClose(
    CLOSE_POLICY_VIOLATION,
    "authentication required",
    "No valid ticket or bearer token (missing, unknown, used, expired, another session's, or "
    "its session revoked): the handshake is refused with HTTP 403. Get a fresh ticket.",
    handshake=True,
)
SERVER_SHUTTING_DOWN = StreamClose(
    CLOSE_GOING_AWAY,
    "server shutting down",
    "This API process is shutting down: reconnect with `last_event_id` to catch up.",
)
SESSION_REVOKED = StreamClose(
    CLOSE_POLICY_VIOLATION,
    "session revoked",
    "The session was logged out or revoked, or its user disabled: log in again.",
)
TOKEN_EXPIRED = StreamClose(
    CLOSE_POLICY_VIOLATION,
    "token expired",
    "The access token the stream was opened with (directly or through its ticket) expired: "
    "refresh it, get a new ticket and reconnect.",
)
TOO_MANY_STREAMS = StreamClose(
    CLOSE_POLICY_VIOLATION,
    "too many streams",
    "You hold `ALERTS_STREAM_MAX_PER_USER` streams already (WebSocket and SSE, all replicas): "
    "close one first. Sent right after the socket is accepted.",
)
TOO_SLOW = StreamClose(
    CLOSE_TRY_AGAIN,
    "too slow: reconnect and catch up",
    "The client read too slowly and `ALERTS_STREAM_QUEUE_SIZE` alerts piled up: reconnect with "
    "`last_event_id` to catch up.",
)
SESSION_CHECK_UNAVAILABLE = StreamClose(
    CLOSE_TRY_AGAIN,
    "session check unavailable: reconnect",
    "The server could not re-check the session (database unavailable) and does not keep an "
    "unchecked stream open: reconnect later.",
)
REPLAY_UNAVAILABLE = StreamClose(
    CLOSE_TRY_AGAIN,
    "replay unavailable: reconnect",
    "The server could not read the alerts to replay after `last_event_id` (database "
    "unavailable): reconnect later with the same `last_event_id`.",
)
SERVER_AT_CAPACITY = StreamClose(
    CLOSE_TRY_AGAIN,
    "server at capacity",
    "This API process holds `ALERTS_STREAM_MAX_PER_PROCESS` streams: reconnect later, possibly "
    "to another replica. Sent right after the socket is accepted.",
)
NO_PONG = StreamClose(
    CLOSE_HEARTBEAT_TIMEOUT,
    "no pong",
    'No `{"type":"pong"}` arrived within `ALERTS_WS_PONG_TIMEOUT_SECONDS` of a ping: reconnect.',
)

CLOSES = (
    AUTHENTICATION_REQUIRED,
    SERVER_SHUTTING_DOWN,
    SESSION_REVOKED,
    TOKEN_EXPIRED,
    TOO_MANY_STREAMS,
    TOO_SLOW,
    SESSION_CHECK_UNAVAILABLE,
    REPLAY_UNAVAILABLE,
    SERVER_AT_CAPACITY,
    NO_PONG,
)
