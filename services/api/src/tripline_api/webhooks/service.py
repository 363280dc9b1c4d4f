"""Webhooks: register, list and remove a user's webhook endpoints, and rotate their signing
secrets with an overlap. Nothing here knows about HTTP.

SSRF guard: the worker POSTs to these URLs from inside the cluster, so in staging and
production (`settings.is_production_like`) a URL must be https and must not name `localhost` or
an IP literal outside the public internet (private, loopback, link-local, shared, reserved,
multicast, or a numeric form such as `2130706433` that resolvers read as an address). This
checks the URL as written only: a public host name can still resolve (or be re-pointed, DNS
rebinding) to an internal address, so production also needs an egress policy that keeps the
worker away from internal networks (a NetworkPolicy or an egress proxy).
"""

from __future__ import annotations

import ipaddress
import re
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from tripline_common.errors import NotFoundError, UnprocessableError
from tripline_common.models import WebhookEndpoint
from tripline_common.pagination import PageParams, PageResult, SortSpec, fetch_page
from tripline_common.webhooks import new_webhook_secret

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

# Labels that are all decimal or hex numbers: `127.1`, `0x7f.0.0.1`, `2130706433` all reach
# 127.0.0.1 through common resolvers although they are not canonical IP literals.
_NUMERIC_HOST = re.compile(r"^(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]+))*$")


def webhook_not_found() -> NotFoundError:
    return NotFoundError("Webhook endpoint not found.", code="webhook_not_found")


def unsafe_url_reason(url: str) -> str | None:
    """Why `url` may not receive deliveries in staging or production, or None when it may."""
    parts = urlsplit(url)
    if parts.scheme.lower() != "https":
        return "must use https"
    host = (parts.hostname or "").rstrip(".").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return "must not name localhost"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        if _NUMERIC_HOST.match(host):
            return "must not name an IP address in a non-canonical numeric form"
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if not address.is_global or address.is_multicast:
        return "must not name a private, loopback, link-local or reserved IP address"
    return None


async def register_webhook(
    *, session: AsyncSession, owner_id: uuid.UUID, url: str, production_like: bool
) -> WebhookEndpoint:
    """A new active endpoint of the owner with a fresh signing secret (returned in the row: the
    worker needs it in clear to sign). In production-like environments the SSRF guard applies."""
    if production_like and (reason := unsafe_url_reason(url)) is not None:
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
