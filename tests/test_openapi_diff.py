"""The breaking-change classifier (scripts/openapi_diff.py) on small hand-made documents."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from scripts.openapi_diff import breaking_changes

JSON = "application/json"


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


BEFORE: dict[str, Any] = {
    "openapi": "3.1.0",
    "paths": {
        "/v1/trips": {
            "post": {
                "operationId": "create_trip",
                "parameters": [
                    {
                        "in": "query",
                        "name": "dry_run",
                        "required": False,
                        "schema": {"type": "boolean"},
                    }
                ],
                "requestBody": {"required": True, "content": {JSON: {"schema": ref("TripIn")}}},
                "responses": {
                    "201": {"content": {JSON: {"schema": ref("TripOut")}}},
                    "422": {"content": {JSON: {"schema": ref("Error")}}},
                },
            },
            "get": {
                "operationId": "list_trips",
                "responses": {"200": {"content": {JSON: {"schema": ref("TripOut")}}}},
            },
        },
        "/livez": {"get": {"operationId": "livez", "responses": {"200": {}}}},
    },
    "components": {
        "schemas": {
            "TripIn": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "note": {"anyOf": [{"type": "string"}, {"type": "null"}]},
                    "mode": ref("Mode"),
                },
                "required": ["name"],
            },
            "TripOut": {
                "type": "object",
                "properties": {
                    "id": {"type": "string"},
                    "name": {"type": "string"},
                    "status": ref("Status"),
                    "waypoints": {"type": "array", "items": ref("Waypoint")},
                    "parent": {"anyOf": [ref("TripOut"), {"type": "null"}]},
                },
                "required": ["id", "name", "status", "waypoints"],
            },
            "Waypoint": {
                "type": "object",
                "properties": {"lat": {"type": "number"}, "lon": {"type": "number"}},
                "required": ["lat", "lon"],
            },
            "Mode": {"type": "string", "enum": ["car", "bike"]},
            "Status": {"type": "string", "enum": ["planned", "active"]},
            "Error": {"type": "object", "properties": {"code": {"type": "string"}}},
        }
    },
}

POST = "POST /v1/trips"
CREATED = f"{POST} response 201 ({JSON})"
BODY = f"{POST} request body ({JSON})"


def breaking_after(edit: Callable[[dict[str, Any]], object]) -> list[str]:
    """What `edit`, applied to a copy of BEFORE, breaks."""
    after = copy.deepcopy(BEFORE)
    edit(after)
    return breaking_changes(BEFORE, after)


def schemas(document: dict[str, Any]) -> dict[str, Any]:
    return document["components"]["schemas"]


def post(document: dict[str, Any]) -> dict[str, Any]:
    return document["paths"]["/v1/trips"]["post"]


def test_an_unchanged_document_breaks_nothing() -> None:
    assert breaking_after(lambda doc: None) == []


def test_a_removed_response_property_is_breaking() -> None:
    changes = breaking_after(lambda doc: schemas(doc)["TripOut"]["properties"].pop("name"))
    assert changes == [
        f"GET /v1/trips response 200 ({JSON}): property name removed",
        f"{CREATED}: property name removed",
    ]


def test_a_renamed_response_property_is_a_removal() -> None:
    def rename(doc: dict[str, Any]) -> None:
        properties = schemas(doc)["Waypoint"]["properties"]
        properties["latitude"] = properties.pop("lat")

    assert f"{CREATED}.waypoints[]: property lat removed" in breaking_after(rename)


def test_a_response_property_that_changes_type_is_breaking() -> None:
    changes = breaking_after(
        lambda doc: schemas(doc)["TripOut"]["properties"].update(id={"type": "integer"})
    )
    assert f"{CREATED}.id: can now send type integer" in changes


def test_a_response_property_that_may_now_be_null_or_missing_is_breaking() -> None:
    def loosen(doc: dict[str, Any]) -> None:
        trip = schemas(doc)["TripOut"]
        trip["properties"]["name"] = {"anyOf": [{"type": "string"}, {"type": "null"}]}
        trip["required"].remove("status")

    changes = breaking_after(loosen)
    assert f"{CREATED}.name: can now send type null" in changes
    assert f"{CREATED}: property status may now be missing" in changes


def test_a_response_enum_value_clients_have_never_seen_is_breaking() -> None:
    changes = breaking_after(lambda doc: schemas(doc)["Status"]["enum"].append("archived"))
    assert f'{CREATED}.status: can now send value "archived"' in changes


def test_additive_changes_break_nothing() -> None:
    def add(doc: dict[str, Any]) -> None:
        schemas(doc)["TripOut"]["properties"]["created_at"] = {"type": "string"}
        schemas(doc)["TripOut"]["required"].append("created_at")
        schemas(doc)["TripIn"]["properties"]["tags"] = {
            "type": "array",
            "items": {"type": "string"},
        }
        schemas(doc)["Mode"]["enum"].append("walk")
        schemas(doc)["Status"]["enum"].remove("active")
        schemas(doc)["TripIn"]["properties"]["name"] = {"type": ["string", "null"]}
        post(doc)["parameters"].append({"in": "header", "name": "X-Trace", "schema": {}})
        post(doc)["responses"]["409"] = {"content": {JSON: {"schema": ref("Error")}}}
        doc["paths"]["/v2/trips"] = copy.deepcopy(doc["paths"]["/v1/trips"])

    assert breaking_after(add) == []


def test_a_request_property_that_becomes_required_or_is_new_and_required_is_breaking() -> None:
    def require(doc: dict[str, Any]) -> None:
        schemas(doc)["TripIn"]["required"].append("note")
        schemas(doc)["TripIn"]["properties"]["owner"] = {"type": "string"}
        schemas(doc)["TripIn"]["required"].append("owner")

    assert breaking_after(require) == [
        f"{BODY}: property note became required",
        f"{BODY}: property owner added as required",
    ]


def test_a_removed_request_property_is_breaking() -> None:
    changes = breaking_after(lambda doc: schemas(doc)["TripIn"]["properties"].pop("note"))
    assert changes == [f"{BODY}: property note removed"]


def test_a_narrowed_request_type_or_enum_is_breaking() -> None:
    def narrow(doc: dict[str, Any]) -> None:
        schemas(doc)["TripIn"]["properties"]["note"] = {"type": "string"}
        schemas(doc)["Mode"]["enum"].remove("bike")

    assert breaking_after(narrow) == [
        f'{BODY}.mode: no longer accepts value "bike"',
        f"{BODY}.note: no longer accepts type null",
    ]


def test_parameter_changes_that_refuse_old_requests_are_breaking() -> None:
    def tighten(doc: dict[str, Any]) -> None:
        post(doc)["parameters"] = [
            {"in": "query", "name": "page", "required": True, "schema": {"type": "integer"}}
        ]
        doc["paths"]["/v1/trips"]["get"]["parameters"] = [
            {"in": "query", "name": "limit", "required": False, "schema": {"type": "integer"}}
        ]
        post(doc)["requestBody"]["required"] = False

    assert breaking_after(tighten) == [
        f"{POST}: query parameter dry_run removed",
        f"{POST}: query parameter page added as required",
    ]


def test_an_optional_parameter_that_becomes_required_is_breaking() -> None:
    changes = breaking_after(lambda doc: post(doc)["parameters"][0].update(required=True))
    assert changes == [f"{POST}: query parameter dry_run became required"]


def test_a_request_body_that_becomes_required_is_breaking() -> None:
    doc = copy.deepcopy(BEFORE)
    post(doc)["requestBody"]["required"] = False
    assert breaking_changes(doc, BEFORE) == [f"{POST}: request body became required"]


def test_removed_paths_operations_statuses_and_changed_operation_ids_are_breaking() -> None:
    def remove(doc: dict[str, Any]) -> None:
        del doc["paths"]["/v1/trips"]["get"]
        post(doc)["operationId"] = "create_trip_v1"
        del post(doc)["responses"]["422"]
        doc["paths"]["/v2/trips"] = {}

    doc = copy.deepcopy(BEFORE)
    doc["paths"]["/v2/trips"] = {"get": copy.deepcopy(BEFORE["paths"]["/v1/trips"]["get"])}
    after = copy.deepcopy(doc)
    remove(after)
    assert breaking_changes(doc, after) == [
        "GET /v1/trips: operation removed",
        "GET /v2/trips: operation removed",
        f"{POST}: operationId create_trip became create_trip_v1",
        f"{POST}: response 422 removed",
    ]
    del after["paths"]["/v2/trips"]
    assert "/v2/trips: path removed" in breaking_changes(doc, after)


def test_a_removed_media_type_is_breaking() -> None:
    def to_csv(doc: dict[str, Any]) -> None:
        post(doc)["responses"]["201"]["content"] = {"text/csv": {"schema": {"type": "string"}}}

    assert breaking_after(to_csv) == [f"{POST} response 201: media type {JSON} removed"]


def test_paths_outside_v1_and_v2_are_not_guarded() -> None:
    assert breaking_after(lambda doc: doc["paths"].pop("/livez")) == []
