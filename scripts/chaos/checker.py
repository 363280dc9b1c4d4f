"""The soak's verdict, from its record alone (the fleet's own account and what the database and
the receiver hold): every way the system lost, doubled, delayed or broke something under the
faults, one line each. No line: the soak passed. docs/soak.md states each rule."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass

from chaos.record import FaultWindow, MemorySample, SoakRecord

# Lines of one kind beyond this many are summed up in one line.
SHOWN = 10


@dataclass(frozen=True)
class Bounds:
    """What the checker allows; docs/soak.md says where each figure comes from."""

    webhook_seconds: float = 45.0
    """A delivery reaches its endpoint within this long of its alert being raised or, when a
    fault held it, of the end of that fault (see `delivery_deadline`)."""
    window_grace_seconds: float = 10.0
    """A 5xx this long after a fault's recovery still belongs to the fault (clients' pools and
    the apps' connections finding out that a server came back)."""
    memory_min_lifetime_seconds: float = 60.0
    """Processes that lived shorter (killed, or started late) are not judged on memory."""
    memory_slope_bytes_per_minute: float = 4 * 1024 * 1024
    """Over the last half of a process's life, its RSS may grow at most this fast."""


def delivery_deadline(raised_at: float, faults: list[FaultWindow], bound: float) -> float:
    """When an alert must have reached every endpoint: `bound` after it was raised, pushed to
    `bound` after the end of every fault that began before the deadline it had then and ended
    after the alert was raised (the receiver down, a worker killed, Redis lost its queue...)."""
    deadline = raised_at + bound
    for fault in sorted(faults, key=lambda f: f.start):
        if fault.start <= deadline and fault.end >= raised_at:
            deadline = max(deadline, fault.end + bound)
    return deadline


