"""Webhook delivery to a real HTTP receiver on 127.0.0.1: signed, retried, given up, recorded."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from arq import Retry
from arq.jobs import deserialize_job
from opentelemetry.trace import SpanKind
from sqlalchemy import select, update
from structlog.testing import capture_logs
from worker_factories import along_route, job, window_aligned, with_resources

from tripline_common.data import instrument_clients
from tripline_common.data.models import Alert, DeliveryStatus, WebhookDelivery, WebhookEndpoint
from tripline_common.messaging import verify_signature
from tripline_common.security import system_resolver
from tripline_worker.context import context
from tripline_worker.webhooks.delivery import webhook_client

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
    return job("deliver_webhook", context(ctx).settings)(
        ctx, str(delivery_id), request_id="hook-rid-1"
    )


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
    assert "traceparent" not in headers  # Client spans are off.
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


async def test_a_traced_delivery_sends_the_traceparent_of_the_jobs_trace_and_stays_verifiable(
    ctx, session_factory, webhook_receiver, alert_with_delivery, spans
) -> None:
    delivery_id = await alert_with_delivery(webhook_receiver.url)
    instrument_clients(spans.tracing.provider)  # As `create_app` does when tracing is on.
    assert await deliver(ctx, delivery_id) == "delivered"

    [request] = webhook_receiver.received
    headers = request.headers
    _, trace_id, parent_id, _ = headers["traceparent"].split("-")
    [job_span] = spans.named("process deliver_webhook")
    [post] = spans.named("POST")
    assert int(trace_id, 16) == job_span.context.trace_id
    assert int(parent_id, 16) == post.context.span_id
    assert post.kind is SpanKind.CLIENT
    assert post.parent is not None and post.parent.span_id == job_span.context.span_id
    assert post.attributes is not None
    assert post.attributes["http.response.status_code"] == 200
    assert post.attributes["server.address"] == "127.0.0.1"
    assert post.attributes["server.port"] == webhook_receiver.port
    assert "url.full" not in post.attributes  # A webhook URL can hold the receiver's secret.
    # The signature covers the timestamp and the body, not the trace headers.
    assert verify_signature(
        SECRET, request.body, headers["X-Tripline-Timestamp"], headers["X-Tripline-Signature"]
    )


async def test_a_traced_delivery_that_fails_marks_its_span_with_the_status(
    ctx, session_factory, webhook_receiver, alert_with_delivery, spans
) -> None:
    delivery_id = await alert_with_delivery(webhook_receiver.url)
    webhook_receiver.script = [503]
    instrument_clients(spans.tracing.provider)
    with pytest.raises(Retry):
        await deliver(ctx, delivery_id)
    [post] = spans.named("POST")
    assert post.attributes is not None
    assert post.attributes["http.response.status_code"] == 503
    assert post.attributes["error.type"] == "503"
    assert not post.status.is_ok


async def test_a_failed_attempt_is_retried_later_with_backoff(
    ctx, session_factory, webhook_receiver, alert_with_delivery
) -> None:
    delivery_id = await alert_with_delivery(webhook_receiver.url)
    webhook_receiver.script = [503, 500]
    base = context(ctx).settings.webhook_backoff_base_seconds

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
    ctx = with_resources(ctx, settings=worker_settings(webhook_max_attempts=2))
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
    redis = context(ctx).redis
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


# --- SSRF guard at delivery: the resolved address is checked and is the one connected to ------


def resolving_to(address: str, calls: list[str] | None = None):
    """A resolver that answers `address` for every name (stands in for a hostile DNS)."""

    async def resolve(host: str, port: int) -> list[str]:
        if calls is not None:
            calls.append(host)
        return [address]

    return resolve


@pytest.fixture
async def guarded_ctx(ctx, worker_settings):
    """`ctx` with the SSRF guard on (as in staging and prod) and a client whose resolver the
    test chooses."""
    clients: list[httpx.AsyncClient] = []

    def make(resolver, *, allow_private: bool = False) -> dict:
        settings = worker_settings(webhook_allow_private_targets=allow_private)
        http = webhook_client(
            settings,
            timeout=httpx.Timeout(2.0, connect=1.0),
            max_connections=4,
            resolver=resolver,
        )
        clients.append(http)
        return with_resources(ctx, settings=settings, webhook_client=http)

    yield make
    for client in clients:
        await client.aclose()


@pytest.fixture
async def hostile_dns(monkeypatch):
    """The system resolver (the event loop's getaddrinfo) answers 127.0.0.1 for
    hooks.example.test, as a rebinding DNS server would once the URL was registered."""
    loop = asyncio.get_running_loop()
    real = loop.getaddrinfo

    async def getaddrinfo(host, port, *args, **kwargs):
        if host in ("hooks.example.test", b"hooks.example.test"):  # anyio passes bytes
            return await real("127.0.0.1", port, *args, **kwargs)
        return await real(host, port, *args, **kwargs)

    monkeypatch.setattr(loop, "getaddrinfo", getaddrinfo)


async def test_a_name_resolving_to_an_internal_address_is_refused_at_delivery_without_retries(
    guarded_ctx, session_factory, webhook_receiver, alert_with_delivery, hostile_dns
) -> None:
    # DNS rebinding: the name looked public when it was registered; now the system resolver
    # answers 127.0.0.1, where a real receiver listens.
    guarded = guarded_ctx(system_resolver)
    url = f"http://hooks.example.test:{webhook_receiver.port}/hooks/tripline"
    delivery_id = await alert_with_delivery(url)
    with capture_logs() as logs:
        outcome = await deliver(guarded, delivery_id)
    assert outcome == "failed"  # At once: no Retry, no attempts wasted.
    assert webhook_receiver.received == []
    row = await delivery_row(session_factory, delivery_id)
    assert (row.status, row.attempts, row.last_status_code) == (DeliveryStatus.FAILED, 1, None)
    assert row.last_error == (
        "Refused by the SSRF guard: hooks.example.test resolves to 127.0.0.1, which is not a "
        "public address"
    )
    [refused] = [entry for entry in logs if entry["event"] == "webhook_refused"]
    assert refused["delivery_id"] == str(delivery_id)
    assert SECRET not in repr(logs)
    assert context(guarded).metrics.webhook_deliveries.labels("failed")._value.get() == 1


@pytest.mark.parametrize(
    "address", ["169.254.169.254", "10.0.0.7", "::1", "64:ff9b::7f00:1", "::ffff:127.0.0.1"]
)
async def test_every_internal_or_translated_address_is_refused_at_delivery(
    guarded_ctx, session_factory, alert_with_delivery, address
) -> None:
    delivery_id = await alert_with_delivery("https://hooks.example.test/in")
    assert await deliver(guarded_ctx(resolving_to(address)), delivery_id) == "failed"
    row = await delivery_row(session_factory, delivery_id)
    assert row.last_error.startswith("Refused by the SSRF guard: hooks.example.test resolves to")


async def test_the_connection_goes_to_the_address_resolved_once_with_the_name_as_host(
    guarded_ctx, webhook_receiver, alert_with_delivery
) -> None:
    # With private targets allowed (dev and test), the receiver on 127.0.0.1 is reached through
    # a name only the test's resolver knows: the system resolver is never asked again.
    calls: list[str] = []
    allowed = guarded_ctx(resolving_to("127.0.0.1", calls), allow_private=True)
    url = f"http://hooks.example.test:{webhook_receiver.port}/hooks/tripline"
    delivery_id = await alert_with_delivery(url)
    assert await deliver(allowed, delivery_id) == "delivered"
    [request] = webhook_receiver.received
    assert request.headers["Host"] == f"hooks.example.test:{webhook_receiver.port}"
    assert calls == ["hooks.example.test"]


async def test_a_redirect_is_not_followed(
    ctx, session_factory, webhook_receiver, alert_with_delivery
) -> None:
    # A receiver that answers 307 towards another address (here the real receiver): following it
    # would send the signed body somewhere the SSRF guard never judged.
    class Redirecting(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(307)
            self.send_header("Location", webhook_receiver.url)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Redirecting)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        delivery_id = await alert_with_delivery(f"http://127.0.0.1:{server.server_port}/hook")
        with pytest.raises(Retry):
            await deliver(ctx, delivery_id)
    finally:
        server.shutdown()
        server.server_close()
    row = await delivery_row(session_factory, delivery_id)
    assert (row.status, row.last_status_code) == (DeliveryStatus.PENDING, 307)
    assert webhook_receiver.received == []
