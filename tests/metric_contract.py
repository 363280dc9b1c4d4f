"""The metrics contract of issue 7 (docs/operations.md, "Metrics"): the series each process
exports, by name as exposed (counters with `_total`, histograms by their base name).

One definition for the tests that hold the processes (tests/test_metrics_exposition.py) and the
dashboard (tests/deploy/test_grafana_dashboard.py) to it.
"""

from __future__ import annotations

# Every HTTP app (the worker serves its /metrics over HTTP too), prefixed `tripline_<process>_`.
EVERY_HTTP_APP = (
    "http_requests_total",
    "http_request_duration_seconds",
    "build_info",
    "ready",
    "readiness_changes_total",
    "db_pool_connections",
    "redis_pool_connections",
    "trace_spans_dropped_total",
)
# The series only one process exports, by process.
OWN: dict[str, tuple[str, ...]] = {
    "api": ("tripline_api_realtime_connections", "tripline_api_rate_limit_rejections_total"),
    # The queue's gauges: the admin app runs even when the worker is scaled to zero.
    "admin": (
        "tripline_admin_queue_jobs",
        "tripline_admin_queue_jobs_retrying",
        "tripline_admin_queue_oldest_ready_age_seconds",
    ),
    "ingest": (
        "tripline_ingest_batches_total",
        "tripline_ingest_events_accepted_total",
        "tripline_ingest_events_rejected_total",
        "tripline_ingest_rate_limit_rejections_total",
        "tripline_ingest_rate_limit_unchecked_total",
    ),
    "worker": (
        "tripline_worker_jobs_started_total",
        "tripline_worker_jobs_finished_total",
        "tripline_worker_job_duration_seconds",
        "tripline_worker_jobs_in_progress",
        "tripline_worker_telemetry_events_processed_total",
        "tripline_worker_batch_latency_seconds",
        "tripline_worker_alerts_raised_total",
        "tripline_worker_webhook_deliveries_total",
    ),
}
PROCESSES = tuple(OWN)


def series_of(process: str) -> list[str]:
    """Every series name of the contract that `process` must export."""
    return [f"tripline_{process}_{series}" for series in EVERY_HTTP_APP] + list(OWN[process])


# The only names a dashboard panel may use.
CONTRACT = frozenset(name for process in PROCESSES for name in series_of(process))
