"""The exception handlers that turn every expected error into the shared shape (`errors`)."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import asyncpg
import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError, WebSocketRequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from tripline_common.data.db import is_transient_db_error
from tripline_common.platform.errors import (
    AppError,
    ErrorResponse,
    app_error_response,
    code_for_status,
    error_response,
)
from tripline_common.web.responses import RETRY_AFTER_HEADER, RaiseSite, writes

log = structlog.get_logger("tripline.errors")

VALIDATION_RAISE_SITE = RaiseSite(
    {
        422: {
            "model": ErrorResponse,
            "description": "Validation failed; `details` lists each field (`validation_error`, "
            "`malformed_json`), or the database cannot store a value (`invalid_value`).",
        }
    }
)
"""What the validation handlers answer, on every operation."""

DATABASE_RAISE_SITE = RaiseSite(
    {
        503: {
            "model": ErrorResponse,
            "description": "The database is unavailable (`database_unavailable`) or every "
            "connection is busy (`database_busy`); retry after `Retry-After` seconds.",
            "headers": RETRY_AFTER_HEADER,
        }
    }
)
"""What the database error handlers answer, on the operations that use the database (the
dependencies that hand out a session or the pool carry it; a hot read that takes the pool
without a dependency declares it on its route)."""

CONFLICT_RAISE_SITE = RaiseSite(
    {
        409: {
            "model": ErrorResponse,
            "description": "The write conflicts with stored data (`conflict`, naming the "
            "constraint in `details`), e.g. a concurrent request stored the same thing first.",
        }
    },
    applies=writes,
)
"""What the integrity-error handler answers, on the operations that write through a session."""


def _validation_details(errors: Any) -> list[dict[str, Any]]:
    # The offending input is deliberately left out: it may be a password or a token.
    return [
        {"loc": list(err.get("loc", ())), "msg": err.get("msg", ""), "type": err.get("type", "")}
        for err in errors
    ]


async def _app_error_handler(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AppError)
    return app_error_response(exc)


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def allowed_methods(request: Request) -> str:
    """Every method some route serves on this path. (Starlette's own `Allow` names only the
    methods of the first route whose path matched, e.g. `GET` for a path with GET and POST.)"""
    routes = request.app.router.routes
    allowed = [
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes
        )
    ]
    return ", ".join(allowed)


async def _http_exception_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else None
    headers = dict(exc.headers) if exc.headers else None
    if exc.status_code == 404 and detail == "Not Found":
        detail = "No route matches this path."
    if exc.status_code == 405:
        detail = "This method is not allowed on this path."
        headers = {**(headers or {}), "Allow": allowed_methods(request)}
    return error_response(
        exc.status_code,
        code_for_status(exc.status_code),
        detail or HTTPStatus(exc.status_code).phrase,
        headers=headers,
    )


async def _validation_error_handler(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    malformed_json = any(err.get("type") == "json_invalid" for err in errors)
    return error_response(
        422,
        "malformed_json" if malformed_json else "validation_error",
        "The request body is not valid JSON."
        if malformed_json
        else "The request is not valid; see details.",
        _validation_details(errors),
    )


async def _integrity_error_handler(_: Request, exc: Exception) -> JSONResponse:
    # A constraint the database enforces (e.g. a unique email under a concurrent insert) is a
    # conflict with stored state, not a server error. Constraint names are safe to show.
    assert isinstance(exc, IntegrityError)
    constraint = getattr(getattr(exc.orig, "__cause__", None), "constraint_name", None)
    log.info("integrity_error", constraint=constraint)
    return error_response(
        409,
        "conflict",
        "The request conflicts with stored data.",
        {"constraint": constraint} if constraint else None,
    )


def _sqlstate(exc: BaseException) -> str | None:
    """The PostgreSQL SQLSTATE behind an error, wherever the driver or SQLAlchemy put it."""
    cause: BaseException | None = exc
    while cause is not None:
        for candidate in (cause, getattr(cause, "orig", None)):
            state = getattr(candidate, "sqlstate", None)
            if isinstance(state, str):
                return state
        cause = cause.__cause__ or cause.__context__
    return None


async def _database_error_handler(_: Request, exc: Exception) -> JSONResponse:
    # The database restarting or unreachable is an outage the client should wait out (503 with
    # Retry-After), not a bug (500). Anything else is re-raised to become the generic 500.
    # Registered for SQLAlchemy's errors and for what escapes it raw: a refused connection
    # while the pool reconnects (OSError), asyncpg's own errors on the driver connection (COPY).
    state = _sqlstate(exc)
    if state is not None and state.startswith("22"):
        # Class 22, "data exception": a value the database cannot store or compare (a NUL
        # character, a number out of range, an impossible date) came from the request.
        log.info("database_rejected_value", sqlstate=state)
        return error_response(
            422, "invalid_value", "A value in the request cannot be stored.", {"sqlstate": state}
        )
    if not is_transient_db_error(exc):
        raise exc
    log.warning("database_unavailable", error_type=type(exc).__name__)
    return error_response(
        503,
        "database_unavailable",
        "The database is unavailable; retry shortly.",
        headers={"Retry-After": "1"},
    )


async def _pool_timeout_handler(_: Request, exc: Exception) -> JSONResponse:
    # Every pooled connection stayed busy for `db_pool_timeout`: the service is overloaded for
    # now, which the client should wait out (503), not a bug (500).
    log.warning("database_pool_exhausted", error_type=type(exc).__name__)
    return error_response(
        503,
        "database_busy",
        "The service is busy; retry shortly.",
        headers={"Retry-After": "1"},
    )


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers that turn every expected error into the shared shape."""
    app.add_exception_handler(IntegrityError, _integrity_error_handler)
    app.add_exception_handler(PoolTimeoutError, _pool_timeout_handler)
    for error_class in (DBAPIError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
        app.add_exception_handler(error_class, _database_error_handler)
    app.add_exception_handler(AppError, _app_error_handler)
    app.add_exception_handler(StarletteHTTPException, _http_exception_handler)
    app.add_exception_handler(RequestValidationError, _validation_error_handler)
    app.add_exception_handler(WebSocketRequestValidationError, _validation_error_handler)
