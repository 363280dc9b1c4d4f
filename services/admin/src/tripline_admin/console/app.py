"""Installs the console on the admin app: its routers, static files, and HTML error pages."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import RedirectResponse, Response
from starlette.staticfiles import PathLike, StaticFiles
from starlette.types import Scope

from tripline_admin.console.pages import audit, auth, devices, jobs, overview, trips, users
from tripline_admin.console.rendering import STATIC_DIR, STATIC_URL, render
from tripline_admin.console.security import ConsoleLoginRequired, verify_csrf
from tripline_admin.state import AdminState
from tripline_common.platform import AppError
from tripline_common.web import allowed_methods

CONSOLE_PREFIX = "/console"

# Scripts and styles from our own static files only: no inline code, no eval, nothing from
# elsewhere. Forms may only post back to us; the pages may not be framed.
CONSOLE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "font-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'"
)

Handler = Callable[[Request, Exception], Awaitable[Response]]
AnyHandler = Callable[..., Any]


class ConsoleStaticFiles(StaticFiles):
    """The console's CSS, JS and icons. A URL with `?v=<content hash>` (as the pages link them)
    never changes meaning, so it is cached for a year; a bare URL for five minutes."""

    def file_response(
        self, full_path: PathLike, stat_result: os.stat_result, scope: Scope, status_code: int = 200
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        versioned = b"v=" in scope.get("query_string", b"")
        response.headers["Cache-Control"] = (
            "public, max-age=31536000, immutable" if versioned else "public, max-age=300"
        )
        return response


def install_console(app: FastAPI) -> None:
    """Mount the console at `/console` (and send `/` there)."""
    public = APIRouter(prefix=CONSOLE_PREFIX, include_in_schema=False)
    public.include_router(auth.public_router)
    # Every signed-in route is on this router: the CSRF check (which needs the session) runs
    # before any handler of a state-changing request.
    signed_in = APIRouter(
        prefix=CONSOLE_PREFIX, include_in_schema=False, dependencies=[Depends(verify_csrf)]
    )
    for module in (auth, overview, users, trips, devices, jobs, audit):
        signed_in.include_router(module.router)
    app.include_router(public)
    app.include_router(signed_in)
    app.mount(STATIC_URL, ConsoleStaticFiles(directory=STATIC_DIR), name="console-static")

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse(f"{CONSOLE_PREFIX}/", status_code=307)

    install_error_pages(app)


def is_console_path(path: str) -> bool:
    """True for the console's pages (not its static files, which keep plain errors)."""
    return path == CONSOLE_PREFIX or (
        path.startswith(CONSOLE_PREFIX + "/") and not path.startswith(STATIC_URL + "/")
    )


def install_error_pages(app: FastAPI) -> None:
    """On console paths, errors are pages (with the console's layout) rather than JSON; the
    API keeps the shared JSON error shape. A missing session redirects to the login page."""
    for exc_class in (AppError, StarletteHTTPException, RequestValidationError):
        app.add_exception_handler(exc_class, _html_on_console(app.exception_handlers[exc_class]))
    app.add_exception_handler(ConsoleLoginRequired, _redirect_to_login)
    AdminState.of(app).server_error_page = _server_error_page


def _server_error_page(request: Request) -> Response | None:
    """Unexpected errors on console paths are a page too (the shared middleware logs them,
    reports them to Sentry and asks this first); its request ID is what to quote."""
    if not is_console_path(request.url.path):
        return None
    request_id = request.scope.get("state", {}).get("request_id")
    return render(
        request,
        "error.html",
        {
            "status": 500,
            "title": HTTPStatus(500).phrase,
            "message": "Something went wrong on our side. If it keeps happening, quote this "
            f"request ID: {request_id}.",
            "back": _back_link(request),
            "nav": None,
        },
        status_code=500,
    )


def _html_on_console(json_handler: AnyHandler) -> Handler:
    async def handler(request: Request, exc: Exception) -> Response:
        response = await _page_or_json(request, exc, json_handler)
        if response.status_code == 405:
            response.headers["Allow"] = allowed_methods(request)
        return response

    return handler


async def _page_or_json(request: Request, exc: Exception, json_handler: AnyHandler) -> Response:
    if not is_console_path(request.url.path):
        response: Response = await json_handler(request, exc)
        return response
    status, message, headers = _describe(exc)
    return render(
        request,
        "error.html",
        {
            "status": status,
            "title": HTTPStatus(status).phrase,
            "message": message,
            "back": _back_link(request),
            "nav": None,
        },
        status_code=status,
        headers=headers,
    )


def _describe(exc: Exception) -> tuple[int, str, dict[str, str] | None]:
    if isinstance(exc, AppError):
        return exc.status_code, exc.message, exc.headers
    if isinstance(exc, RequestValidationError):
        if any(error.get("loc", ("",))[0] == "path" for error in exc.errors()):
            return 404, "There is nothing at this address.", None
        return 400, "Some of the values sent are not valid; go back and check them.", None
    assert isinstance(exc, StarletteHTTPException)
    messages = {
        404: "There is nothing at this address.",
        405: "This page cannot be used that way.",
    }
    headers = dict(exc.headers) if exc.headers else None
    return (
        exc.status_code,
        messages.get(exc.status_code, HTTPStatus(exc.status_code).phrase),
        headers,
    )


def _back_link(request: Request) -> str:
    # Where to go from an error: a user's page after one of its forms, else the section.
    parts = request.url.path.split("/")  # ["", "console", section, id, action...]
    sections = {"users", "devices", "jobs", "failures", "audit"}
    if len(parts) < 3 or parts[2] not in sections:
        return f"{CONSOLE_PREFIX}/"
    if parts[2] == "users" and len(parts) > 4 and request.method == "POST":
        return "/".join(parts[:4])
    return f"{CONSOLE_PREFIX}/{'jobs' if parts[2] == 'failures' else parts[2]}"


async def _redirect_to_login(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ConsoleLoginRequired)
    # After signing in, back to the page (for a form post: the page the form was on).
    query = {"next": request.url.path if request.method == "GET" else _back_link(request)}
    if exc.reason:
        query["expired"] = "1"
    return RedirectResponse(f"{CONSOLE_PREFIX}/login?{urlencode(query)}", status_code=303)
