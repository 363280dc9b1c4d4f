"""Delivering one alert to one webhook endpoint: a signed POST, and the outcome on its row.

No database connection is held during the POST: the delivery is read in one short
transaction, posted, and the attempt recorded in another. Every connection goes through
`tripline_common.security.egress`: the host is resolved once and the connection made to that checked
address, so a name that resolves (or is re-pointed) to an internal address is refused.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
from opentelemetry.trace import Span, StatusCode
from sqlalchemy import Row, case, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from tripline_common.data.models import (
    ALERT_EVENT_COLUMNS,
    Alert,
    DeliveryStatus,
    WebhookDelivery,
    WebhookEndpoint,
)
from tripline_common.messaging import (
    ALERT_RAISED,
    DELIVERY_HEADER,
    EVENT_HEADER,
    REQUEST_ID_HEADER,
    AlertEvent,
    signature_headers,
    webhook_request_span,
)
from tripline_common.platform import CommonSettings
from tripline_common.security import (
    Resolver,
    TargetRefusedError,
    guarded_transport,
    system_resolver,
)

USER_AGENT = "Tripline-Webhooks/1"
_ERROR_MAX_LENGTH = 500


@dataclass(frozen=True)
class PendingDelivery:
    """What a delivery attempt needs, read before the POST."""

    id: uuid.UUID
    attempts: int
    url: str
    secret: str
    endpoint_active: bool
    request_id: str | None
    body: bytes
    previous_secret: str | None = None
    """The secret a rotation replaced, while its overlap runs: deliveries are signed with both."""


@dataclass(frozen=True)
class AttemptResult:
    """The outcome of one POST."""

    delivered: bool
    status_code: int | None = None
    error: str | None = None
    refused: bool = False
    """The target is not allowed (`TargetRefusedError`): retrying cannot help."""


def webhook_client(
    settings: CommonSettings,
    *,
    timeout: httpx.Timeout,
    max_connections: int,
    resolver: Resolver = system_resolver,
) -> httpx.AsyncClient:
    """The client every delivery uses: pooled connections, no redirects (a redirect is the
    receiver's misconfiguration; following it could leave the host), and connections only to
    addresses the SSRF guard allows (all of them with WEBHOOK_ALLOW_PRIVATE_TARGETS)."""
    return httpx.AsyncClient(
        transport=guarded_transport(
            allow_private=settings.webhook_private_targets_allowed,
            resolver=resolver,
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=20),
        ),
        timeout=timeout,
        follow_redirects=False,
    )


async def load_pending_delivery(
    *, session: AsyncSession, delivery_id: uuid.UUID
) -> PendingDelivery | None:
    """The delivery with its endpoint and the alert's body, or None if it is not pending."""
    row = (
        await session.execute(
            select(
                col(WebhookDelivery.attempts),
                col(WebhookDelivery.request_id).label("delivery_request_id"),
                col(WebhookEndpoint.url),
                col(WebhookEndpoint.secret),
                # The replaced secret, only while its overlap runs (judged by the database clock).
                case(
                    (
                        col(WebhookEndpoint.previous_secret_expires_at) > func.now(),
                        col(WebhookEndpoint.previous_secret),
                    ),
                    else_=None,
                ).label("previous_secret"),
                col(WebhookEndpoint.is_active),
                *ALERT_EVENT_COLUMNS,
            )
            .join(WebhookEndpoint, col(WebhookEndpoint.id) == col(WebhookDelivery.endpoint_id))
            .join(Alert, col(Alert.id) == col(WebhookDelivery.alert_id))
            .where(
                col(WebhookDelivery.id) == delivery_id,
                col(WebhookDelivery.status) == DeliveryStatus.PENDING,
            )
        )
    ).first()
    if row is None:
        return None
    alert = {column.key: row._mapping[column.key] for column in ALERT_EVENT_COLUMNS}
    return PendingDelivery(
        id=delivery_id,
        attempts=row.attempts,
        url=row.url,
        secret=row.secret,
        endpoint_active=row.is_active,
        request_id=row.delivery_request_id,
        body=AlertEvent.from_row(alert).to_json(),
        previous_secret=row.previous_secret,
    )


async def post_delivery(client: httpx.AsyncClient, delivery: PendingDelivery) -> AttemptResult:
    """POST the signed body. Any 2xx is delivered; the response body is never read."""
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        EVENT_HEADER: ALERT_RAISED,
        DELIVERY_HEADER: str(delivery.id),
        **signature_headers(
            delivery.secret,
            delivery.body,
            previous_secrets=[delivery.previous_secret] if delivery.previous_secret else [],
        ),
    }
    if delivery.request_id:
        headers[REQUEST_ID_HEADER] = delivery.request_id
    with webhook_request_span(delivery.url, headers) as span:
        result = await _post(client, delivery, headers)
        _record_outcome(span, result)
    return result


