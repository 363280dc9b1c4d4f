"""The documented error responses of the trips endpoints (every version), in the shared shape."""

from __future__ import annotations

from typing import Any

from tripline_common.platform import ErrorResponse

Responses = dict[int | str, dict[str, Any]]

UNAUTHORIZED: Responses = {
    401: {"model": ErrorResponse, "description": "Missing, invalid or revoked token."}
}
NOT_FOUND: Responses = {404: {"model": ErrorResponse, "description": "No such trip among yours."}}
IDEMPOTENCY_CONFLICT: Responses = {
    409: {
        "model": ErrorResponse,
        "description": "The Idempotency-Key was used with another body "
        "(`idempotency_key_reused`) or its first request is still running "
        "(`idempotency_key_in_use`, with `Retry-After`).",
    },
    503: {"model": ErrorResponse, "description": "Idempotency keys cannot be checked now."},
}
STATUS_CONFLICT: Responses = {
    409: {
        "model": ErrorResponse,
        "description": "The status move is not allowed (`invalid_status_transition`), or the "
        "device already has an active trip.",
    }
}
INVALID_LIST_QUERY: Responses = {
    400: {
        "model": ErrorResponse,
        "description": "A sort field outside the allowlist (`invalid_sort`), an unknown field in "
        "`fields` (`invalid_fields`), a cursor that is not ours or is for another sort "
        "(`invalid_cursor`, `cursor_sort_mismatch`), or `offset` with `cursor`.",
    }
}
