"""The console's credentials: the signed session cookie, CSRF tokens, and the dependencies
that resolve the signed-in operator and check the token of every state-changing request."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import Depends, Request
from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.responses import Response

from tripline_admin.settings import AdminSettings
from tripline_admin.state import AdminSettingsDep
from tripline_common.data import PgExecutor
from tripline_common.data.models import UserRole
from tripline_common.platform import ForbiddenError
from tripline_common.security import Principal, live_session_sql
from tripline_common.web import PgDep

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
STAFF = frozenset({UserRole.OPERATOR, UserRole.ADMIN})
CSRF_FIELD = "csrf_token"
LAST_SEEN_WRITE_INTERVAL = timedelta(seconds=60)
REFRESH_HEADER = "x-console-refresh"
"""Sent by console.js when it reloads part of an open page by itself: not the operator's use."""


class ConsoleLoginRequired(Exception):  # noqa: N818 - a signal to redirect, not an error
    """No valid console session: the handler redirects to the login page."""

    def __init__(self, reason: str | None = None) -> None:
        self.reason = reason
        super().__init__(reason or "login required")


class CsrfRejectedError(ForbiddenError):
    """A state-changing console request without the right CSRF token."""

    code = "csrf_failed"
    message = "This form has expired or did not come from the console. Reload the page and retry."


class CrossSiteRejectedError(ForbiddenError):
    """A state-changing console request sent from another site (its `Origin` or
    `Sec-Fetch-Site` says so), whatever token and cookie it carries."""

    code = "cross_site_request"
    message = "Console actions can only be sent from the console's own pages."


# --- Cookies --------------------------------------------------------------------------------


def cookie_name(settings: AdminSettings, purpose: str) -> str:
    """`__Host-` prefixed when secure: the browser then refuses the cookie unless it is Secure,
    host-only and for path /, so no subdomain or plain-HTTP page can plant or shadow it."""
    name = f"tripline_console_{purpose}"
    return f"__Host-{name}" if settings.console_cookie_secure else name


def set_cookie(
    response: Response, settings: AdminSettings, purpose: str, value: str, max_age: int
) -> None:
    """Set a console cookie with the strict flags: HttpOnly, Secure, SameSite=Strict, path /."""
    response.set_cookie(
        cookie_name(settings, purpose),
        value,
        max_age=max_age,
        path="/",
        secure=settings.console_cookie_secure,
        httponly=True,
        samesite="strict",
    )


def delete_cookie(response: Response, settings: AdminSettings, purpose: str) -> None:
    """Expire a console cookie (with the same flags, or browsers may keep it)."""
    response.delete_cookie(
        cookie_name(settings, purpose),
        path="/",
        secure=settings.console_cookie_secure,
        httponly=True,
        samesite="strict",
    )


def _serializer(settings: AdminSettings, purpose: str) -> URLSafeTimedSerializer:
    # itsdangerous signs with the last key of the list and accepts any: a cookie signed before
    # SECRET_KEY was rotated (the old key now in SECRET_KEY_PREVIOUS) stays valid.
    keys = list(reversed(settings.secret_keys()))
    return URLSafeTimedSerializer(keys, salt=f"tripline.console.{purpose}")


def sign(settings: AdminSettings, purpose: str, payload: Any) -> str:
    """`payload` signed (not encrypted) for a cookie of `purpose`."""
    return str(_serializer(settings, purpose).dumps(payload))


def unsign(settings: AdminSettings, purpose: str, value: str | None, max_age: int) -> Any:
    """The payload of a cookie we signed for `purpose` within `max_age` seconds, else None."""
    if not value:
        return None
    try:
        return _serializer(settings, purpose).loads(value, max_age=max_age)
    except BadSignature:  # Also covers an expired signature.
        return None


# --- CSRF -----------------------------------------------------------------------------------


def _csrf_key(secret: str) -> bytes:
    return hmac.new(secret.encode(), b"tripline.console.csrf.v1", hashlib.sha256).digest()


def _csrf_tokens(settings: AdminSettings, message: bytes) -> list[str]:
    # The token under SECRET_KEY first (the one forms are rendered with), then under each key
    # of SECRET_KEY_PREVIOUS: a form loaded before a key rotation can still be submitted.
    return [
        hmac.new(_csrf_key(secret), message, hashlib.sha256).hexdigest()
        for secret in settings.secret_keys()
    ]


def _csrf_matches(settings: AdminSettings, sent: str | None, message: bytes) -> bool:
    if sent is None:
        return False
    given = sent.encode()
    return any(
        hmac.compare_digest(given, token.encode()) for token in _csrf_tokens(settings, message)
    )


def csrf_token(settings: AdminSettings, session_id: uuid.UUID) -> str:
    """The CSRF token of a console session: an HMAC of its ID. A new login gets a new one, and
    it is worthless without the session cookie (which scripts and other sites cannot read)."""
    return _csrf_tokens(settings, b"session:" + session_id.bytes)[0]


def login_csrf_token(settings: AdminSettings, nonce: str) -> str:
    """The login form's token, bound to a random nonce in a cookie (login CSRF protection)."""
    return _csrf_tokens(settings, b"login:" + nonce.encode())[0]


def new_login_nonce() -> str:
    """A fresh random nonce for the login form's cookie."""
    return secrets.token_urlsafe(24)


async def _sent_token(request: Request) -> str | None:
    form = await request.form()
    sent = form.get(CSRF_FIELD) or request.headers.get("x-csrf-token")
    return sent if isinstance(sent, str) else None


# --- The signed-in operator ----------------------------------------------------------------

