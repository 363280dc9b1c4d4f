"""Responses for hot reads: a validated model written straight to JSON bytes."""

from __future__ import annotations

from fastapi import Response
from pydantic import BaseModel


def model_response(model: BaseModel, status_code: int = 200) -> Response:
    """`model` as JSON without FastAPI's second pass, for hot reads only (docs/performance.md)."""
    return Response(model.model_dump_json(), status_code=status_code, media_type="application/json")
