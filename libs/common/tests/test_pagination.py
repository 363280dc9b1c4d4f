"""The shared pagination helper: cursor codec, sort and field parsing, selectable models, the
dependency and its `Link` header (the database side is proved by the API's trip list tests)."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import pytest
from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Column, DateTime, MetaData, String, Table, Uuid

from tripline_common.data.models import AlertRule
from tripline_common.platform import BadRequestError
from tripline_common.web import (
    Page,
    PageParams,
    PageResult,
    ServiceState,
    SortSpec,
    create_app,
    page_params,
    selectable,
)
from tripline_common.web.pagination import (
    Cursor,
    CursorCodec,
    fields_pattern,
    link_header,
    parse_fields,
    parse_sort,
)

SECRET = "test-secret-of-at-least-thirty-two-characters"

# A table that exists only as SQLAlchemy metadata: enough to declare a sort spec.
things = Table(
    "things",
    MetaData(),
    Column("id", Uuid, primary_key=True),
    Column("name", String, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
SPEC = SortSpec(
    {"name": things.c.name, "created_at": things.c.created_at},  # type: ignore[dict-item]
    tiebreaker=things.c.id,  # type: ignore[arg-type]
    default="-created_at",
)


class Thing(BaseModel):
    """A thing."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID = Field(description="ID.")
    name: str = Field(description="Name.")
    tags: list[str] = Field(description="Tags.")


ThingItem = selectable(Thing, name="ThingItem")


class ThingPage(Page[ThingItem]):  # type: ignore[valid-type]
    """A page of things."""


# --- cursors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        datetime(2026, 12, 1, 8, 30, 15, 123456, tzinfo=UTC),
        datetime(2026, 12, 1, 8, 30, tzinfo=UTC) + timedelta(hours=0),
        "Trip ü 🚚",
        42,
        -1.5,
        3.0,  # An integral float must come back a float (its tag says so), not an int.
        True,
        uuid.UUID("0b8f5a4e-3c1d-4f7a-9e2b-6d5c4b3a2f10"),
    ],
)
def test_a_cursor_round_trips_with_its_types(key: Any) -> None:
    codec = CursorCodec(SECRET)
    cursor = Cursor(sort="-name", key=key, id=uuid.uuid4(), direction="prev")

    decoded = codec.decode(codec.encode(cursor))

    assert decoded == cursor
    assert type(decoded.key) is type(key)


def test_a_cursor_on_an_enum_column_round_trips_as_its_value() -> None:
    codec = CursorCodec(SECRET)
    cursor = Cursor(sort="rule", key=AlertRule.LOST_SIGNAL, id=uuid.uuid4(), direction="next")

    decoded = codec.decode(codec.encode(cursor))

    assert decoded.key == "lost_signal" and type(decoded.key) is str


def test_a_cursor_is_url_safe_and_opaque() -> None:
    token = CursorCodec(SECRET).encode(Cursor("name", "a", 1, "next"))

    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")


def _flip(text: str, index: int) -> str:
    return text[:index] + ("A" if text[index] != "A" else "B") + text[index + 1 :]


@pytest.mark.parametrize(
    "tamper",
    [
        lambda token: _flip(token, 3),  # Payload changed.
        lambda token: _flip(token, len(token) - 3),  # Signature changed.
        lambda token: token.split(".")[0],  # Signature removed.
        lambda token: token + ".extra",
        lambda token: "",
        lambda token: "!!!.???",
        lambda token: "e30.AAAA",  # `{}` with a made-up signature.
    ],
)
def test_a_tampered_cursor_is_a_400(tamper: Any) -> None:
    codec = CursorCodec(SECRET)
    token = codec.encode(Cursor("-created_at", datetime.now(UTC), uuid.uuid4(), "next"))

    with pytest.raises(BadRequestError) as raised:
        codec.decode(tamper(token))

    assert raised.value.code == "invalid_cursor"


def test_a_cursor_from_another_secret_is_a_400() -> None:
    token = CursorCodec("another secret entirely, also long enough").encode(
        Cursor("name", "a", 1, "next")
    )

    with pytest.raises(BadRequestError):
        CursorCodec(SECRET).decode(token)


