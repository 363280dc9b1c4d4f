"""Which differences between two OpenAPI documents break a client of `/v1` or `/v2`.

One rule decides: a request a client could send before must still be accepted, and a response
it could receive now must be one it could understand before. So, inside the versioned paths:

- a path, an operation, a response status or a media type removed, or an operation ID changed;
- a parameter or request property removed (request models forbid unknown fields), or one that
  became required or is new and required; a request body that became required;
- a request type or enum that accepts fewer values, a response type or enum that can send
  more (a field that may now be null, an enum value a client has never seen);
- a response property removed (a rename is a removal), or no longer always present.

Additive changes pass: new paths, operations, responses, optional parameters and fields, new
response fields, wider request types. Documentation (summaries, descriptions, examples) and
constraints such as lengths and bounds are not compared.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any, Literal

VERSIONED = ("/v1/", "/v2/")
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")

Schema = dict[str, Any]
Direction = Literal["request", "response"]


def breaking_changes(old: Schema, new: Schema) -> list[str]:
    """Every change from `old` to `new` that breaks a client of `/v1` or `/v2`, one line each."""
    return sorted(set(_paths(_Document(old), _Document(new))))


class _Document:
    """An OpenAPI document whose `$ref`s can be followed."""

    def __init__(self, document: Schema) -> None:
        self.document = document

    def resolve(self, schema: Schema) -> Schema:
        while "$ref" in schema:
            node: Any = self.document
            for part in schema["$ref"].removeprefix("#/").split("/"):
                node = node[part]
            schema = node
        return schema


def _paths(old: _Document, new: _Document) -> Iterator[str]:
    new_paths = new.document.get("paths", {})
    for path, old_item in old.document.get("paths", {}).items():
        if not path.startswith(VERSIONED):
            continue
        if path not in new_paths:
            yield f"{path}: path removed"
            continue
        for method in METHODS:
            if method not in old_item:
                continue
            where = f"{method.upper()} {path}"
            if method not in new_paths[path]:
                yield f"{where}: operation removed"
                continue
            yield from _operation(where, old, old_item[method], new, new_paths[path][method])


def _operation(
    where: str, old: _Document, before: Schema, new: _Document, after: Schema
) -> Iterator[str]:
    if before.get("operationId") != after.get("operationId"):
        yield f"{where}: operationId {before.get('operationId')} became {after.get('operationId')}"
    yield from _parameters(where, old, before, new, after)
    yield from _request_body(where, old, before, new, after)
    after_responses = after.get("responses", {})
    for status, old_response in before.get("responses", {}).items():
        if status not in after_responses:
            yield f"{where}: response {status} removed"
            continue
        yield from _content(
            f"{where} response {status}",
            "response",
            old,
            old.resolve(old_response).get("content", {}),
            new,
            new.resolve(after_responses[status]).get("content", {}),
        )


def _parameters(
    where: str, old: _Document, before: Schema, new: _Document, after: Schema
) -> Iterator[str]:
    def by_key(document: _Document, operation: Schema) -> dict[tuple[str, str], Schema]:
        resolved = (document.resolve(p) for p in operation.get("parameters", []))
        return {(p["in"], p["name"]): p for p in resolved}

    old_params, new_params = by_key(old, before), by_key(new, after)
    for key, param in new_params.items():
        if param.get("required") and not old_params.get(key, {}).get("required"):
            change = "became required" if key in old_params else "added as required"
            yield f"{where}: {key[0]} parameter {key[1]} {change}"
    for key, param in old_params.items():
        if key not in new_params:
            yield f"{where}: {key[0]} parameter {key[1]} removed"
        else:
            yield from _schema(
                f"{where} {key[0]} parameter {key[1]}",
                "request",
                old,
                param.get("schema", {}),
                new,
                new_params[key].get("schema", {}),
                seen=frozenset(),
            )


def _request_body(
    where: str, old: _Document, before: Schema, new: _Document, after: Schema
) -> Iterator[str]:
    old_body = old.resolve(before.get("requestBody", {}))
    new_body = new.resolve(after.get("requestBody", {}))
    if new_body.get("required") and not old_body.get("required"):
        yield f"{where}: request body became required"
    yield from _content(
        f"{where} request body",
        "request",
        old,
        old_body.get("content", {}),
        new,
        new_body.get("content", {}),
    )


def _content(
    where: str, direction: Direction, old: _Document, before: Schema, new: _Document, after: Schema
) -> Iterator[str]:
    for media_type, old_media in before.items():
        if media_type not in after:
            yield f"{where}: media type {media_type} removed"
        else:
            yield from _schema(
                f"{where} ({media_type})",
                direction,
                old,
                old_media.get("schema", {}),
                new,
                after[media_type].get("schema", {}),
                seen=frozenset(),
            )


def _schema(
    where: str,
    direction: Direction,
    old: _Document,
    before: Schema,
    new: _Document,
    after: Schema,
    seen: frozenset[tuple[str, str]],
) -> Iterator[str]:
    # A recursive model (a `$ref` to itself) is compared once per pair of references.
    refs = (before.get("$ref", ""), after.get("$ref", ""))
    if refs != ("", ""):
        if refs in seen:
            return
        seen = seen | {refs}
    before, after = old.resolve(before), new.resolve(after)
    yield from _values(where, direction, _types(old, before), _types(new, after), "type")
    yield from _values(where, direction, _enum(old, before), _enum(new, after), "value")
    old_variants, new_variants = _variants(before), _variants(after)
    if old_variants == [before] and new_variants == [after]:
        yield from _structure(where, direction, old, before, new, after, seen)
    elif len(old_variants) == len(new_variants) == 1:
        # `X` and `X | None`: the null is a type change, reported above; compare the Xs.
        yield from _schema(where, direction, old, old_variants[0], new, new_variants[0], seen)
    else:
        new_by_ref = {v["$ref"]: v for v in new_variants if "$ref" in v}
        for variant in old_variants:
            if variant.get("$ref") in new_by_ref:
                counterpart = new_by_ref[variant["$ref"]]
                yield from _schema(where, direction, old, variant, new, counterpart, seen)


def _values(
    where: str, direction: Direction, before: set[str] | None, after: set[str] | None, kind: str
) -> Iterator[str]:
    """Types or enum values; None means unconstrained."""
    if direction == "request" and after is not None and (before is None or before - after):
        lost = "anything but " + ", ".join(sorted(after)) if before is None else before - after
        yield f"{where}: no longer accepts {kind} {_listed(lost)}"
    if direction == "response" and before is not None and (after is None or after - before):
        gained = "any " + kind if after is None else after - before
        yield f"{where}: can now send {kind} {_listed(gained)}"


def _structure(
    where: str,
    direction: Direction,
    old: _Document,
    before: Schema,
    new: _Document,
    after: Schema,
    seen: frozenset[tuple[str, str]],
) -> Iterator[str]:
    old_props, new_props = before.get("properties", {}), after.get("properties", {})
    old_required, new_required = set(before.get("required", [])), set(after.get("required", []))
    for name, schema in old_props.items():
        if name not in new_props:
            yield f"{where}: property {name} removed"
        else:
            yield from _schema(
                f"{where}.{name}", direction, old, schema, new, new_props[name], seen
            )
    if direction == "request":
        for name in sorted(new_required - old_required):
            change = "became required" if name in old_props else "added as required"
            yield f"{where}: property {name} {change}"
    else:
        for name in sorted((old_required - new_required) & set(new_props)):
            yield f"{where}: property {name} may now be missing"
    for key, suffix in (("items", "[]"), ("additionalProperties", "{}")):
        if isinstance(before.get(key), dict) and isinstance(after.get(key), dict):
            yield from _schema(where + suffix, direction, old, before[key], new, after[key], seen)


def _variants(schema: Schema) -> list[Schema]:
    """The alternatives of a union other than null; the schema itself when it is no union."""
    union = schema.get("anyOf") or schema.get("oneOf")
    if union is None:
        return [schema]
    return [v for v in union if v.get("type") != "null"]


def _types(document: _Document, schema: Schema) -> set[str] | None:
    """The JSON types a schema allows, following `$ref`s and unions; None when unconstrained."""
    schema = document.resolve(schema)
    declared = schema.get("type")
    if isinstance(declared, str):
        return {declared}
    if isinstance(declared, list):
        return set(declared)
    union = schema.get("anyOf") or schema.get("oneOf")
    if union is None:
        return None
    found: set[str] = set()
    for variant in union:
        types = _types(document, variant)
        if types is None:
            return None
        found |= types
    return found


def _enum(document: _Document, schema: Schema) -> set[str] | None:
    """The values an enum (or a union of enums) allows, as JSON text; None when not an enum."""
    schema = document.resolve(schema)
    if "enum" in schema or "const" in schema:
        values = schema.get("enum", [schema.get("const")])
        return {json.dumps(value) for value in values}
    union = schema.get("anyOf") or schema.get("oneOf")
    if union is None:
        return None
    found: set[str] = set()
    for variant in union:
        values = _enum(document, variant)
        if values is None and document.resolve(variant).get("type") != "null":
            return None
        found |= values or set()
    return found


def _listed(values: Iterable[str] | str) -> str:
    return values if isinstance(values, str) else ", ".join(sorted(values))
