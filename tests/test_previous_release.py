"""The previous release on the new schema, with real processes: its api, ingest and worker serve
a user on a database migrated to HEAD; jobs cross between its queue and ours both ways; after an
upgrade that migrated, its pods pass their schema wait and serve (a rollback comes back).

The previous release is the parent of the commit that added the head revision's file
(`scripts/previous_release.py`; docs/operations.md, "Old code on the new schema, and
rollback"), run from its own source tree and virtualenv.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from alembic.script import ScriptDirectory
from previous_release import (
    PreviousRelease,
    PreviousReleaseError,
    head_revision_file,
    previous_release,
    previous_release_commit,
    run,
)
from redis.asyncio import Redis

from tests.conftest import BIN, ROOT, Process, ProcessRunner
from tests.support.database import fetch
from tests.test_pipeline import (
    FAST_WORKER,
    fixes,
    json_lines,
    seed,
    start_demo_trip,
    start_trip_through_api,
    wait_for,
    window_aligned,
)
from tests.test_realtime import login
from tripline_common.data import asyncpg_dsn
from tripline_common.messaging.job_tracing import ENVELOPE_KEY
from tripline_common.migrations.runner import (
    current_revision,
    expand_target,
    head_revision,
    make_config,
    upgrade,
)
from tripline_devstack import DevTraceCollector

WAIT = 30.0
# Every span kept and sent at once: the new ingest's jobs carry their trace envelope.
TRACED = {"OTEL_TRACES_SAMPLER": "always_on", "OTEL_BSP_SCHEDULE_DELAY": "200"}


@pytest.fixture(scope="session")
def previous() -> PreviousRelease:
    """The previous release, built once per commit (`.local/previous-release/`)."""
    return previous_release(ROOT)


def start_previous(
    processes: ProcessRunner, release: PreviousRelease, name: str, command: str, **env: str
) -> Process:
    """Start one of the previous release's services (from its virtualenv's scripts)."""
    return processes.start(name, command, bin_dir=release.bin, **release.env(), **env)


def wait_previous(processes: ProcessRunner, release: PreviousRelease, *started: Process) -> None:
    """Wait until each of the previous release's `started` processes is ready; check that it
    runs that release's code."""
    for process in started:
        processes.wait_ready(process)
        cmdline = Path(f"/proc/{process.popen.pid}/cmdline").read_bytes().decode()
        assert str(release.root) in cmdline, cmdline


def errors(process: Process) -> list[dict[str, Any]]:
    """The log lines of `process` at level error or above."""
    return [line for line in json_lines(process) if line.get("level") in ("error", "critical")]


async def queued_job(redis_url: str, job_id: str) -> dict[str, Any]:
    """The job `job_id` as it waits in Redis: ARQ's pickled envelope, unpickled."""
    redis = Redis.from_url(redis_url)
    try:

        async def raw() -> bytes | None:
            value: bytes | None = await redis.get(f"arq:job:{job_id}")
            return value

        data: dict[str, Any] = pickle.loads(await wait_for(raw, WAIT, f"job {job_id} queued"))
        return data
    finally:
        await redis.aclose()


async def upload(ingest: Process, key: str, events: list[dict[str, Any]]) -> str:
    """Send a batch to `ingest`; its batch ID."""
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.post(
            f"{ingest.url}/v1/telemetry",
            json={"client_batch_id": uuid.uuid4().hex, "events": events},
            headers={"X-Device-Key": key},
        )
    assert response.status_code == 202, response.text
    batch_id: str = response.json()["batch_id"]
    return batch_id


async def processed(database_url: str, *batch_ids: str) -> bool:
    rows = await fetch(
        database_url,
        "SELECT status FROM telemetry_batches WHERE id = ANY($1::uuid[])",
        [uuid.UUID(b) for b in batch_ids],
    )
    return len(rows) == len(batch_ids) and all(row["status"] == "processed" for row in rows)