# The shared definition of a live session, narrowed to console logins.
_CONSOLE_PRINCIPAL_QUERY = f"""
SELECT u.id, u.email, u.display_name, u.role, u.is_active, u.created_at, s.last_seen_at
FROM auth_sessions s JOIN users u ON u.id = s.user_id
WHERE {live_session_sql("$1", "$2")} AND s.kind = 'console'
"""  # noqa: S608 - a fixed condition with numbered parameters, no input.


async def resolve_console_principal(
    *,
    pg: PgExecutor,
    session_id: uuid.UUID,
    user_id: uuid.UUID,
    idle_timeout: timedelta,
    touch: bool = True,
) -> Principal | None:
    """The user of a live console session, or None (revoked, expired, idle, user disabled).

    Idle sessions are revoked on the spot, so they show as ended in the sessions list. The last
    use is written at most once a minute, to keep page views from becoming writes, and not at
    all without `touch`: a page refreshing its charts by itself is not a use, and must not keep
    an unattended session from going idle.
    """
    row = await pg.fetchrow(_CONSOLE_PRINCIPAL_QUERY, session_id, user_id)
    if row is None:
        return None
    now = datetime.now(UTC)
    last_seen: datetime | None = row["last_seen_at"]
    if last_seen is not None and now - last_seen > idle_timeout:
        await pg.fetchval(
            "UPDATE auth_sessions SET revoked_at = now(), revoked_reason = 'idle_timeout', "
            "refresh_token_hash = NULL WHERE id = $1 AND revoked_at IS NULL RETURNING id",
            session_id,
        )
        return None
    if touch and (last_seen is None or now - last_seen > LAST_SEEN_WRITE_INTERVAL):
        await pg.fetchval(
            "UPDATE auth_sessions SET last_seen_at = now() WHERE id = $1 RETURNING id", session_id
        )
    values = {key: row[key] for key in ("id", "email", "display_name", "is_active", "created_at")}
    return Principal(**values, role=UserRole(row["role"]), session_id=session_id)


async def current_console_user(
    request: Request, settings: AdminSettingsDep, pg: PgDep
) -> Principal:
    """The operator or admin signed in to the console; otherwise a redirect to the login page
    (no valid session) or a 403 (a session whose user is no longer staff)."""
    payload = unsign(
        settings,
        "session",
        request.cookies.get(cookie_name(settings, "session")),
        max_age=settings.console_session_ttl_seconds,
    )
    try:
        session_id, user_id = uuid.UUID(payload["sid"]), uuid.UUID(payload["uid"])
    except (TypeError, KeyError, ValueError):
        raise ConsoleLoginRequired() from None
    principal = await resolve_console_principal(
        pg=pg,
        session_id=session_id,
        user_id=user_id,
        idle_timeout=timedelta(seconds=settings.console_idle_timeout_seconds),
        touch=REFRESH_HEADER not in request.headers,
    )
    if principal is None:
        raise ConsoleLoginRequired("Your session has ended; please sign in again.")
    if principal.role not in STAFF:
        raise ForbiddenError("The console is for operators and admins.", code="insufficient_role")
    request.state.console_user = principal  # For `console_user`: pages render who signed in.
    return principal


ConsoleUser = Annotated[Principal, Depends(current_console_user)]


def console_user(request: Request) -> Principal | None:
    """The console user `current_console_user` resolved for this request, if it ran."""
    user: Principal | None = getattr(request.state, "console_user", None)
    return user


async def require_console_admin(user: ConsoleUser) -> Principal:
    """The signed-in user, when they are an admin (403 otherwise)."""
    if user.role != UserRole.ADMIN:
        raise ForbiddenError("Only an admin can do this.", code="insufficient_role")
    return user


ConsoleAdmin = Annotated[Principal, Depends(require_console_admin)]


# Sec-Fetch-Site values of a request the console's own pages (or the operator, typing the URL)
# made. `same-site` is refused too: a sibling subdomain is another application.
_OWN_FETCH_SITES = frozenset({"same-origin", "none"})


def refuse_cross_site(request: Request) -> None:
    """Refuse (403) a state-changing request that a browser says came from another site.

    Second line behind the CSRF token: when present, `Origin` must be the console's own
    (scheme, host and port of this request) and `Sec-Fetch-Site` must be `same-origin` or
    `none`; `Origin: null` passes only with `Sec-Fetch-Site: same-origin`. Browsers set both
    on form posts and scripts' requests and no page can forge them; clients that send neither
    (scripts, tests) still need the token.
    """
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in _OWN_FETCH_SITES:
        raise CrossSiteRejectedError()
    origin = request.headers.get("origin")
    if origin == "null" and site == "same-origin":
        # Our pages send `Referrer-Policy: no-referrer`, under which browsers post their own
        # forms with `Origin: null`: the fetch metadata then says where the post came from.
        return
    if origin is not None and origin != f"{request.url.scheme}://{request.url.netloc}":
        raise CrossSiteRejectedError()


async def verify_csrf(request: Request, user: ConsoleUser, settings: AdminSettingsDep) -> None:
    """Refuse (403) a state-changing request sent from another site, or whose CSRF token is
    missing or not this session's.

    A dependency of the router every signed-in console route is on: no route can forget it.
    """
    if request.method in SAFE_METHODS:
        return
    refuse_cross_site(request)
    sent = await _sent_token(request)
    if not _csrf_matches(settings, sent, b"session:" + user.session_id.bytes):
        raise CsrfRejectedError()


async def verify_login_csrf(request: Request, settings: AdminSettingsDep) -> None:
    """The login form's CSRF check: sent from the console's own page, with a token matching
    the nonce cookie set with the form."""
    refuse_cross_site(request)
    nonce = request.cookies.get(cookie_name(settings, "login"))
    sent = await _sent_token(request)
    if not nonce or not _csrf_matches(settings, sent, b"login:" + nonce.encode()):
        raise CsrfRejectedError()
