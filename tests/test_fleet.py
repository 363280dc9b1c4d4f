"""The fleet simulator against the real api, ingest and worker: three devices driving through
the public interfaces, and the alerts the simulator expects from what it sent are exactly the
alerts raised, received on both streams and at the webhook endpoints."""

from __future__ import annotations

import asyncio
import json
import subprocess
from datetime import datetime
from pathlib import Path

import pytest

from tests.conftest import BIN, ProcessRunner
from tests.support.database import fetch
from tripline_devstack import free_port

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
