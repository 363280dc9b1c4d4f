"""Data floor: Postgres and what lives in it (sessions, hot-read pool, tables, records).

`unit_of_work` (commit, then enqueue), the raw asyncpg pool of the hot reads, the tables
(`tripline_common.data.models`, their own front door), the read cache, the audit trail
(`from tripline_common.data import audit`; `audit.record(...)`), job rows, account mail,
the shared name rule, and the switch of the client spans (`instrument_clients`: SQL, Redis,
pub/sub, webhooks). Imports only the floors below (platform, messaging).
"""

from tripline_common.data.accounts import AccountMail, enqueue_account_mail
from tripline_common.data.audit import AuditActor, AuditOrigin, AuditOriginDep
from tripline_common.data.cache import ReadCache
from tripline_common.data.client_tracing import instrument_clients, uninstrument_clients
from tripline_common.data.db import (
    SessionFactory,
    create_engine,
    create_session_factory,
    driver_connection,
    is_transient_db_error,
    one_connection,
    retry_transient,
    unit_of_work,
)
from tripline_common.data.names import (
    NAME_RULE,
    DeviceName,
    NameText,
    WaypointName,
    clean_name,
    clean_waypoint_name,
)
from tripline_common.data.pg import PgExecutor, asyncpg_dsn, create_pg_pool
from tripline_common.data.text import STORABLE_TEXT
from tripline_common.data.tracked_jobs import (
    create_job,
    finish_job,
    get_job,
    job_arq_id,
    mark_job_running,
    set_job_progress,
    stale_jobs,
)

__all__ = [
    "NAME_RULE",
    "STORABLE_TEXT",
    "AccountMail",
    "AuditActor",
    "AuditOrigin",
    "AuditOriginDep",
    "DeviceName",
    "NameText",
    "PgExecutor",
    "ReadCache",
    "SessionFactory",
    "WaypointName",
    "asyncpg_dsn",
    "clean_name",
    "clean_waypoint_name",
    "create_engine",
    "create_job",
    "create_pg_pool",
    "create_session_factory",
    "driver_connection",
    "enqueue_account_mail",
    "finish_job",
    "get_job",
    "instrument_clients",
    "is_transient_db_error",
    "job_arq_id",
    "mark_job_running",
    "one_connection",
    "retry_transient",
    "set_job_progress",
    "stale_jobs",
    "uninstrument_clients",
    "unit_of_work",
]
