"""The job registry: every ARQ job's name, job ID rule and fixed options, for producers and worker.

Producers (ingest, the API, admin, the worker's own sweepers) enqueue a job by its entry here;
the worker registers one function per entry (`tripline_worker.runner.worker_functions` and
`cron_jobs`), and a test checks that the two lists are the same. If the two sides disagreed on
a name, the job would fail as "function not found"; on a job ID, de-duplication of jobs would
silently stop working.

Options that depend on the worker's settings (a delivery's `max_tries`, the cron schedules) are
applied by the worker, beside those settings; the options here are the same everywhere.

Words: a *job* is an ARQ job (one entry here); a *tracked job* is a job a user follows through
a `jobs` row (`tripline_common.data.tracked_jobs`). The *queue* is ARQ's queue in Redis
(`ARQ_QUEUE_NAME`); a `JobQueue` is a producer's handle on it, enqueueing after commit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


def job_id_for(name: str, key: object) -> str:
    """The one job ID rule: `<job name>:<key>`, the key being the row the job works on.

    Deterministic, so that enqueueing the same work twice runs it once.
    """
    return f"{name}:{key}"


@dataclass(frozen=True)
class JobSpec:
    """One job: its name (what ARQ calls it) and how it is enqueued and kept."""

    name: str
    description: str
    periodic: bool = False
    """Run by the worker's cron (ARQ's own unique job IDs), never enqueued by a producer."""
    tracked: bool = False
    """A user follows it through a `jobs` row (`tripline_common.data.tracked_jobs`)."""
    keep_result: int = 0
    """Seconds ARQ keeps a finished run's result. None of ours does: the row in Postgres is
    the result, and a kept result would block the sweepers' re-enqueue of a failed run."""

    def job_id(self, key: object) -> str:
        """This job's ID for the row `key` (a batch, a delivery, a token, a `jobs` row)."""
        if self.periodic:
            raise ValueError(f"{self.name} is periodic: ARQ's cron names its runs")
        return job_id_for(self.name, key)


PROCESS_BATCH = JobSpec("process_batch", "Apply one telemetry batch to its trip; raise alerts.")
DELIVER_WEBHOOK = JobSpec("deliver_webhook", "POST one alert to one webhook endpoint, signed.")
SEND_ACCOUNT_MAIL = JobSpec("send_account_mail", "Mail one account token (sign-up, reset).")
IMPORT_WAYPOINTS = JobSpec(
    "import_waypoints", "Replace a trip's waypoints from an uploaded file.", tracked=True
)
REQUEUE_STUCK_BATCHES = JobSpec(
    "requeue_stuck_batches", "Enqueue batches still pending after a while.", periodic=True
)
REQUEUE_STUCK_DELIVERIES = JobSpec(
    "requeue_stuck_deliveries", "Enqueue deliveries whose job was lost.", periodic=True
)
REQUEUE_STUCK_JOBS = JobSpec(
    "requeue_stuck_jobs", "Enqueue tracked jobs still queued after a while.", periodic=True
)
CHECK_LOST_SIGNAL = JobSpec(
    "check_lost_signal", "Raise lost-signal alerts for silent active trips.", periodic=True
)
PURGE_TELEMETRY = JobSpec(
    "purge_telemetry",
    "Create telemetry's day partitions ahead; delete telemetry past its retention.",
    periodic=True,
)
PURGE_SESSIONS = JobSpec("purge_sessions", "Delete sessions long expired.", periodic=True)

JOBS: Mapping[str, JobSpec] = {
    spec.name: spec
    for spec in (
        PROCESS_BATCH,
        DELIVER_WEBHOOK,
        SEND_ACCOUNT_MAIL,
        IMPORT_WAYPOINTS,
        REQUEUE_STUCK_BATCHES,
        REQUEUE_STUCK_DELIVERIES,
        REQUEUE_STUCK_JOBS,
        CHECK_LOST_SIGNAL,
        PURGE_TELEMETRY,
        PURGE_SESSIONS,
    )
}
"""Every job the worker runs, by name."""


def job_spec(name: str) -> JobSpec:
    """The registered job called `name` (a `jobs.kind`, say); `KeyError` if there is none."""
    try:
        return JOBS[name]
    except KeyError:
        raise KeyError(f"no job called {name!r} in the job registry") from None
