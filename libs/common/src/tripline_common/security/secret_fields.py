"""Response fields that carry a secret: marked in the OpenAPI schema, and never cached.

A response model declares its secret fields with the `SecretValue` type; the schema then says
`"x-secret": true` on each, and `EdgeMiddleware` answers every request to a route whose
response model holds one with `Cache-Control: no-store` (a browser, a proxy or a CDN keeps no
copy of a key, a token or a signing secret). Marking the field is the whole job: no handler
sets the header itself.
"""

from __future__ import annotations

import types
import typing
from typing import Annotated, Any

from pydantic import BaseModel, Field

SECRET_MARK = "x-secret"  # noqa: S105 (a schema keyword, not a password)

SecretValue = Annotated[str, Field(json_schema_extra={SECRET_MARK: True})]
"""A string that is a credential (a key, a token, a signing secret) shown in a response."""


def holds_secret(annotation: Any) -> bool:
    """Whether a response model (or a list, union or nesting of them) has a `SecretValue`."""
    return _holds_secret(annotation, set())


def _holds_secret(annotation: Any, seen: set[int]) -> bool:
    if annotation is None or id(annotation) in seen:
        return False
    seen.add(id(annotation))
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        for field in annotation.model_fields.values():
            extra = field.json_schema_extra
            if isinstance(extra, dict) and extra.get(SECRET_MARK) is True:
                return True
            if _holds_secret(field.annotation, seen):
                return True
        return False
    origin = typing.get_origin(annotation)
    if origin is None and not isinstance(annotation, types.UnionType):
        return False
    return any(_holds_secret(arg, seen) for arg in typing.get_args(annotation))
