"""Benchmark: does each operation's cost stay flat as the data grows (issue 18)?

    uv run python scripts/bench_scale.py [--scale 0.05] [--reps 5] [--keep] [--reuse DB]

Needs Postgres/Redis (found or started like `make dev` does). It loads a scratch database with
issue 18's volumes times `--scale` (1.0: 20k users, 50k devices, 1M trips of which five heavy
users own 100k each, 20M telemetry events over 31 days, 2M alerts, 1M audit entries, 500k
sessions, 200k jobs; `scale_data.py`, generated server-side), and a near-empty database (the
same named users with a handful of rows each) as the baseline of the same run. Each database
gets its own api, admin and worker processes. Every operation (`scale_ops.py`) runs `--reps`
times, interleaved across the databases, as:

- heavy: the heavy user on the loaded database (the admin for admin operations);
- light: a user with a handful of rows on the loaded database;
- empty: the heavy user (or the admin) on the near-empty database.

Export and deletion compare a trip's length instead: heavy is a long trip (200k events at
scale 1), light and empty a 100-event trip. The figures are medians. Then every operation runs
once more with `auto_explain` on (`scale_plans.py`) for the buffers and plan shape of the
statements it really ran.

Targets (issue 18): user-facing lists, reads, stats and the stream within 2x of the near-empty
database; the admin overview under 50 ms, the admin's lists within 2x; export's first byte and
deletion within 2x for a long trip of a short one; retention's cost per event within 2x and
its rate above ingest's 34k events/s; every silent trip alerted. Loading is the slow part:
`--keep` keeps the loaded database and `--reuse NAME` runs on it again (same scale).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

from benchlib import ScratchDatabase, Service, start_service, stop, verdict
from scale_data import Volumes, load, subjects
from scale_ops import (
    LOST_SIGNAL_AFTER_SECONDS,
    RETENTION_EVENTS,
    Operation,
    Target,
    Timing,
    fill_cursors,
    login,
    operations,
    prepare,
    raise_lost_signal_backlog,
)
from scale_plans import ServerLog, set_auto_explain, summary

from tripline_common.data import asyncpg_dsn

COLUMNS = ("heavy", "light", "empty")
INGEST_EVENTS_PER_SECOND = 34_000  # Ingest's measured maximum (issue 18).


@dataclass
class Database:
    """A database under test and how its processes are configured."""

    name: str
    scratch: ScratchDatabase
    queue: str

    def env(self) -> dict[str, str]:
        return self.scratch.service_env(
            ARQ_QUEUE_NAME=self.queue,
            SMTP_HOST="127.0.0.1",  # Required outside development; the bench sends no mail.
            LOST_SIGNAL_AFTER_SECONDS=str(LOST_SIGNAL_AFTER_SECONDS),
            LOST_SIGNAL_CHECK_SECONDS="3600",  # Only when the benchmark asks.
            TELEMETRY_RETENTION_DAYS="35",  # Keeps the 31 days loaded; see scale_ops.
            ALERTS_STREAM_MAX_PER_USER="1000",  # Closed streams take a moment to be counted.
            # Requests come one at a time; the server's connections are shared with others.
            DB_POOL_SIZE="2",
            DB_MAX_OVERFLOW="2",
            DB_FAST_POOL_SIZE="2",
        )


def start(database: Database, workdir: Path) -> Target:
    """The database's api, admin and worker, and real tokens of its users."""
    env = database.env()
    services: dict[str, Service] = {}
    for command in ("tripline-api", "tripline-admin", "tripline-worker"):
        services[command] = start_service(command, env, workdir, name=f"{database.name}-{command}")
    target = Target(
        name=database.name,
        dsn=database.scratch.dsn,
        redis_url=database.scratch.redis_url,
        queue_name=database.queue,
        api=services["tripline-api"],
        admin=services["tripline-admin"],
        worker=services["tripline-worker"],
        subjects=asyncio.run(subjects(database.scratch.dsn)),
    )
    s = target.subjects
    target.tokens = {email: login(target, email) for email in (s.heavy_email, s.light_email)}
    target.tokens[s.admin_email] = login(target, s.admin_email)
    return target


def stop_all(targets: list[Target]) -> None:
    for target in targets:
        for service in (target.api, target.admin, target.worker):
            stop(service.process)


Results = dict[tuple[str, str], list[Timing]]


