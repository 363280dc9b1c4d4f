"""What the system holds once the soak has settled: the acknowledged batches and the fleet's
alerts as the database stores them, and the deliveries the webhook receiver logged."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from pathlib import Path

import asyncpg

from chaos.record import Delivery, StoredAlert, StoredBatch
from tripline_common.data import asyncpg_dsn
from tripline_devstack.fleet.report import key_of


async def stored(
    database_url: str, batch_ids: list[str], trip_ids: list[str]
) -> tuple[list[StoredBatch], list[StoredAlert]]:
    """The batches among `batch_ids` and the alerts of `trip_ids`, as stored."""
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        batches = [
            StoredBatch(str(r["id"]), r["status"], r["events"], r["rows"])
            for r in await conn.fetch(
                "SELECT b.id, b.status,"
                " (SELECT count(*) FROM telemetry_events e WHERE e.batch_id = b.id) AS events,"
                " (SELECT count(*) FROM telemetry_batches o WHERE o.device_id = b.device_id"
                "  AND o.client_batch_id = b.client_batch_id) AS rows"
                " FROM telemetry_batches b WHERE b.id = ANY($1::uuid[])",
                [uuid.UUID(b) for b in batch_ids],
            )
        ]
        alerts = []
        for row in await conn.fetch(
            "SELECT id, trip_id, rule, details::text AS details, raised_at FROM alerts"
            " WHERE trip_id = ANY($1::uuid[])",
            [uuid.UUID(t) for t in trip_ids],
        ):
            alert = {"trip_id": row["trip_id"], "rule": row["rule"]}
            alert["details"] = json.loads(row["details"] or "{}")
            raised_at: datetime = row["raised_at"]
            alerts.append(
                StoredAlert(
                    str(row["id"]), str(row["trip_id"]), str(key_of(alert)), raised_at.timestamp()
                )
            )
        return batches, alerts
    finally:
        await conn.close()


def deliveries(webhook_log: Path) -> list[Delivery]:
    """The signed deliveries the fleet's receiver logged (one JSON line each)."""
    found: list[Delivery] = []
    if not webhook_log.exists():
        return found
    for line in webhook_log.read_text().splitlines():
        entry = json.loads(line)
        if entry["alert"] is None:  # a bad signature: not a delivery of ours
            continue
        found.append(
            Delivery(
                str(entry["alert"]["id"]),
                entry["delivery"],
                entry["path"],
                datetime.fromisoformat(entry["received_at"]).timestamp(),
            )
        )
    return found