def test_a_cursor_signed_before_a_secret_rotation_is_accepted_until_the_old_secret_goes() -> None:
    old, new = "the secret before rotation, 32+ characters", SECRET
    token = CursorCodec(old).encode(Cursor("name", "a", 1, "next"))

    assert CursorCodec(new, old).decode(token) == Cursor("name", "a", 1, "next")
    with pytest.raises(BadRequestError):
        CursorCodec(new).decode(token)


def test_new_cursors_are_signed_with_the_current_secret_only() -> None:
    old, new = "the secret before rotation, 32+ characters", SECRET
    token = CursorCodec(new, old).encode(Cursor("name", "a", 1, "next"))

    assert CursorCodec(new).decode(token).key == "a"
    with pytest.raises(BadRequestError):
        CursorCodec(old).decode(token)


@pytest.mark.parametrize(
    "cursor",
    [
        Cursor("name", "a", 1, "sideways"),  # type: ignore[arg-type]
        Cursor(7, "a", 1, "next"),  # type: ignore[arg-type]
    ],
)
def test_a_properly_signed_cursor_with_a_bad_direction_or_sort_is_still_a_400(cursor) -> None:
    codec = CursorCodec(SECRET)

    with pytest.raises(BadRequestError) as raised:
        codec.decode(codec.encode(cursor))

    assert raised.value.code == "invalid_cursor"


def test_only_scalar_keys_go_into_cursors() -> None:
    with pytest.raises(TypeError):
        CursorCodec(SECRET).encode(Cursor("name", ["a"], 1, "next"))


# --- sort and fields ---------------------------------------------------------------------------


def test_sort_parses_field_and_direction() -> None:
    assert str(parse_sort("-name", ["name"])) == "-name"
    assert parse_sort("name", ["name"]).descending is False
    assert parse_sort(" -name ", ["name"]).field == "name"


@pytest.mark.parametrize("value", ["owner", "--name", "-", "", "name,created_at", "NAME"])
def test_sort_outside_the_allowlist_is_a_400_naming_it(value: str) -> None:
    with pytest.raises(BadRequestError) as raised:
        parse_sort(value, ["name", "created_at"])

    assert raised.value.code == "invalid_sort"
    assert raised.value.details == {"allowed": ["name", "created_at"]}


def test_a_bad_default_sort_fails_at_declaration() -> None:
    with pytest.raises(BadRequestError):
        SortSpec({"name": things.c.name}, tiebreaker=things.c.id, default="size")  # type: ignore[dict-item,arg-type]


def test_sort_spec_lists_every_accepted_value() -> None:
    assert SPEC.choices == ["name", "created_at", "-name", "-created_at"]


def test_fields_are_parsed_deduplicated_and_always_include_the_id() -> None:
    allowed = ["id", "name", "tags"]

    assert parse_fields(None, allowed, ["id"]) is None
    assert parse_fields(" ", allowed, ["id"]) is None
    assert parse_fields("name, name,", allowed, ["id"]) == {"id", "name"}


@pytest.mark.parametrize(
    "value",
    [
        "id",
        "name,tags",
        " name , tags ",
        "name,,",
        ",",
        "",
        " ",
        "\tname\n",
        "name\u3000,id",
        "nam",
        "names",
        "name,secret",
        "name tags",
        "name;tags",
        "name\x00",
        "NAME",
        "id,name,status",
    ],
)
def test_the_published_fields_pattern_accepts_exactly_what_is_parsed(value: str) -> None:
    allowed = ["id", "name", "tags"]
    try:
        parse_fields(value, allowed, ["id"])
        accepted = True
    except BadRequestError:
        accepted = False

    assert (re.search(fields_pattern(allowed), value) is not None) is accepted


def test_unknown_fields_are_a_400_listing_them() -> None:
    with pytest.raises(BadRequestError) as raised:
        parse_fields("name,secret,zzz", ["id", "name"], ["id"])

    assert raised.value.code == "invalid_fields"
    assert raised.value.details == {"unknown": ["secret", "zzz"], "allowed": ["id", "name"]}


