"""The one pagination helper of every list endpoint: parameters, signed cursors, sorting on an
allowlist, `?fields=` selection, `Link` headers and the page envelope.

A list endpoint declares what it allows once, and gets the rest:

    TRIP_SORT = SortSpec({"created_at": col(Trip.created_at), "name": col(Trip.name)},
                         tiebreaker=col(Trip.id), default="-created_at")

    class TripPage(Page[TripListItem]): ...           # TripListItem = selectable(TripPublic)

    TripPageParams = Annotated[PageParams, Depends(page_params(TRIP_SORT, TripPage))]

    async def list_trips(page: TripPageParams, ...) -> TripPage:
        result = await fetch_page(session, select(Trip).where(...), page, TRIP_SORT)
        return page.respond(result)

Two ways to page, one envelope:

- `limit` + `offset`: simple, lets a client jump to page N; costs O(offset) in the database,
  so `offset` is capped (`MAX_OFFSET`) and clients that go deeper use the cursor.
- `cursor`: keyset pagination on (sort key, id). Stable while rows are inserted or deleted and
  O(limit) at any depth. Cursors are opaque, HMAC-signed with the app's secret (a tampered or
  foreign cursor is a 400, never a 500) and tied to the sort they were issued for. They are
  signed, not encrypted: they carry the sort value of a row the caller has already seen.

`total` is opt-in (`include_total=true`): a COUNT over the filtered rows is O(n) in PostgreSQL
and most clients (infinite scroll, sync jobs) never show it, so they should not pay for it.
"""

# No `from __future__ import annotations`: the dependency built inside a function below has
# annotations naming that function's local variables, which FastAPI must evaluate at runtime.
import base64
import binascii
import copy
import functools
import hashlib
import hmac
import uuid
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, ClassVar, Generic, Literal, TypeVar, cast

import orjson
from fastapi import Query, Request, Response
from pydantic import BaseModel, Field, SerializerFunctionWrapHandler, create_model, model_serializer
from sqlalchemy import Select, bindparam, func, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped

from tripline_common.data.models import mapped_attribute
from tripline_common.data.names import BLANKS
from tripline_common.platform.errors import BadRequestError
from tripline_common.web.deps import SettingsDep

DEFAULT_LIMIT = 20
MAX_LIMIT = 100
MAX_OFFSET = 10_000
"""Deepest `offset` accepted; deeper pages are reached with the cursor (O(limit) at any depth)."""
MAX_CURSOR_LENGTH = 1024

Direction = Literal["next", "prev"]
ItemT = TypeVar("ItemT", bound=BaseModel)
RowT = TypeVar("RowT")


# --- Sorting ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SortSpec:
    """What a list may be sorted on: public names mapped to NOT NULL columns, and a unique
    tiebreaker column (the primary key) that makes the order total, as keyset paging needs."""

    columns: Mapping[str, Mapped[Any]]  # `col(Model.field)`
    tiebreaker: Mapped[Any]
    default: str

    def __post_init__(self) -> None:
        parse_sort(self.default, self.allowed)  # A bad default fails at import, not per request.

    @property
    def allowed(self) -> list[str]:
        """The sortable field names, in declaration order."""
        return list(self.columns)

    @property
    def choices(self) -> list[str]:
        """Every accepted `sort` value: each field ascending, then descending (`-field`)."""
        return [*self.columns, *(f"-{name}" for name in self.columns)]


@dataclass(frozen=True)
class SortOrder:
    """One sort key and its direction, e.g. `-planned_start` (descending)."""

    field: str
    descending: bool

    def __str__(self) -> str:
        return f"-{self.field}" if self.descending else self.field


def parse_sort(value: str, allowed: Collection[str]) -> SortOrder:
    """`name` or `-name` with `name` in the allowlist; anything else is a 400 naming the
    allowed fields (never passed to SQL)."""
    raw = value.strip()
    descending = raw.startswith("-")
    name = raw[1:] if descending else raw
    if name not in allowed:
        raise BadRequestError(
            f"Cannot sort on {value!r}. Sort on one of: {', '.join(allowed)} "
            "(prefix with '-' for descending).",
            code="invalid_sort",
            details={"allowed": list(allowed)},
        )
    return SortOrder(name, descending)


