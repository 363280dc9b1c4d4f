"""Rendering console pages: the Jinja2 environment (autoescaping everything), versioned static
URLs, flash messages carried across a redirect, and the page response's headers."""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse

from tripline_admin.console.security import (
    CSRF_FIELD,
    console_user,
    cookie_name,
    csrf_token,
    delete_cookie,
    set_cookie,
    sign,
    unsign,
)
from tripline_admin.settings import AdminSettings
from tripline_admin.state import AdminState
from tripline_common.data.models import UserRole
from tripline_common.security import Principal

HERE = Path(__file__).parent
TEMPLATES_DIR = HERE / "templates"
STATIC_DIR = HERE / "static"
STATIC_URL = "/console/static"
FLASH_MAX_AGE = 120

Level = Literal["success", "info", "warning", "error"]


@dataclass(frozen=True)
class Flash:
    """A one-time message shown on the next page."""

    level: str
    text: str


@functools.cache
def static_versions() -> dict[str, str]:
    """A short content hash per static file: URLs change when files do, so browsers may cache
    them for a year (`immutable`) and still never run stale code after a release."""
    return {
        path.relative_to(STATIC_DIR).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()[:12]
        for path in STATIC_DIR.rglob("*")
        if path.is_file()
    }


def static_url(name: str) -> str:
    """The versioned URL of a static file (an unknown name fails loudly, at render time)."""
    return f"{STATIC_URL}/{name}?v={static_versions()[name]}"


def _format_time(value: datetime | None) -> str:
    if value is None:
        return "—"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _day(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d")


def _clock(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%H:%M:%S UTC")


def _ago(value: datetime | None) -> str:
    if value is None:
        return "never"
    seconds = int((datetime.now(UTC) - value).total_seconds())
    future = seconds < 0
    seconds = abs(seconds)
    for unit, size in (("d", 86_400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            amount = f"{seconds // size} {unit}"
            return f"in {amount}" if future else f"{amount} ago"
    return "just now"


@functools.cache
def environment() -> jinja2.Environment:
    """The console's Jinja2 environment: every `{{ value }}` is HTML-escaped, and a missing
    variable is an error rather than an empty string."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["time"] = _format_time
    env.filters["ago"] = _ago
    env.filters["day"] = _day
    env.filters["clock"] = _clock
    env.globals["static_url"] = static_url
    env.globals["csrf_field"] = CSRF_FIELD
    return env


def render(
    request: Request,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    user: Principal | None = None,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
    fragment: bool = False,
) -> HTMLResponse:
    """A console page. Pages are never cached (they show account data and CSRF tokens), and a
    flash message is shown once: its cookie is cleared by the page that displays it. A
    `fragment` (part of a page that console.js reloads) shows none, so leaves them be."""
    settings = AdminState.of(request.app).settings
    user = user or console_user(request)
    flashes = [] if fragment else _read_flashes(request, settings)
    html = (
        environment()
        .get_template(template)
        .render(
            request=request,
            user=user,
            is_admin=user is not None and user.role == UserRole.ADMIN,
            csrf_token=csrf_token(settings, user.session_id) if user else "",
            flashes=flashes,
            path=request.url.path,
            **(context or {}),
        )
    )
    response = HTMLResponse(html, status_code=status_code, headers=headers)
    response.headers["Cache-Control"] = "no-store"
    if flashes:
        delete_cookie(response, settings, "flash")
    return response


def redirect(request: Request, url: str, *flashes: tuple[Level, str]) -> RedirectResponse:
    """303 See Other to `url` (after a form post), carrying flash messages for the next page."""
    response = RedirectResponse(url, status_code=303)
    if flashes:
        settings = AdminState.of(request.app).settings
        payload = [[level, text[:300]] for level, text in flashes]
        set_cookie(response, settings, "flash", sign(settings, "flash", payload), FLASH_MAX_AGE)
    return response


def _read_flashes(request: Request, settings: AdminSettings) -> list[Flash]:
    payload = unsign(
        settings, "flash", request.cookies.get(cookie_name(settings, "flash")), FLASH_MAX_AGE
    )
    if not isinstance(payload, list):
        return []
    return [
        Flash(level=str(level), text=str(text))
        for level, text in payload
        if level in ("success", "info", "warning", "error")
    ]
