"""The rehearsal's steps, in order, as `helm upgrade` and `helm rollback` take them: install the
previous release, hold steady traffic, run the expand migration, roll every Deployment to this
release, run the contract migration, hold, roll back, hold; then let the pipeline settle and
judge."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from seed import DEMO_PASSWORD

from rehearsal.chart import COMPONENTS, rollouts
from rehearsal.replicas import Build, Cluster
from rehearsal.report import Report, step_figures
from rehearsal.traffic import FIXES_PER_BATCH, Clients, Ledger, Traffic
from rehearsal.verdict import problems, settle
from tripline_devstack import WebhookReceiver

# A deadline for a migration command that hangs, not a measurement.


@dataclass(frozen=True)
class Plan:
    """How big and how long: the short form runs in `make test`, the long one in
    `make rehearse`."""

    hold_seconds: float = 20.0
    replicas: int = 2
    devices: int = 3
    subscribers: int = 2
    rates: dict[str, float] = field(
        default_factory=lambda: {"reads": 15.0, "writes": 2.0, "admin": 2.0, "uploads": 2.0}
    )
    """Requests per second: API reads, trip creations, admin reads, uploads per device."""
    propagation_seconds: float = 1.0
    """From a pod's deletion to its removal from the endpoints (kube-proxy, ingress): the
    chart's drain (5 s) must cover it."""
    alert_window_seconds: int = 5
    """The worker's ALERT_WINDOW_SECONDS: short, so that many distinct alerts are due."""


async def _login(clients: Clients, email: str) -> str:
    response = await clients.request(
        "api", "log in", "POST", "/v1/auth/token",
        data={"username": email, "password": DEMO_PASSWORD},
    )  # fmt: skip
    assert response is not None, f"{email} could not log in"
    token: str = response.json()["access_token"]
    return token


async def rehearse(
    plan: Plan, previous: Build, head: Build, env: dict[str, str], log_dir: Path
) -> Report:
    """Run every step with traffic flowing throughout; the report of each step and what the
    checks found."""
    ledger = Ledger()
    cluster = Cluster(
        env,
        log_dir,
        rollouts(plan.replicas),
        plan.propagation_seconds,
        extra_env={"worker": {"ALERT_WINDOW_SECONDS": str(plan.alert_window_seconds)}},
    )
    if plan.alert_window_seconds < FIXES_PER_BATCH:
        raise ValueError("a speeding burst must fit in one alert window")
    for rollout in cluster.rollouts.values():
        if rollout.drain_seconds <= plan.propagation_seconds:
            raise ValueError(f"{rollout.component}: the drain does not cover the propagation")
    receiver = WebhookReceiver()
    receiver.start()
    clients = Clients(cluster, ledger)
    report = Report()
    tasks: list[asyncio.Task[None]] = []

    async def step(name: str, action: Callable[[], Awaitable[None]]) -> None:
        ledger.step = name
        started = time.monotonic()
        await action()
        report.steps.append(step_figures(ledger, name, time.monotonic() - started))

    async def hold() -> None:
        await asyncio.sleep(plan.hold_seconds)

    try:
        # Installed at the previous release: its migrations, its demo users, its pods.
        await asyncio.to_thread(previous.run, env, "tripline-migrate", "upgrade", "head")
        await asyncio.to_thread(previous.run, env, "python", str(previous.seed_script))
        await asyncio.gather(*(cluster.deploy(c, previous, plan.replicas) for c in COMPONENTS))
        traffic = Traffic(
            clients,
            ledger,
            await _login(clients, "demo@tripline.dev"),
            await _login(clients, "operator@tripline.dev"),
            plan.alert_window_seconds,
        )
        for i in range(plan.devices):
            await traffic.add_device(f"Rehearsal van {i}", receiver.url if i == 0 else None)
        tasks = traffic.run(plan.rates, plan.subscribers)

        await step("steady at the previous release", hold)
        await step(
            "expand migration (pre-upgrade hook)",
            lambda: asyncio.to_thread(head.run, env, "tripline-migrate", "upgrade", "--expand"),
        )
        await step("rolling upgrade", lambda: cluster.roll_all(head))
        await step(
            "contract migration (post-upgrade hook)",
            lambda: asyncio.to_thread(head.run, env, "tripline-migrate", "upgrade", "head"),
        )
        await step("steady at this release", hold)
        await step("rollback", lambda: cluster.roll_all(previous))
        await step("steady after the rollback", hold)

        traffic.stop.set()
        ledger.step = "settling"
        # The request loops end at `stop`; one that ended early (an exception) would have let
        # the rehearsal pass on less traffic than it claims.
        loops = tasks[: len(tasks) - plan.subscribers]
        await asyncio.wait(loops)
        crashed = [f"a client loop crashed: {t.exception()!r}" for t in loops if t.exception()]
        facts = await settle(env["DATABASE_URL"], ledger, receiver)
        report.problems = crashed + problems(facts, ledger, cluster)
        report.summary = {
            "requests": len(ledger.outcomes),
            "batches accepted": len(ledger.batches),
            "alerts raised": len(facts.alert_ids),
            "webhook deliveries": sum(facts.deliveries.values()),
            "trips created": len(ledger.created_trips),
            "replicas replaced": len(cluster.stopped),
            "slowest replica start (s), schema wait to ready": round(
                max(r.start_seconds or 0 for r in cluster.started), 1
            ),
            "slowest replica stop (s), SIGTERM to exit": round(
                max(r.stop_seconds or 0 for r in cluster.stopped), 1
            ),
            "WebSocket reconnections": sum(s.connections - 1 for s in ledger.subscribers),
            "alerts a subscriber caught up on": sum(
                len(s.caught_up - s.live) for s in ledger.subscribers
            ),
            "previous release": previous.commit,
            "this release": head.commit,
        }
        return report
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await clients.aclose()
        await cluster.stop_all()
        receiver.stop()
