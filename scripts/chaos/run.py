"""One soak run, start to verdict: a Postgres and a Redis of its own, proxies in front of them,
two replicas each of the API, ingest and the worker (the rehearsal's `Cluster`), the fleet
driving through a load balancer of ready replicas, the fault plan injected meanwhile and memory
sampled; then the fleet finishes its trips, everything settles, and the record is gathered."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
from dev import with_database
from rehearsal.chart import rollouts
from rehearsal.replicas import Build, Cluster
from seed import DEMO_PASSWORD

from chaos import facts
from chaos.exchanges import RecordingTransport
from chaos.faults import Injector
from chaos.memory import sample
from chaos.proxy import TcpProxy, fixed
from chaos.record import Exchange, SoakRecord
from chaos.schedule import Fault
from tripline_common.data import asyncpg_dsn
from tripline_devstack import EmbeddedPostgres, EmbeddedRedis, ensure_database, free_port
from tripline_devstack.fleet import Fleet, FleetConfig, Rules

COMPONENTS = ("api", "ingest", "worker")
# A deadline for a migration or the seed, not a measurement.
# The worker's settings in the soak (docs/soak.md): retries and sweeps quick enough that what a
# fault held back goes out within the checker's webhook bound.
WORKER_ENV = {
    "WEBHOOK_BACKOFF_BASE_SECONDS": "1",
    "WEBHOOK_BACKOFF_MAX_SECONDS": "4",
    "WEBHOOK_MAX_ATTEMPTS": "50",
    "SWEEP_INTERVAL_SECONDS": "5",
    "BATCH_REQUEUE_AFTER_SECONDS": "10",
    "DELIVERY_REQUEUE_AFTER_SECONDS": "10",
    "JOB_TIMEOUT": "20",
}


# How long a device waits for its last batch to be processed before it goes on: longer than
# any fault holds a batch back (a killed worker's job runs again after JOB_TIMEOUT + 10 s, a job
# Redis lost is enqueued again within about 15 s), so that batches are judged in order.
FINISH_WAIT_SECONDS = 120.0


@dataclass(frozen=True)
class SoakPlan:
    """How long, how big, which faults."""

    faults: tuple[Fault, ...]
    seconds: float = 90.0
    """Traffic time: the faults happen within it; then the fleet finishes its trips."""
    warmup_seconds: float = 10.0
    """Traffic before the first fault."""
    devices: int = 6
    replicas: int = 2
    seed: int = 1
    time_scale: float = 4.0
    """Device seconds per real second: trips of a few minutes drive in one."""
    rules: Rules = field(default_factory=lambda: Rules(60, 60, 600))
    """The worker's alert window, late grace and lost-signal threshold."""
    settle_seconds: float = 180.0
    """How long the fleet waits at the end for every channel to hold every alert (a deadline)."""


async def _durable(postgres: EmbeddedPostgres, database: str) -> None:
    """Commit as production does: the embedded server's default (`synchronous_commit=off`)
    trades the last moments of commits across a crash for speed, which would let a Postgres
    killed by a fault lose batches already acknowledged."""
    conn = await asyncpg.connect(asyncpg_dsn(postgres.url()))
    try:
        await conn.execute(f"ALTER DATABASE {database} SET synchronous_commit = on")
    finally:
        await conn.close()


def _balancer(cluster: Cluster, component: str) -> Callable[[], tuple[str, int]]:
    """A Service: each new connection to a ready replica, in turn."""

    def pick() -> tuple[str, int]:
        return "127.0.0.1", cluster.service(component).pick().port

    return pick


