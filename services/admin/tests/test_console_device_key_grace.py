"""The console's *Rotate key* offers the API's grace period: the replaced key keeps working at
the real ingest app until the chosen expiry, then is refused; "stops now" refuses it at once.

The grace period is ended through the database (its expiry set in the past), not by waiting.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, text

from tripline_common.data.models import AuditLogEntry, Device
from tripline_ingest.main import create_ingest_app
from tripline_ingest.settings import IngestSettings


@pytest.fixture
async def upload(make_settings, app_client):
    """`await upload(key)` -> the status the real ingest app (key cache off) answers."""
    app = create_ingest_app(make_settings(IngestSettings, device_key_cache_ttl_seconds=0))
    async with app_client(app) as ingest:

        async def send(key: str) -> int:
            event = {"recorded_at": datetime.now(UTC).isoformat(), "lat": 52.5, "lon": 13.4}
            response = await ingest.post(
                "/v1/telemetry", json={"events": [event]}, headers={"X-Device-Key": key}
            )
            return response.status_code

        yield send


@pytest.fixture
def device(device_with_key) -> tuple[Device, str]:
    """A device and its current key."""
    return device_with_key


@pytest.fixture
async def console(browser, operator, sign_in):
    """The browser, signed in as an operator; returns the session's CSRF token."""
    return (await sign_in(browser, operator)).csrf


async def end_grace(session_factory, device_id: uuid.UUID) -> None:
    async with session_factory() as session:
        await session.execute(
            text(
                "UPDATE devices SET previous_key_expires_at = now() - interval '1 second' "
                "WHERE id = :id"
            ),
            {"id": device_id},
        )
        await session.commit()


def shown_key(html: str) -> str:
    match = re.search(r'id="api-key" class="key">([^<]+)<', html)
    assert match, html
    return match.group(1)


async def test_the_old_key_works_during_the_console_grace_period_and_not_after(
    browser, console, device, upload, session_factory
) -> None:
    row, old_key = device
    page = await browser.get("/console/devices")
    assert 'name="grace_seconds"' in page.text and "old key works 24 h" in page.text

    # The form as the page sends it: the first choice, the API's default of 24 hours.
    rotated = await browser.post(
        f"/console/devices/{row.id}/rotate", data={"csrf_token": console, "grace_seconds": "86400"}
    )

    assert rotated.status_code == 200, rotated.text
    assert rotated.headers["cache-control"] == "no-store"  # The page shows a key.
    new_key = shown_key(rotated.text)
    assert "The previous key keeps working until" in rotated.text
    async with session_factory() as session:
        stored = await session.get(Device, row.id)
        [entry] = await session.scalars(
            select(AuditLogEntry).where(AuditLogEntry.action == "device.key_rotate")
        )
    expires = stored.previous_key_expires_at
    assert abs(expires - (datetime.now(UTC) + timedelta(hours=24))) < timedelta(minutes=1)
    assert entry.details["grace_seconds"] == 86_400
    assert await upload(old_key) == 202
    assert await upload(new_key) == 202

    await end_grace(session_factory, row.id)

    assert await upload(old_key) == 401
    assert await upload(new_key) == 202


async def test_a_console_rotation_without_a_choice_keeps_the_default_grace(
    browser, console, device, upload
) -> None:
    row, old_key = device
    rotated = await browser.post(f"/console/devices/{row.id}/rotate", data={"csrf_token": console})
    assert rotated.status_code == 200
    assert await upload(old_key) == 202
    assert await upload(shown_key(rotated.text)) == 202


async def test_stop_now_refuses_the_old_key_at_once(browser, console, device, upload) -> None:
    row, old_key = device
    rotated = await browser.post(
        f"/console/devices/{row.id}/rotate", data={"csrf_token": console, "grace_seconds": "0"}
    )
    assert rotated.status_code == 200
    assert "The previous key no longer works." in rotated.text
    assert await upload(old_key) == 401
    assert await upload(shown_key(rotated.text)) == 202


@pytest.mark.parametrize("grace", ["-1", "604801", "a day"])
async def test_a_grace_outside_0_to_7_days_rotates_nothing(
    browser, console, device, upload, session_factory, grace: str
) -> None:
    row, old_key = device
    refused = await browser.post(
        f"/console/devices/{row.id}/rotate", data={"csrf_token": console, "grace_seconds": grace}
    )
    assert refused.status_code == 303
    page = await browser.get(refused.headers["location"])
    assert "Choose how long the old key keeps working" in page.text
    async with session_factory() as session:
        assert (await session.get(Device, row.id)).api_key_prefix == row.api_key_prefix
    assert await upload(old_key) == 202
