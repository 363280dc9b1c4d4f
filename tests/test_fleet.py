"""The fleet simulator against the real api, ingest and worker: three devices driving through
the public interfaces, and the alerts the simulator expects from what it sent are exactly the
alerts raised, received on both streams and at the webhook endpoints. And, without processes,
its own reading of the rules gives the worker's rule functions' verdicts on many of its trips."""

from __future__ import annotations

import asyncio
import json
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.conftest import BIN, ProcessRunner
from tests.support.database import fetch
from tripline_devstack import free_port
from tripline_devstack.fleet import Rules, TripRecord, expected_alerts, mischief_for, plan_trip
from tripline_devstack.fleet.client import UserClient
from tripline_devstack.fleet.expectations import AlertKey, SentFix
from tripline_devstack.fleet.listeners import StreamListener
from tripline_worker.alerts.rules import corridor_alerts, late_alert, speeding_alerts
from tripline_worker.geo import Route
from tripline_worker.trips.progress import Fix, TripProgress, advance_progress

ALERT_WINDOW_SECONDS = 30  # short, so that one trip may speed twice


@pytest.mark.slow
async def test_fleet_expects_exactly_the_alerts_raised_streamed_and_delivered(
    processes: ProcessRunner, process_env: dict[str, str], tmp_path: Path
) -> None:
    mailbox = free_port()
    rules = {"ALERT_WINDOW_SECONDS": str(ALERT_WINDOW_SECONDS), "LATE_GRACE_SECONDS": "300"}
    api = processes.start("api", "tripline-api")
    ingest = processes.start("ingest", "tripline-ingest")
    worker = processes.start(
        "worker",
        "tripline-worker",
        SMTP_HOST="127.0.0.1",
        SMTP_PORT=str(mailbox),
        SMTP_STARTTLS="false",
        **rules,
    )
    for process in (api, ingest, worker):
        processes.wait_ready(process)

    report_path = tmp_path / "fleet.json"
    webhook_log = tmp_path / "webhooks.jsonl"
    fleet = await asyncio.to_thread(
        subprocess.run,
        [
            str(BIN / "tripline-fleet"),
            *("--api", api.url, "--ingest", ingest.url),
            *("--devices", "3", "--users", "2", "--mailbox-port", str(mailbox)),
            *("--trips", "1", "--legs", "2", "--time-scale", "20", "--seed", "7"),
            *("--alert-window", str(ALERT_WINDOW_SECONDS), "--late-grace", "300"),
            *("--settle", "20", "--report", str(report_path)),
            *("--webhook-log", str(webhook_log)),
        ],
        env=process_env,
        capture_output=True,
        text=True,
        timeout=100,
    )
    assert fleet.returncode == 0, fleet.stdout + fleet.stderr
    report = json.loads(report_path.read_text())
    expected = report["expected"]
    assert {key.split(":")[0] for key in expected} >= {"speeding", "corridor", "late"}
    for channel in ("raised", "sse", "websocket", "webhook"):
        assert report["received"][channel] == expected, channel
    assert report["repeats"]["sse"] == report["repeats"]["websocket"] == 0
    assert report["bad_signatures"] == 0
    traffic = report["traffic"]
    assert traffic["users"] == 2
    assert traffic["devices"] == traffic["trips"] == traffic["trips_completed"] == 3
    assert traffic["gzip_batches"] > 0
    assert traffic["resent_batches"] > 0
    assert traffic["signal_gaps"] > 0

    # The database agrees: each alert row is one expected alert, and there are no others.
    rows = await fetch(process_env["DATABASE_URL"], "SELECT trip_id, rule, observed_at FROM alerts")
    stored = sorted(
        f"{row['rule']}:{row['trip_id']}"
        + (f"@{int(row['observed_at'].timestamp())}" if row["observed_at"] else "")
        for row in rows
    )
    assert stored == expected
    batches = await fetch(
        process_env["DATABASE_URL"],
        "SELECT count(*) AS n, count(*) FILTER (WHERE status = 'processed') AS done"
        " FROM telemetry_batches",
    )
    assert batches[0]["n"] == batches[0]["done"] == traffic["batches"]
    # Each device's batches were processed in the order they were sent (the fleet waits), the
    # order its expectations judge them in.
    order = await fetch(
        process_env["DATABASE_URL"],
        "SELECT device_id, received_at, processed_at FROM telemetry_batches",
    )
    for device in {row["device_id"] for row in order}:
        rows = [row for row in order if row["device_id"] == device]
        by_receipt = sorted(rows, key=lambda row: row["received_at"])
        assert by_receipt == sorted(rows, key=lambda row: row["processed_at"])
    delivered = [json.loads(line) for line in webhook_log.read_text().splitlines()]
    assert {line["alert"]["id"] for line in delivered} == {
        str(row["id"]) for row in await fetch(process_env["DATABASE_URL"], "SELECT id FROM alerts")
    }
    assert all(datetime.fromisoformat(line["received_at"]) for line in delivered)


# -- the fleet's own reading of the rules beside the worker's --------------------------------


