"""Unknown device keys: what they cost the database, and the limit on a client that sends them."""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import httpx
from sqlalchemy import event, func, select

from tripline_common.data.models import Device, TelemetryBatch, User
from tripline_common.security import issue_api_key
from tripline_ingest.main import create_ingest_app
from tripline_ingest.settings import IngestSettings

ATTACKER = ("203.0.113.7", 40000)
FLEET = ("198.51.100.9", 40000)


@contextmanager
def device_lookups(db_connection) -> Iterator[list[str]]:
    """Every key lookup (`SELECT ... FROM devices`) the app sends over the test's connection."""
    seen: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "FROM devices" in statement:
            seen.append(statement)

    engine = db_connection.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def client_from(app, address: tuple[str, int]) -> httpx.AsyncClient:
    """A client whose requests come from `address` (what uvicorn would put in the scope)."""
    transport = httpx.ASGITransport(app=app, client=address)
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


def upload(client: httpx.AsyncClient, key: str):
    fix = {"recorded_at": datetime.now(UTC).isoformat(), "lat": 52.5, "lon": 13.4}
    return client.post("/v1/telemetry", json={"events": [fix]}, headers={"X-Device-Key": key})


def random_key() -> str:
    return "tl_" + secrets.token_urlsafe(32)


async def test_random_unknown_keys_cost_at_most_the_limit_in_lookups_then_a_429(
    make_settings, app_client, db_connection, device_key, session_factory
) -> None:
    app = create_ingest_app(
        make_settings(
            IngestSettings, failed_key_lookup_limit=5, failed_key_lookup_window_seconds=3600
        )
    )
    async with app_client(app), client_from(app, ATTACKER) as attacker:
        with device_lookups(db_connection) as lookups:
            answers = [await upload(attacker, random_key()) for _ in range(12)]
        async with client_from(app, FLEET) as fleet:
            other_client = await upload(fleet, device_key)
        metrics = (await attacker.get("/metrics")).text
    assert [a.status_code for a in answers] == [401] * 5 + [429] * 7
    assert len(lookups) == 5
    refused = answers[-1]
    assert refused.json()["code"] == "rate_limited"
    assert set(refused.json()) == {"code", "message", "details", "request_id"}
    assert 1 <= int(refused.headers["retry-after"]) <= 3601
    assert 'tripline_ingest_rate_limit_rejections_total{limit="failed_key_lookups"} 7.0' in metrics
    # A device of another client is not affected, and nothing of the refused uploads is stored.
    assert other_client.status_code == 202, other_client.text
    async with session_factory() as session:
        assert await session.scalar(select(func.count()).select_from(TelemetryBatch)) == 1


async def test_a_repeated_unknown_key_is_looked_up_once_per_negative_ttl(
    make_settings, app_client, db_connection
) -> None:
    app = create_ingest_app(make_settings(IngestSettings, device_key_negative_ttl_seconds=60))
    key = random_key()
    async with app_client(app) as client:
        with device_lookups(db_connection) as lookups:
            answers = [await upload(client, key) for _ in range(10)]
    assert {a.status_code for a in answers} == {401}
    assert {a.json()["code"] for a in answers} == {"invalid_device_key"}
    assert len(lookups) == 1


async def test_a_key_tried_before_it_existed_works_once_the_negative_ttl_ends(
    make_settings, app_client, session_factory
) -> None:
    app = create_ingest_app(make_settings(IngestSettings, device_key_negative_ttl_seconds=0.5))
    key = issue_api_key()
    async with app_client(app) as client:
        early = await upload(client, key.key)
        async with session_factory() as session:
            owner = User(
                email=f"{uuid.uuid4().hex}@example.com", display_name="O", password_hash="x"
            )
            session.add(owner)
            await session.flush()
            session.add(
                Device(
                    owner_id=owner.id,
                    name="new",
                    api_key_prefix=key.prefix,
                    api_key_hash=key.key_hash,
                )
            )
            await session.commit()
        issued_at = time.monotonic()
        while (later := await upload(client, key.key)).status_code == 401:
            assert time.monotonic() - issued_at < 5, "the new key never started working"
            await asyncio.sleep(0.05)
    assert early.status_code == 401
    assert later.status_code == 202, later.text
