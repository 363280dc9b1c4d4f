"""Responses for hot reads: a validated model written straight to JSON bytes."""

from __future__ import annotations

from fastapi import Response
from pydantic import BaseModel


def model_response(model: BaseModel, status_code: int = 200) -> Response:
    """`model` as an `application/json` response, serialised by pydantic's own (Rust) encoder.

    A route still declares `response_model` (OpenAPI documents it, the model was validated when
    built); returning the bytes skips FastAPI's second validation and serialisation pass of the
    same object, which is worth it on the few reads that clients repeat many times a second
    (docs/performance.md).
    """
    return Response(model.model_dump_json(), status_code=status_code, media_type="application/json")
