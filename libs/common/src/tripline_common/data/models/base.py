"""Shared building blocks of the table models: metadata, naming convention, column helpers."""

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TypeVar

from sqlalchemy import CheckConstraint, DateTime, Dialect, MetaData, String, func, text
from sqlalchemy.orm import Mapped, QueryableAttribute, registry
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel

# Every constraint and index gets a predictable name, so a migration can drop or alter it by name
# and an error such as `uq_devices_api_key_hash` tells you what was violated. Explicit names
# (`Index("uq_users_email_lower", ...)`) win over the convention; CHECK constraints are declared
# with a short name (`status`) that the convention expands to `ck_<table>_status`.
NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)
"""The metadata of every Tripline table; Alembic's `target_metadata`."""


class TriplineModel(SQLModel, registry=registry(metadata=metadata)):
    """Base of the table models.

    A registry of our own (rather than SQLModel's global one) keeps our naming convention off
    any other SQLModel tables in the process and keeps class-name lookups unambiguous.
    """


T = TypeVar("T")


def mapped_attribute(column: Mapped[T]) -> QueryableAttribute[T]:
    """`col(Model.field)` as what it is on a table model: an instrumented attribute, with the
    `.key` and SQL `.type` that SQLModel's `Mapped` return type does not declare."""
    if not isinstance(column, QueryableAttribute):
        raise TypeError(f"not a table model's attribute: {column!r}")
    return column


def utcnow() -> datetime:
    """The current time as an aware UTC datetime (the Python-side default of timestamps)."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """`timestamptz` that refuses naive datetimes and always returns UTC.

    A naive datetime is ambiguous (local time? UTC?), so it is rejected at bind time instead of
    being silently interpreted in the connection's time zone.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: use an aware datetime such as utcnow()")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.astimezone(UTC)


EnumT = TypeVar("EnumT", bound=StrEnum)

ENUM_LENGTH = 32
"""VARCHAR length of enumeration columns; every value of every enum must fit."""


class StrEnumType(TypeDecorator[EnumT]):
    """A `StrEnum` stored as VARCHAR; values come back as enum members, not plain strings.

    Enumerations are VARCHAR + a named CHECK constraint (`enum_check`) rather than native
    PostgreSQL enums: adding or removing a value is then one transactional migration
    (drop the CHECK, add the new one) instead of `ALTER TYPE ... ADD VALUE`, which cannot
    remove values and whose new values are unusable inside the transaction that added them.
    """

    impl = String(ENUM_LENGTH)
    cache_ok = True

    def __init__(self, enum_cls: type[EnumT]) -> None:
        super().__init__()
        too_long = [member.value for member in enum_cls if len(member.value) > ENUM_LENGTH]
        if too_long:
            raise ValueError(f"{enum_cls.__name__} values longer than {ENUM_LENGTH}: {too_long}")
        self.enum_cls = enum_cls

    def process_bind_param(self, value: EnumT | str | None, dialect: Dialect) -> str | None:
        # Strings are passed through unvalidated: the CHECK constraint is the single judge.
        return None if value is None else str(value)

    def process_result_value(self, value: str | None, dialect: Dialect) -> EnumT | None:
        return None if value is None else self.enum_cls(value)


def enum_check(column: str, enum_cls: type[StrEnum]) -> CheckConstraint:
    """A CHECK constraint, named `ck_<table>_<column>`, allowing only the values of `enum_cls`."""
    values = ", ".join(f"'{member.value}'" for member in enum_cls)
    return CheckConstraint(f"{column} IN ({values})", name=column)


def enum_field(
    enum_cls: type[StrEnum], default: StrEnum | None = None, *, comment: str | None = None
) -> Any:
    """A NOT NULL enumeration column; with `default`, also a server-side default."""
    kwargs: dict[str, Any] = {"comment": comment} if comment else {}
    if default is None:
        return Field(sa_type=StrEnumType(enum_cls), nullable=False, sa_column_kwargs=kwargs)
    kwargs["server_default"] = default.value
    return Field(
        default=default, sa_type=StrEnumType(enum_cls), nullable=False, sa_column_kwargs=kwargs
    )


def uuid_pk_field() -> Any:
    """A UUID primary key: random (not guessable), generated in Python or by the server."""
    return Field(
        default_factory=uuid.uuid4,
        primary_key=True,
        sa_column_kwargs={"server_default": text("gen_random_uuid()")},
    )


def created_at_field(*, comment: str | None = None) -> Any:
    """A NOT NULL `timestamptz` set to the insert time (in Python, or `now()` for raw SQL)."""
    kwargs: dict[str, Any] = {"server_default": func.now()}
    if comment:
        kwargs["comment"] = comment
    return Field(
        default_factory=utcnow, sa_type=UTCDateTime(), nullable=False, sa_column_kwargs=kwargs
    )


def updated_at_field() -> Any:
    """A NOT NULL `timestamptz` refreshed by every ORM or Core UPDATE of the row."""
    return Field(
        default_factory=utcnow,
        sa_type=UTCDateTime(),
        nullable=False,
        sa_column_kwargs={"server_default": func.now(), "onupdate": utcnow},
    )


def timestamp_field(*, required: bool = False, comment: str | None = None) -> Any:
    """A `timestamptz` column: nullable with default None, or NOT NULL without a default."""
    kwargs: dict[str, Any] = {"comment": comment} if comment else {}
    if required:
        return Field(sa_type=UTCDateTime(), nullable=False, sa_column_kwargs=kwargs)
    return Field(default=None, sa_type=UTCDateTime(), nullable=True, sa_column_kwargs=kwargs)


def lat_lon_checks(prefix: str = "") -> tuple[CheckConstraint, CheckConstraint]:
    """CHECKs keeping `<prefix>lat` in [-90, 90] and `<prefix>lon` in [-180, 180] (degrees)."""
    return (
        CheckConstraint(f"{prefix}lat BETWEEN -90 AND 90", name=f"{prefix}lat_range"),
        CheckConstraint(f"{prefix}lon BETWEEN -180 AND 180", name=f"{prefix}lon_range"),
    )