# --- selectable models -------------------------------------------------------------------------


def test_a_selectable_model_documents_only_the_id_as_required() -> None:
    schema = ThingItem.model_json_schema(mode="serialization")

    assert schema["required"] == ["id"]
    assert schema["title"] == "ThingItem"
    assert "default" not in schema["properties"]["name"]
    assert schema["properties"]["name"]["description"] == "Name."


def test_a_selectable_model_validates_like_the_original() -> None:
    with pytest.raises(ValueError, match="tags"):
        ThingItem.model_validate({"id": uuid.uuid4(), "name": "a", "tags": "not a list"})


def test_a_page_knows_its_item_model() -> None:
    assert ThingPage.item_type is ThingItem


# --- the dependency, through a real app --------------------------------------------------------


def build_app(make_settings: Any) -> Any:
    router = APIRouter(prefix="/things")
    rows = [Thing(id=uuid.UUID(int=i), name=f"thing {i}", tags=["x"]) for i in range(3)]

    @router.get("", response_model=ThingPage)
    async def list_things(
        page: Annotated[PageParams, Depends(page_params(SPEC, ThingPage, max_limit=50))],
    ) -> Any:
        selected = rows[page.offset : page.offset + page.limit]
        more = page.offset + page.limit < len(rows)
        result = PageResult(
            rows=selected,
            next_cursor="next-token" if more else None,
            prev_cursor=None,
            has_next=more,
            has_prev=page.offset > 0,
            total=len(rows) if page.include_total else None,
        )
        return page.respond(result)

    settings = make_settings(secret_key=SECRET, service_name="pagination-test")
    return create_app(state=ServiceState(settings), title="t", description="t", routers=[router])


@pytest.fixture
async def client(make_settings, app_client):
    async with app_client(build_app(make_settings)) as client:
        yield client


async def test_the_dependency_applies_limits_and_selection(client) -> None:
    response = await client.get("/v1/things", params={"limit": 2, "fields": "name"})

    assert response.status_code == 200
    body = response.json()
    assert body["items"] == [
        {"id": str(uuid.UUID(int=0)), "name": "thing 0"},
        {"id": str(uuid.UUID(int=1)), "name": "thing 1"},
    ]
    assert body["limit"] == 2 and body["offset"] == 0 and body["total"] is None
    assert response.links["next"]["url"].endswith("cursor=next-token")


async def test_offset_requests_get_offset_links(client) -> None:
    response = await client.get("/v1/things", params={"limit": 1, "offset": 1})

    assert response.links["next"]["url"] == "http://testserver/v1/things?limit=1&offset=2"
    assert response.links["prev"]["url"] == "http://testserver/v1/things?limit=1&offset=0"


@pytest.mark.parametrize(
    ("params", "status", "code"),
    [
        ({"limit": 51}, 422, "validation_error"),  # This list's own maximum.
        ({"limit": 0}, 422, "validation_error"),
        ({"sort": "tags"}, 400, "invalid_sort"),
        ({"fields": "nope"}, 400, "invalid_fields"),
        ({"cursor": "garbage"}, 400, "invalid_cursor"),
    ],
)
async def test_bad_parameters_are_refused_in_the_shared_shape(client, params, status, code):
    response = await client.get("/v1/things", params=params)

    assert response.status_code == status
    assert response.json()["code"] == code and response.json()["request_id"]


async def test_a_cursor_issued_by_the_app_is_accepted_back(client) -> None:
    token = CursorCodec(SECRET).encode(
        Cursor("-created_at", datetime.now(UTC), uuid.uuid4(), "next")
    )

    response = await client.get("/v1/things", params={"cursor": token})

    assert response.status_code == 200
    assert response.json()["offset"] is None  # Cursor mode.


def test_link_header_format() -> None:
    assert link_header({"next": "http://a/x?cursor=1", "prev": "http://a/x"}) == (
        '<http://a/x?cursor=1>; rel="next", <http://a/x>; rel="prev"'
    )
