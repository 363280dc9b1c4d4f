"""Webhooks: register, list and remove a user's webhook endpoints, and rotate their signing
secrets with an overlap. Nothing here knows about HTTP.

SSRF guard: the worker POSTs to these URLs from inside the cluster, so unless
WEBHOOK_ALLOW_PRIVATE_TARGETS allows it (dev and test only) a URL must be https and must not
name `localhost`, an IP literal outside the public internet (`tripline_common.security.egress`:
private, loopback, link-local, shared, reserved, multicast, special-purpose, or such an address
inside NAT64, 6to4 or IPv4-mapped forms) or a numeric form such as `2130706433` that resolvers
read as an address. A name can still resolve, or be re-pointed (DNS rebinding), to an internal
address: the worker checks the address it connects to at every delivery too.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from tripline_common.data.models import WebhookEndpoint
from tripline_common.messaging import new_webhook_secret
from tripline_common.platform import NotFoundError, UnprocessableError
from tripline_common.security import url_refusal
from tripline_common.web import PageParams, PageResult, SortSpec, fetch_page

WEBHOOK_SORT = SortSpec(
    columns={"created_at": col(WebhookEndpoint.created_at), "url": col(WebhookEndpoint.url)},
    tiebreaker=col(WebhookEndpoint.id),
    default="-created_at",
)
"""What webhook lists may be sorted on (NOT NULL columns only: keyset paging needs them)."""

DEFAULT_SECRET_GRACE_SECONDS = 86_400
"""How long a rotated-out secret keeps signing deliveries unless told otherwise (24 h)."""
MAX_SECRET_GRACE_SECONDS = 7 * 86_400
"""The longest overlap a rotation may ask for (7 days)."""


def webhook_not_found() -> NotFoundError:
    return NotFoundError("Webhook endpoint not found.", code="webhook_not_found")


async def register_webhook(
    *, session: AsyncSession, owner_id: uuid.UUID, url: str, guard_targets: bool
) -> WebhookEndpoint:
    """A new active endpoint of the owner with a fresh signing secret (returned in the row: the
    worker needs it in clear to sign). With `guard_targets` the SSRF guard applies."""
    if guard_targets and (reason := url_refusal(url)) is not None:
        raise UnprocessableError(
            f"This webhook URL is not allowed: it {reason}.",
            code="unsafe_webhook_url",
            details=[{"loc": ["body", "url"], "msg": reason, "type": "unsafe_webhook_url"}],
        )
    endpoint = WebhookEndpoint(owner_id=owner_id, url=url, secret=new_webhook_secret())
    session.add(endpoint)
    await session.flush()
    return endpoint


async def list_webhooks(
    *, session: AsyncSession, owner_id: uuid.UUID, page: PageParams
) -> PageResult[WebhookEndpoint]:
    """One page of the owner's endpoints."""
    statement = select(WebhookEndpoint).where(col(WebhookEndpoint.owner_id) == owner_id)
    return await fetch_page(session, statement, page, WEBHOOK_SORT)


async def get_webhook(
    *, session: AsyncSession, owner_id: uuid.UUID, webhook_id: uuid.UUID
) -> WebhookEndpoint:
    """The owner's endpoint, or 404."""
    endpoint = await session.scalar(
        select(WebhookEndpoint).where(
            col(WebhookEndpoint.id) == webhook_id, col(WebhookEndpoint.owner_id) == owner_id
        )
    )
    if endpoint is None:
        raise webhook_not_found()
    return endpoint


async def rotate_webhook_secret(
    *, session: AsyncSession, owner_id: uuid.UUID, webhook_id: uuid.UUID, grace_seconds: int
) -> WebhookEndpoint:
    """Give the owner's endpoint a new signing secret (returned in the row, to be shown once).

    For `grace_seconds` the worker signs each delivery with the new secret and the old one
    (`v1=<new>,v1=<old>`), so the receiver can switch to the new secret whenever it likes during
    that time; 0 drops the old secret at once. A secret kept by an earlier rotation is dropped:
    at most two secrets sign a delivery. 404 when the endpoint is not the owner's."""
    if not 0 <= grace_seconds <= MAX_SECRET_GRACE_SECONDS:
        raise ValueError(f"grace_seconds must be within 0..{MAX_SECRET_GRACE_SECONDS}")
    endpoint = await session.scalar(
        select(WebhookEndpoint)
        .where(col(WebhookEndpoint.id) == webhook_id, col(WebhookEndpoint.owner_id) == owner_id)
        .with_for_update()
    )
    if endpoint is None:
        raise webhook_not_found()
    if grace_seconds:
        endpoint.previous_secret = endpoint.secret
        endpoint.previous_secret_expires_at = datetime.now(UTC) + timedelta(seconds=grace_seconds)
    else:
        endpoint.previous_secret = None
        endpoint.previous_secret_expires_at = None
    endpoint.secret = new_webhook_secret()
    await session.flush()
    return endpoint


async def delete_webhook(
    *, session: AsyncSession, owner_id: uuid.UUID, webhook_id: uuid.UUID
) -> None:
    """Remove the endpoint and its delivery records; 404 when it is not the owner's."""
    endpoint = await get_webhook(session=session, owner_id=owner_id, webhook_id=webhook_id)
    await session.delete(endpoint)
    await session.flush()