async def _post(
    client: httpx.AsyncClient, delivery: PendingDelivery, headers: dict[str, str]
) -> AttemptResult:
    try:
        # Streamed and closed unread: a receiver cannot make us download a large answer.
        async with client.stream(
            "POST", delivery.url, content=delivery.body, headers=headers
        ) as response:
            status = response.status_code
    except TargetRefusedError as exc:
        return AttemptResult(
            delivered=False, error=f"Refused by the SSRF guard: {exc}", refused=True
        )
    except httpx.HTTPError as exc:
        return AttemptResult(delivered=False, error=f"{type(exc).__name__}: {exc}")
    if 200 <= status < 300:
        return AttemptResult(delivered=True, status_code=status)
    return AttemptResult(delivered=False, status_code=status, error=f"HTTP {status}")


def _record_outcome(span: Span, result: AttemptResult) -> None:
    """The answer's status on the POST's span; a failure's type (the status, or the
    exception's class name) as `error.type`."""
    if not span.is_recording():
        return
    if result.status_code is not None:
        span.set_attribute("http.response.status_code", result.status_code)
    if not result.delivered:
        if result.status_code is not None:
            error_type = str(result.status_code)
        elif result.refused:
            error_type = TargetRefusedError.__name__
        else:  # "ConnectError: ..." -> the exception's class name.
            error_type = (result.error or "").split(":", 1)[0]
        span.set_attribute("error.type", error_type)
        span.set_status(StatusCode.ERROR)


async def record_attempt(
    *, session: AsyncSession, delivery_id: uuid.UUID, result: AttemptResult, final: bool
) -> None:
    """Count the attempt; `delivered`, or `failed` when it was the last one allowed."""
    values: dict[str, object] = {
        "attempts": col(WebhookDelivery.attempts) + 1,
        "last_status_code": result.status_code,
        "last_error": result.error[:_ERROR_MAX_LENGTH] if result.error else None,
    }
    if result.delivered:
        values.update(status=DeliveryStatus.DELIVERED, delivered_at=datetime.now(UTC))
    elif final:
        values.update(status=DeliveryStatus.FAILED)
    await session.execute(
        update(WebhookDelivery)
        .where(
            col(WebhookDelivery.id) == delivery_id,
            col(WebhookDelivery.status) == DeliveryStatus.PENDING,
        )
        .values(**values)
    )


async def fail_for_disabled_endpoint(*, session: AsyncSession, delivery_id: uuid.UUID) -> None:
    """End a pending delivery whose endpoint was disabled meanwhile: `failed`, with the reason."""
    await session.execute(
        update(WebhookDelivery)
        .where(
            col(WebhookDelivery.id) == delivery_id,
            col(WebhookDelivery.status) == DeliveryStatus.PENDING,
        )
        .values(status=DeliveryStatus.FAILED, last_error="The endpoint was disabled.")
    )


async def lost_deliveries(
    *, session: AsyncSession, pending_for: timedelta, limit: int
) -> Sequence[Row[uuid.UUID, str | None]]:
    """Deliveries still pending `pending_for` after their alert was raised, oldest first:
    `(id, request_id)` rows for the sweeper. Most still have their job (waiting for its next
    retry), and enqueueing them again is refused; the others lost theirs (Redis was down after
    the alert committed, or lost its memory)."""
    rows = await session.execute(
        select(col(WebhookDelivery.id), col(WebhookDelivery.request_id))
        .where(
            col(WebhookDelivery.status) == DeliveryStatus.PENDING,
            col(WebhookDelivery.created_at) < datetime.now(UTC) - pending_for,
        )
        .order_by(col(WebhookDelivery.created_at))
        .limit(limit)
    )
    return rows.all()


def backoff_seconds(failed_attempts: int, *, base: float, cap: float) -> float:
    """Wait after the n-th failed attempt: base x 2^(n-1), capped, with +-20% jitter so that
    deliveries that failed together do not all retry in the same instant."""
    wait: float = min(cap, base * 2 ** max(0, failed_attempts - 1))
    return wait * random.uniform(0.8, 1.2)  # noqa: S311 - jitter, not cryptography
