"""Settings of the worker process (ARQ tuning lives here, with the reasons)."""

from __future__ import annotations

from pydantic import Field

from tripline_common.settings import CommonSettings


class WorkerServiceSettings(CommonSettings):
    """The ARQ worker: shared settings, its health port, and queue tuning."""

    service_name: str = "worker"
    port: int = 8003
    # ARQ's default of 10 concurrent jobs caps a worker near 200 jobs/s (docs/performance.md).
    max_jobs: int = Field(50, ge=1, le=1000, description="Jobs run concurrently.")
    poll_delay: float = Field(0.1, gt=0, le=5, description="Seconds between queue polls.")
    job_timeout: int = Field(120, ge=1, description="A job running longer is cancelled (s).")
    max_tries: int = Field(5, ge=1, description="Attempts before a job is given up.")
    keep_result: int = Field(
        300, ge=0, description="Seconds a finished job's result (and its ID) is kept."
    )
    job_completion_wait: int = Field(
        20, ge=0, description="On SIGTERM, seconds to let running jobs finish before cancelling."
    )
    health_check_interval: int = Field(
        10, ge=1, description="Seconds between ARQ health-key refreshes (`arq --check`)."
    )
    batch_requeue_after_seconds: int = Field(
        60, ge=1, description="A batch still pending this long after acceptance is re-enqueued."
    )
    requeue_limit: int = Field(500, ge=1, description="Batches re-enqueued per sweep, at most.")