async def speeding_alerts(database_url: str) -> list[Any]:
    return await fetch(
        database_url,
        "SELECT id, observed_at FROM alerts WHERE rule = 'speeding' ORDER BY raised_at",
    )


@pytest.mark.slow
async def test_the_previous_release_serves_a_user_on_a_database_migrated_to_head(
    processes, process_env, previous, webhook_receiver
) -> None:
    """Log in, add a device, plan and start a trip, upload speeding fixes, see the alert (REST
    and webhook): all through the previous release's api, ingest and worker, no error logged."""
    seed(process_env)
    api = start_previous(processes, previous, "api", "tripline-api")
    ingest = start_previous(processes, previous, "ingest", "tripline-ingest")
    worker = start_previous(processes, previous, "worker", "tripline-worker", **FAST_WORKER)
    wait_previous(processes, previous, api, ingest, worker)

    token, _ = login(api.url)
    auth = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(timeout=10) as client:
        device_key, trip_id = await start_trip_through_api(
            client, api.url, auth, "Old code, new schema", webhook_receiver.url
        )

        await upload(
            ingest,
            device_key,
            fixes(4, start=datetime.now(UTC), speed_kmh=120, step_s=1),
        )

        async def listed() -> list[dict[str, Any]]:
            response = await client.get(f"{api.url}/v1/alerts", headers=auth)
            assert response.status_code == 200, response.text
            return [a for a in response.json()["items"] if a["trip_id"] == trip_id]

        [alert] = await wait_for(listed, WAIT, "the alert in GET /v1/alerts")

        async def delivered() -> list[Any]:
            return webhook_receiver.delivered()

        [delivery] = await wait_for(delivered, WAIT, "the webhook delivery")

    assert alert["rule"] == "speeding"
    assert json.loads(delivery.body)["alert"]["id"] == alert["id"]
    for process in (api, ingest, worker):
        assert errors(process) == [], process.name


