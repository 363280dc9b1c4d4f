"""Mass assignment: a client cannot set what the server owns (role, owner, keys, secrets, ids,
status) by adding it to a request body; such a body is a 422 that stores nothing.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select
from trip_factories import trip_body, trip_body_v2

from tripline_admin.main import create_admin_app
from tripline_api.main import create_api_app
from tripline_common.data.models import Device, Trip, User, WebhookEndpoint
from tripline_ingest.main import create_ingest_app

OTHER_ID = "0b8f5a4e-3c1d-4f7a-9e2b-6d5c4b3a2f10"
NEW_USER = {
    "email": "mallory@example.com",
    "display_name": "Mallory",
    "password": "correct horse battery staple 42",
}

# (method, path, body with one server-owned field added, that field)
ATTEMPTS: list[tuple[str, str, dict[str, Any], str]] = [
    ("POST", "/v1/users", {**NEW_USER, "role": "admin"}, "role"),
    ("POST", "/v1/users", {**NEW_USER, "is_active": True}, "is_active"),
    ("POST", "/v1/users", {**NEW_USER, "password_hash": "$argon2id$x"}, "password_hash"),
    ("POST", "/v1/users", {**NEW_USER, "id": OTHER_ID}, "id"),
    ("POST", "/v1/trips", trip_body(owner_id=OTHER_ID), "owner_id"),
    ("POST", "/v1/trips", trip_body(status="completed"), "status"),
    ("POST", "/v1/trips", trip_body(distance_m=1e9), "distance_m"),
    ("POST", "/v2/trips", trip_body_v2(owner_id=OTHER_ID), "owner_id"),
    ("POST", "/v2/trips", trip_body_v2(id=OTHER_ID), "id"),
    ("POST", "/v1/devices", {"name": "Van", "api_key": "tl_chosen-by-me"}, "api_key"),
    ("POST", "/v1/devices", {"name": "Van", "api_key_hash": "0" * 64}, "api_key_hash"),
    ("POST", "/v1/devices", {"name": "Van", "owner_id": OTHER_ID}, "owner_id"),
    ("POST", "/v1/webhooks", {"url": "https://h.example.com/", "secret": "mine"}, "secret"),
    ("POST", "/v1/webhooks", {"url": "https://h.example.com/", "owner_id": OTHER_ID}, "owner_id"),
]


async def row_counts(session_factory) -> dict[str, int]:
    async with session_factory() as session:
        return {
            model.__name__: await session.scalar(select(func.count()).select_from(model))
            for model in (User, Trip, Device, WebhookEndpoint)
        }


@pytest.mark.parametrize(
    ("method", "path", "body", "field"), ATTEMPTS, ids=[f"{a[0]} {a[1]} {a[3]}" for a in ATTEMPTS]
)
async def test_a_server_owned_field_in_a_body_is_a_422_that_stores_nothing(
    client, make_user, auth_headers, session_factory, method, path, body, field
) -> None:
    headers = await auth_headers(await make_user())
    before = await row_counts(session_factory)

    response = await client.request(method, path, json=body, headers=headers)

    assert response.status_code == 422, response.text
    error = response.json()
    assert error["code"] == "validation_error"
    assert ["body", field] in [item["loc"] for item in error["details"]]
    assert await row_counts(session_factory) == before


async def test_a_trip_cannot_be_moved_to_another_owner_by_put_or_patch(
    client, make_user, auth_headers
) -> None:
    owner, other = await make_user(), await make_user()
    headers = await auth_headers(owner)
    trip = (await client.post("/v1/trips", json=trip_body(), headers=headers)).json()
    url = f"/v1/trips/{trip['id']}"

    patched = await client.patch(url, json={"owner_id": str(other.id)}, headers=headers)
    put = await client.put(
        url, json=trip_body(status="planned", owner_id=str(other.id)), headers=headers
    )

    assert (patched.status_code, put.status_code) == (422, 422)
    assert (await client.get(url, headers=headers)).json() == trip
    assert (await client.get(url, headers=await auth_headers(other))).status_code == 404


def object_schemas(schema: Any, components: dict[str, Any], seen: set[str]) -> list[dict]:
    """Every object schema reachable from `schema` (through $ref, items, anyOf, properties)."""
    if isinstance(schema, list):
        return [found for item in schema for found in object_schemas(item, components, seen)]
    if not isinstance(schema, dict):
        return []
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        if name in seen:
            return []
        seen.add(name)
        return object_schemas(components[name], components, seen)
    found = [schema] if schema.get("type") == "object" or "properties" in schema else []
    for key in ("items", "anyOf", "allOf", "oneOf", "prefixItems"):
        found += object_schemas(schema.get(key), components, seen)
    for value in schema.get("properties", {}).values():
        found += object_schemas(value, components, seen)
    return found


@pytest.mark.parametrize("create", [create_api_app, create_admin_app, create_ingest_app])
def test_every_json_body_of_every_app_refuses_unknown_fields(create) -> None:
    spec = create().openapi()
    components = spec["components"]["schemas"]
    bodies = [
        (f"{method.upper()} {path}", content["schema"])
        for path, operations in spec["paths"].items()
        for method, operation in operations.items()
        for media, content in operation.get("requestBody", {}).get("content", {}).items()
        if "json" in media
    ]
    assert bodies
    for where, schema in bodies:
        for found in object_schemas(schema, components, set()):
            if not found.get("properties"):
                continue  # free-form maps (none in request bodies today) have no fields to set
            assert found.get("additionalProperties") is False, (where, found.get("title"))
