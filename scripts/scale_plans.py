"""The plans of the statements our processes really run, as `bench_scale.py` reports them:
`auto_explain` turned on for one database (`ALTER DATABASE ... SET`, new connections only), its
JSON plans read back from the Postgres server log with `pg_read_file`.

Why this way: `pg_stat_statements` needs `shared_preload_libraries` (a server restart), and
EXPLAINing SQL copied into the benchmark would drift from what the services issue. Reading the
server log needs a superuser and a log file Postgres can read (its own, or Debian's
`/var/log/postgresql/postgresql-<cluster>.log`); without them the plan columns say `n/a` and
the timings stand alone."""

from __future__ import annotations

import asyncio
import itertools
import json
import re
from dataclasses import dataclass
from typing import Any

import asyncpg

AUTO_EXPLAIN = {
    "session_preload_libraries": "auto_explain",
    "auto_explain.log_min_duration": "0",
    "auto_explain.log_analyze": "on",
    "auto_explain.log_buffers": "on",
    "auto_explain.log_timing": "off",
    "auto_explain.log_format": "json",
}
# A log entry starts with the default Debian prefix `%m [%p] %q%u@%d `.
_ENTRY = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+ \S+ \[\d+\] ", re.MULTILINE)


async def set_auto_explain(dsn: str, database: str, *, on: bool) -> None:
    """Log the plan of every statement run on `database` by connections opened from now on
    (`on`), or stop doing so."""
    conn = await asyncpg.connect(dsn)
    try:
        for name, value in AUTO_EXPLAIN.items():
            if on:
                await conn.execute(f"ALTER DATABASE \"{database}\" SET {name} = '{value}'")
            else:
                await conn.execute(f'ALTER DATABASE "{database}" RESET {name}')
    finally:
        await conn.close()


@dataclass(frozen=True)
class Plan:
    """One statement's plan: its shared buffers (hit + read) and the nodes that tell its shape."""

    buffers: int
    shape: str
    query: str


def shape_of(node: dict[str, Any]) -> list[str]:
    """The scans (with their index or table) and sorts of a plan tree, in plan order."""
    kind = node.get("Node Type", "")
    found: list[str] = []
    if "Scan" in kind and kind not in ("Subquery Scan", "CTE Scan", "Function Scan"):
        where = node.get("Index Name") or node.get("Relation Name") or ""
        if kind != "Bitmap Heap Scan":
            found.append(f"{kind} {where}".strip())
    elif kind == "Sort":
        found.append("Sort (disk)" if node.get("Sort Space Type") == "Disk" else "Sort")
    for child in node.get("Plans", []):
        found.extend(shape_of(child))
    return found


def _parse(entry: str, database: str) -> Plan | None:
    head, _, rest = entry.partition("\n")
    if f"@{database} LOG:  duration:" not in head or "plan:" not in head:
        return None
    try:
        document = json.loads(rest)
    except ValueError:
        return None
    top = document.get("Plan", {})
    buffers = int(top.get("Shared Hit Blocks", 0)) + int(top.get("Shared Read Blocks", 0))
    shape = ", ".join(dict.fromkeys(shape_of(top))) or top.get("Node Type", "")
    return Plan(buffers, shape, str(document.get("Query Text", "")))


class ServerLog:
    """The server log, read through a superuser connection per call (the benchmark is
    synchronous; each call runs its own event loop)."""

    def __init__(self, dsn: str, path: str | None) -> None:
        self.dsn = dsn
        self.path = path

    @classmethod
    def find(cls, dsn: str, path: str | None) -> ServerLog:
        """`path`, or the log file this server writes to when it can be found and read."""

        async def readable() -> str | None:
            conn = await asyncpg.connect(dsn)
            try:
                candidates = [path] if path else []
                if not path:
                    if current := await conn.fetchval("SELECT pg_current_logfile()"):
                        candidates.append(current)
                    if cluster := await conn.fetchval("SELECT current_setting('cluster_name')"):
                        name = cluster.replace("/", "-")
                        candidates.append(f"/var/log/postgresql/postgresql-{name}.log")
                for candidate in candidates:
                    try:
                        await conn.fetchval("SELECT (pg_stat_file($1)).size", candidate)
                    except asyncpg.PostgresError:
                        continue
                    return candidate
                return None
            finally:
                await conn.close()

        return cls(dsn, asyncio.run(readable()))

    def offset(self) -> int:
        """Where the log ends now."""
        return asyncio.run(self._read(None))[0]

    def plans_since(self, offset: int, database: str) -> list[Plan]:
        """The plans logged for `database` after `offset`."""
        text = asyncio.run(self._read(offset))[1]
        starts = [m.start() for m in _ENTRY.finditer(text)] + [len(text)]
        entries = (text[a:b] for a, b in itertools.pairwise(starts))
        return [plan for entry in entries if (plan := _parse(entry, database))]

    async def _read(self, offset: int | None) -> tuple[int, str]:
        """The log's size, and what follows `offset` (nothing when None)."""
        if self.path is None:
            return 0, ""
        conn = await asyncpg.connect(self.dsn)
        try:
            end: int = await conn.fetchval("SELECT (pg_stat_file($1)).size", self.path)
            if offset is None or end <= offset:
                return end, ""
            text: str = await conn.fetchval(
                "SELECT convert_from(pg_read_binary_file($1, $2, $3), 'UTF8')",
                self.path,
                offset,
                end - offset,
            )
            return end, text
        finally:
            await conn.close()


def summary(plans: list[Plan]) -> tuple[int, str]:
    """Buffers of all `plans` together, and the shape of the one that touched the most."""
    if not plans:
        return 0, ""
    costliest = max(plans, key=lambda plan: plan.buffers)
    return sum(plan.buffers for plan in plans), costliest.shape
