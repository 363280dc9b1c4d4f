"""What the rehearsal proves once the traffic has stopped: from the ledger, the database, the
webhook receiver and the replicas' exits and logs, every way the upgrade could have lost or
doubled something, each as a line saying what went wrong (none: it passed)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from rehearsal.replicas import GRACEFUL_EXITS, Cluster, Replica
from rehearsal.traffic import Ledger
from tripline_common.data import asyncpg_dsn
from tripline_devstack import WebhookReceiver

# How long the pipeline may take to settle after the traffic stops (a deadline, not a figure).
SETTLE_SECONDS = 90.0


@dataclass
class Facts:
    """What the database and the receiver hold for the rehearsal's devices."""

    processed: dict[str, int] = field(default_factory=dict)
    """Batch ID -> events stored, for the processed batches among those accepted."""
    unprocessed: list[str] = field(default_factory=list)
    alerts: dict[str, Counter[str]] = field(default_factory=dict)
    """Trip ID -> alerts by rule."""
    alert_ids: set[str] = field(default_factory=set)
    trips_found: int = 0
    deliveries: Counter[str] = field(default_factory=Counter)
    """Alert ID -> webhook deliveries answered 2xx."""


async def gather_facts(database_url: str, ledger: Ledger, receiver: WebhookReceiver) -> Facts:
    facts = Facts()
    batch_ids = [uuid.UUID(b) for b in ledger.batches]
    trip_ids = [uuid.UUID(d.trip_id) for d in ledger.devices]
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        for row in await conn.fetch(
            "SELECT b.id, b.status, count(e.id) AS events FROM telemetry_batches b"
            " LEFT JOIN telemetry_events e ON e.batch_id = b.id"
            " WHERE b.id = ANY($1::uuid[]) GROUP BY b.id, b.status",
            batch_ids,
        ):
            if row["status"] == "processed":
                facts.processed[str(row["id"])] = row["events"]
            else:
                facts.unprocessed.append(str(row["id"]))
        for row in await conn.fetch(
            "SELECT id, trip_id, rule FROM alerts WHERE trip_id = ANY($1::uuid[])", trip_ids
        ):
            facts.alerts.setdefault(str(row["trip_id"]), Counter())[row["rule"]] += 1
            facts.alert_ids.add(str(row["id"]))
        facts.trips_found = await conn.fetchval(
            "SELECT count(*) FROM trips WHERE id = ANY($1::uuid[])",
            [uuid.UUID(t) for t in ledger.created_trips],
        )
    finally:
        await conn.close()
    for request in receiver.delivered():
        body: dict[str, Any] = json.loads(request.body)
        facts.deliveries[body["alert"]["id"]] += 1
    return facts


def settled(facts: Facts, ledger: Ledger) -> bool:
    """Everything accepted has gone through the pipeline and out to every client."""
    expected = sum(d.bursts for d in ledger.devices)
    return (
        len(facts.processed) == len(ledger.batches)
        and len(facts.alert_ids) >= expected
        and facts.alert_ids <= set(facts.deliveries)
        and all(facts.alert_ids <= s.seen for s in ledger.subscribers)
    )


async def settle(database_url: str, ledger: Ledger, receiver: WebhookReceiver) -> Facts:
    """The facts once the pipeline has settled, or as they are at the deadline."""
    deadline = time.monotonic() + SETTLE_SECONDS
    while True:
        facts = await gather_facts(database_url, ledger, receiver)
        if settled(facts, ledger) or time.monotonic() > deadline:
            return facts
        await asyncio.sleep(0.5)


def _error_lines(replica: Replica) -> list[str]:
    lines = []
    for line in replica.log_path.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("level") in ("error", "critical"):
            lines.append(f"{replica.name}: {entry.get('event')} {entry.get('error', '')}".strip())
    return lines


def problems(facts: Facts, ledger: Ledger, cluster: Cluster) -> list[str]:
    """Every way the rehearsal failed, one line each."""
    found: list[str] = []
    failed = [o for o in ledger.outcomes if o.failed]
    for outcome in failed[:20]:
        found.append(
            f"failed request in '{outcome.step}': {outcome.operation} on {outcome.replica}:"
            f" {outcome.error}"
        )
    if len(failed) > 20:
        found.append(f"... and {len(failed) - 20} more failed requests")
    if facts.unprocessed or len(facts.processed) != len(ledger.batches):
        found.append(
            f"{len(ledger.batches) - len(facts.processed)} of {len(ledger.batches)} accepted"
            " batches were not processed"
        )
    wrong = {b: n for b, n in facts.processed.items() if n != ledger.batches[b]}
    if wrong:
        found.append(f"{len(wrong)} batches store a different number of events than were sent")
    for device in ledger.devices:
        rules = facts.alerts.get(device.trip_id, Counter())
        if rules.get("speeding", 0) != device.bursts or set(rules) - {"speeding"}:
            found.append(
                f"trip {device.trip_id}: {device.bursts} speeding bursts sent, alerts raised:"
                f" {dict(rules) or 'none'}"
            )
    undelivered = facts.alert_ids - set(facts.deliveries)
    if undelivered:
        found.append(f"{len(undelivered)} alerts never reached the webhook")
    doubled = {a: n for a, n in facts.deliveries.items() if n > 1}
    if doubled:
        found.append(f"{len(doubled)} alerts reached the webhook more than once")
    for subscriber in ledger.subscribers:
        missed = facts.alert_ids - subscriber.seen
        if missed:
            found.append(f"{subscriber.name} never saw {len(missed)} alerts")
        if subscriber.connections < 2:
            found.append(f"{subscriber.name} never reconnected although its replica was replaced")
    if facts.trips_found != len(ledger.created_trips):
        found.append(
            f"{len(ledger.created_trips) - facts.trips_found} of {len(ledger.created_trips)}"
            " created trips are missing"
        )
    for replica in cluster.stopped:
        if replica.killed or replica.exit_code not in GRACEFUL_EXITS:
            found.append(
                f"{replica.name} did not stop gracefully (exit {replica.exit_code},"
                f" {'killed after its grace period' if replica.killed else 'not killed'})"
            )
    for replica in cluster.stopped:
        found.extend(_error_lines(replica))
    return found
