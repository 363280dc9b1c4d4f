"""The admin console in a real browser: Debian's Chromium, driven by Playwright, against the
real `tripline-admin` process on a migrated scratch database with demo data.

An operator signs in, finds a user, disables them, sees the audit entry, rotates and revokes a
device key, retries a failure and signs out; along the way the page never runs a script it
should not (the user named `<script>alert(1)</script>` is shown as text), the CSP reports no
violation, and every page is saved as a screenshot under `test-artifacts/browser/` (desktop,
and a phone-width set).

Then the pictures, on telemetry sent through the real ingest and processed by the real worker:
the overview's charts (and their live refresh by console.js) and a trip's map with its route,
corridor, positions and alerts, all drawn with non-empty boxes, with no CSP violation reported.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests.conftest import ROOT, ProcessRunner
from tests.test_pipeline import FAST_WORKER, fixes, seed, start_demo_trip, window_aligned
from tests.test_pipeline import wait_for as wait_until
from tripline_common.data import (
    asyncpg_dsn,
    create_engine,
    create_session_factory,
    job_arq_id,
    unit_of_work,
)
from tripline_common.data.models import (
    Alert,
    AlertRule,
    AlertSeverity,
    BatchStatus,
    Device,
    Job,
    JobStatus,
    TelemetryBatch,
    Trip,
    TripStatus,
    User,
)
from tripline_common.platform import CommonSettings
from tripline_common.security import hash_password, issue_api_key

playwright = pytest.importorskip("playwright.async_api")

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
HAVE_CHROMIUM = Path(CHROMIUM).exists()
ARTIFACTS = ROOT / "test-artifacts" / "browser"
XSS_NAME = "<script>alert(1)</script>"
PASSWORD = "tripline-demo-password"
DRIVERS = [
    ("Amara Okafor", "amara.okafor@fleetco.example"),
    ("Bruno Costa", "bruno.costa@fleetco.example"),
    ("Chen Wei", "chen.wei@fleetco.example"),
    ("Dana Fischer", "dana.fischer@fleetco.example"),
    ("Zoë Müller", "zoe.mueller@fleetco.example"),
    ("Farah Haddad", "farah.haddad@fleetco.example"),
    ("Gustav Lind", "gustav.lind@fleetco.example"),
    ("Hana Novak", "hana.novak@fleetco.example"),
]


async def _seed_console_data(database_url: str) -> None:
    """Users (one named like a script), devices, a trip with open alerts, failed work."""
    settings = CommonSettings(_env_file=None, database_url=database_url, service_name="seed")
    engine = create_engine(settings)
    try:
        async with unit_of_work(create_session_factory(engine)) as session:
            password_hash = await hash_password(PASSWORD)
            users = []
            for n, (name, email) in enumerate([*DRIVERS, (XSS_NAME, "mallory@fleetco.example")]):
                user = User(
                    email=email,
                    display_name=name,
                    password_hash=password_hash,
                    email_verified_at=datetime.now(UTC),
                    is_active=n != 6,
                    created_at=datetime.now(UTC) - timedelta(days=30 - n),
                )
                session.add(user)
                users.append(user)
            await session.flush()
            devices = []
            for n, user in enumerate(users[:6]):
                key = issue_api_key()
                device = Device(
                    owner_id=user.id,
                    name=["Van 12", "Truck 7", "Courier bike 3", "Van 15", "Phone", "Van 21"][n],
                    api_key_prefix=key.prefix,
                    api_key_hash=key.key_hash,
                    last_seen_at=datetime.now(UTC) - timedelta(minutes=3 * n + 1),
                )
                session.add(device)
                devices.append(device)
            await session.flush()
            start = datetime.now(UTC) - timedelta(minutes=40)
            trip = Trip(
                owner_id=users[0].id,
                device_id=devices[0].id,
                name="Hamburg → Bremen",
                status=TripStatus.ACTIVE,
                origin_lat=53.55,
                origin_lon=9.99,
                destination_lat=53.08,
                destination_lon=8.80,
                planned_start=start,
                planned_arrival=start + timedelta(hours=2),
                speed_limit_kmh=80,
                corridor_m=500,
            )
            session.add(trip)
            await session.flush()
            for n, (rule, severity, message) in enumerate(
                [
                    (AlertRule.SPEEDING, AlertSeverity.WARNING, "112 km/h in an 80 km/h limit"),
                    (AlertRule.CORRIDOR, AlertSeverity.CRITICAL, "1.4 km outside the corridor"),
                    (AlertRule.LATE, AlertSeverity.INFO, "Arrival expected 18 min late"),
                ]
            ):
                session.add(
                    Alert(
                        owner_id=users[0].id,
                        trip_id=trip.id,
                        device_id=devices[0].id,
                        rule=rule,
                        severity=severity,
                        message=message,
                        dedupe_key=f"browser-{n}",
                        request_id=uuid.uuid4().hex,
                        raised_at=datetime.now(UTC) - timedelta(minutes=5 * n + 2),
                    )
                )
            for status, error in (
                (JobStatus.FAILED, "ExportTooLarge: 120000 trips exceed the export limit"),
                (JobStatus.QUEUED, None),
                (JobStatus.SUCCEEDED, None),
            ):
                job_id = uuid.uuid4()
                session.add(
                    Job(
                        id=job_id,
                        owner_id=users[1].id,
                        kind="export_trips",
                        status=status,
                        arq_job_id=job_arq_id("export_trips", job_id),
                        error=error,
                        progress=100 if status == JobStatus.SUCCEEDED else 0,
                        request_id=uuid.uuid4().hex,
                        finished_at=datetime.now(UTC) if error else None,
                    )
                )
            session.add(
                TelemetryBatch(
                    device_id=devices[2].id,
                    status=BatchStatus.FAILED,
                    event_count=40,
                    attempts=5,
                    error="ValueError: event 17 is older than the trip",
                    request_id=uuid.uuid4().hex,
                    processed_at=datetime.now(UTC) - timedelta(minutes=9),
                )
            )
    finally:
        await engine.dispose()


class Browser:
    """One Chromium page, recording what must never happen (dialogs it did not expect, CSP
    violations, failed requests) and saving screenshots."""

    def __init__(self, page, base_url: str) -> None:
        self.page = page
        self.base_url = base_url
        self.problems: list[str] = []
        self.confirms: list[str] = []
        page.on("dialog", self._dialog)
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))

    async def _dialog(self, dialog) -> None:
        if dialog.type == "confirm":
            self.confirms.append(dialog.message)
            await dialog.accept()
        else:
            self.problems.append(f"unexpected {dialog.type} dialog: {dialog.message!r}")
            await dialog.dismiss()

    def _console(self, message) -> None:
        if message.type == "error":
            self.problems.append(f"console error: {message.text}")

    async def go(self, path: str) -> None:
        response = await self.page.goto(self.base_url + path)
        assert response is not None and response.ok, (path, response and response.status)

    async def nav(self, section: str) -> None:
        """Follow a link of the top navigation."""
        sections = self.page.get_by_role("navigation", name="Sections")
        await sections.get_by_role("link", name=section, exact=True).click()

    async def shot(self, name: str) -> None:
        await self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


@pytest.fixture
async def admin_process(processes: ProcessRunner) -> str:
    """The real admin app on a migrated scratch database with demo data; its URL."""
    env = processes.env
    seed = [sys.executable, str(ROOT / "scripts" / "seed.py")]
    await asyncio.to_thread(subprocess.run, seed, env=env, check=True, capture_output=True)
    await _seed_console_data(env["DATABASE_URL"])
    # Production's cookie flags: Chromium keeps Secure cookies for http://127.0.0.1.
    admin = processes.start("admin", "tripline-admin", CONSOLE_COOKIE_SECURE="true")
    await asyncio.to_thread(processes.wait_ready, admin)
    return admin.url


@pytest.fixture(scope="module")
async def chromium():
    if not HAVE_CHROMIUM:
        pytest.skip(f"no Chromium at {CHROMIUM} (.ci/run installs Debian's chromium package)")
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    async with playwright.async_playwright() as driver:
        browser = await driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


@pytest.mark.slow
async def test_an_operator_works_through_the_console_in_chromium(admin_process, chromium) -> None:
    context = await chromium.new_context(viewport={"width": 1280, "height": 860})
    b = Browser(await context.new_page(), admin_process)
    expect = playwright.expect

    # Signing in: any page leads to the form, and back to that page afterwards.
    await b.go("/console/users")
    await expect(b.page).to_have_url(re.compile(r"/console/login\?next="))
    await b.shot("01-login")
    await b.page.get_by_label("Email").fill("operator@tripline.dev")
    await b.page.get_by_label("Password").fill(PASSWORD)
    await b.page.get_by_role("button", name="Sign in").click()
    await expect(b.page).to_have_url(re.compile(r"/console/users$"))
    cookies = {c["name"]: c for c in await context.cookies()}
    session_cookie = cookies["__Host-tripline_console_session"]
    assert session_cookie["httpOnly"] and session_cookie["secure"]
    assert session_cookie["sameSite"] == "Strict"
    assert await b.page.evaluate("document.cookie") == ""  # Scripts cannot read it.

    await b.go("/console/")
    await expect(b.page.get_by_role("heading", name="Overview")).to_be_visible()
    await expect(b.page.get_by_text("1.4 km outside the corridor")).to_be_visible()
    await b.shot("02-overview")

    # Finding a user: the one named like a script is shown as text, and nothing runs.
    await b.go("/console/users")
    await b.shot("03-users")
    await b.page.get_by_placeholder("Email, name or ID").fill("mallory")
    await b.page.get_by_role("button", name="Search").click()
    await expect(b.page.get_by_role("link", name=XSS_NAME)).to_be_visible()
    await b.shot("04-users-search")
    await b.page.get_by_role("link", name=XSS_NAME).click()
    await expect(b.page.get_by_role("heading", name=XSS_NAME)).to_be_visible()
    await b.shot("05-user")

    # Disabling them: a confirmation, a flash message, the account marked disabled.
    await b.page.get_by_role("button", name="Disable account").click()
    await expect(b.page.get_by_role("status")).to_contain_text(
        "mallory@fleetco.example is disabled"
    )
    await expect(b.page.get_by_role("button", name="Enable account")).to_be_visible()
    assert b.confirms == ["Disable mallory@fleetco.example? Their sessions end at once."]
    await b.shot("06-user-disabled")

    # The audit entry: who, what, which user.
    await b.nav("Audit log")
    first_row = b.page.locator("table.audit tbody tr").first
    await expect(first_row).to_contain_text("operator@tripline.dev")
    await expect(first_row).to_contain_text("user.disable")
    await expect(first_row).to_contain_text("mallory@fleetco.example")
    await b.shot("07-audit")

    # Devices: rotate one key (shown once), then revoke a device's key.
    await b.nav("Devices")
    await b.shot("08-devices")
    row = b.page.locator("tr", has_text="Courier bike 3")
    await row.get_by_role("button", name="Rotate key").click()
    await expect(b.page.get_by_role("heading", name="Key rotated")).to_be_visible()
    new_key = await b.page.locator("#api-key").inner_text()
    assert new_key.startswith("tl_") and len(new_key) > 40
    await b.shot("09-device-key")
    await b.page.get_by_role("link", name="Done").click()
    await b.page.get_by_placeholder("Name, key prefix, owner's email or ID").fill("Truck 7")
    await b.page.get_by_role("button", name="Search").click()
    await b.page.locator("tr", has_text="Truck 7").get_by_role("button", name="Revoke").click()
    await expect(b.page.get_by_role("status")).to_contain_text("is revoked")
    await expect(b.page.locator("tr", has_text="Truck 7")).to_contain_text("revoked")
    await b.shot("10-device-revoked")

    # Jobs: queue health, failures with their correlation IDs; retry one.
    await b.nav("Jobs")
    await expect(b.page.get_by_text("ExportTooLarge")).to_be_visible()
    await b.shot("11-jobs")
    await (
        b.page.locator("tr", has_text="ExportTooLarge").get_by_role("button", name="Retry").click()
    )
    await expect(b.page.get_by_role("status")).to_contain_text("Queued again")
    await b.shot("12-jobs-retried")

    # The audit log has every action of this session.
    await b.go("/console/audit?actor=operator%40tripline.dev")
    actions = await b.page.locator("table.audit .badge-action").all_inner_texts()
    assert actions[:5] == [
        "job.retry",
        "device.revoke",
        "device.key_rotate",
        "user.disable",
        "console.login",
    ]

    # A phone: the same pages, one column, tables that scroll.
    phone = await chromium.new_context(
        viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True
    )
    await phone.add_cookies([session_cookie])
    p = Browser(await phone.new_page(), admin_process)
    for path, name in (
        ("/console/", "13-phone-overview"),
        ("/console/users", "14-phone-users"),
        ("/console/audit", "15-phone-audit"),
    ):
        await p.go(path)
        width = await p.page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"{path} is {width}px wide on a 390px phone"
        await p.shot(name)
    await phone.close()

    # Signing out ends the session: the cookie's copy no longer opens anything.
    await b.page.get_by_role("button", name="Sign out").click()
    await expect(b.page.get_by_text("You are signed out.")).to_be_visible()
    await b.shot("16-signed-out")
    await context.add_cookies([session_cookie])
    await b.page.goto(admin_process + "/console/")
    await expect(b.page).to_have_url(re.compile(r"/console/login"))

    assert not b.problems + p.problems, b.problems + p.problems
    await context.close()


# --- Pictures: the overview's charts and a trip's map, on data that went through the system ---

# Recorded by a script the test adds before any page script runs (CDP's init scripts are not
# subject to the page's CSP): every Content-Security-Policy violation the page reports.
CSP_WATCH = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolations.push(`${event.violatedDirective} ${event.blockedURI}`);
});
"""