@pytest.mark.slow
@pytest.mark.timeout(300)  # Four commands of the previous release in turn, then its services.
def test_after_an_upgrade_that_migrated_the_previous_release_passes_its_schema_wait_and_serves(
    processes, process_env, scratch_database, previous
) -> None:
    """`helm rollback` after a migrated upgrade: the previous release's `wait-for-schema` (as
    the chart runs it, `--allow-newer`) passes on the newer revision, and its pods serve."""
    env = {**process_env, "DATABASE_URL": scratch_database()}
    # Installed at the previous release: its migrations, its demo data.
    installed = run(previous, "tripline-migrate", "upgrade", "head", env=env)
    assert installed.returncode == 0, installed.stderr
    seeded = subprocess.run(
        [str(previous.bin / "python"), str(previous.root / "scripts" / "seed.py")],
        env={**env, **previous.env()},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert seeded.returncode == 0, seeded.stderr
    # The upgrade, with this code: what the chart's hook Jobs run (`tripline-migrate upgrade
    # --expand` before the pods change, `upgrade head` after), in this process.
    upgrade(env["DATABASE_URL"], expand_target(env["DATABASE_URL"]))
    upgrade(env["DATABASE_URL"])
    assert current_revision(env["DATABASE_URL"]) == head_revision()

    # The rollback: the previous release's pods start with the chart's wait-for-schema step.
    strict = run(previous, "tripline-migrate", "wait", "--timeout", "1", env=env)
    assert strict.returncode != 0 and "unknown to this code" in strict.stderr, strict.stderr
    waited = run(previous, "tripline-migrate", "wait", "--allow-newer", "--timeout", "30", env=env)
    assert waited.returncode == 0, waited.stderr
    assert head_revision() in waited.stdout + waited.stderr

    database = {"DATABASE_URL": env["DATABASE_URL"]}
    api = start_previous(processes, previous, "api", "tripline-api", **database)
    ingest = start_previous(processes, previous, "ingest", "tripline-ingest", **database)
    worker = start_previous(processes, previous, "worker", "tripline-worker", **database)
    wait_previous(processes, previous, api, ingest, worker)
    token, _ = login(api.url)
    trips = httpx.get(
        f"{api.url}/v1/trips", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    assert trips.status_code == 200 and trips.json()["items"], trips.text
    for process in (api, ingest, worker):
        assert errors(process) == [], process.name


async def move_trip_start(database_url: str, minutes: int) -> None:
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        await conn.execute(
            "UPDATE trips SET started_at = now() - make_interval(mins => $1)", minutes
        )
    finally:
        await conn.close()


@pytest.mark.slow
@pytest.mark.timeout(240)  # Two workers, one after the other.
async def test_the_new_worker_runs_batches_the_previous_release_enqueued_and_counts_its_alerts(
    processes, process_env, previous
) -> None:
    """The previous ingest's jobs (no trace envelope) run on the new worker; a speeding burst the
    previous worker already alerted on is not alerted again by the new one, whatever the
    previous release recorded of it (one older than `0007_alert_observed_at` wrote no
    `observed_at`), a later one is."""
    from scripts.seed import DEMO_DEVICE_KEY

    seed(process_env)
    database_url = process_env["DATABASE_URL"]
    await start_demo_trip(database_url)
    await move_trip_start(database_url, 20)
    ingest = start_previous(processes, previous, "ingest", "tripline-ingest")
    old_worker = start_previous(processes, previous, "old-worker", "tripline-worker")
    wait_previous(processes, previous, ingest, old_worker)

    burst = window_aligned() - timedelta(seconds=300)  # 10 to 15 minutes ago
    first = await upload(ingest, DEMO_DEVICE_KEY, fixes(4, start=burst, speed_kmh=112))
    await wait_for(lambda: processed(database_url, first), WAIT, "the first batch processed")
    [by_previous] = await speeding_alerts(database_url)
    old_worker.stop()

    # While no worker runs, the previous ingest enqueues the rest of the burst and a later one.
    same = await upload(
        ingest, DEMO_DEVICE_KEY, fixes(4, start=burst + timedelta(seconds=60), speed_kmh=115)
    )
    later = await upload(
        ingest, DEMO_DEVICE_KEY, fixes(4, start=burst + timedelta(seconds=400), speed_kmh=118)
    )
    job = await queued_job(process_env["REDIS_URL"], f"process_batch:{later}")
    assert job["f"] == "process_batch" and ENVELOPE_KEY not in job

    worker = processes.start("worker", "tripline-worker", **FAST_WORKER)
    processes.wait_ready(worker)
    await wait_for(lambda: processed(database_url, same, later), WAIT, "both batches processed")
    [kept, by_new] = await speeding_alerts(database_url)
    assert kept["id"] == by_previous["id"]
    assert by_new["observed_at"] == burst + timedelta(seconds=400)
    assert errors(ingest) == [] and errors(old_worker) == [] and errors(worker) == []


@pytest.mark.slow
async def test_the_previous_worker_runs_batches_enqueued_with_a_trace_envelope(
    processes, process_env, previous
) -> None:
    """The new ingest's jobs carry the `tripline.trace` envelope key; the previous release's
    worker, which knows nothing of it, runs them and raises the alert."""
    from scripts.seed import DEMO_DEVICE_KEY

    seed(process_env)
    database_url = process_env["DATABASE_URL"]
    await start_demo_trip(database_url)
    collector = DevTraceCollector()
    collector.start()
    ingest = processes.start(
        "ingest", "tripline-ingest", **TRACED, OTEL_EXPORTER_OTLP_ENDPOINT=collector.endpoint
    )
    try:
        processes.wait_ready(ingest)
        batch = await upload(
            ingest, DEMO_DEVICE_KEY, fixes(4, start=window_aligned(), speed_kmh=112)
        )
        job = await queued_job(process_env["REDIS_URL"], f"process_batch:{batch}")
        assert job["f"] == "process_batch" and job[ENVELOPE_KEY]["context"]["traceparent"]

        worker = start_previous(processes, previous, "old-worker", "tripline-worker")
        wait_previous(processes, previous, worker)
        await wait_for(lambda: processed(database_url, batch), WAIT, "the batch processed")
        assert len(await speeding_alerts(database_url)) == 1
    finally:
        ingest.stop()  # Its last spans go while the receiver still listens.
        collector.stop()
    assert errors(ingest) == [] and errors(worker) == []


SIGNATURES = """
import inspect, json
from tripline_common.messaging import JOBS
from tripline_worker.runner import JOB_FUNCTIONS
print(json.dumps({
    spec.name: {
        "periodic": JOBS[spec.name].periodic,
        "parameters": [
            [p.name, p.kind.name, p.default is inspect.Parameter.empty]
            for p in inspect.signature(function).parameters.values()
        ],
    }
    for spec, function in JOB_FUNCTIONS.items()
}))
"""


def job_signatures(python: Path, env: dict[str, str]) -> dict[str, Any]:
    """Each job the worker of `python`'s virtualenv runs: periodic or not, its parameters."""
    result = subprocess.run(
        [str(python), "-c", SIGNATURES], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    signatures: dict[str, Any] = json.loads(result.stdout)
    return signatures


def test_the_new_worker_runs_every_job_of_the_previous_release_with_the_same_arguments(
    previous,
) -> None:
    """A renamed job or changed arguments would strand the jobs one release enqueues for the
    other's worker (during a rolling upgrade, or after a rollback): each on-demand job of the
    previous release is one of ours, with the same parameters. Periodic jobs are the worker's
    own."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    ours = job_signatures(BIN / "python", env)
    theirs = job_signatures(previous.bin / "python", {**env, **previous.env()})
    theirs_on_demand = {name: job for name, job in theirs.items() if not job["periodic"]}
    assert theirs_on_demand, "the previous release's jobs were read"
    assert {name: ours.get(name) for name in theirs_on_demand} == theirs_on_demand


def git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=root, capture_output=True, text=True, timeout=60, check=True
    ).stdout.strip()


def test_the_previous_release_is_the_commit_before_the_head_revision_and_has_every_older_one(
    previous,
) -> None:
    """Its tree lacks the head revision (and any revision added with it: one release may bring
    an expand and a contract revision), holds every revision below those, and the commit that
    adds the head revision is its child."""
    scripts = ScriptDirectory.from_config(make_config())
    versions = str(Path(previous.head_file).parent)
    files = set(git(ROOT, "ls-tree", "--name-only", previous.commit, f"{versions}/").splitlines())
    chain = []  # From the head down to the first revision.
    revision = scripts.get_revision(head_revision())
    while revision is not None:
        assert revision.path is not None
        chain.append(str(Path(revision.path).resolve().relative_to(ROOT.resolve())))
        down = revision.down_revision
        revision = scripts.get_revision(down) if isinstance(down, str) else None
    present = [path in files for path in chain]
    new = present.index(True)  # The release's own revisions are the newest ones...
    assert new >= 1 and all(present[new:])  # ...and every older one is in the previous tree.
    assert previous.head_file == chain[0] and previous.head_file not in files
    parents = git(ROOT, "log", "--diff-filter=A", "--format=%P", "-1", "--", previous.head_file)
    assert parents.split()[0] == previous.commit  # The commit adding the head comes next.


def test_while_the_head_revision_is_not_committed_the_previous_release_is_head() -> None:
    versions = Path(head_revision_file(ROOT)).parent
    assert previous_release_commit(ROOT, str(versions / "9999_being_written.py")) == git(
        ROOT, "rev-parse", "HEAD"
    )


def test_a_shallow_clone_fails_with_the_reason(tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "--quiet", "--depth", "1", ROOT.resolve().as_uri(), str(clone))
    with pytest.raises(PreviousReleaseError, match="shallow clone"):
        previous_release_commit(clone, head_revision_file(ROOT))