def measure(targets: dict[str, Target], ops: list[Operation], reps: int) -> Results:
    """Every operation `reps` times (after one warm-up of the repeatable ones), the columns
    interleaved within each repetition so that machine drift hits them alike."""
    clients = {
        name: (t.client(t.api), t.client(t.admin)) for name, t in targets.items()
    }  # Kept alive: connection setup is not the operation.
    results: Results = {}
    try:
        for rep in range(reps + 1):
            for op in ops:
                if rep == 0 and not op.repeatable:
                    continue
                for column in COLUMNS:
                    who = op.columns[column]
                    if who is None:
                        continue
                    target = targets["loaded" if column != "empty" else "empty"]
                    api, admin = clients[target.name]
                    timing = op.run(target, api, admin, _subject(target, who))
                    if rep > 0:
                        results.setdefault((op.name, column), []).append(timing)
            if rep:
                print(f"repetition {rep}/{reps} done", flush=True)
    finally:
        for api, admin in clients.values():
            api.close()
            admin.close()
    return results


def _subject(target: Target, who: str) -> str:
    """Emails for the user operations; `admin` is the admin's; trip sizes as they are."""
    return target.subjects.admin_email if who == "admin" else who


def capture_plans(
    targets: dict[str, Target], ops: list[Operation], log: ServerLog
) -> dict[tuple[str, str], tuple[int, str]]:
    """Each operation once per column with auto_explain on: (buffers, shape) of its plans."""
    plans: dict[tuple[str, str], tuple[int, str]] = {}
    for op in ops:
        for column in COLUMNS:
            who = op.columns[column]
            if who is None:
                continue
            target = targets["loaded" if column != "empty" else "empty"]
            with target.client(target.api) as api, target.client(target.admin) as admin:
                offset = log.offset()
                op.run(target, api, admin, _subject(target, who))
                database = target.dsn.rsplit("/", 1)[1]
                plans[(op.name, column)] = summary(log.plans_since(offset, database))
    return plans


@dataclass(frozen=True)
class Row:
    name: str
    ms: dict[str, float | None]
    ratio: float | None
    target: str
    ok: bool | None
    """None: reported, no target."""
    buffers: str
    shape: str


def rows(
    ops: list[Operation],
    results: Results,
    plans: dict[tuple[str, str], tuple[int, str]],
) -> list[Row]:
    def ms(op: str, column: str, first_byte: bool = False) -> float | None:
        timings = results.get((op, column))
        if not timings:
            return None
        values = [(t.first_byte or 0.0) if first_byte else t.seconds for t in timings]
        return statistics.median(values) * 1000

    made = []
    for op in ops:
        heavy_plan, empty_plan = plans.get((op.name, "heavy")), plans.get((op.name, "empty"))
        if op.kind in ("export", "delete"):
            empty_plan = plans.get((op.name, "light"))
        buffers = f"{heavy_plan[0] if heavy_plan else '-'}/{empty_plan[0] if empty_plan else '-'}"
        shape = heavy_plan[1] if heavy_plan else "n/a"
        variants = [(op.name, False)]
        if op.kind == "export":
            variants = [(f"{op.name}, first byte", True), (f"{op.name}, total", False)]
        for label, first_byte in variants:
            values = {c: ms(op.name, c, first_byte) for c in COLUMNS}
            heavy, light, empty = values["heavy"], values["light"], values["empty"]
            base = light if op.kind in ("export", "delete") else empty
            ratio = heavy / base if heavy is not None and base else None
            target, ok = _target(op, label, heavy, ratio)
            made.append(Row(label, values, ratio, target, ok, buffers, shape))
    return made


def _target(
    op: Operation, label: str, heavy: float | None, ratio: float | None
) -> tuple[str, bool | None]:
    within = ratio is not None and ratio <= 2
    if op.kind == "overview":
        return "< 50 ms", heavy is not None and heavy < 50
    if op.kind in ("user", "admin"):
        return "<= 2x empty", within
    if op.kind == "export":
        return ("<= 2x short", within) if "first byte" in label else ("(grows with rows)", None)
    if op.kind == "delete":
        return "<= 2x short", within
    if op.kind == "retention":
        rate = RETENTION_EVENTS / (heavy / 1000) if heavy else 0.0
        return (
            f"<= 2x, >= 34k ev/s ({rate / 1000:.0f}k)",
            within and rate >= INGEST_EVENTS_PER_SECOND,
        )
    return "(active trips)", None  # check_lost_signal reads the active trips, by design.


