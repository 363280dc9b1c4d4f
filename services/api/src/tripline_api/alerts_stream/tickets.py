"""Stream tickets: short-lived, single-use credentials for the URL of a WebSocket or SSE stream.

A browser's `WebSocket` and `EventSource` cannot send an `Authorization` header, and a URL ends
up in access logs, proxy logs and browser history, so the access token must never travel in
one. Instead the client trades its bearer token (in the header) for a random ticket, and opens
the stream with `?ticket=`. Only the ticket's SHA-256 is stored, in Redis, with a TTL; redeeming
it is one `GETDEL`, so of two concurrent redemptions exactly one succeeds. The ticket carries the
claims of the token it was issued against (user, session, expiry): the stream it opens ends when
that token expires, and the session is re-checked while it is open (`service.watch_session`).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import orjson
from redis.asyncio import Redis

from tripline_common.platform import UnauthorizedError
from tripline_common.security import AccessClaims, hash_token, new_opaque_token

_KEY_PREFIX = "tripline:stream-ticket:"


def _key(ticket: str) -> str:
    key: str = _KEY_PREFIX + hash_token(ticket)
    return key


async def issue_ticket(redis: Redis, claims: AccessClaims, *, ttl_seconds: int) -> str:
    """A new ticket for the session of `claims`, redeemable once within `ttl_seconds`."""
    ticket = new_opaque_token()
    value = orjson.dumps(
        {
            "user_id": str(claims.user_id),
            "session_id": str(claims.session_id),
            "role": claims.role,
            "expires_at": claims.expires_at.timestamp(),
            "token_id": claims.token_id,
        }
    )
    await redis.set(_key(ticket), value, ex=ttl_seconds)
    return ticket


async def redeem_ticket(redis: Redis, ticket: str) -> AccessClaims:
    """The claims the ticket was issued with; the ticket is gone afterwards. 401 when it is
    unknown, used, or expired (Redis dropped it), or when the token it came from has expired."""
    raw = await redis.getdel(_key(ticket)) if ticket else None
    if raw is None:
        raise UnauthorizedError(
            "The stream ticket is not valid: unknown, already used or expired.",
            code="invalid_ticket",
        )
    stored = orjson.loads(raw)
    claims = AccessClaims(
        user_id=uuid.UUID(stored["user_id"]),
        session_id=uuid.UUID(stored["session_id"]),
        role=str(stored["role"]),
        expires_at=datetime.fromtimestamp(stored["expires_at"], UTC),
        token_id=str(stored["token_id"]),
    )
    if claims.expires_at <= datetime.now(UTC):
        raise UnauthorizedError(
            "The access token behind the ticket has expired.", code="token_expired"
        )
    return claims
