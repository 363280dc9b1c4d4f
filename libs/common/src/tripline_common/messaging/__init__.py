"""Messaging floor: how processes talk to each other (job queue, pub/sub, webhooks).

The ARQ job queue (`JobQueue`, job names and IDs), Redis pub/sub of raised alerts, and
the signature scheme of outgoing webhooks. Imports only the platform floor.
"""

from tripline_common.messaging.pubsub import (
    ALERT_RAISED,
    AlertData,
    AlertEvent,
    listen_alerts,
    publish_alert,
)
from tripline_common.messaging.queue import (
    DELIVER_WEBHOOK,
    PROCESS_BATCH,
    REQUEST_ID_KWARG,
    JobQueue,
    create_redis,
    deliver_webhook_job_id,
    process_batch_job_id,
    queue_stats,
    traced_job,
)
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
)

__all__ = [
    "ALERT_RAISED",
    "DELIVERY_HEADER",
    "DELIVER_WEBHOOK",
    "EVENT_HEADER",
    "PROCESS_BATCH",
    "REQUEST_ID_HEADER",
    "REQUEST_ID_KWARG",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "AlertData",
    "AlertEvent",
    "JobQueue",
    "compute_signature",
    "create_redis",
    "deliver_webhook_job_id",
    "listen_alerts",
    "new_webhook_secret",
    "process_batch_job_id",
    "publish_alert",
    "queue_stats",
    "signature_headers",
    "traced_job",
    "verify_signature",
]