# --- Field selection --------------------------------------------------------------------------


def fields_pattern(allowed: Collection[str]) -> str:
    """The JSON-Schema `pattern` of exactly the `fields` values `parse_fields` accepts with
    `allowed`: comma-separated allowed names, blanks around each, empty entries ignored."""
    entry = rf"[{BLANKS}]*(?:(?:{'|'.join(allowed)})[{BLANKS}]*)?"
    return rf"^{entry}(?:,{entry})*$"


def parse_fields(
    value: str | None, allowed: Collection[str], always: Collection[str]
) -> frozenset[str] | None:
    """`id,name,status` -> the selected field names (plus `always`); None means every field.
    An unknown name is a 400 listing the allowed ones."""
    if value is None or not value.strip():
        return None
    # `fields_pattern(allowed)` says the same in the published document: change both together.
    requested = {name.strip() for name in value.split(",") if name.strip()}
    unknown = sorted(requested - set(allowed))
    if unknown:
        raise BadRequestError(
            f"Unknown field(s) in `fields`: {', '.join(unknown)}.",
            code="invalid_fields",
            details={"unknown": unknown, "allowed": list(allowed)},
        )
    return frozenset(requested | set(always))


class SparseModel(BaseModel):
    """Serialises only the fields that were set: what `?fields=` selection returns."""

    # No return annotation on purpose: Pydantic would document the annotated type (e.g. a bare
    # object) instead of the model's own schema.
    @model_serializer(mode="wrap")
    def _only_set_fields(self, handler: SerializerFunctionWrapHandler):  # type: ignore[no-untyped-def]
        data = handler(self)
        if isinstance(data, dict):
            return {name: value for name, value in data.items() if name in self.model_fields_set}
        return data


