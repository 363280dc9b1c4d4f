"""Webhook delivery to a real HTTP receiver on 127.0.0.1: signed, retried, given up, recorded."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from arq import Retry
from arq.jobs import deserialize_job
from sqlalchemy import select, update
from worker_factories import along_route, job, window_aligned

from tripline_common.models import Alert, DeliveryStatus, WebhookDelivery, WebhookEndpoint
from tripline_common.webhooks import verify_signature

SECRET = "whsec_receiver-secret"


@pytest.fixture
def alert_with_delivery(ctx, session_factory, make_owner, make_trip, make_batch, make_endpoint):
    """Process a speeding batch for an owner with one endpoint; return the delivery's id."""

    async def make(url: str, *, active: bool = True) -> uuid.UUID:
        owner = await make_owner()
        await make_trip(owner, speed_limit_kmh=50)
        await make_endpoint(owner, url, secret=SECRET, active=active)
        batch_id = await make_batch(
            owner, along_route(2, start=window_aligned(), speed_kmh=90), request_id="hook-rid-1"
        )
        await job("process_batch")(ctx, str(batch_id), request_id="hook-rid-1")
        async with session_factory() as session:
            return await session.scalar(select(WebhookDelivery.id))

    return make


async def delivery_row(session_factory, delivery_id) -> WebhookDelivery:
    async with session_factory() as session:
        return await session.get(WebhookDelivery, delivery_id, populate_existing=True)


def deliver(ctx, delivery_id):
    return job("deliver_webhook", ctx["settings"])(ctx, str(delivery_id), request_id="hook-rid-1")


async def test_a_delivery_is_signed_and_carries_the_correlation_id(
    ctx, session_factory, webhook_receiver, alert_with_delivery
) -> None:
    delivery_id = await alert_with_delivery(webhook_receiver.url)
    assert await deliver(ctx, delivery_id) == "delivered"

    [request] = webhook_receiver.received
    headers = request.headers
    assert request.path == "/hooks/tripline"
    assert verify_signature(
        SECRET, request.body, headers["X-Tripline-Timestamp"], headers["X-Tripline-Signature"]
    )
    assert not verify_signature(
        "whsec_other",
        request.body,
        headers["X-Tripline-Timestamp"],
        headers["X-Tripline-Signature"],
    )
    assert headers["X-Request-ID"] == "hook-rid-1"
    assert headers["X-Tripline-Delivery"] == str(delivery_id)
    assert headers["X-Tripline-Event"] == "alert.raised"
    assert headers["Content-Type"] == "application/json"
    body = json.loads(request.body)
    async with session_factory() as session:
        alert = await session.scalar(select(Alert))
    assert body["type"] == "alert.raised" and body["version"] == 1
    assert body["alert"]["id"] == str(alert.id)
    assert body["alert"]["rule"] == "speeding"
    assert body["alert"]["request_id"] == "hook-rid-1"

    row = await delivery_row(session_factory, delivery_id)
    assert row.status is DeliveryStatus.DELIVERED and row.attempts == 1
    assert row.last_status_code == 200 and row.delivered_at is not None
    assert await deliver(ctx, delivery_id) == "not_pending"  # Never twice once delivered.
    assert len(webhook_receiver.received) == 1


async def test_a_failed_attempt_is_retried_later_with_backoff(
    ctx, session_factory, webhook_receiver, alert_with_delivery
) -> None:
    delivery_id = await alert_with_delivery(webhook_receiver.url)
    webhook_receiver.script = [503, 500]
    base = ctx["settings"].webhook_backoff_base_seconds

    with pytest.raises(Retry) as first:
        await deliver(ctx, delivery_id)
    assert base * 0.8 * 1000 <= first.value.defer_score <= base * 1.2 * 1000
    row = await delivery_row(session_factory, delivery_id)
    assert (row.status, row.attempts, row.last_status_code) == (DeliveryStatus.PENDING, 1, 503)
    assert row.last_error == "HTTP 503"

    with pytest.raises(Retry) as second:
        await deliver(ctx, delivery_id)
    assert second.value.defer_score >= base * 2 * 0.8 * 1000  # Doubled.

    assert await deliver(ctx, delivery_id) == "delivered"
    row = await delivery_row(session_factory, delivery_id)
    assert (row.status, row.attempts, row.last_status_code) == (DeliveryStatus.DELIVERED, 3, 200)
    assert [r.status for r in webhook_receiver.received] == [503, 500, 200]
    # The same delivery each time: same ID, same body, freshly signed.
    assert len({r.headers["X-Tripline-Delivery"] for r in webhook_receiver.received}) == 1
    assert len({r.body for r in webhook_receiver.received}) == 1


async def test_a_delivery_is_given_up_after_its_attempts_and_the_failure_recorded(
    ctx, worker_settings, session_factory, webhook_receiver, alert_with_delivery
) -> None:
    ctx["settings"] = worker_settings(webhook_max_attempts=2)
    delivery_id = await alert_with_delivery(webhook_receiver.url)
    webhook_receiver.script = [500, 502, 200]
    with pytest.raises(Retry):
        await deliver(ctx, delivery_id)
    assert await deliver(ctx, delivery_id) == "failed"
    row = await delivery_row(session_factory, delivery_id)
    assert (row.status, row.attempts) == (DeliveryStatus.FAILED, 2)
    assert (row.last_status_code, row.last_error) == (502, "HTTP 502")
    assert await deliver(ctx, delivery_id) == "not_pending"
    assert len(webhook_receiver.received) == 2


async def test_an_unreachable_endpoint_is_an_attempt_with_its_error(
    ctx, session_factory, webhook_receiver, alert_with_delivery
) -> None:
    delivery_id = await alert_with_delivery(webhook_receiver.url)
    webhook_receiver.stop()
    with pytest.raises(Retry):
        await deliver(ctx, delivery_id)
    row = await delivery_row(session_factory, delivery_id)
    assert row.attempts == 1 and row.last_status_code is None
    assert row.last_error.startswith("ConnectError")


async def test_a_disabled_endpoint_is_not_posted_to(
    ctx, session_factory, webhook_receiver, alert_with_delivery
) -> None:
    delivery_id = await alert_with_delivery(webhook_receiver.url)
    async with session_factory() as session:  # Disabled after the alert was raised.
        delivery = await session.get(WebhookDelivery, delivery_id)
        await session.execute(
            update(WebhookEndpoint)
            .where(WebhookEndpoint.id == delivery.endpoint_id)
            .values(is_active=False)
        )
        await session.commit()
    assert await deliver(ctx, delivery_id) == "endpoint_disabled"
    row = await delivery_row(session_factory, delivery_id)
    assert row.status is DeliveryStatus.FAILED and row.attempts == 0
    assert webhook_receiver.received == []


async def test_sweeper_requeues_old_pending_deliveries_once(
    ctx, session_factory, alert_with_delivery
) -> None:
    delivery_id = await alert_with_delivery("http://127.0.0.1:9/hook")
    redis = ctx["queue"].redis
    await redis.flushdb()  # Redis lost the delivery's job.
    async with session_factory() as session:
        await session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id == delivery_id)
            .values(created_at=datetime.now(UTC) - timedelta(hours=1))
        )
        await session.commit()
    requeue = job("requeue_stuck_deliveries")
    assert await requeue(ctx) == 1
    assert await requeue(ctx) == 0
    queued = deserialize_job(await redis.get(f"arq:job:deliver_webhook:{delivery_id}"))
    assert queued.args == (str(delivery_id),)
    assert queued.kwargs == {"request_id": "hook-rid-1"}
