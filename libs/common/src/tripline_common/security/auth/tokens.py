"""Access tokens (short-lived JWTs naming their session) and opaque refresh tokens."""

from __future__ import annotations

import functools
import hashlib
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt

from tripline_common.platform.errors import UnauthorizedError
from tripline_common.platform.settings import CommonSettings

# One algorithm, fixed here and required when decoding: a token saying `alg: none` or an
# asymmetric algorithm is refused before its signature is even looked at.
ALGORITHM = "HS256"
_REQUIRED_CLAIMS = ["sub", "sid", "exp", "iat", "jti", "aud", "iss"]
_LEEWAY_SECONDS = 5


@dataclass(frozen=True)
class AccessClaims:
    """What a valid access token says: who, which session, until when."""

    user_id: uuid.UUID
    session_id: uuid.UUID
    role: str
    expires_at: datetime
    token_id: str


def create_access_token(
    settings: CommonSettings,
    *,
    user_id: uuid.UUID,
    session_id: uuid.UUID,
    role: str,
    now: datetime | None = None,
) -> str:
    """A signed JWT with sub, sid (the session row), role, exp, iat, jti, aud and iss."""
    issued = now or datetime.now(UTC)
    payload = {
        "sub": str(user_id),
        "sid": str(session_id),
        "role": role,
        "iat": issued,
        "exp": issued + timedelta(seconds=settings.access_token_ttl_seconds),
        "jti": uuid.uuid4().hex,
        "aud": settings.jwt_audience,
        "iss": settings.jwt_issuer,
    }
    # Always signed with the current key; SECRET_KEY_PREVIOUS only verifies.
    return jwt.encode(payload, settings.secret_key.get_secret_value(), algorithm=ALGORITHM)


def decode_access_token(settings: CommonSettings, token: str) -> AccessClaims:
    """Verify signature, algorithm, audience and issuer (cached per token), then expiry; 401.

    The signature may be by SECRET_KEY or by any key of SECRET_KEY_PREVIOUS, so that tokens
    issued before a key rotation stay valid until they expire (docs/operations.md, "Rotating
    the secret key")."""
    claims = _verified_claims(
        token, settings.secret_keys(), settings.jwt_audience, settings.jwt_issuer
    )
    if claims.expires_at.timestamp() + _LEEWAY_SECONDS < time.time():
        raise UnauthorizedError("The access token has expired.", code="token_expired")
    return claims


# Verifying a JWT (HMAC, JSON, claim checks) costs tens of microseconds on every request of a
# client that reuses its token. The verification of a given token string with given keys is a
# pure function, so it is cached; expiry, the one thing that changes with time, is checked on
# every call above, and revocation is checked against the session row by the caller. The keys
# are part of the cache key: once a key is removed from the settings, what it signed no longer
# verifies, cached or not.
@functools.lru_cache(maxsize=4096)
def _verified_claims(token: str, keys: tuple[str, ...], audience: str, issuer: str) -> AccessClaims:
    for index, key in enumerate(keys):
        try:
            payload = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=audience,
                issuer=issuer,
                options={"require": _REQUIRED_CLAIMS, "verify_exp": False},
            )
            return AccessClaims(
                user_id=uuid.UUID(payload["sub"]),
                session_id=uuid.UUID(payload["sid"]),
                role=str(payload.get("role", "")),
                expires_at=datetime.fromtimestamp(payload["exp"], UTC),
                token_id=str(payload["jti"]),
            )
        except jwt.InvalidSignatureError:
            # Signed with another key: try the next one (the current key comes first).
            if index + 1 < len(keys):
                continue
        except (jwt.InvalidTokenError, ValueError, TypeError, KeyError, OverflowError):
            # The signature was fine (PyJWT checks it first) or the token is malformed: no
            # other key would make it valid.
            pass
        break
    raise UnauthorizedError("The access token is not valid.", code="invalid_token")


def new_opaque_token() -> str:
    """A random, URL-safe token of 256 bits (refresh tokens, mailed account tokens, stream
    tickets); only its `hash_token` is ever stored."""
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """SHA-256 hex of a random token (enough for 256-bit secrets; no salt or Argon2 needed)."""
    return hashlib.sha256(token.encode()).hexdigest()
