"""Worker test fixtures: a job context like the worker's, and factories for the pipeline's rows.

Jobs run as the worker runs them (wrapped, instrumented) against the test's rolled-back
transaction; their Redis side (enqueued jobs, pub/sub) is the test's own Redis database.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry
from worker_factories import DESTINATION, ORIGIN, WANNSEE, Owner

from tripline_common.data.models import (
    Device,
    TelemetryBatch,
    TelemetryEvent,
    Trip,
    TripStatus,
    User,
    Waypoint,
    WebhookEndpoint,
)
from tripline_common.messaging import JobQueue, create_redis
from tripline_worker.context import ArqContext, WorkerContext
from tripline_worker.metrics import JobMetrics
from tripline_worker.settings import WorkerServiceSettings
from tripline_worker.webhooks.delivery import webhook_client


@pytest.fixture
def worker_settings(make_settings: Callable[..., Any]) -> Callable[..., WorkerServiceSettings]:
    def make(**overrides: Any) -> WorkerServiceSettings:
        values = {
            "batch_requeue_after_seconds": 60,
            "webhook_backoff_base_seconds": 0.5,
            "webhook_timeout": 2.0,
            "webhook_connect_timeout": 1.0,
            **overrides,
        }
        return make_settings(WorkerServiceSettings, **values)

    return make


@pytest.fixture
def metrics_registry() -> CollectorRegistry:
    """The registry the jobs' metrics are recorded in."""
    return CollectorRegistry()


@pytest.fixture
async def ctx(worker_settings, session_factory, metrics_registry) -> AsyncIterator[ArqContext]:
    """What ARQ passes a job in the worker, built from the test's settings and database."""
    settings = worker_settings()
    redis = create_redis(settings)
    http = webhook_client(settings, timeout=httpx.Timeout(2.0, connect=1.0), max_connections=10)
    async with http:
        worker = WorkerContext(
            settings=settings,
            session_factory=session_factory,
            job_queue=JobQueue(redis, settings.arq_queue_name),
            redis=redis,
            metrics=JobMetrics(metrics_registry),
            webhook_client=http,
        )
        yield {**worker.arq_context(), "job_id": "test-job", "job_try": 1}
    await redis.aclose()


@pytest.fixture
def make_owner(session_factory) -> Callable[..., Any]:
    async def make() -> Owner:
        async with session_factory() as session:
            user = User(
                email=f"{uuid.uuid4().hex}@example.com", display_name="Owner", password_hash="x"
            )
            session.add(user)
            await session.flush()
            device = Device(
                owner_id=user.id,
                name="van",
                api_key_prefix="tl_x",
                api_key_hash=uuid.uuid4().hex,
            )
            session.add(device)
            await session.commit()
            return Owner(user.id, device.id)

    return make


@pytest.fixture
def make_trip(session_factory) -> Callable[..., Any]:
    async def make(
        owner: Owner,
        *,
        status: TripStatus = TripStatus.ACTIVE,
        started_at: datetime | None = None,
        planned_arrival: datetime | None = None,
        speed_limit_kmh: float | None = 80,
        corridor_m: float | None = 500,
        **progress: Any,
    ) -> uuid.UUID:
        now = datetime.now(UTC)
        started = started_at or now - timedelta(minutes=30)
        async with session_factory() as session:
            trip = Trip(
                owner_id=owner.user_id,
                device_id=owner.device_id,
                name="Berlin to Potsdam",
                status=status,
                origin_lat=ORIGIN[0],
                origin_lon=ORIGIN[1],
                destination_lat=DESTINATION[0],
                destination_lon=DESTINATION[1],
                planned_start=started,
                planned_arrival=planned_arrival or now + timedelta(hours=2),
                speed_limit_kmh=speed_limit_kmh,
                corridor_m=corridor_m,
                started_at=started if status is TripStatus.ACTIVE else None,
                **progress,
            )
            session.add(trip)
            await session.flush()
            session.add(Waypoint(trip_id=trip.id, seq=0, lat=WANNSEE[0], lon=WANNSEE[1]))
            await session.commit()
            return trip.id

    return make


@pytest.fixture
def make_batch(session_factory) -> Callable[..., Any]:
    async def make(
        owner: Owner,
        fixes: list[dict[str, Any]],
        *,
        request_id: str = "rid-test",
        received_at: datetime | None = None,
        **columns: Any,
    ) -> uuid.UUID:
        async with session_factory() as session:
            batch = TelemetryBatch(
                device_id=owner.device_id,
                event_count=len(fixes),
                request_id=request_id,
                received_at=received_at or datetime.now(UTC),
                **columns,
            )
            session.add(batch)
            await session.flush()
            session.add_all(
                TelemetryEvent(
                    batch_id=batch.id,
                    device_id=owner.device_id,
                    received_at=batch.received_at,
                    **fix,
                )
                for fix in fixes
            )
            await session.commit()
            return batch.id

    return make


@pytest.fixture
def make_endpoint(session_factory) -> Callable[..., Any]:
    async def make(
        owner: Owner, url: str, *, secret: str = "whsec_test-secret", active: bool = True
    ) -> uuid.UUID:
        async with session_factory() as session:
            endpoint = WebhookEndpoint(
                owner_id=owner.user_id, url=url, secret=secret, is_active=active
            )
            session.add(endpoint)
            await session.commit()
            return endpoint.id

    return make
