"""Console sign-in and sign-out pages."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Query, Request
from starlette.responses import Response

from tripline_admin.console.rendering import redirect, render
from tripline_admin.console.security import (
    ConsoleUser,
    delete_cookie,
    login_csrf_token,
    new_login_nonce,
    set_cookie,
    sign,
    verify_login_csrf,
)
from tripline_admin.console.sessions import sign_in, sign_out
from tripline_admin.state import AdminSettingsDep
from tripline_common.data import AuditOriginDep
from tripline_common.platform import RateLimitedError
from tripline_common.web import RedisDep, SessionDep

public_router = APIRouter()
router = APIRouter()

HOME = "/console/"
LOGIN_FORM_SECONDS = 3600


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a console page only (never another site or the API)."""
    if (
        target
        and (target == "/console" or target.startswith("/console/"))
        and not target.startswith("/console/login")
        and ".." not in target
        and "\\" not in target
    ):
        return target
    return HOME


def _login_page(
    request: Request,
    settings: AdminSettingsDep,
    *,
    next_url: str,
    email: str = "",
    error: str | None = None,
    notice: str | None = None,
    status_code: int = 200,
) -> Response:
    # A fresh nonce per form: the form's token is only valid with this browser's cookie.
    nonce = new_login_nonce()
    response = render(
        request,
        "login.html",
        {
            "login_token": login_csrf_token(settings, nonce),
            "next_url": next_url,
            "email": email,
            "error": error,
            "notice": notice,
            "nav": None,
        },
        status_code=status_code,
    )
    set_cookie(response, settings, "login", nonce, LOGIN_FORM_SECONDS)
    return response


@public_router.get("/login")
async def login_form(
    request: Request,
    settings: AdminSettingsDep,
    next_url: Annotated[str | None, Query(alias="next", max_length=500)] = None,
    expired: Annotated[str | None, Query(max_length=5)] = None,
) -> Response:
    notice = "Your session has ended; please sign in again." if expired else None
    return _login_page(request, settings, next_url=safe_next(next_url), notice=notice)


@public_router.post("/login", dependencies=[Depends(verify_login_csrf)])
async def login(
    request: Request,
    session: SessionDep,
    redis: RedisDep,
    settings: AdminSettingsDep,
    origin: AuditOriginDep,
    email: Annotated[str, Form(max_length=320)] = "",
    password: Annotated[str, Form(max_length=256)] = "",
    next_url: Annotated[str, Form(alias="next", max_length=500)] = HOME,
) -> Response:
    target = safe_next(next_url)
    try:
        outcome = await sign_in(
            session=session,
            redis=redis,
            settings=settings,
            email=email.strip(),
            password=password,
            origin=origin,
            user_agent=request.headers.get("user-agent"),
        )
    except RateLimitedError as exc:
        page = _login_page(
            request,
            settings,
            next_url=target,
            email=email,
            error="Too many attempts. Wait a minute, then try again.",
            status_code=exc.status_code,
        )
        page.headers.update(exc.headers or {})  # Retry-After, as the API sends it.
        return page
    if outcome.auth_session is None or outcome.user is None:
        return _login_page(
            request,
            settings,
            next_url=target,
            email=email,
            error=outcome.refusal,
            status_code=401,
        )
    response = redirect(request, target)
    cookie = sign(
        settings,
        "session",
        {"sid": str(outcome.auth_session.id), "uid": str(outcome.user.id)},
    )
    set_cookie(response, settings, "session", cookie, settings.console_session_ttl_seconds)
    delete_cookie(response, settings, "login")
    return response


@router.post("/logout")
async def logout(
    request: Request,
    user: ConsoleUser,
    session: SessionDep,
    settings: AdminSettingsDep,
    origin: AuditOriginDep,
) -> Response:
    await sign_out(session=session, user=user, origin=origin)
    response = redirect(request, "/console/login", ("info", "You are signed out."))
    delete_cookie(response, settings, "session")
    return response
