"""Free text a client sends that reaches the database (search terms, filters): PostgreSQL text
cannot hold a NUL character, so the published schema refuses it and the check is Pydantic's."""

from __future__ import annotations

STORABLE_TEXT = r"^[^\x00]*$"
"""The `pattern` of a text filter: anything but NUL (else the database refuses the query with
a 422 `invalid_value`, a refusal the schema would not state)."""
