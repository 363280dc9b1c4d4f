"""Proving that a list query is a page read: capture the statements an app runs on the test's
connection, then ask PostgreSQL how it would run each one, with its real parameters.

Test tables hold a handful of rows, on which the planner rightly prefers a sequential scan and a
sort; what a test must prove is that an index *can* give the rows in the page's order (or find
a filter's rows) without reading the table. So each statement is explained with the
alternatives priced out (`enable_seqscan = off`, and `enable_sort = off` for an order; `MODES`):
a plan that still sorts or scans the table has no index to do otherwise.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncConnection


@dataclass
class Captured:
    """The statements (SQL and parameters) run on a connection while capturing."""

    statements: list[tuple[str, Any]] = field(default_factory=list)

    def page_query(self, table: str) -> tuple[str, Any]:
        """The one statement that reads a page of `table` (ordered and limited)."""
        found = [
            (sql, params)
            for sql, params in self.statements
            if f"FROM {table}" in sql and "ORDER BY" in sql and "LIMIT" in sql
        ]
        assert len(found) == 1, [sql for sql, _ in self.statements]
        return found[0]


@contextmanager
def captured(connection: AsyncConnection) -> Iterator[Captured]:
    """Record every statement the app sends through the test's connection, with parameters."""
    log = Captured()

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        log.statements.append((statement, parameters))

    sync_connection = connection.sync_connection
    assert sync_connection is not None
    event.listen(sync_connection, "before_cursor_execute", record)
    try:
        yield log
    finally:
        event.remove(sync_connection, "before_cursor_execute", record)


@dataclass(frozen=True)
class Node:
    """One node of a plan: its type, the table it reads and its conditions, as EXPLAIN says."""

    type: str
    table: str | None
    index: str | None
    index_cond: str

    @classmethod
    def of(cls, raw: dict[str, Any]) -> Node:
        conditions = (raw.get(key, "") for key in ("Index Cond", "Recheck Cond"))
        return cls(
            type=raw["Node Type"],
            table=raw.get("Relation Name"),
            index=raw.get("Index Name"),
            index_cond=" ".join(conditions),
        )


def _walk(raw: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield raw
    for child in raw.get("Plans", []):
        yield from _walk(child)


# What each way of reading is judged with: the planner methods priced out (`enable_* = off`).
MODES = {
    # Only an index can give the order.
    "ordered": ("enable_seqscan", "enable_sort"),
    # Only bitmap scans are left, each needing an index condition: the plan shows which index
    # finds the filter's rows (a sort of just those rows is fine).
    "lookup": ("enable_seqscan", "enable_indexscan", "enable_indexonlyscan"),
    # Only index-only scans: the query can be answered from an index without its table.
    "index_only": ("enable_seqscan", "enable_indexscan", "enable_bitmapscan"),
}


async def plan(
    connection: AsyncConnection, statement: tuple[str, Any], *, mode: str = "ordered"
) -> list[Node]:
    """The nodes of `statement`'s plan with the other ways of reading priced out (`MODES`).
    The settings end with the call (a savepoint, rolled back)."""
    sql, parameters = statement
    savepoint = await connection.begin_nested()
    try:
        for setting in MODES[mode]:
            await connection.exec_driver_sql(f"SET LOCAL {setting} = off")
        result = await connection.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {sql}", parameters)
        [[document]] = result.all()
    finally:
        await savepoint.rollback()  # Undoes the SET LOCALs.
    return [Node.of(raw) for raw in _walk(document[0]["Plan"])]


def assert_page_read(nodes: Sequence[Node], table: str, *, index_cond: Sequence[str] = ()) -> None:
    """The order comes from an index on `table`, never a sort or a sequential scan (an
    incremental sort, which only orders ties of the index's leading key, is fine), and each of
    `index_cond` (a column, or `ROW(` for a cursor) is an index condition, not a filter."""
    types = [node.type for node in nodes]
    assert "Sort" not in types, types
    scans = [node for node in nodes if node.table == table]
    assert scans and all(node.type in ("Index Scan", "Index Only Scan") for node in scans), types
    for wanted in index_cond:
        assert any(wanted in node.index_cond for node in scans), (wanted, scans)


def assert_found_by_index(nodes: Sequence[Node], table: str, columns: Sequence[str]) -> None:
    """Each of `columns` of `table` is looked up in an index (a bitmap index scan's condition),
    and no sequential scan reads `table`."""
    assert not any(node.type == "Seq Scan" and node.table == table for node in nodes), nodes
    lookups = [node for node in nodes if node.type == "Bitmap Index Scan"]
    for column in columns:
        assert any(column in node.index_cond for node in lookups), (column, nodes)
