"""AsyncAPI checks for tests: the official 3.0.0 schema (vendored in `asyncapi_schema/`), and
validators of real messages against the payload a document gives a message."""

from __future__ import annotations

import hashlib
import json
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft7Validator, FormatChecker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

SCHEMA_PATH = Path(__file__).parent / "asyncapi_schema" / "asyncapi-3.0.0.json"
# @asyncapi/specs 6.11.1, schemas/3.0.0.json (asyncapi_schema/README.md says how to update).
SCHEMA_SHA256 = "d4571a420e6ffb7fcc7066c95a6db1202f299a3c51daa103d0706bf30f95e626"
_DOCUMENT_URI = "urn:tripline:asyncapi"


@cache
def asyncapi_schema() -> dict[str, Any]:
    """The official AsyncAPI 3.0.0 JSON Schema, checked against the hash it was vendored with."""
    raw = SCHEMA_PATH.read_bytes()
    assert hashlib.sha256(raw).hexdigest() == SCHEMA_SHA256, f"{SCHEMA_PATH} was changed"
    schema: dict[str, Any] = json.loads(raw)
    return schema


def asyncapi_errors(document: dict[str, Any]) -> list[str]:
    """Where `document` breaks the AsyncAPI 3.0.0 schema: one line per error, none if valid."""
    validator = Draft7Validator(asyncapi_schema())
    return [
        f"{'/'.join(map(str, error.absolute_path)) or '(root)'}: {error.message}"
        for error in validator.iter_errors(document)
    ]


def message_payload_validator(document: dict[str, Any], message: str) -> Draft7Validator:
    """A validator of the payload of `message`, a JSON pointer into `document` (e.g.
    `channels/alertsWebSocket/messages/ping`), with the document's `$ref`s followed."""
    pointer = message
    while "$ref" in (node := _at(document, pointer)):  # A channel's message refers to a component.
        pointer = node["$ref"].removeprefix("#/")
    registry: Registry[Any] = Registry().with_resource(
        _DOCUMENT_URI, Resource.from_contents(document, default_specification=DRAFT7)
    )
    return Draft7Validator(
        {"$ref": f"{_DOCUMENT_URI}#/{pointer}/payload"},
        registry=registry,
        format_checker=FormatChecker(),
    )


def _at(document: dict[str, Any], pointer: str) -> Any:
    node: Any = document
    for part in pointer.split("/"):
        node = node[part]
    return node
