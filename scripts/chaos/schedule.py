"""When the soak injects which fault: a fixed plan for the 90-second form (one of each kind the
brief of the short form names) and, for longer runs, every kind in turn in a seeded random
order, one every `interval` seconds, each outage of a seeded random length."""

from __future__ import annotations

import random
from dataclasses import dataclass

# Each kind the injector knows (chaos/faults.py), and what it does.
KINDS = {
    "kill-worker": "SIGKILL a random worker replica; a new one replaces it",
    "kill-api": "SIGKILL a random API replica; a new one replaces it",
    "kill-ingest": "SIGKILL a random ingest replica; a new one replaces it",
    "term-worker": "SIGTERM a random worker replica (it drains); a new one replaces it",
    "term-api": "SIGTERM a random API replica (it drains); a new one replaces it",
    "term-ingest": "SIGTERM a random ingest replica (it drains); a new one replaces it",
    "restart-redis": "stop Redis (its queue is lost: it keeps nothing) and start it again",
    "restart-postgres": "stop Postgres (fast shutdown) and start it again",
    "webhook-down": "the webhook receiver stops listening, then comes back",
    "slow-postgres": "add latency to every packet between the apps and Postgres",
    "slow-redis": "add latency to every packet between the apps and Redis",
}
# Outage lengths of the long form, seconds: long enough for retries and reconnections to be
# exercised, short enough that a run of an hour sees every kind several times.
OUTAGE_SECONDS = (5.0, 20.0)


@dataclass(frozen=True)
class Fault:
    """One fault of the plan: `at` seconds after the faults begin; outages last `seconds`."""

    at: float
    kind: str
    seconds: float = 0.0


# The 90-second form: every kind but the ingest and worker SIGTERMs and the ingest and API
# SIGKILLs (the long form has them), spread so each recovers before the traffic stops.
SHORT = (
    Fault(0.0, "kill-worker"),
    Fault(8.0, "term-api"),
    Fault(18.0, "slow-postgres", 8.0),
    Fault(28.0, "webhook-down", 30.0),
    Fault(36.0, "restart-redis", 3.0),
    Fault(46.0, "slow-redis", 8.0),
    Fault(56.0, "restart-postgres", 3.0),
)


def plan(seconds: float, interval: float, seed: int) -> list[Fault]:
    """Faults for `seconds` of chaos: every kind in turn (each round in a new random order),
    one every `interval` seconds."""
    rng = random.Random(seed)  # noqa: S311 - a fault plan, not a secret
    faults: list[Fault] = []
    kinds: list[str] = []
    at = 0.0
    while at < seconds:
        if not kinds:
            kinds = list(KINDS)
            rng.shuffle(kinds)
        kind = kinds.pop()
        outage = rng.uniform(*OUTAGE_SECONDS) if not kind.startswith(("kill", "term")) else 0.0
        faults.append(Fault(round(at, 1), kind, round(outage, 1)))
        at += interval
    return faults
