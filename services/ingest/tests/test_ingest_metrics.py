"""Ingest's series move with each upload: accepted, refused by reason, rate-limited."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
from asgi_lifespan import LifespanManager
from prometheus_client.parser import text_string_to_metric_families

from tripline_devstack import free_port
from tripline_ingest.main import create_ingest_app
from tripline_ingest.settings import IngestSettings

REJECTED = "tripline_ingest_events_rejected_total"


def events(n: int) -> list[dict]:
    now = datetime.now(UTC)
    return [
        {"recorded_at": (now - timedelta(seconds=n - i)).isoformat(), "lat": 52.5, "lon": 13.4}
        for i in range(n)
    ]


async def scrape(client: httpx.AsyncClient) -> tuple[str, dict]:
    text = (await client.get("/metrics")).text
    samples = {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    return text, samples


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def test_stored_and_resent_batches_and_their_events_are_counted(
    make_settings, app_client, device_key
) -> None:
    app = create_ingest_app(make_settings(IngestSettings))
    headers = {"X-Device-Key": device_key}
    async with app_client(app) as client:
        batch = {"client_batch_id": "m-1", "events": events(3)}
        assert (await client.post("/v1/telemetry", json=batch, headers=headers)).status_code == 202
        assert (await client.post("/v1/telemetry", json=batch, headers=headers)).status_code == 202
        _, samples = await scrape(client)
    assert value(samples, "tripline_ingest_batches_total", outcome="stored") == 1
    assert value(samples, "tripline_ingest_batches_total", outcome="duplicate") == 1
    assert value(samples, "tripline_ingest_events_accepted_total") == 3  # The resend adds none.
    # Every reason is exported from the start, at 0.
    rejected = {
        dict(labels)["reason"]: v for (name, labels), v in samples.items() if name == REJECTED
    }
    assert rejected == dict.fromkeys(
        ("invalid", "too_large", "unauthorized", "rate_limited", "unavailable"), 0
    )


async def test_refused_uploads_count_their_events_by_reason(
    make_settings, app_client, device_key
) -> None:
    settings = make_settings(IngestSettings, max_batch_events=5, max_body_bytes=4096)
    app = create_ingest_app(settings)
    headers = {"X-Device-Key": device_key}
    bad = events(4)
    bad[2]["lat"] = 123.0
    async with app_client(app) as client:
        post = client.post
        # Parsed: each event of the refused batch counts.
        assert (
            await post("/v1/telemetry", json={"events": bad}, headers=headers)
        ).status_code == 422
        assert (
            await post("/v1/telemetry", json={"events": events(7)}, headers=headers)
        ).status_code == 422  # More than max_batch_events.
        # Not parsed (or not read): the upload counts as one.
        broken = await post(
            "/v1/telemetry",
            content=b"{not json",
            headers={**headers, "Content-Type": "application/json"},
        )
        assert broken.status_code == 422
        assert (await post("/v1/telemetry", json={"events": events(2)})).status_code == 401
        oversized = await post(
            "/v1/telemetry", content=b"x" * 5000, headers={**headers, "Content-Type": "text/plain"}
        )
        assert oversized.status_code == 413  # Answered by the body-size limit, before routing.
        text, samples = await scrape(client)

    assert value(samples, REJECTED, reason="invalid") == 4 + 1
    assert value(samples, REJECTED, reason="too_large") == 7 + 1
    assert value(samples, REJECTED, reason="unauthorized") == 1
    assert value(samples, "tripline_ingest_events_accepted_total") == 0
    assert device_key not in text


async def test_a_rate_limited_upload_is_counted_as_such(
    make_settings, app_client, device_key
) -> None:
    # An hour's window: the fixed window cannot roll over between the two uploads.
    app = create_ingest_app(
        make_settings(IngestSettings, device_rate_limit=1, device_rate_window_seconds=3600)
    )
    headers = {"X-Device-Key": device_key}
    async with app_client(app) as client:
        first = await client.post("/v1/telemetry", json={"events": events(2)}, headers=headers)
        second = await client.post("/v1/telemetry", json={"events": events(2)}, headers=headers)
        _, samples = await scrape(client)
    assert (first.status_code, second.status_code) == (202, 429)
    assert value(samples, REJECTED, reason="rate_limited") == 1  # Refused before its body.
    assert value(samples, "tripline_ingest_rate_limit_rejections_total", limit="device") == 1


async def test_an_upload_refused_while_the_database_is_down_is_unavailable(
    make_settings, device_key
) -> None:
    dead = f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/nowhere"
    app = create_ingest_app(make_settings(IngestSettings, database_url=dead))
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            response = await client.post(
                "/v1/telemetry", json={"events": events(2)}, headers={"X-Device-Key": device_key}
            )
            _, samples = await scrape(client)
    assert response.status_code == 503
    assert value(samples, REJECTED, reason="unavailable") == 1
