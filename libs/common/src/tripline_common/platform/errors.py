"""The one error shape of every app and the domain exceptions; their handlers: `error_handlers`."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from tripline_common.platform.correlation import get_request_id


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

    @classmethod
    def of(cls, error: AppError) -> ErrorResponse:
        """The body for a domain error, stamped with the current correlation ID."""
        return cls(
            code=error.code,
            message=error.message,
            details=error.details,
            request_id=get_request_id(),
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


def app_error_response(error: AppError) -> JSONResponse:
    """The response for a domain error: its status, its body, its headers."""
    return JSONResponse(
        ErrorResponse.of(error).model_dump(mode="json"),
        status_code=error.status_code,
        headers=error.headers,
    )