def worker_verdicts(record: TripRecord, rules: Rules) -> list[AlertKey]:
    """The worker's rule functions applied to the record's batches one after another, as
    `process_claimed_batch` applies them (the windows told the anchors raised before)."""
    route = Route([record.plane.to_lat_lon(*point) for point in record.route.points])
    progress = TripProgress(None, None, None, 0.0, None)
    anchors: dict[str, list[datetime]] = {"speeding": [], "corridor": []}
    keys: list[AlertKey] = []
    for batch in record.batches:
        fixes = [Fix(f.recorded_at, f.lat, f.lon, f.speed_kmh, f.accuracy_m) for f in batch]
        window = rules.alert_window_s
        drafts = speeding_alerts("t", 50.0, fixes, window, anchors["speeding"])
        drafts += corridor_alerts("t", 60.0, route, fixes, window, anchors["corridor"])
        after = advance_progress(progress, fixes, route, record.started_at)
        if after is not progress and after.last_seen_at is not None:
            late = late_alert(
                "t",
                record.planned_arrival,
                eta=after.eta,
                last_fix_at=after.last_seen_at,
                remaining_m=after.remaining_m,
                grace_seconds=rules.late_grace_s,
            )
            if late is not None and AlertKey("t", "late") not in keys:
                drafts.append(late)
        progress = after
        for draft in drafts:
            rule = draft.rule.value
            if draft.observed_at is not None:
                anchors[rule].append(draft.observed_at)
                keys.append(AlertKey("t", rule, int(draft.observed_at.timestamp())))
            else:
                keys.append(AlertKey("t", rule))
    return keys


@pytest.mark.parametrize("seed", range(40))
def test_the_fleets_expectations_are_the_worker_rules_verdicts_on_its_trips(seed: int) -> None:
    mischief = mischief_for(11, seed % 5, seed)
    plan = plan_trip(seed, "t", mischief, legs=2 + seed % 3, late_grace_s=300)
    started = datetime(2026, 12, 7, 12, 0, 0, 500_000, tzinfo=UTC)
    t0 = started + timedelta(seconds=1.5)
    # Every other trip is planned with 0.9 to 1.9 times the time it takes: whether it is late
    # then turns on the estimated arrival near the end, where the two readings could drift.
    roomy = plan.duration_s * (0.9 + (seed % 5) * 0.25) - 300
    arrival = roomy if seed % 2 else plan.arrival_offset_s
    record = TripRecord(
        trip_id="t",
        plane=plan.plane,
        route=plan.route,
        started_at=started,
        planned_arrival=started + timedelta(seconds=arrival),
        speed_limit_kmh=50.0,
        corridor_m=60.0,
        batches=[
            [
                SentFix(t0 + timedelta(seconds=f.at_s), f.lat, f.lon, f.speed_kmh, f.accuracy_m)
                for f in plan.fixes[upload.first : upload.last + 1]
            ]
            for upload in plan.uploads
        ],
    )
    rules = Rules(alert_window_s=30 if seed % 2 else 300, late_grace_s=300)

    expected = expected_alerts(record, rules)
    assert sorted(expected) == sorted(worker_verdicts(record, rules))
    if mischief.speeding:
        assert any(key.rule == "speeding" for key in expected)
    if mischief.deviation:
        assert any(key.rule == "corridor" for key in expected)
    if mischief.late and not seed % 2:
        assert AlertKey("t", "late") in expected


def test_after_its_first_minute_no_punctual_fleet_trip_is_estimated_at_twice_its_duration() -> None:
    # What lets the fleet plan its punctual trips with twice the time they take (driving.py):
    # the worker's ETA, batch after batch, on the first 300 trips without the late mischief.
    started = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
    worst = 0.0
    for seed in range(300):
        mischief = mischief_for(11, 5, seed)
        if mischief.late:
            continue
        plan = plan_trip(seed, "t", mischief, legs=2 + seed % 3)
        route = Route([plan.plane.to_lat_lon(*point) for point in plan.route.points])
        progress = TripProgress(None, None, None, 0.0, None)
        for upload in plan.uploads:
            fixes = [
                Fix(started + timedelta(seconds=f.at_s), f.lat, f.lon, f.speed_kmh, f.accuracy_m)
                for f in plan.fixes[upload.first : upload.last + 1]
            ]
            progress = advance_progress(progress, fixes, route, started)
            if progress.eta is not None:
                worst = max(worst, (progress.eta - started).total_seconds() / plan.duration_s)

    assert 1.0 < worst < 2.0


# -- the fleet's WebSocket listener across a reconnection --------------------------------------


@pytest.mark.slow
async def test_the_fleets_websocket_catches_up_on_an_alert_raised_while_it_was_disconnected(
    processes: ProcessRunner, process_env: dict[str, str]
) -> None:
    from scripts.seed import DEMO_PASSWORD
    from tests.test_processes import seed

    seed(process_env)
    api = processes.start("api", "tripline-api")
    processes.wait_ready(api)
    async with httpx.AsyncClient(timeout=10) as http:
        user = UserClient(http, api.url, "demo@tripline.dev", DEMO_PASSWORD)
        await user.log_in()
        listener = StreamListener(user, lambda channel, alert: None)
        listening = asyncio.create_task(listener.run_websocket())
        try:
            await asyncio.wait_for(listener.websocket_open.wait(), 30)
            api.stop()
            # Raised while no replica is up: never published to a socket, only stored.
            [trip] = await fetch(
                process_env["DATABASE_URL"],
                "SELECT t.id, t.owner_id FROM trips t JOIN users u ON u.id = t.owner_id"
                " WHERE u.email = 'demo@tripline.dev' LIMIT 1",
            )
            [alert] = await fetch(
                process_env["DATABASE_URL"],
                "INSERT INTO alerts (owner_id, trip_id, rule, message, dedupe_key)"
                " VALUES ($1, $2, 'late', 'raised while the socket was down', 'fleet-ws-test')"
                " RETURNING id",
                trip["owner_id"],
                trip["id"],
            )
            back = processes.start("api-again", "tripline-api")
            processes.wait_ready(back)
            user.api_url = back.url

            async def caught_up() -> None:
                while str(alert["id"]) not in listener.websocket.alerts:  # noqa: ASYNC110
                    await asyncio.sleep(0.2)

            await asyncio.wait_for(caught_up(), 60)
            assert listener.websocket_caught_up == 1
        finally:
            listening.cancel()
            await asyncio.gather(listening, return_exceptions=True)