def report(table: list[Row], lost_signal: dict[str, tuple[float, int, int]]) -> int:
    def cell(value: float | None) -> str:
        return f"{value:9.1f}" if value is not None else f"{'-':>9}"

    print(
        f"\n{'operation':<36} {'heavy ms':>9} {'light ms':>9} {'empty ms':>9} {'ratio':>6} "
        f"{'verdict':<5} {'target':<28} {'buffers h/e':>14}  plan (heavy)"
    )
    for row in table:
        ratio = f"{row.ratio:5.1f}x" if row.ratio is not None else f"{'-':>6}"
        mark = "info" if row.ok is None else "PASS" if row.ok else "FAIL"
        print(
            f"{row.name:<36} {cell(row.ms['heavy'])} {cell(row.ms['light'])} "
            f"{cell(row.ms['empty'])} {ratio} {mark:<5} {row.target:<28} {row.buffers:>14}  "
            f"{row.shape[:70]}"
        )
    print(
        "(export, deletion: heavy = a long trip, light and empty = a short one; ratio long/short)"
    )
    checks = [
        (f"{row.name}: {row.ratio or 0:.1f}x, target {row.target}", row.ok)
        for row in table
        if row.ok is not None
    ]
    for name, (first, runs, left) in lost_signal.items():
        checks.append(
            (
                f"check_lost_signal backlog ({name}): first run {first * 1000:.0f} ms, "
                f"{runs} runs, "
                f"{left} silent trips left without an alert (target 0)",
                left == 0,
            )
        )
    print()
    return verdict([(text, bool(ok)) for text, ok in checks])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=0.05, help="1.0: issue 18's volumes")
    parser.add_argument("--reps", type=int, default=5, help="repetitions of each operation")
    parser.add_argument("--keep", action="store_true", help="keep the loaded database")
    parser.add_argument("--reuse", metavar="DB", help="a database kept by --keep, not reloaded")
    parser.add_argument("--server-log", help="the Postgres server log (found when not given)")
    args = parser.parse_args()
    volumes = Volumes.at(args.scale)

    loaded = Database("loaded", ScratchDatabase.create("scale", name=args.reuse), "")
    empty = Database("empty", ScratchDatabase.create("scale_empty"), "")
    for database in (loaded, empty):
        database.queue = f"tripline:bench-scale:{uuid.uuid4().hex[:8]}"
    workdir = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    targets: dict[str, Target] = {}
    try:
        if not args.reuse:
            print(f"loading {volumes} into {loaded.scratch.name}", flush=True)
            seconds = asyncio.run(load(loaded.scratch.dsn, volumes))
            print(f"loaded in {seconds:.1f} s", flush=True)
        asyncio.run(load(empty.scratch.dsn, None))

        targets = {d.name: start(d, workdir) for d in (loaded, empty)}
        ops = operations(targets["loaded"].subjects)
        for target in targets.values():
            asyncio.run(prepare(target, args.reps, volumes.long_trip_events))
            fill_cursors(target, ops)
        lost_signal = {name: raise_lost_signal_backlog(t) for name, t in targets.items()}
        results = measure(targets, ops, args.reps)
        stop_all(list(targets.values()))
        targets = {}

        # The plans: new processes, whose new connections load auto_explain.
        for database in (loaded, empty):
            asyncio.run(set_auto_explain(database.scratch.dsn, database.scratch.name, on=True))
        try:
            targets = {d.name: start(d, workdir) for d in (loaded, empty)}
            for target in targets.values():
                asyncio.run(prepare(target, 1, volumes.long_trip_events))
                fill_cursors(target, ops)
                raise_lost_signal_backlog(target)
            # Read from the maintenance database: this connection's own plans are not logged.
            log = ServerLog.find(
                asyncpg_dsn(f"{loaded.scratch.server_url}/postgres"), args.server_log
            )
            if log.path is None:
                print("bench: no readable server log, plans are not reported", file=sys.stderr)
            plans = capture_plans(targets, ops, log)
        finally:
            stop_all(list(targets.values()))
            targets = {}
            for database in (loaded, empty):
                asyncio.run(set_auto_explain(database.scratch.dsn, database.scratch.name, on=False))
        print(f"\nscale {args.scale}: {volumes}")
        return report(rows(ops, results, plans), lost_signal)
    finally:
        stop_all(list(targets.values()))
        shutil.rmtree(workdir, ignore_errors=True)
        empty.scratch.drop()
        loaded.scratch.drop(keep=args.keep or bool(args.reuse))
        if args.keep:
            print(f"kept {loaded.scratch.name}: --reuse {loaded.scratch.name}")


if __name__ == "__main__":
    sys.exit(main())