async def soak(
    plan: SoakPlan, build: Build, base_env: dict[str, str], work_dir: Path,
    log: Callable[[str], None] = print,
) -> SoakRecord:  # fmt: skip
    """Run the soak; its record (the checker judges it)."""
    record = SoakRecord()
    postgres = EmbeddedPostgres(work_dir / "postgres", port=free_port())
    redis = EmbeddedRedis(work_dir / "redis", port=free_port())
    await asyncio.to_thread(postgres.start)
    proxies: dict[str, TcpProxy] = {}
    cluster: Cluster | None = None
    stop = asyncio.Event()
    tasks: list[asyncio.Task[None]] = []
    try:
        await asyncio.to_thread(redis.start)
        database = f"tripline_soak_{uuid.uuid4().hex[:8]}"
        await asyncio.to_thread(ensure_database, postgres.url(), database)
        await _durable(postgres, database)
        proxies["postgres"] = TcpProxy("postgres", fixed("127.0.0.1", postgres.port))
        proxies["redis"] = TcpProxy("redis", fixed("127.0.0.1", redis.port))
        receiver_port = free_port()
        proxies["webhook"] = TcpProxy("webhook", fixed("127.0.0.1", receiver_port))
        env = {
            **base_env,
            "DATABASE_URL": with_database(
                postgres.url().replace(f":{postgres.port}/", f":{proxies['postgres'].port}/"),
                database,
            ),
            "REDIS_URL": f"redis://{proxies['redis'].url_host}/0",
            "ARQ_QUEUE_NAME": f"tripline:soak:{uuid.uuid4().hex[:8]}",
            "ENVIRONMENT": "dev",
            "LOG_FORMAT": "json",
            "PYTHONUNBUFFERED": "1",
        }
        direct = {**env, "DATABASE_URL": with_database(postgres.url(), database)}
        await asyncio.to_thread(build.run, direct, "tripline-migrate", "upgrade", "head")
        await asyncio.to_thread(build.run, direct, "python", str(build.seed_script))
        log_dir = work_dir / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        worker_env = {
            **WORKER_ENV,
            "ALERT_WINDOW_SECONDS": str(plan.rules.alert_window_s),
            "LATE_GRACE_SECONDS": str(plan.rules.late_grace_s),
            "LOST_SIGNAL_AFTER_SECONDS": str(plan.rules.lost_signal_after_s),
        }
        cluster = Cluster(
            env, log_dir, rollouts(plan.replicas), 1.0, extra_env={"worker": worker_env}
        )
        for proxy in proxies.values():
            await proxy.up()
        await asyncio.gather(*(cluster.deploy(c, build, plan.replicas) for c in COMPONENTS))
        log(f"{plan.replicas} replicas each of {', '.join(COMPONENTS)} ready")
        for component in ("api", "ingest"):
            proxies[component] = TcpProxy(component, _balancer(cluster, component))
            await proxies[component].up()

        exchanges: list[Exchange] = record.exchanges
        fleet = Fleet(
            FleetConfig(
                api_url=f"http://{proxies['api'].url_host}",
                ingest_url=f"http://{proxies['ingest'].url_host}",
                devices=plan.devices,
                logins=(("demo@tripline.dev", DEMO_PASSWORD),),
                trips_per_device=0,
                seed=plan.seed,
                time_scale=plan.time_scale,
                rules=plan.rules,
                pause_between_trips_s=2.0,
                webhook_port=receiver_port,
                webhook_base_url=f"http://{proxies['webhook'].url_host}",
                webhook_log=log_dir / "webhooks.jsonl",
                finish_wait_s=FINISH_WAIT_SECONDS,
                settle_s=plan.settle_seconds,
                summary_every_s=30.0,
            ),
            asyncio.Event(),
            lambda line: log(f"fleet: {line}"),
            transport=RecordingTransport(exchanges),
        )
        record.started = time.time()
        began = time.monotonic()
        driving = asyncio.create_task(fleet.run())
        injector = Injector(
            cluster, build, plan.replicas, postgres, redis, proxies, log,
        )  # fmt: skip

        def processes() -> dict[str, int]:
            assert cluster is not None
            alive = {
                r.name: r.popen.pid
                for replicas in cluster.replicas.values()
                for r in replicas
                if r.popen.poll() is None
            }
            if redis.pid is not None:
                alive[f"redis-{redis.pid}"] = redis.pid
            return alive

        tasks.append(asyncio.create_task(sample(processes, record.memory, stop)))
        chaos = asyncio.create_task(
            injector.run(list(plan.faults), began + plan.warmup_seconds, stop)
        )
        await asyncio.wait({driving}, timeout=plan.seconds)
        if driving.done():  # the fleet failed: no fault is worth injecting any more
            stop.set()
        fleet.finish.set()
        log("traffic time is over: the fleet finishes its trips")
        await chaos  # every fault recovers
        fleet_report = await driving
        record.ended = time.time()
        stop.set()
        await asyncio.gather(*tasks)

        record.faults = injector.windows
        record.accepted = dict(fleet.accepted)
        record.expected_alerts = [str(k) for k in fleet.expected()]
        record.webhooks = sorted(fleet.hooks)
        record.streams = {
            "sse": sorted(a for m in fleet.members for a in m.listener.sse.alerts),
            "websocket": sorted(a for m in fleet.members for a in m.listener.websocket.alerts),
        }
        record.batches, record.alerts = await facts.stored(
            direct["DATABASE_URL"], list(record.accepted), [r.trip_id for r in fleet.records]
        )
        record.deliveries = facts.deliveries(log_dir / "webhooks.jsonl")
        traffic = fleet_report.traffic
        record.notes = {
            "trips driven": traffic.trips,
            "fixes sent": traffic.events,
            "batches resent after a timeout": traffic.resent_batches,
            "replicas replaced": len(cluster.stopped),
            "alerts a WebSocket caught up on after reconnecting": sum(
                m.listener.websocket_caught_up for m in fleet.members
            ),
            "webhook repeats (same delivery ID)": fleet_report.repeats.get("webhook", 0),
        }
        return record
    finally:
        stop.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if cluster is not None:
            await cluster.stop_all()
        for proxy in proxies.values():
            with contextlib.suppress(Exception):
                await proxy.down()
        await asyncio.to_thread(redis.stop)
        await asyncio.to_thread(postgres.stop)
