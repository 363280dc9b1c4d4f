"""Console pages and their forms: what an operator sees and what each button does."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from tripline_admin.console import paging
from tripline_common.data import job_arq_id
from tripline_common.data.models import (
    Alert,
    AlertRule,
    AuditLogEntry,
    AuthSession,
    Device,
    Job,
    JobStatus,
    Trip,
    User,
    UserRole,
)


@pytest.fixture
async def console(browser, operator, sign_in):
    """The browser, signed in as an operator; yields the session's CSRF token."""
    session = await sign_in(browser, operator)
    return session.csrf


@pytest.fixture
def device(device_with_key) -> Device:
    return device_with_key[0]


def text_of(html: str) -> str:
    """The page's text, tags removed and spaces collapsed (for readable assertions)."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


async def test_the_overview_shows_counts_queues_alerts_and_failures(
    browser, console, session_factory, device
) -> None:
    async with session_factory() as session:
        owner = await session.get(User, device.owner_id)
        start = datetime.now(UTC)
        trip = Trip(
            owner_id=owner.id,
            device_id=device.id,
            name="Run",
            origin_lat=52.5,
            origin_lon=13.4,
            destination_lat=52.4,
            destination_lon=13.1,
            planned_start=start,
            planned_arrival=start + timedelta(hours=1),
            speed_limit_kmh=80,
            corridor_m=500,
        )
        session.add(trip)
        await session.flush()
        session.add(
            Alert(
                owner_id=owner.id,
                trip_id=trip.id,
                rule=AlertRule.SPEEDING,
                message="Speed 112 km/h over the 80 km/h limit",
                dedupe_key="a-1",
            )
        )
        session.add(
            Job(
                kind="export_trips",
                status=JobStatus.FAILED,
                arq_job_id="export_trips:overview",
                error="Export too large",
            )
        )
        await session.commit()

    response = await browser.get("/console/")

    assert response.status_code == 200
    page = text_of(response.text)
    assert "Overview" in page
    assert "Speed 112 km/h over the 80 km/h limit" in page
    assert "owner@example.com" in page
    assert "Export too large" in page
    assert "healthy" in page


async def test_users_are_searched_and_paginated(browser, console, make_user) -> None:
    for n in range(30):
        await make_user(email=f"fleet-{n:02d}@example.com")

    first = await browser.get("/console/users", params={"q": "fleet-"})

    assert first.status_code == 200
    assert "30 users" in text_of(first.text)
    assert first.text.count('class="row-link"') == 25
    older = re.search(r'href="([^"]+)" rel="next"', first.text).group(1).replace("&amp;", "&")
    assert "q=fleet-" in older
    second = await browser.get(older)
    assert second.text.count('class="row-link"') == 5


async def test_a_tables_total_is_counted_up_to_a_cap_and_says_more_beyond_it(
    browser, console, make_user, monkeypatch
) -> None:
    # A page load counts at most TOTAL_CAP rows, however large the table.
    monkeypatch.setattr(paging, "TOTAL_CAP", 12)
    for n in range(13):
        await make_user(email=f"crowd-{n:02d}@example.com")

    over = await browser.get("/console/users", params={"q": "crowd-"})
    under = await browser.get("/console/users", params={"q": "crowd-1"})

    assert "more than 12 users" in text_of(over.text)
    assert over.text.count('class="row-link"') == 13
    assert "3 users" in text_of(under.text) and "more than" not in text_of(under.text)


async def test_disabling_a_user_from_their_page_flashes_and_is_audited(
    browser, console, operator, make_user, session_factory
) -> None:
    user = await make_user(email="mallory@example.com")
    page = await browser.get(f"/console/users/{user.id}")
    assert page.status_code == 200
    assert "Disable account" in page.text

    response = await browser.post(f"/console/users/{user.id}/disable", data={"csrf_token": console})

    assert response.status_code == 303
    assert response.headers["location"] == f"/console/users/{user.id}"
    after = await browser.get(response.headers["location"])
    assert "mallory@example.com is disabled; their sessions have ended." in after.text
    assert "Enable account" in after.text
    again = await browser.get(response.headers["location"])
    assert "is disabled; their sessions" not in again.text  # A flash is shown once.
    async with session_factory() as session:
        assert (await session.get(User, user.id)).is_active is False
        [entry] = await session.scalars(select(AuditLogEntry))
    assert (entry.action, entry.actor_id, entry.source_ip) == (
        "user.disable",
        operator.id,
        "127.0.0.1",
    )
    audit = await browser.get("/console/audit", params={"action": "user.disable"})
    assert "mallory@example.com" in audit.text and operator.email in audit.text


async def test_a_refused_action_shows_an_error_page_and_changes_nothing(
    browser, console, make_user, session_factory
) -> None:
    other_admin = await make_user(UserRole.ADMIN)
    response = await browser.post(
        f"/console/users/{other_admin.id}/disable", data={"csrf_token": console}
    )
    assert response.status_code == 403
    assert "Only an admin can manage operator and admin accounts." in response.text
    assert f'href="/console/users/{other_admin.id}"' in response.text
    async with session_factory() as session:
        assert (await session.get(User, other_admin.id)).is_active is True


async def test_only_admins_see_and_use_the_role_form(
    browser, admin, sign_in, operator, make_user, session_factory
) -> None:
    user = await make_user()
    await sign_in(browser, operator)
    as_operator = await browser.get(f"/console/users/{user.id}")
    assert "Change role" not in as_operator.text
    refused = await browser.post(
        f"/console/users/{user.id}/role",
        data={"csrf_token": (await sign_in(browser, operator)).csrf, "role": "admin"},
    )
    assert refused.status_code == 403

    token = (await sign_in(browser, admin)).csrf
    assert "Change role" in (await browser.get(f"/console/users/{user.id}")).text
    promoted = await browser.post(
        f"/console/users/{user.id}/role", data={"csrf_token": token, "role": "operator"}
    )
    assert promoted.status_code == 303
    async with session_factory() as session:
        assert (await session.get(User, user.id)).role == UserRole.OPERATOR


async def test_sessions_are_listed_and_revoked_from_the_users_page(
    browser, console, make_user, auth_headers, session_factory
) -> None:
    user = await make_user()
    await auth_headers(user)
    await auth_headers(user)
    async with session_factory() as session:
        [first, _] = await session.scalars(
            select(AuthSession).where(AuthSession.user_id == user.id)
        )

    page = await browser.get(f"/console/users/{user.id}")
    assert text_of(page.text).count(" live ") >= 2
    one = await browser.post(
        f"/console/users/{user.id}/sessions/{first.id}/revoke", data={"csrf_token": console}
    )
    assert one.status_code == 303
    rest = await browser.post(
        f"/console/users/{user.id}/sessions/revoke-all", data={"csrf_token": console}
    )
    assert "1 session ended." in (await browser.get(rest.headers["location"])).text


async def test_a_device_key_is_issued_and_rotated_on_a_page_shown_once(
    browser, console, device, session_factory
) -> None:
    issued = await browser.post(
        "/console/devices",
        data={"csrf_token": console, "owner_email": "OWNER@example.com", "name": "Red bike"},
    )
    assert issued.status_code == 201
    assert issued.headers["cache-control"] == "no-store"
    key = re.search(r'id="api-key" class="key">([^<]+)<', issued.text).group(1)
    assert key.startswith("tl_") and "shown only once" in issued.text

    rotated = await browser.post(
        f"/console/devices/{device.id}/rotate", data={"csrf_token": console}
    )
    new_key = re.search(r'id="api-key" class="key">([^<]+)<', rotated.text).group(1)
    assert "previous key keeps working until" in rotated.text  # The default grace: 24 h.
    async with session_factory() as session:
        stored = await session.get(Device, device.id)
    assert stored.api_key_prefix == new_key[:11]
    listing = await browser.get("/console/devices")
    assert key not in listing.text and new_key not in listing.text
    assert "Red bike" in listing.text


async def test_issuing_for_an_unknown_email_flashes_an_error(browser, console) -> None:
    response = await browser.post(
        "/console/devices",
        data={"csrf_token": console, "owner_email": "nobody@example.com", "name": "x"},
    )
    assert response.status_code == 303
    page = await browser.get("/console/devices")
    assert "No user has the email" in page.text


@pytest.mark.parametrize("name", ["Red\x07bike", "Red\nbike", "Red\x00bike"])
async def test_a_device_name_with_a_control_character_is_refused(
    browser, console, device, session_factory, name: str
) -> None:
    response = await browser.post(
        "/console/devices",
        data={"csrf_token": console, "owner_email": "owner@example.com", "name": name},
    )

    assert response.status_code == 303
    page = await browser.get("/console/devices")
    assert "The device name must not contain control characters." in page.text
    async with session_factory() as session:
        names = (await session.scalars(select(Device.name))).all()
    assert names == [device.name]


async def test_a_device_is_revoked_from_the_devices_page(
    browser, console, device, session_factory
) -> None:
    response = await browser.post(
        f"/console/devices/{device.id}/revoke", data={"csrf_token": console}
    )
    assert response.status_code == 303
    page = await browser.get("/console/devices?state=revoked")
    assert "is revoked" in page.text and "Blue van" in page.text
    async with session_factory() as session:
        assert (await session.get(Device, device.id)).revoked_at is not None


async def test_the_jobs_page_retries_failures_and_cancels_queued_jobs(
    browser, console, admin_app, session_factory
) -> None:
    async with session_factory() as session:
        failed = Job(
            kind="export_trips",
            status=JobStatus.FAILED,
            arq_job_id="tmp",
            error="Disk full",
            request_id="req-export",
        )
        queued = Job(kind="import_trips", status=JobStatus.QUEUED, arq_job_id="tmp2")
        session.add_all([failed, queued])
        await session.flush()
        for job in (failed, queued):
            await session.execute(
                update(Job).where(Job.id == job.id).values(arq_job_id=job_arq_id(job.kind, job.id))
            )
        await session.commit()

    page = await browser.get("/console/jobs")
    assert "Disk full" in page.text and "req-export"[:12] in page.text

    retried = await browser.post(
        f"/console/failures/job/{failed.id}/retry", data={"csrf_token": console}
    )
    assert "Queued again" in (await browser.get(retried.headers["location"])).text
    cancelled = await browser.post(
        f"/console/jobs/{queued.id}/cancel", data={"csrf_token": console}
    )
    assert cancelled.status_code == 303
    async with session_factory() as session:
        assert (await session.get(Job, failed.id)).status == JobStatus.QUEUED
        assert (await session.get(Job, queued.id)).status == JobStatus.CANCELLED


async def test_the_audit_log_page_filters_by_day(browser, console, operator, make_user) -> None:
    user = await make_user()
    await browser.post(f"/console/users/{user.id}/disable", data={"csrf_token": console})
    today = datetime.now(UTC).date()

    hit = await browser.get(
        "/console/audit", params={"since": today.isoformat(), "until": today.isoformat()}
    )
    miss = await browser.get(
        "/console/audit", params={"until": (today - timedelta(days=1)).isoformat()}
    )

    assert "user.disable" in hit.text
    assert "No entry matches." in miss.text


async def test_unknown_pages_and_bad_ids_are_html_404s(browser, console) -> None:
    for path in (
        "/console/nope",
        "/console/users/not-a-uuid",
        "/console/users/00000000-0000-0000-0000-000000000000",
    ):
        response = await browser.get(path)
        assert response.status_code == 404, path
        assert response.headers["content-type"].startswith("text/html")


async def test_an_unexpected_error_on_a_page_is_an_html_500_naming_the_request_id(
    browser, console, monkeypatch
) -> None:
    from tripline_admin.overview import service as overview_service

    async def broken(**_: object) -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(overview_service, "overview", broken)

    response = await browser.get("/console/", headers={"X-Request-ID": "console-500"})

    assert response.status_code == 500
    assert response.headers["content-type"].startswith("text/html")
    assert "console-500" in text_of(response.text)
    assert "secret internals" not in response.text and "Traceback" not in response.text
    assert response.headers["content-security-policy"].startswith("default-src 'none'")


async def test_an_idle_console_session_ends(browser, console, operator, session_factory) -> None:
    async with session_factory() as session:
        await session.execute(
            update(AuthSession)
            .where(AuthSession.user_id == operator.id)
            .values(last_seen_at=datetime.now(UTC) - timedelta(hours=2))
        )
        await session.commit()

    response = await browser.get("/console/")

    assert response.status_code == 303
    assert response.headers["location"] == "/console/login?next=%2Fconsole%2F&expired=1"
    async with session_factory() as session:
        [ended] = await session.scalars(
            select(AuthSession).where(AuthSession.user_id == operator.id)
        )
    assert ended.revoked_reason == "idle_timeout"