async def _drawn(locator) -> bool:
    """Whether the element exists and has a non-empty bounding box."""
    box = await locator.bounding_box() if await locator.count() else None
    return box is not None and box["width"] > 0 and box["height"] > 0


async def _box(locator) -> dict:
    """The element's bounding box, asserted present and not empty."""
    box = await locator.bounding_box()
    assert box is not None and box["width"] > 0 and box["height"] > 0, box
    return box


@pytest.fixture
async def living_system(processes, process_env) -> str:
    """Ingest, the worker and the admin app, real processes on a seeded database; the demo
    trip active and uploads sent through ingest (speeding, then off the corridor), processed by
    the worker. The admin app's URL."""
    from scripts.seed import DEMO_DEVICE_KEY

    seed(process_env)
    await start_demo_trip(process_env["DATABASE_URL"])
    ingest = processes.start("ingest", "tripline-ingest")
    worker = processes.start("worker", "tripline-worker", **FAST_WORKER)
    admin = processes.start("admin", "tripline-admin", CONSOLE_COOKIE_SECURE="true")
    for process in (ingest, worker, admin):
        await asyncio.to_thread(processes.wait_ready, process)
    start = window_aligned()
    track = fixes(40, start=start, speed_kmh=60)
    for fix in track[10:14]:
        fix["speed_kmh"] = 118  # Over the 80 km/h limit: a speeding alert.
    for fix in track[25:30]:
        fix["lat"] += 0.03  # About 3 km north of the route: a corridor alert.
    async with httpx.AsyncClient(timeout=10) as client:
        for n in range(4):
            upload = await client.post(
                f"{ingest.url}/v1/telemetry",
                json={"client_batch_id": f"pictures-{n}", "events": track[n * 10 : n * 10 + 10]},
                headers={"X-Device-Key": DEMO_DEVICE_KEY},
            )
            assert upload.status_code == 202, upload.text

    async def all_processed() -> bool:
        conn = await asyncpg.connect(asyncpg_dsn(process_env["DATABASE_URL"]))
        try:
            done = await conn.fetchval(
                "SELECT count(*) FROM telemetry_batches WHERE status = 'processed'"
            )
            alerts = await conn.fetchval("SELECT count(*) FROM alerts")
        finally:
            await conn.close()
        return done == 4 and alerts >= 2

    await wait_until(all_processed, 30, "the uploads processed and their alerts raised")
    return admin.url


