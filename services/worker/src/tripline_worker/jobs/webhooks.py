"""`deliver_webhook`: the ARQ job that delivers one alert to one endpoint (logic in `webhooks`)."""

from __future__ import annotations

import uuid
from datetime import timedelta

import structlog
from arq import Retry

from tripline_common.data import retry_transient, unit_of_work
from tripline_worker.context import ArqContext, WorkerContext, context
from tripline_worker.webhooks.delivery import (
    AttemptResult,
    backoff_seconds,
    fail_for_disabled_endpoint,
    load_pending_delivery,
    post_delivery,
    record_attempt,
)

log = structlog.get_logger("tripline.worker.webhooks")


async def deliver_webhook(ctx: ArqContext, delivery_id: str) -> str:
    """POST an alert to an endpoint, signed. On failure, try again later through `arq.Retry`
    with exponential backoff; after `webhook_max_attempts` attempts, record it as failed.

    Each attempt is counted on the delivery row (attempts, last status code, last error), so
    the bound holds across worker restarts. Receivers get the same `X-Tripline-Delivery` ID
    on every retry and can ignore a repeat (a worker that dies after the POST but before
    recording it sends it again).
    """
    worker = context(ctx)
    settings = worker.settings
    delivery_uuid = uuid.UUID(delivery_id)
    async with worker.session_factory() as session:
        delivery = await load_pending_delivery(session=session, delivery_id=delivery_uuid)
    if delivery is None:
        log.info("delivery_not_pending", delivery_id=delivery_id)
        return "not_pending"
    if not delivery.endpoint_active:
        async with unit_of_work(worker.session_factory) as session:
            await fail_for_disabled_endpoint(session=session, delivery_id=delivery_uuid)
        log.info("delivery_endpoint_disabled", delivery_id=delivery_id)
        return "endpoint_disabled"

    result = await post_delivery(worker.webhook_client, delivery)
    attempt = delivery.attempts + 1
    # A refused target stays refused: the delivery fails now instead of wasting its retries.
    final = result.delivered or result.refused or attempt >= settings.webhook_max_attempts
    await retry_transient()(_record)(worker, delivery_uuid, result, final)
    metrics = worker.metrics
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


async def _record(
    worker: WorkerContext, delivery_id: uuid.UUID, result: AttemptResult, final: bool
) -> None:
    async with unit_of_work(worker.session_factory) as session:
        await record_attempt(session=session, delivery_id=delivery_id, result=result, final=final)
