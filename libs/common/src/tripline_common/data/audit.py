"""The audit log: `record(...)` one security-relevant action in the caller's unit of work.

An entry says who acted (`AuditActor`), what they did (a dotted `action` such as
`user.disable`), to what (`target_type`, `target_id`), with which facts (`details`), and where
the request came from (`AuditOrigin`: correlation ID and client address). It is written in the
same transaction as the change it describes, so an action and its entry commit or roll back
together: there is no logged action that did not happen, and no change without its entry.

The table is append-only: no service function updates or deletes entries, and a trigger in the
database (migration `0003_audit_log_append_only`) refuses UPDATE, DELETE and TRUNCATE from
anyone, so not even a bug or a stray SQL console can rewrite history.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Annotated, Any, Protocol

import orjson
from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from tripline_common.data.models import AuditLogEntry
from tripline_common.platform.correlation import get_request_id

ACTION_PATTERN = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
"""Actions are dotted verbs, lower case: `user.disable`, `device.key_rotate`, `console.login`."""

_LABEL_MAX = 320
_TARGET_MAX = 64


class _Identified(Protocol):
    """Anything with the identity of a user: a `Principal`, a `User` row."""

    @property
    def id(self) -> uuid.UUID: ...

    @property
    def email(self) -> str: ...


@dataclass(frozen=True)
class AuditActor:
    """Who acted: a user (`id` and their email as `label`) or the system (`id` None)."""

    id: uuid.UUID | None
    label: str

    @classmethod
    def of(cls, user: _Identified) -> AuditActor:
        """The actor for a user; the label keeps their email should the account be deleted."""
        return cls(id=user.id, label=user.email)


SYSTEM = AuditActor(id=None, label="system")
"""The actor of changes made by the platform itself (cron jobs, migrations)."""


@dataclass(frozen=True)
class AuditOrigin:
    """Where an action came from: the request's correlation ID and the client's address."""

    request_id: str | None
    source_ip: str | None


async def get_audit_origin(request: Request) -> AuditOrigin:
    """The origin of the current request. The client address is the peer as the server saw it,
    which `tripline_common.web.server.serve` resolves through trusted proxies only
    (`FORWARDED_ALLOW_IPS`), so a client cannot forge it with an `X-Forwarded-For` header."""
    host = request.client.host if request.client else None
    return AuditOrigin(request_id=get_request_id(), source_ip=host[:45] if host else None)


AuditOriginDep = Annotated[AuditOrigin, Depends(get_audit_origin)]


def _json_safe(details: dict[str, Any]) -> dict[str, Any]:
    # UUIDs, datetimes and enums become strings, the same with any engine's JSON serialiser.
    safe: dict[str, Any] = orjson.loads(orjson.dumps(details, option=orjson.OPT_NON_STR_KEYS))
    return safe


async def record(
    session: AsyncSession,
    *,
    actor: AuditActor,
    action: str,
    target_type: str | None = None,
    target_id: uuid.UUID | int | str | None = None,
    details: dict[str, Any] | None = None,
    origin: AuditOrigin | None = None,
) -> AuditLogEntry:
    """Add one audit entry to `session`; it commits (or rolls back) with the caller's work.

    `origin` defaults to the current correlation ID with no client address (jobs, scripts).
    Never put secrets in `details`: it is shown to every operator.
    """
    if not ACTION_PATTERN.match(action) or len(action) > 64:
        raise ValueError(f"audit action {action!r} is not a dotted lower-case verb")
    where = origin or AuditOrigin(request_id=get_request_id(), source_ip=None)
    entry = AuditLogEntry(
        actor_id=actor.id,
        actor_label=actor.label[:_LABEL_MAX],
        action=action,
        target_type=target_type,
        target_id=None if target_id is None else str(target_id)[:_TARGET_MAX],
        details=_json_safe(details or {}),
        request_id=where.request_id,
        source_ip=where.source_ip,
    )
    session.add(entry)
    await session.flush()
    return entry