@pytest.mark.slow
async def test_the_overview_charts_and_a_trip_map_render_in_chromium_within_the_csp(
    living_system, chromium
) -> None:
    context = await chromium.new_context(viewport={"width": 1280, "height": 900})
    await context.add_init_script(CSP_WATCH)
    b = Browser(await context.new_page(), living_system)
    expect = playwright.expect
    await b.go("/console/login")
    await b.page.get_by_label("Email").fill("operator@tripline.dev")
    await b.page.get_by_label("Password").fill(PASSWORD)
    await b.page.get_by_role("button", name="Sign in").click()
    await expect(b.page.get_by_role("heading", name="Overview")).to_be_visible()

    # The charts: three drawings, each series visible. A slot shows once it has ended (the
    # one under way is left out), so the uploads' slot and the queue monitor's first sample
    # appear within a slot or two: reload until they do.
    charts = b.page.locator("svg.chart-svg")
    await expect(charts).to_have_count(3)
    for _ in range(60):
        if await _drawn(b.page.locator(".series-accepted path")) and await _drawn(
            b.page.locator(".series-queue")
        ):
            break
        await asyncio.sleep(1)
        await b.page.reload()
    for n in range(3):
        await _box(charts.nth(n))
    for series in ("accepted", "processed", "queue"):
        await _box(b.page.locator(f".series-{series}"))
    await _box(b.page.locator(".series-accepted path"))
    await _box(b.page.locator(".series-processed path"))
    await _box(b.page.locator("rect.chart-bar").last)  # This hour's alerts.
    await b.shot("20-overview-charts")

    # Live: console.js reloads the charts in place (same origin, no inline script).
    live = b.page.locator("[data-live]")
    await expect(live).to_have_attribute("data-live-updated", re.compile(r"\d+"), timeout=30_000)
    await expect(live.locator("svg.chart-svg")).to_have_count(3)

    # The trip: from the open alert to its map, everything drawn inside it.
    await b.page.get_by_role("link", name=re.compile("off the planned route")).first.click()
    await expect(b.page).to_have_url(re.compile(r"/console/trips/[0-9a-f-]{36}$"))
    map_box = await _box(b.page.locator("svg.trip-map-svg"))
    for part in ("polyline.map-corridor", "polyline.map-route", "polyline.map-track"):
        box = await _box(b.page.locator(part))
        assert (
            map_box["x"] <= box["x"]
            and box["x"] + box["width"] <= map_box["x"] + map_box["width"] + 1
        )
    markers = b.page.locator("g.map-alert")
    assert await markers.count() >= 2  # Speeding and corridor: both record where.
    await _box(markers.first)
    await expect(b.page.get_by_text("40 positions drawn")).to_be_visible()
    await b.shot("21-trip-map")

    # A phone: the map and the charts scale down, nothing wider than the screen.
    phone = await chromium.new_context(
        viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True
    )
    await phone.add_init_script(CSP_WATCH)
    await phone.add_cookies(await context.cookies())
    p = Browser(await phone.new_page(), living_system)
    for path, name in (
        (b.page.url.removeprefix(living_system), "22-phone-trip"),
        ("/console/", "23-phone-charts"),
    ):
        await p.go(path)
        width = await p.page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"{path} is {width}px wide on a 390px phone"
        await p.shot(name)
        assert await p.page.evaluate("window.__cspViolations") == []

    # Signing out elsewhere ends the session: the open overview's next refresh says so and
    # stops, instead of showing the login page inside the charts.
    await b.go("/console/")
    await p.page.get_by_role("button", name="Sign out").click()
    await expect(p.page.get_by_text("You are signed out.")).to_be_visible()
    await expect(live).to_have_attribute("data-live-ended", "", timeout=30_000)
    await expect(live.get_by_text("Your session has ended")).to_be_visible()
    await expect(live.locator("svg.chart-svg")).to_have_count(3)
    await b.shot("24-charts-session-ended")

    assert await b.page.evaluate("window.__cspViolations") == []
    assert not b.problems + p.problems, b.problems + p.problems
    await phone.close()
    await context.close()
