"""Messaging floor: how processes talk to each other (job queue, pub/sub, webhooks).

The ARQ job queue (`JobQueue`), what a queue holds (`read_queue_state`), its job registry
(every job's name, ID rule and options), jobs in a trace (`job_tracing`: producer and consumer
spans, the job's trace envelope), Redis pub/sub of raised alerts, the signature scheme of
outgoing webhooks, and the client spans of Redis, pub/sub and webhook POSTs. Imports only the
platform floor (and OpenTelemetry).
"""

from tripline_common.messaging.job_registry import (
    CHECK_LOST_SIGNAL,
    DELIVER_WEBHOOK,
    IMPORT_WAYPOINTS,
    JOBS,
    PROCESS_BATCH,
    PURGE_SESSIONS,
    PURGE_TELEMETRY,
    REQUEUE_STUCK_BATCHES,
    REQUEUE_STUCK_DELIVERIES,
    REQUEUE_STUCK_JOBS,
    SEND_ACCOUNT_MAIL,
    JobSpec,
    job_spec,
)
from tripline_common.messaging.job_tracing import dump_job, load_job
from tripline_common.messaging.pubsub import (
    ALERT_RAISED,
    AlertData,
    AlertEvent,
    alert_delivery_span,
    listen_alerts,
    publish_alert,
    published_trace_ids,
)
from tripline_common.messaging.queue import (
    REQUEST_ID_KWARG,
    JobQueue,
    correlated_job,
    create_redis,
)
from tripline_common.messaging.queue_state import QueueState, read_queue_state
from tripline_common.messaging.webhooks import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    REQUEST_ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    compute_signature,
    new_webhook_secret,
    signature_headers,
    verify_signature,
    webhook_request_span,
)

__all__ = [
    "ALERT_RAISED",
    "CHECK_LOST_SIGNAL",
    "DELIVERY_HEADER",
    "DELIVER_WEBHOOK",
    "EVENT_HEADER",
    "IMPORT_WAYPOINTS",
    "JOBS",
    "PROCESS_BATCH",
    "PURGE_SESSIONS",
    "PURGE_TELEMETRY",
    "REQUEST_ID_HEADER",
    "REQUEST_ID_KWARG",
    "REQUEUE_STUCK_BATCHES",
    "REQUEUE_STUCK_DELIVERIES",
    "REQUEUE_STUCK_JOBS",
    "SEND_ACCOUNT_MAIL",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "AlertData",
    "AlertEvent",
    "JobQueue",
    "JobSpec",
    "QueueState",
    "alert_delivery_span",
    "compute_signature",
    "correlated_job",
    "create_redis",
    "dump_job",
    "job_spec",
    "listen_alerts",
    "load_job",
    "new_webhook_secret",
    "publish_alert",
    "published_trace_ids",
    "read_queue_state",
    "signature_headers",
    "verify_signature",
    "webhook_request_span",
]