def _no_default_in_schema(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


def selectable(model: type[ItemT], *, name: str, always: Collection[str] = ("id",)) -> type[ItemT]:
    """A subclass of `model` for list items under `?fields=` selection.

    Every field except `always` may be absent, and the OpenAPI schema says so (only `always` is
    required), so a selected response still matches the documented schema. Validation is
    unchanged: a full item validates exactly as `model` does.
    """
    fields: dict[str, Any] = {}
    for field_name, info in model.model_fields.items():
        if field_name in always:
            continue
        optional = copy.copy(info)
        optional.default = None
        optional.default_factory = None
        optional.json_schema_extra = _no_default_in_schema
        fields[field_name] = (info.annotation, optional)
    sparse = create_model(
        name,
        __base__=(model, SparseModel),
        __module__=model.__module__,
        __doc__=f"{model.__doc__ or model.__name__} Under `?fields=`, only the selected fields "
        f"(and {', '.join(always)}) are present.",
        **fields,
    )
    return cast(type[ItemT], sparse)


# --- Cursors ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cursor:
    """A position in a sorted list: just after (`next`) or just before (`prev`) a row."""

    sort: str
    key: Any
    id: Any
    direction: Direction


def _tag(value: Any) -> list[Any]:
    # Typed so that decoding gives back the exact type the column binds (aware datetimes, UUIDs).
    if isinstance(value, datetime):
        return ["dt", value.isoformat()]
    if isinstance(value, uuid.UUID):
        return ["uuid", str(value)]
    for kind in (bool, int, float, str):  # bool first: it is an int too.
        if isinstance(value, kind):
            # An enum member (a StrEnum sort key) goes in as its plain value, which its
            # column binds alike.
            return [kind.__name__, kind(value)]
    raise TypeError(f"cannot put a {type(value).__name__} in a cursor")


def _untag(tagged: Any) -> Any:
    kind, value = tagged
    if kind == "dt":
        return datetime.fromisoformat(value)
    if kind == "uuid":
        return uuid.UUID(value)
    if kind in ("bool", "int", "float", "str"):
        expected = {"bool": bool, "int": int, "float": float, "str": str}[kind]
        if not isinstance(value, expected):
            raise ValueError("cursor value of the wrong type")
        return value
    raise ValueError(f"unknown cursor value kind {kind!r}")


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class CursorCodec:
    """Encodes cursors as `<base64url JSON>.<base64url HMAC-SHA256 tag>`, signed with a key
    derived from the app's secret. Cursors signed with one of the `previous` secrets (the
    settings' SECRET_KEY_PREVIOUS) are still accepted, so rotating the secret does not break
    a client paging through a list; removing a secret invalidates what it signed."""

    def __init__(self, secret: str, *previous: str) -> None:
        self._keys = [
            hmac.new(key.encode(), b"tripline.pagination.cursor.v1", hashlib.sha256).digest()
            for key in (secret, *previous)
        ]
        self._key = self._keys[0]

    def _sign(self, payload: bytes, key: bytes | None = None) -> bytes:
        return hmac.new(key or self._key, payload, hashlib.sha256).digest()[:16]

    def _signed(self, payload: bytes, tag: bytes) -> bool:
        return any(hmac.compare_digest(tag, self._sign(payload, key)) for key in self._keys)

    def encode(self, cursor: Cursor) -> str:
        """The opaque string handed to clients."""
        payload = orjson.dumps(
            {
                "s": cursor.sort,
                "d": cursor.direction,
                "k": _tag(cursor.key),
                "i": _tag(cursor.id),
            }
        )
        return f"{_b64encode(payload)}.{_b64encode(self._sign(payload))}"

    def decode(self, token: str) -> Cursor:
        """The cursor inside `token`; a 400 (`invalid_cursor`) for anything we did not sign."""
        try:
            payload_part, tag_part = token.split(".")
            payload = _b64decode(payload_part)
            if not self._signed(payload, _b64decode(tag_part)):
                raise ValueError("bad signature")
            data = orjson.loads(payload)
            direction = data["d"]
            if direction not in ("next", "prev") or not isinstance(data["s"], str):
                raise ValueError("bad cursor fields")
            return Cursor(
                sort=data["s"], key=_untag(data["k"]), id=_untag(data["i"]), direction=direction
            )
        except (ValueError, KeyError, TypeError, binascii.Error, orjson.JSONDecodeError):
            raise BadRequestError(
                "The cursor is not valid; start again from the first page.", code="invalid_cursor"
            ) from None


@functools.lru_cache(maxsize=4)
def cursor_codec(secret: str, *previous: str) -> CursorCodec:
    """The codec for these secrets, built once per process rather than once per request."""
    return CursorCodec(secret, *previous)


# --- The envelope -----------------------------------------------------------------------------


class Page(BaseModel, Generic[ItemT]):
    """One page of a list, with what a client needs to fetch the next or previous one."""

    items: list[ItemT] = Field(description="The rows of this page, in the requested order.")
    limit: int = Field(description="The page size that was applied.", examples=[20])
    offset: int | None = Field(
        description="The offset that was applied; null when paging by cursor.", examples=[0]
    )
    next_cursor: str | None = Field(
        description="Pass as `cursor` to get the page after this one; null on the last page.",
    )
    prev_cursor: str | None = Field(
        description="Pass as `cursor` to get the page before this one; null on the first page.",
    )
    total: int | None = Field(
        description="Rows matching the filters, across all pages; only with `include_total=true` "
        "(a count costs a scan, so it is opt-in).",
        examples=[None],
    )

    item_type: ClassVar[type[BaseModel]]

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        # A concrete page (`class TripPage(Page[TripListItem])`) remembers its item model.
        for base in cls.__mro__:
            args = getattr(base, "__pydantic_generic_metadata__", {}).get("args", ())
            if args and isinstance(args[0], type) and issubclass(args[0], BaseModel):
                cls.item_type = args[0]
                break


@dataclass
class PageResult(Generic[RowT]):
    """What `fetch_page` found: the rows of the page and where the neighbouring pages start."""

    rows: list[RowT]
    next_cursor: str | None
    prev_cursor: str | None
    has_next: bool
    has_prev: bool
    total: int | None
    total_capped: bool = False
    """True when more rows match than `PageParams.total_cap`: `total` is then the cap."""


# --- Parameters (the dependency) ----------------------------------------------------------------


@dataclass
class PageParams:
    """The validated pagination, sort and field-selection parameters of one list request."""

    limit: int
    offset: int
    cursor: Cursor | None
    sort: SortOrder
    fields: frozenset[str] | None
    include_total: bool
    codec: CursorCodec
    page_model: type[Page[Any]]
    request: Request
    response: Response
    total_cap: int | None = None
    """Count at most this many rows for `total` (the console's tables: a COUNT stays a bounded
    read however large the table); None: count them all (`include_total` of the API)."""

    def respond(self, result: PageResult[Any]) -> Any:
        """The page envelope for `result` (items narrowed to `fields`), with the `Link` header
        (rel `next` / `prev`) set on the response."""
        item_model = self.page_model.item_type
        items = [self._select(item_model.model_validate(row)) for row in result.rows]
        links = self._links(result)
        if links:
            self.response.headers.append("Link", link_header(links))
        return self.page_model(
            items=items,
            limit=self.limit,
            offset=None if self.cursor else self.offset,
            next_cursor=result.next_cursor,
            prev_cursor=result.prev_cursor,
            total=result.total,
        )

    def _select(self, item: BaseModel) -> BaseModel:
        if self.fields is None:
            return item
        values = {name: getattr(item, name) for name in self.fields}
        return type(item).model_construct(_fields_set=set(self.fields), **values)

    def _links(self, result: PageResult[Any]) -> dict[str, str]:
        # Links stay in the client's mode: a request with `offset` links to offsets; one with a
        # cursor, or with neither (a first page), links to cursors, the mode that stays stable
        # while rows are added or removed.
        url = self.request.url.remove_query_params(["cursor", "offset"])
        links: dict[str, str] = {}
        if self.cursor is None and "offset" in self.request.query_params:
            if result.has_next:
                links["next"] = str(url.include_query_params(offset=self.offset + self.limit))
            if self.offset > 0:
                links["prev"] = str(
                    url.include_query_params(offset=max(0, self.offset - self.limit))
                )
            return links
        if result.next_cursor:
            links["next"] = str(url.include_query_params(cursor=result.next_cursor))
        if result.prev_cursor:
            links["prev"] = str(url.include_query_params(cursor=result.prev_cursor))
        return links


def link_header(links: Mapping[str, str]) -> str:
    """An RFC 8288 `Link` header value: `<url>; rel="next", <url>; rel="prev"`."""
    return ", ".join(f'<{url}>; rel="{rel}"' for rel, url in links.items())


def page_params(
    spec: SortSpec,
    page_model: type[Page[Any]],
    *,
    default_limit: int = DEFAULT_LIMIT,
    max_limit: int = MAX_LIMIT,
    always_fields: Collection[str] = ("id",),
) -> Callable[..., Any]:
    """The dependency of a list endpoint: validates `limit`, `offset`, `cursor`, `sort`,
    `fields` and `include_total` against what `spec` and `page_model` allow."""
    selectable_fields = list(page_model.item_type.model_fields)
    sort_help = ", ".join(spec.allowed)
    fields_help = ", ".join(selectable_fields)

    async def dependency(
        request: Request,
        response: Response,
        settings: SettingsDep,
        limit: Annotated[
            int,
            Query(ge=1, le=max_limit, description=f"Page size, 1 to {max_limit}."),
        ] = default_limit,
        offset: Annotated[
            int,
            Query(
                ge=0,
                le=MAX_OFFSET,
                description=f"Rows to skip (at most {MAX_OFFSET}; page deeper with `cursor`). "
                "Not combined with `cursor`: both is a 400 (`conflicting_pagination`).",
            ),
        ] = 0,
        cursor: Annotated[
            str | None,
            Query(
                max_length=MAX_CURSOR_LENGTH,
                description="Opaque cursor from `next_cursor` / `prev_cursor` (or the `Link` "
                "header) of a previous page, issued for the same `sort`. Any other value is a "
                "400 (`invalid_cursor`, `cursor_sort_mismatch`).",
            ),
        ] = None,
        sort: Annotated[
            str,
            Query(
                max_length=64,
                description=f"Sort field, one of: {sort_help}; prefix with `-` for descending. "
                "Ties are broken by id. Any other value is a 400.",
                json_schema_extra={"enum": spec.choices},
            ),
        ] = spec.default,
        fields: Annotated[
            str | None,
            Query(
                max_length=1000,
                description=f"Comma-separated fields to return per item (id is always "
                f"included), from: {fields_help}. Unknown names are a 400.",
                json_schema_extra={"pattern": fields_pattern(selectable_fields)},
                examples=[",".join(selectable_fields[:3])],
            ),
        ] = None,
        include_total: Annotated[
            bool,
            Query(description="Also count every matching row into `total` (costs a scan)."),
        ] = False,
    ) -> PageParams:
        order = parse_sort(sort, spec.allowed)
        codec = cursor_codec(*settings.secret_keys())
        decoded: Cursor | None = None
        if cursor:
            if offset:
                raise BadRequestError(
                    "Use either `offset` or `cursor`, not both.", code="conflicting_pagination"
                )
            decoded = codec.decode(cursor)
            if decoded.sort != str(order):
                raise BadRequestError(
                    f"This cursor was issued for sort={decoded.sort}; send the same sort.",
                    code="cursor_sort_mismatch",
                )
        return PageParams(
            limit=limit,
            offset=offset,
            cursor=decoded,
            sort=order,
            fields=parse_fields(fields, selectable_fields, always_fields),
            include_total=include_total,
            codec=codec,
            page_model=page_model,
            request=request,
            response=response,
        )

    return dependency


# --- The query --------------------------------------------------------------------------------


async def fetch_page(
    session: AsyncSession,
    statement: Select[RowT],
    params: PageParams,
    spec: SortSpec,
) -> PageResult[RowT]:
    """Run `statement` (a filtered `select(Model)`, unordered) for the page `params` asks for.

    Ordered by (sort key, tiebreaker); one extra row is fetched to learn whether another page
    follows. A `prev` cursor walks the index backwards and the rows are reversed afterwards.
    """
    key_column = mapped_attribute(spec.columns[params.sort.field])
    id_column = mapped_attribute(spec.tiebreaker)
    cursor = params.cursor
    backwards = cursor is not None and cursor.direction == "prev"
    descending = params.sort.descending != backwards

    query = statement
    if cursor is not None:
        position = tuple_(key_column, id_column)
        boundary = tuple_(
            bindparam(None, cursor.key, type_=key_column.type),
            bindparam(None, cursor.id, type_=id_column.type),
        )
        query = query.where(position < boundary if descending else position > boundary)
    elif params.offset:
        query = query.offset(params.offset)
    if descending:
        query = query.order_by(key_column.desc(), id_column.desc())
    else:
        query = query.order_by(key_column.asc(), id_column.asc())

    rows: list[RowT] = list((await session.scalars(query.limit(params.limit + 1))).all())
    more = len(rows) > params.limit
    rows = rows[: params.limit]
    if backwards:
        rows.reverse()

    if cursor is None:
        has_next, has_prev = more, params.offset > 0
    elif backwards:
        has_next, has_prev = True, more
    else:
        has_next, has_prev = more, True

    def cursor_at(row: Any, direction: Direction) -> str:
        return params.codec.encode(
            Cursor(
                sort=str(params.sort),
                key=getattr(row, key_column.key),
                id=getattr(row, id_column.key),
                direction=direction,
            )
        )

    total: int | None = None
    capped = False
    if params.include_total:
        matching = statement.order_by(None)
        if params.total_cap is not None:
            matching = matching.limit(params.total_cap + 1)
        counted = select(func.count()).select_from(matching.subquery())
        total = int(await session.scalar(counted) or 0)
        if params.total_cap is not None and total > params.total_cap:
            total, capped = params.total_cap, True

    return PageResult(
        rows=rows,
        next_cursor=cursor_at(rows[-1], "next") if rows and has_next else None,
        prev_cursor=cursor_at(rows[0], "prev") if rows and has_prev else None,
        has_next=has_next,
        has_prev=has_prev,
        total=total,
        total_capped=capped,
    )
