"""Route responses: the documented error answers every app builds its `responses=` from, and
the direct JSON response of the hot reads."""

from __future__ import annotations

from typing import Any

from fastapi import Response
from pydantic import BaseModel

from tripline_common.platform.errors import ErrorResponse

Responses = dict[int | str, dict[str, Any]]
"""What a route's or a router's `responses=` takes: the documented answers by status code."""


def documented_error(status_code: int, description: str) -> Responses:
    """One documented error answer of a route, in the shared `ErrorResponse` shape; combine
    several with `{**a, **b}`."""
    return {status_code: {"model": ErrorResponse, "description": description}}


INVALID_LIST_QUERY = documented_error(
    400,
    "A sort field outside the allowlist (`invalid_sort`), an unknown field in `fields` "
    "(`invalid_fields`), a cursor that is not ours or is for another sort (`invalid_cursor`, "
    "`cursor_sort_mismatch`), or `offset` with `cursor`.",
)
"""The 400 of every list route that takes `pagination.page_params`."""


def model_response(model: BaseModel, status_code: int = 200) -> Response:
    """`model` as JSON without FastAPI's second pass, for hot reads only (docs/performance.md)."""
    return Response(model.model_dump_json(), status_code=status_code, media_type="application/json")
