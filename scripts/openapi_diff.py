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
from collections.abc import Iterator
from typing import Any, Literal

VERSIONED = ("/v1/", "/v2/")
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")

Schema = dict[str, Any]
Direction = Literal["request", "response"]


def breaking_changes(old: Schema, new: Schema) -> list[str]:
    """Every change from `old` to `new` that breaks a client of `/v1` or `/v2`, one line each."""
    return sorted(set(_Comparison(old, new).paths()))


def _resolve(document: Schema, schema: Schema) -> Schema:
    """`schema`, or what its `$ref` chain points to in `document`."""
    while "$ref" in schema:
        node: Any = document
        for part in schema["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        schema = node
    return schema


class _Comparison:
    """Walks `old` and `new` side by side; each method yields what breaks at its level."""

    def __init__(self, old: Schema, new: Schema) -> None:
        self.old, self.new = old, new

    def paths(self) -> Iterator[str]:
        new_paths = self.new.get("paths", {})
        for path, old_item in self.old.get("paths", {}).items():
            if not path.startswith(VERSIONED):
                continue
            if path not in new_paths:
                yield f"{path}: path removed"
                continue
            for method in (m for m in METHODS if m in old_item):
                where = f"{method.upper()} {path}"
                if method not in new_paths[path]:
                    yield f"{where}: operation removed"
                else:
                    yield from self.operation(where, old_item[method], new_paths[path][method])

    def operation(self, where: str, before: Schema, after: Schema) -> Iterator[str]:
        old_id, new_id = before.get("operationId"), after.get("operationId")
        if old_id != new_id:
            yield f"{where}: operationId {old_id} became {new_id}"
        yield from self.parameters(where, before, after)
        old_body = _resolve(self.old, before.get("requestBody", {}))
        new_body = _resolve(self.new, after.get("requestBody", {}))
        if new_body.get("required") and not old_body.get("required"):
            yield f"{where}: request body became required"
        yield from self.content(f"{where} request body", "request", old_body, new_body)
        new_responses = after.get("responses", {})
        for status, response in before.get("responses", {}).items():
            if status not in new_responses:
                yield f"{where}: response {status} removed"
            else:
                yield from self.content(
                    f"{where} response {status}",
                    "response",
                    _resolve(self.old, response),
                    _resolve(self.new, new_responses[status]),
                )

    def parameters(self, where: str, before: Schema, after: Schema) -> Iterator[str]:
        def by_key(document: Schema, operation: Schema) -> dict[tuple[str, str], Schema]:
            resolved = (_resolve(document, p) for p in operation.get("parameters", []))
            return {(p["in"], p["name"]): p for p in resolved}

        old_params, new_params = by_key(self.old, before), by_key(self.new, after)
        for (place, name), param in new_params.items():
            if param.get("required") and not old_params.get((place, name), {}).get("required"):
                change = "became required" if (place, name) in old_params else "added as required"
                yield f"{where}: {place} parameter {name} {change}"
        for (place, name), param in old_params.items():
            if (place, name) not in new_params:
                yield f"{where}: {place} parameter {name} removed"
            else:
                yield from self.schema(
                    f"{where} {place} parameter {name}",
                    "request",
                    param.get("schema", {}),
                    new_params[place, name].get("schema", {}),
                )

    def content(
        self, where: str, direction: Direction, before: Schema, after: Schema
    ) -> Iterator[str]:
        """The media types of a request body or a response (`before` and `after` resolved)."""
        new_content = after.get("content", {})
        for media_type, media in before.get("content", {}).items():
            if media_type not in new_content:
                yield f"{where}: media type {media_type} removed"
            else:
                yield from self.schema(
                    f"{where} ({media_type})",
                    direction,
                    media.get("schema", {}),
                    new_content[media_type].get("schema", {}),
                )

    def schema(
        self,
        where: str,
        direction: Direction,
        before: Schema,
        after: Schema,
        seen: frozenset[tuple[str, str]] = frozenset(),
    ) -> Iterator[str]:
        # A recursive model (a `$ref` to itself) is compared once per pair of references.
        refs = (before.get("$ref", ""), after.get("$ref", ""))
        if refs != ("", ""):
            if refs in seen:
                return
            seen = seen | {refs}
        before, after = _resolve(self.old, before), _resolve(self.new, after)
        old_types, new_types = _types(self.old, before), _types(self.new, after)
        yield from _narrowed(where, direction, old_types, new_types, "type")
        old_enum, new_enum = _enum(self.old, before), _enum(self.new, after)
        yield from _narrowed(where, direction, old_enum, new_enum, "value")
        old_variants, new_variants = _variants(before), _variants(after)
        if old_variants == [before] and new_variants == [after]:
            yield from self.structure(where, direction, before, after, seen)
        elif len(old_variants) == len(new_variants) == 1:
            # `X` and `X | None`: the null is a type change, reported above; compare the Xs.
            yield from self.schema(where, direction, old_variants[0], new_variants[0], seen)
        else:
            new_by_ref = {v["$ref"]: v for v in new_variants if "$ref" in v}
            for variant in old_variants:
                if variant.get("$ref") in new_by_ref:
                    same = new_by_ref[variant["$ref"]]
                    yield from self.schema(where, direction, variant, same, seen)

    def structure(
        self,
        where: str,
        direction: Direction,
        before: Schema,
        after: Schema,
        seen: frozenset[tuple[str, str]],
    ) -> Iterator[str]:
        """Properties, array items and map values of two resolved, non-union schemas."""
        old_props, new_props = before.get("properties", {}), after.get("properties", {})
        old_required, new_required = set(before.get("required", [])), set(after.get("required", []))
        for name, schema in old_props.items():
            if name not in new_props:
                yield f"{where}: property {name} removed"
            else:
                yield from self.schema(f"{where}.{name}", direction, schema, new_props[name], seen)
        if direction == "request":
            for name in new_required - old_required:
                change = "became required" if name in old_props else "added as required"
                yield f"{where}: property {name} {change}"
        else:
            for name in (old_required - new_required) & set(new_props):
                yield f"{where}: property {name} may now be missing"
        for key, suffix in (("items", "[]"), ("additionalProperties", "{}")):
            if isinstance(before.get(key), dict) and isinstance(after.get(key), dict):
                yield from self.schema(where + suffix, direction, before[key], after[key], seen)


def _narrowed(
    where: str, direction: Direction, before: set[str] | None, after: set[str] | None, kind: str
) -> Iterator[str]:
    """A request that accepts fewer types or values, or a response that can send more of them
    (None: unconstrained)."""
    if direction == "request" and after is not None and (before is None or before - after):
        lost = f"anything but {_listed(after)}" if before is None else _listed(before - after)
        yield f"{where}: no longer accepts {kind} {lost}"
    if direction == "response" and before is not None and (after is None or after - before):
        gained = f"any {kind}" if after is None else _listed(after - before)
        yield f"{where}: can now send {kind} {gained}"


def _variants(schema: Schema) -> list[Schema]:
    """The alternatives of a union other than null; the schema itself when it is no union."""
    union = schema.get("anyOf") or schema.get("oneOf")
    if union is None:
        return [schema]
    return [v for v in union if v.get("type") != "null"]


def _types(document: Schema, schema: Schema) -> set[str] | None:
    """The JSON types a schema allows, following `$ref`s and unions; None when unconstrained."""
    schema = _resolve(document, schema)
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


def _enum(document: Schema, schema: Schema) -> set[str] | None:
    """The values an enum (or a union of enums and null) allows, as JSON text; None when the
    schema is no enum."""
    schema = _resolve(document, schema)
    if "enum" in schema or "const" in schema:
        return {json.dumps(value) for value in schema.get("enum", [schema.get("const")])}
    union = schema.get("anyOf") or schema.get("oneOf")
    if union is None:
        return None
    found: set[str] = set()
    for variant in union:
        values = _enum(document, variant)
        if values is None and _resolve(document, variant).get("type") != "null":
            return None
        found |= values or set()
    return found


def _listed(values: set[str]) -> str:
    return ", ".join(sorted(values))
