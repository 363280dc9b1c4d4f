"""One error shape for every error of every app, the domain exceptions, and their handlers."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import asyncpg
import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError, WebSocketRequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from tripline_common.data.db import is_transient_db_error
from tripline_common.platform.correlation import get_request_id

log = structlog.get_logger("tripline.errors")


class ErrorResponse(BaseModel):
    """The body of every error response, in every Tripline app."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "code": "not_found",
                    "message": "Trip not found.",
                    "details": None,
                    "request_id": "4b0d1f3c9a7e4e0e8d2f6a1b5c3d7e9f",
                }
            ]
        }
    )

    code: str = Field(description="Stable, machine-readable error code, e.g. `validation_error`.")
    message: str = Field(description="Human-readable explanation; safe to show to a user.")
    details: list[dict[str, Any]] | dict[str, Any] | None = Field(
        default=None, description="Optional structured details, e.g. one entry per invalid field."
    )
    request_id: str | None = Field(
        default=None, description="The correlation ID of the request; quote it in bug reports."
    )


# Stable codes for the statuses that the framework itself produces.
_CODES_BY_STATUS: dict[int, str] = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    410: "gone",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
    500: "internal_error",
    503: "service_unavailable",
}


def code_for_status(status_code: int) -> str:
    """The stable error code used for a bare HTTP status."""
    return _CODES_BY_STATUS.get(status_code) or HTTPStatus(status_code).phrase.lower().replace(
        " ", "_"
    )


class AppError(Exception):
    """Base of the domain errors; each subclass carries its own status and stable code."""

    status_code: int = 400
    code: str = "bad_request"
    message: str = "The request could not be processed."

    def __init__(
        self,
        message: str | None = None,
        *,
        code: str | None = None,
        details: list[dict[str, Any]] | dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.message = message or self.message
        self.code = code or self.code
        self.details = details
        self.headers = headers
        super().__init__(self.message)


class BadRequestError(AppError):
    status_code, code, message = 400, "bad_request", "The request is not valid."


class UnauthorizedError(AppError):
    status_code, code, message = 401, "unauthorized", "Authentication is required."

    def __init__(self, message: str | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("headers", {"WWW-Authenticate": "Bearer"})
        super().__init__(message, **kwargs)


class ForbiddenError(AppError):
    status_code, code, message = 403, "forbidden", "You are not allowed to do this."


class NotFoundError(AppError):
    status_code, code, message = 404, "not_found", "The resource was not found."


class ConflictError(AppError):
    status_code, code, message = 409, "conflict", "The request conflicts with the current state."


class GoneError(AppError):
    status_code, code, message = 410, "gone", "The resource is no longer available."


class UnprocessableError(AppError):
    status_code, code, message = 422, "validation_error", "The request is not valid; see details."


class PayloadTooLargeError(AppError):
    status_code, code, message = 413, "payload_too_large", "The request body is too large."


class RateLimitedError(AppError):
    status_code, code, message = 429, "rate_limited", "Too many requests; slow down."

    def __init__(self, retry_after: int, message: str | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("headers", {"Retry-After": str(retry_after)})
        super().__init__(message, **kwargs)


class ServiceUnavailableError(AppError):
    status_code, code, message = 503, "service_unavailable", "A dependency is unavailable."


def error_response(
    status_code: int,
    code: str,
    message: str,
    details: list[dict[str, Any]] | dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """Build a response in the shared error shape, stamped with the current correlation ID."""
    body = ErrorResponse(
        code=code, message=message, details=details, request_id=get_request_id()
    ).model_dump(mode="json")
    return JSONResponse(body, status_code=status_code, headers=headers)


def _validation_details(errors: Any) -> list[dict[str, Any]]:
    # The offending input is deliberately left out: it may be a password or a token.
    return [
        {"loc": list(err.get("loc", ())), "msg": err.get("msg", ""), "type": err.get("type", "")}
        for err in errors
    ]


async def _app_error_handler(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AppError)
    return error_response(exc.status_code, exc.code, exc.message, exc.details, exc.headers)


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
