"""The public API's documented error answers, in the shared error shape: those several routers
give (`UNAUTHORIZED`, `not_found`, ...). An answer only one route gives is written beside it with
`documented_error`; the error of one item of a 207 answer is `ErrorResponse.of(error)`."""

from __future__ import annotations

from tripline_common.web import INVALID_LIST_QUERY, Responses, documented_error

__all__ = [
    "IDEMPOTENCY_CONFLICT",
    "INVALID_LIST_QUERY",
    "UNAUTHORIZED",
    "Responses",
    "documented_error",
    "not_found",
]

UNAUTHORIZED = documented_error(401, "Missing, invalid or revoked token.")
IDEMPOTENCY_CONFLICT: Responses = {
    **documented_error(
        409,
        "The Idempotency-Key was used with another body (`idempotency_key_reused`) or its first "
        "request is still running (`idempotency_key_in_use`, with `Retry-After`).",
    ),
    **documented_error(503, "Idempotency keys cannot be checked now."),
}


def not_found(what: str) -> Responses:
    """The documented 404 of a route that reads one of the caller's `what`s: someone else's is
    answered like a missing one."""
    return documented_error(404, f"No such {what} among yours.")