def memory_slope(samples: list[MemorySample]) -> float:
    """Least-squares slope of RSS over time, bytes per minute, over the last half of the
    samples."""
    tail = sorted(samples, key=lambda s: s.at)[len(samples) // 2 :]
    if len(tail) < 2:
        return 0.0
    mean_t = sum(s.at for s in tail) / len(tail)
    mean_m = sum(s.rss_bytes for s in tail) / len(tail)
    spread = sum((s.at - mean_t) ** 2 for s in tail)
    if spread == 0:
        return 0.0
    slope = sum((s.at - mean_t) * (s.rss_bytes - mean_m) for s in tail) / spread
    return slope * 60


def _capped(lines: list[str]) -> list[str]:
    if len(lines) <= SHOWN:
        return lines
    return [*lines[:SHOWN], f"... and {len(lines) - SHOWN} more like these"]


def batch_problems(record: SoakRecord) -> list[str]:
    """Every batch acknowledged with 202 is stored once, with its fixes, and processed."""
    stored = {b.batch_id: b for b in record.batches}
    lost, unprocessed, wrong, doubled = [], [], [], []
    for batch_id, fixes in sorted(record.accepted.items()):
        batch = stored.get(batch_id)
        if batch is None:
            lost.append(f"batch {batch_id} was acknowledged with 202 but is not stored")
            continue
        if batch.status != "processed":
            unprocessed.append(f"batch {batch_id} is {batch.status}, not processed")
        if batch.event_count != fixes:
            wrong.append(f"batch {batch_id} stores {batch.event_count} events of the {fixes} sent")
        if batch.rows != 1:
            doubled.append(f"batch {batch_id} is stored {batch.rows} times")
    return _capped(lost) + _capped(unprocessed) + _capped(wrong) + _capped(doubled)


def alert_problems(record: SoakRecord) -> list[str]:
    """Every alert the rules require is raised once, and no other."""
    raised = Counter(a.key for a in record.alerts)
    expected = set(record.expected_alerts)
    missing = [
        f"alert {k} is required by the rules but was never raised"
        for k in sorted(expected - set(raised))
    ]
    doubled = [f"alert {k} was raised {n} times" for k, n in sorted(raised.items()) if n > 1]
    unexpected = [
        f"alert {k} was raised but no rule requires it" for k in sorted(set(raised) - expected)
    ]
    return _capped(missing) + _capped(doubled) + _capped(unexpected)


def webhook_problems(record: SoakRecord, bounds: Bounds) -> list[str]:
    """Every alert reaches every endpoint at least once, in time, each request carrying the
    delivery ID a receiver drops repeats by (the same on every copy)."""
    received: dict[tuple[str, str], list[float]] = defaultdict(list)
    ids: dict[tuple[str, str], set[str | None]] = defaultdict(set)
    for delivery in record.deliveries:
        received[delivery.alert_id, delivery.path].append(delivery.at)
        ids[delivery.alert_id, delivery.path].add(delivery.delivery_id)
    missing, late, unidentified = [], [], []
    for alert in record.alerts:
        deadline = delivery_deadline(alert.raised_at, record.faults, bounds.webhook_seconds)
        for path in record.webhooks:
            times = received.get((alert.alert_id, path))
            if not times:
                missing.append(f"alert {alert.key} never reached the webhook {path}")
                continue
            if min(times) > deadline:
                late.append(
                    f"alert {alert.key} reached {path} {min(times) - deadline:.1f} s after its"
                    f" deadline ({bounds.webhook_seconds:.0f} s after it was raised or after the"
                    " faults that held it)"
                )
            if None in ids[alert.alert_id, path] or len(ids[alert.alert_id, path]) > 1:
                unidentified.append(
                    f"alert {alert.key}'s copies at {path} do not carry one delivery ID:"
                    f" {sorted(map(str, ids[alert.alert_id, path]))}"
                )
    return _capped(missing) + _capped(late) + _capped(unidentified)


def stream_problems(record: SoakRecord) -> list[str]:
    """Every subscriber received every alert of its user, live or by resuming."""
    found = []
    raised = {a.alert_id: a.key for a in record.alerts}
    for subscriber, seen in sorted(record.streams.items()):
        missed = sorted(raised[a] for a in set(raised) - set(seen))
        if missed:
            found.append(
                f"the {subscriber} subscriber never received {len(missed)} alerts:"
                f" {', '.join(missed[:SHOWN])}"
            )
    return found


def server_error_problems(record: SoakRecord, bounds: Bounds) -> list[str]:
    """No 5xx outside the fault windows."""
    outside = [
        e
        for e in record.exchanges
        if e.status is not None
        and e.status >= 500
        and not any(f.covers(e.at, bounds.window_grace_seconds) for f in record.faults)
    ]
    return _capped(
        [
            f"{e.status} on {e.method} {e.path} at +{e.at - record.started:.1f} s, outside every"
            " fault window"
            for e in outside
        ]
    )


def memory_problems(record: SoakRecord, bounds: Bounds) -> list[str]:
    """Each process that lived long enough stopped growing: its RSS slope over the last half
    of its life is under the bound."""
    by_process: dict[str, list[MemorySample]] = defaultdict(list)
    for sample in record.memory:
        by_process[sample.process].append(sample)
    found = []
    for process, samples in sorted(by_process.items()):
        lived = max(s.at for s in samples) - min(s.at for s in samples)
        if lived < bounds.memory_min_lifetime_seconds:
            continue
        slope = memory_slope(samples)
        if slope > bounds.memory_slope_bytes_per_minute:
            found.append(
                f"{process}'s memory still grows after warm-up: {slope / 2**20:.1f} MiB/min over"
                f" the last half of its {lived:.0f} s (bound"
                f" {bounds.memory_slope_bytes_per_minute / 2**20:.1f} MiB/min)"
            )
    return found


def verdict(record: SoakRecord, bounds: Bounds | None = None) -> list[str]:
    """Every problem the record shows; empty when the soak passed."""
    bounds = bounds or Bounds()
    return [
        *batch_problems(record),
        *alert_problems(record),
        *webhook_problems(record, bounds),
        *stream_problems(record),
        *server_error_problems(record, bounds),
        *memory_problems(record, bounds),
    ]
