"""Webhook jobs: deliver one alert to one endpoint; the sweeper re-enqueues lost deliveries."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from arq import Retry
from sqlalchemy import select, update

from tripline_common.data import retry_transient, unit_of_work
from tripline_common.data.models import DeliveryStatus, WebhookDelivery
from tripline_common.messaging import DELIVER_WEBHOOK, deliver_webhook_job_id
from tripline_worker.webhooks.delivery import (
    backoff_seconds,
    load_pending_delivery,
    post_delivery,
    record_attempt,
)

log = structlog.get_logger("tripline.worker.webhooks")


async def deliver_webhook(ctx: dict[str, Any], delivery_id: str) -> str:
    """POST an alert to an endpoint, signed. On failure, try again later through `arq.Retry`
    with exponential backoff; after `webhook_max_attempts` attempts, record it as failed.

    Each attempt is counted on the delivery row (attempts, last status code, last error), so
    the bound holds across worker restarts. Receivers get the same `X-Tripline-Delivery` ID
    on every retry and can ignore a repeat (a worker that dies after the POST but before
    recording it sends it again).
    """
    settings = ctx["settings"]
    delivery_uuid = uuid.UUID(delivery_id)
    async with ctx["session_factory"]() as session:
        delivery = await load_pending_delivery(session=session, delivery_id=delivery_uuid)
    if delivery is None:
        log.info("delivery_not_pending", delivery_id=delivery_id)
        return "not_pending"
    if not delivery.endpoint_active:
        async with unit_of_work(ctx["session_factory"]) as session:
            await session.execute(
                update(WebhookDelivery)
                .where(
                    WebhookDelivery.id == delivery_uuid,
                    WebhookDelivery.status == DeliveryStatus.PENDING,
                )
                .values(status=DeliveryStatus.FAILED, last_error="The endpoint was disabled.")
            )
        log.info("delivery_endpoint_disabled", delivery_id=delivery_id)
        return "endpoint_disabled"

    result = await post_delivery(ctx["http"], delivery)
    attempt = delivery.attempts + 1
    # A refused target stays refused: the delivery fails now instead of wasting its retries.
    final = result.delivered or result.refused or attempt >= settings.webhook_max_attempts
    await retry_transient()(_record)(ctx, delivery_uuid, result, final)
    metrics = ctx["metrics"]
    if result.delivered:
        metrics.webhook_deliveries.labels("delivered").inc()
        log.info(
            "webhook_delivered",
            delivery_id=delivery_id,
            attempt=attempt,
            status=result.status_code,
        )
        return "delivered"
    if final:
        metrics.webhook_deliveries.labels("failed").inc()
        log.warning(
            "webhook_refused" if result.refused else "webhook_failed",
            delivery_id=delivery_id,
            attempts=attempt,
            status=result.status_code,
            error=result.error,
        )
        return "failed"
    metrics.webhook_deliveries.labels("retried").inc()
    wait = backoff_seconds(
        attempt,
        base=settings.webhook_backoff_base_seconds,
        cap=settings.webhook_backoff_max_seconds,
    )
    log.info(
        "webhook_attempt_failed",
        delivery_id=delivery_id,
        attempt=attempt,
        status=result.status_code,
        error=result.error,
        retry_in=round(wait, 2),
    )
    raise Retry(defer=timedelta(seconds=wait))


async def _record(ctx: dict[str, Any], delivery_id: uuid.UUID, result: Any, final: bool) -> None:
    async with unit_of_work(ctx["session_factory"]) as session:
        await record_attempt(session=session, delivery_id=delivery_id, result=result, final=final)


@retry_transient()
async def requeue_stuck_deliveries(ctx: dict[str, Any]) -> int:
    """Cron: enqueue deliveries still pending after a while whose job was lost (Redis was
    down after the alert committed, or lost its memory). A delivery waiting for its next
    retry still has its job, so enqueueing it again is refused: nothing runs twice."""
    settings = ctx["settings"]
    cutoff = datetime.now(UTC) - timedelta(seconds=settings.delivery_requeue_after_seconds)
    async with ctx["session_factory"]() as session:
        rows = await session.execute(
            select(WebhookDelivery.id, WebhookDelivery.request_id)
            .where(
                WebhookDelivery.status == DeliveryStatus.PENDING,
                WebhookDelivery.created_at < cutoff,
            )
            .order_by(WebhookDelivery.created_at)
            .limit(settings.requeue_limit)
        )
        pending = rows.all()
    requeued = 0
    for delivery_id, request_id in pending:
        if await ctx["queue"].requeue(
            DELIVER_WEBHOOK,
            str(delivery_id),
            job_id=deliver_webhook_job_id(delivery_id),
            request_id=request_id,
        ):
            requeued += 1
    if requeued:
        log.info("stuck_deliveries_requeued", found=len(pending), requeued=requeued)
    return requeued
