"""Platform floor: what every process stands on (settings, logs, metrics, errors).

Settings, structured logging and its schema (`log_schema.json`), the request ID that
ties lines together, Prometheus metrics, OpenTelemetry tracing, Sentry, and the one error
shape (`AppError` and its subclasses, `ErrorResponse`). Imports nothing else of `tripline_common`.
"""

from tripline_common.platform.correlation import get_request_id
from tripline_common.platform.errors import (
    AppError,
    BadRequestError,
    ConflictError,
    ErrorResponse,
    ForbiddenError,
    GoneError,
    NotFoundError,
    PayloadTooLargeError,
    RateLimitedError,
    ServiceUnavailableError,
    UnauthorizedError,
    UnprocessableError,
    app_error_response,
    error_response,
)
from tripline_common.platform.logging import configure_logging
from tripline_common.platform.sentry import report_job_failures, set_user_id
from tripline_common.platform.settings import CommonSettings, Environment
from tripline_common.platform.tracing import (
    Tracing,
    TracingConfigError,
    init_tracing,
    trace_exemplar,
    tracing_config,
)

__all__ = [
    "AppError",
    "BadRequestError",
    "CommonSettings",
    "ConflictError",
    "Environment",
    "ErrorResponse",
    "ForbiddenError",
    "GoneError",
    "NotFoundError",
    "PayloadTooLargeError",
    "RateLimitedError",
    "ServiceUnavailableError",
    "Tracing",
    "TracingConfigError",
    "UnauthorizedError",
    "UnprocessableError",
    "app_error_response",
    "configure_logging",
    "error_response",
    "get_request_id",
    "init_tracing",
    "report_job_failures",
    "set_user_id",
    "trace_exemplar",
    "tracing_config",
]
