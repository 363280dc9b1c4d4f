"""Worker metrics: jobs (started, finished by outcome, duration, running) and pipeline counts.

The queue's own gauges (ready, deferred, retrying, oldest ready job) are the admin app's
(`tripline_admin/queues/metrics.py`): they must exist while no worker runs."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from tripline_common.data.models import AlertRule


class JobMetrics:
    """Prometheus series for jobs, registered on the worker app's registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.started = Counter(
            "tripline_worker_jobs_started", "Jobs started.", ["function"], registry=registry
        )
        self.finished = Counter(
            "tripline_worker_jobs_finished",
            "Jobs finished, by outcome: succeeded, failed or retried.",
            ["function", "outcome"],
            registry=registry,
        )
        self.duration = Histogram(
            "tripline_worker_job_duration_seconds",
            "Job run time.",
            ["function"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
            registry=registry,
        )
        self.in_progress = Gauge(
            "tripline_worker_jobs_in_progress", "Jobs running now.", ["function"], registry=registry
        )
        self.events_processed = Counter(
            "tripline_worker_telemetry_events_processed",
            "Telemetry events in batches processed.",
            registry=registry,
        )
        self.alerts_raised = Counter(
            "tripline_worker_alerts_raised", "New alerts, by rule.", ["rule"], registry=registry
        )
        self.batch_latency = Histogram(
            "tripline_worker_batch_latency_seconds",
            "From a batch accepted at ingest (its received_at) to its processing committed.",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
            registry=registry,
        )
        self.webhook_deliveries = Counter(
            "tripline_worker_webhook_deliveries",
            "Webhook delivery attempts, by outcome: delivered, retried or failed (given up).",
            ["outcome"],
            registry=registry,
        )
        # Every label value exported from the start (at 0), so rates and alerts see it at once.
        for rule in AlertRule:
            self.alerts_raised.labels(rule.value)
        for outcome in ("delivered", "retried", "failed"):
            self.webhook_deliveries.labels(outcome)
