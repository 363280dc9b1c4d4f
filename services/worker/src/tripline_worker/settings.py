"""Settings of the worker process (ARQ tuning lives here, with the reasons)."""

from __future__ import annotations

import os
import socket
from typing import Self

from pydantic import Field, SecretStr, model_validator

from tripline_common.platform import CommonSettings


def _default_worker_name() -> str:
    # In Kubernetes HOSTNAME is the pod name: unique per replica, stable for its life.
    return os.environ.get("HOSTNAME") or socket.gethostname()


class WorkerServiceSettings(CommonSettings):
    """The ARQ worker: shared settings, its health port, queue tuning, pipeline rules, crons."""

    service_name: str = "worker"
    port: int = 8003
    worker_name: str = Field(
        default_factory=_default_worker_name,
        min_length=1,
        max_length=200,
        description="This worker's name, in its ARQ health key (default: HOSTNAME).",
    )

    # --- ARQ -----------------------------------------------------------------------------------
    # ARQ's default of 10 concurrent jobs caps a worker near 200 jobs/s (docs/performance.md).
    max_jobs: int = Field(50, ge=1, le=1000, description="Jobs run concurrently.")
    poll_delay: float = Field(
        0.05,
        gt=0,
        le=5,
        description="Seconds between queue polls: a job waits half of it on average, twice on "
        "the way from an upload to its webhook.",
    )
    job_timeout: int = Field(
        30,
        ge=1,
        le=600,
        description="A job running longer is cancelled (s). Also bounds recovery after a "
        "worker dies: its jobs run again once ARQ's in-progress marker expires, after "
        "job_timeout + 10 s.",
    )
    max_tries: int = Field(5, ge=1, description="Runs of a job before ARQ gives it up.")
    keep_result: int = Field(
        300, ge=0, description="Seconds a finished job's result (and its ID) is kept."
    )
    job_completion_wait: int = Field(
        30,
        ge=0,
        description="On SIGTERM, seconds to let running jobs finish before cancelling (and "
        "handing back) the rest. At least JOB_TIMEOUT, so that a running job ends, or times "
        "out, as it would have anyway; the pod's terminationGracePeriodSeconds must cover "
        "SHUTDOWN_DRAIN_SECONDS + GRACEFUL_SHUTDOWN_TIMEOUT + this + a margin.",
    )
    health_check_interval: int = Field(
        5,
        ge=1,
        le=300,
        description="Seconds between refreshes of this worker's ARQ health key; the key lives "
        "one second longer, so `tripline-worker check` fails soon after the loop stalls.",
    )
    restart_max_delay: float = Field(
        5.0,
        gt=0,
        le=300,
        description="Longest pause before restarting the ARQ loop after Redis failed (s).",
    )

    # --- telemetry batches ---------------------------------------------------------------------
    batch_requeue_after_seconds: int = Field(
        60, ge=1, description="A batch still pending this long after acceptance is re-enqueued."
    )
    requeue_limit: int = Field(500, ge=1, description="Rows re-enqueued per sweep, at most.")
    max_batch_attempts: int = Field(
        5,
        ge=1,
        description="Processing attempts before a batch is marked failed (a poison batch).",
    )
    sweep_interval_seconds: int = Field(
        30, ge=1, le=3600, description="How often the sweepers look for lost work (s)."
    )

    # --- alert rules ---------------------------------------------------------------------------
    alert_window_seconds: int = Field(
        300,
        ge=1,
        description="A trip raises at most one speeding and one corridor alert per this many "
        "seconds of device time: a violation less than this long before or after the first fix "
        "of an alert of its rule is part of that alert.",
    )
    late_grace_seconds: int = Field(
        300, ge=0, description="A trip is late once its ETA passes planned arrival plus this."
    )
    lost_signal_after_seconds: int = Field(
        600, ge=10, description="An active trip silent this long raises a lost-signal alert."
    )
    lost_signal_check_seconds: int = Field(
        60, ge=1, le=3600, description="How often lost signal is checked (s)."
    )
    lost_signal_limit: int = Field(
        1000,
        ge=1,
        le=100_000,
        description="Silent trips alerted per run, at most: a larger backlog is the next runs', "
        "the longest silent first.",
    )

    # --- webhooks ------------------------------------------------------------------------------
    webhook_max_attempts: int = Field(
        10, ge=1, le=50, description="Delivery attempts before a webhook is marked failed."
    )
    webhook_backoff_base_seconds: float = Field(
        5.0, gt=0, description="Wait before the second attempt; doubles after each failure."
    )
    webhook_backoff_max_seconds: float = Field(
        900.0, gt=0, description="Longest wait between two attempts."
    )
    webhook_connect_timeout: float = Field(3.0, gt=0, le=30, description="Seconds to connect.")
    webhook_timeout: float = Field(
        10.0, gt=0, le=60, description="Seconds for the receiver to answer, in total."
    )
    delivery_requeue_after_seconds: int = Field(
        120, ge=1, description="A delivery still pending this long without a job is re-enqueued."
    )

    # --- housekeeping --------------------------------------------------------------------------
    telemetry_retention_days: int = Field(
        30,
        ge=1,
        description="Processed telemetry batches and their events go once this old (whole "
        "days: within a day more).",
    )
    telemetry_partitions_ahead_days: int = Field(
        7,
        ge=1,
        le=60,
        description="Telemetry's day partitions are created this many days ahead (a worker "
        "down for longer sends new events to the DEFAULT partition until it is back).",
    )
    session_cleanup_grace_days: int = Field(
        7, ge=0, description="Sessions are deleted this long after they expire."
    )
    cleanup_batch_size: int = Field(
        1000, ge=1, le=100_000, description="Rows deleted per statement by the cleanup crons."
    )

    # --- mail (account emails: verification, password reset) ------------------------------------
    smtp_host: str | None = Field(
        None,
        description="SMTP server that sends account mail. Unset: account mail jobs fail and are "
        "retried, and the worker logs a warning at start; required in staging/prod.",
    )
    smtp_port: int = Field(587, ge=1, le=65535, description="SMTP port (587 STARTTLS, 465 TLS).")
    smtp_username: str | None = Field(None, description="SMTP login; unset: no AUTH.")
    smtp_password: SecretStr | None = Field(None, description="SMTP password.")
    smtp_from: str = Field(
        "Tripline <no-reply@tripline.dev>", description="The From header of account mail."
    )
    smtp_starttls: bool = Field(True, description="Upgrade with STARTTLS (port 587).")
    smtp_tls: bool = Field(False, description="Implicit TLS from the first byte (port 465).")
    smtp_timeout: float = Field(10.0, gt=0, le=60, description="Seconds per SMTP operation.")
    public_base_url: str = Field(
        "http://127.0.0.1:8000",
        description="Base URL of the public API as users reach it; links in mail start with it.",
    )

    @model_validator(mode="after")
    def _job_timeout_fits_the_webhook_timeouts(self) -> Self:
        if self.webhook_timeout + self.webhook_connect_timeout >= self.job_timeout:
            raise ValueError("JOB_TIMEOUT must exceed WEBHOOK_TIMEOUT + WEBHOOK_CONNECT_TIMEOUT")
        if self.smtp_tls and self.smtp_starttls:
            raise ValueError("SMTP_TLS and SMTP_STARTTLS exclude each other: set one to false")
        if self.is_production_like and not self.smtp_host:
            raise ValueError(
                f"refusing to start in {self.environment.value}: SMTP_HOST must be set "
                "(sign-up and password reset send mail)"
            )
        return self
