"""Property-based intake: whatever times and numbers a device sends, the answer is a 202 that
stored exactly what was sent, or a 4xx in the shared error shape that stored nothing."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from tripline_common.data.models import TelemetryBatch, TelemetryEvent
from tripline_ingest.main import create_ingest_app
from tripline_ingest.settings import IngestSettings

SKEW = timedelta(seconds=300)  # IngestSettings.max_future_skew_seconds, the default
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)

offsets = st.integers(min_value=-(24 * 60 - 1), max_value=24 * 60 - 1).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
any_instant = st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31))
# Times near the edges that matter: the floor, and now plus the allowed skew.
near_edges = st.sampled_from([EARLIEST, "now"]).flatmap(
    lambda edge: st.integers(min_value=-86_400 * 2, max_value=86_400 * 2).map(
        lambda seconds: (
            (datetime.now(UTC) + SKEW if edge == "now" else edge) + timedelta(seconds=seconds)
        ).replace(tzinfo=None)
    )
)


def iso(value: datetime, zone: timezone | None, z: bool) -> str:
    if zone is None:
        return value.isoformat()  # naive: no offset at all
    text = value.replace(tzinfo=zone).isoformat()
    return text[:-6] + "Z" if z and zone.utcoffset(None) == timedelta(0) else text


def raw(value: object) -> str:
    """A JSON token; Python's json writes NaN and Infinity, which a hostile client can send."""
    return json.dumps(value)


iso_times = st.builds(iso, any_instant | near_edges, st.none() | offsets, st.booleans()).map(raw)
odd_time_texts = st.sampled_from(
    [
        "0001-01-01T00:00:00+01:00",
        "0001-01-01T00:30:00+23:59",
        "9999-12-31T23:59:59-23:59",
        "9999-12-31T23:59:59Z",
        "10000-01-01T00:00:00Z",
        "0000-01-01T00:00:00Z",
        "-0001-01-01T00:00:00Z",
        "2026-02-30T00:00:00Z",
        "2026-01-01T24:00:00Z",
        "2026-01-01T00:00:00+24:00",
        "2026-01-01T00:00:00.123456789Z",
        "2026-01-01",
        "now",
        "",
    ]
).map(raw)
time_tokens = st.one_of(
    iso_times,
    odd_time_texts,
    st.text(max_size=40).map(raw),
    st.integers().map(raw),
    st.floats().map(raw),
    st.sampled_from(["NaN", "Infinity", "-Infinity", "1e400", "true", "null", "[]", "{}"]),
)
number_tokens = st.one_of(
    st.floats().map(raw),  # every float, NaN and both infinities included
    st.floats(min_value=-400, max_value=1600).map(raw),
    st.integers().map(raw),
    st.integers(min_value=10**20, max_value=10**400).map(raw),
    st.sampled_from(["1e400", "-1e400", "1e-400", "-0.0", "true", '"1"', "null"]),
)
FIELDS = ("lat", "lon", "speed_kmh", "heading_deg", "accuracy_m")


@pytest.fixture
async def ingest_client(make_settings, app_client):
    """One app for every example of a property (a lifespan per example would dominate)."""
    # A window that never refuses: the limiter is not what these properties are about.
    app = create_ingest_app(make_settings(IngestSettings, device_rate_limit=1_000_000))
    async with app_client(app) as client:
        yield client


def as_time(token: str) -> datetime | None:
    """The instant a JSON token names, as Python reads ISO 8601 (None when it does not)."""
    value = json.loads(token)
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


@settings(
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    time=time_tokens,
    numbers=st.fixed_dictionaries({field: number_tokens for field in FIELDS}),
    present=st.sets(st.sampled_from(FIELDS[2:])),
)
async def test_any_time_or_number_is_stored_exactly_or_refused_with_a_4xx(
    ingest_client, device_key, session_factory, time, numbers, present
) -> None:
    fields = {"lat": numbers["lat"], "lon": numbers["lon"]}
    fields |= {field: numbers[field] for field in present}
    event = ", ".join(f'"{k}": {v}' for k, v in {"recorded_at": time, **fields}.items())
    body = b'{"events": [{' + event.encode() + b"}]}"
    async with session_factory() as session:
        before = await session.scalar(select(func.count()).select_from(TelemetryBatch))
    response = await ingest_client.post(
        "/v1/telemetry",
        content=body,
        headers={"X-Device-Key": device_key, "Content-Type": "application/json"},
    )
    assert response.status_code < 500, response.text
    async with session_factory() as session:
        after = await session.scalar(select(func.count()).select_from(TelemetryBatch))
        if response.status_code != 202:
            assert response.status_code == 422, response.text
            assert set(response.json()) == {"code", "message", "details", "request_id"}
            assert after == before
            return
        stored = await session.scalar(
            select(TelemetryEvent).where(TelemetryEvent.batch_id == response.json()["batch_id"])
        )
    assert after == before + 1
    sent = as_time(time)
    assert sent is not None and stored is not None
    assert stored.recorded_at == sent
    assert EARLIEST <= stored.recorded_at <= datetime.now(UTC) + SKEW
    for field, token in fields.items():
        value = json.loads(token)
        assert not isinstance(value, bool) and isinstance(value, int | float)
        assert math.isfinite(getattr(stored, field))
        assert getattr(stored, field) == float(value)
