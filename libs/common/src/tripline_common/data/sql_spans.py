"""One client span per SQL statement, whether it comes through the ORM or the raw asyncpg pool.

Both paths end in asyncpg: SQLAlchemy's asyncpg dialect prepares each statement and runs the
prepared statement; the raw pool (`pg.py`) and ingest's COPY call the connection's methods.
Wrapping asyncpg's public query methods ourselves (with `db.operation.name`, `db.namespace` and
a span for COPY, which this module's tests check) covers both paths once: these methods never
call each other, so a statement gets exactly one span.

What makes no span: a statement outside a recorded trace (`client_spans.in_recorded_trace`);
`BEGIN`, `ROLLBACK`, savepoints and the pool's liveness ping (`;`), which the ORM issues around
every checkout and which would triple a read's spans (`COMMIT` keeps its span: a write waits
there for the disk). The statement text is recorded with literal values replaced by `?`;
parameters are never read. An error marks the span with its type only: a database error's
message can quote row values.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

import asyncpg
import asyncpg.prepared_stmt
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer, TracerProvider

from tripline_common.platform.client_spans import in_recorded_trace

TRACER_NAME = "tripline.sql"

# The asyncpg methods that run a statement, by class; none calls another of the list.
_CONNECTION_METHODS = ("execute", "executemany", "fetch", "fetchval", "fetchrow", "fetchmany")
_PREPARED_METHODS = ("fetch", "fetchval", "fetchrow", "fetchmany", "executemany")
_COPY_METHODS = (
    "copy_records_to_table",
    "copy_to_table",
    "copy_from_table",
    "copy_from_query",
)
UNTRACED_OPERATIONS = frozenset({"", "BEGIN", "ROLLBACK", "SAVEPOINT", "RELEASE"})

_LEADING_COMMENTS = re.compile(r"^(?:\s|/\*.*?\*/|--[^\n]*\n)*", re.DOTALL)
# A quoted string (with '' escapes), or a number that is not part of a name or a `$1`.
_LITERAL = re.compile(r"'(?:[^']|'')*'|(?<![\w$.])\d+(?:\.\d+)?(?:[eE][-+]?\d+)?(?![\w.])")

_originals: dict[tuple[type, str], Any] = {}
_tracer: Tracer | None = None  # The tracer the wrapped methods use (`instrument_postgres`).


@functools.lru_cache(maxsize=512)
def describe_statement(query: str) -> tuple[str, str]:
    """`(operation name, statement text with literals replaced by ?)` of a query (cached: a
    process runs the same few hundred statements over and over)."""
    body = _LEADING_COMMENTS.sub("", query, count=1)
    operation = body.split(None, 1)[0].rstrip(";").upper() if body.strip() else ""
    return operation, _LITERAL.sub("?", query)


def _statement_attributes(
    connection: Any, operation: str, text: str, collection: str | None = None
) -> dict[str, Any]:
    # `_params` and `_addr` are what asyncpg hands its own query loggers as `conn_params`
    # and `conn_addr`.
    params = getattr(connection, "_params", None)
    attributes: dict[str, Any] = {
        "db.system.name": "postgresql",
        "db.system": "postgresql",  # The name before semantic conventions 1.33; viewers use it.
        "db.operation.name": operation,
        "db.query.text": text,
    }
    database = getattr(params, "database", None)
    if database:
        attributes["db.namespace"] = database
    if collection:
        attributes["db.collection.name"] = collection
    address = getattr(connection, "_addr", None)
    if isinstance(address, tuple):
        attributes["server.address"], attributes["server.port"] = address[0], address[1]
    return attributes


def _span_name(operation: str, target: str | None) -> str:
    return f"{operation} {target}" if target else operation


def _start_statement_span(name: str, attributes: dict[str, Any]) -> Span:
    """A client span for one statement. It is a leaf (nothing inside a statement makes spans),
    so it is never made current: no context attach and detach, no context managers, on a path
    every sampled read takes (docs/performance.md)."""
    assert _tracer is not None  # Set before any method is wrapped.
    return _tracer.start_span(
        name,
        kind=SpanKind.CLIENT,
        attributes=attributes,
        record_exception=False,
        set_status_on_exception=False,
    )


def _mark_failed(span: Span, exc: Exception) -> None:
    span.set_attribute("error.type", type(exc).__qualname__)
    span.set_status(Status(StatusCode.ERROR))


def _query_wrapper(method: Callable[..., Any], *, prepared: bool) -> Any:
    @functools.wraps(method)
    async def traced(self: Any, *args: Any, **kwargs: Any) -> Any:
        if not in_recorded_trace():
            return await method(self, *args, **kwargs)
        if prepared:
            connection, query = self._connection, self.get_query()
        else:
            connection, query = self, args[0] if args else kwargs.get("query", "")
        operation, text = describe_statement(query)
        if operation in UNTRACED_OPERATIONS:
            return await method(self, *args, **kwargs)
        attributes = _statement_attributes(connection, operation, text)
        span = _start_statement_span(
            _span_name(operation, attributes.get("db.namespace")), attributes
        )
        try:
            return await method(self, *args, **kwargs)
        except Exception as exc:
            _mark_failed(span, exc)
            raise
        finally:
            span.end()

    return traced


def _copy_wrapper(method: Callable[..., Any]) -> Any:
    @functools.wraps(method)
    async def traced(self: Any, *args: Any, **kwargs: Any) -> Any:
        if not in_recorded_trace():
            return await method(self, *args, **kwargs)
        if method.__name__ == "copy_from_query":
            table = None
            text = describe_statement(args[0] if args else kwargs.get("query", ""))[1]
        else:
            table = args[0] if args else kwargs.get("table_name")
            text = f"COPY {table}"
        attributes = _statement_attributes(self, "COPY", text, collection=table)
        span = _start_statement_span(
            _span_name("COPY", table or attributes.get("db.namespace")), attributes
        )
        try:
            return await method(self, *args, **kwargs)
        except Exception as exc:
            _mark_failed(span, exc)
            raise
        finally:
            span.end()

    return traced


def instrument_postgres(tracer_provider: TracerProvider) -> None:
    """Wrap asyncpg's statement methods so that each statement makes a span with
    `tracer_provider`'s tracer. Called again, it only changes the tracer (a process that
    builds several apps, each test's own provider): the methods are wrapped once."""
    global _tracer
    _tracer = tracer_provider.get_tracer(TRACER_NAME)  # The wrappers check `in_recorded_trace`.
    if _originals:
        return
    prepared_statement = asyncpg.prepared_stmt.PreparedStatement
    for cls, names in (
        (asyncpg.Connection, _CONNECTION_METHODS + _COPY_METHODS),
        (prepared_statement, _PREPARED_METHODS),
    ):
        for name in names:
            original = cls.__dict__[name]
            _originals[(cls, name)] = original
            if name in _COPY_METHODS:
                wrapped = _copy_wrapper(original)
            else:
                wrapped = _query_wrapper(original, prepared=cls is prepared_statement)
            setattr(cls, name, wrapped)


def uninstrument_postgres() -> None:
    """Put asyncpg's methods back as they were."""
    global _tracer
    _tracer = None
    for (cls, name), original in _originals.items():
        setattr(cls, name, original)
    _originals.clear()
