"""Benchmark: the whole pipeline, from a device's upload to the alert on a WebSocket and at a
webhook, and what it costs in CPU per million events.

    uv run python scripts/bench_e2e.py [--devices 16] [--batch-size 50] [--start-rate 4]
                                       [--step-seconds 10] [--measure-seconds 15]
                                       [--floor-seconds 5] [--max-rate 400]

Needs Postgres/Redis (found or started like `make dev` does). Real processes on a scratch
database: `tripline-ingest`, `tripline-worker` and `tripline-api`; a webhook receiver on
127.0.0.1 (`tripline_devstack.WebhookReceiver`, every device's owner has an endpoint there) and
a WebSocket subscriber on the API's `/v1/alerts/ws`, both in this process. Each upload is an
"alerting upload": `--batch-size` fixes of its device's active trip, one of them speeding,
600 s of device time after the device's previous upload, so the worker raises exactly one
speeding alert for it (a new window each time), which is published and delivered. Every upload
carries its own `X-Request-ID`, which the alert carries to the WebSocket and the webhook: that
is how each arrival is matched to the upload it came from.

1. Ramp: uploads posted open loop (evenly spaced, whatever the answers do) at a rate that grows
   by half each step of `--step-seconds`; a step is kept up with when every upload got its 202,
   one second after the step the batches and webhook deliveries still pending are fewer than
   half a second of uploads,
   and the step's batches were processed within 0.5 s of being accepted (p99): the backlog does
   not grow. The maximum sustainable rate is the last rate kept up with (the pipeline drains
   between steps).
2. Latency at half the maximum and at the maximum, `--measure-seconds` each: upload sent ->
   alert on the WebSocket, and -> webhook received, p50 and p99. The baseline, measured on the
   same uploads: each upload's own 202 (sent -> accepted). It is the floor of the pipeline's
   latency, paid at the same load (the alert cannot be raised before the batch is stored), so
   the difference is what the queue, the worker, the publish and the delivery add. A bare Redis
   publish -> subscribe round trip is measured during the same phase too (a probe every 50 ms
   on a channel of its own): the floor of the last hop, on the same loaded machine.
3. Cost: CPU-seconds per million events of ingest, the worker and their Postgres backends (the
   backends of the scratch database, from /proc), during the phase at the maximum; beside the
   floor measured in the same run on a second scratch database with the other benchmarks' own
   baselines: the COPY loop of `bench_ingest.py` and the writes-only floor of
   `bench_worker.py` (client and backend CPU of each, per million rows).

Target (issue 16): p99 < 250 ms at half the maximum, on both paths.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shutil
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import bench_ingest
import bench_worker
import httpx
import orjson
from benchlib import (
    SECRET,
    ScratchDatabase,
    Service,
    cpu_seconds,
    database_backends,
    insert_bench_devices,
    insert_bench_user,
    start_service,
    stop,
    verdict,
)
from redis.asyncio import Redis
from websockets.asyncio.client import connect

from tripline_common.platform import CommonSettings
from tripline_common.security import create_access_token
from tripline_devstack import WebhookReceiver

ORIGIN, DESTINATION = (52.5200, 13.4050), (52.3906, 13.0645)
SPEED_LIMIT_KMH = 80.0
UPLOAD_SPACING = timedelta(seconds=600)  # Device time between uploads: > the alert window.
TARGET_P99_S = 0.25
# A ramp step is kept up with only if its batches were processed this promptly (p99): a backlog
# that has not yet grown one second after a short step can still be growing.
RAMP_MAX_PROCESSING_P99_S = 0.5


@dataclass
class Upload:
    """One alerting upload and when each of its views arrived (`time.monotonic()`)."""

    sent: float
    accepted: float | None = None
    on_websocket: float | None = None
    at_webhook: float | None = None


@dataclass
class Pipeline:
    """The running pipeline's parts and what this process saw of it."""

    ingest: Service
    worker: Service
    api: Service
    dsn: str
    devices: list[tuple[uuid.UUID, str]]
    http: httpx.AsyncClient
    uploads: dict[str, Upload] = field(default_factory=dict)
    sent_per_device: dict[int, int] = field(default_factory=dict)
    refused: int = 0

    def body(self, device: int, size: int, started: datetime) -> bytes:
        """The next upload of `device`: `size` fixes 1 s apart along the route, the first one
        speeding, 600 s of device time after its previous upload."""
        n = self.sent_per_device.get(device, 0)
        self.sent_per_device[device] = n + 1
        first = started + UPLOAD_SPACING * n + timedelta(seconds=device)
        events = []
        for i in range(size):
            t = min(1.0, (n * size + i) / 100_000)
            events.append(
                {
                    "recorded_at": (first + timedelta(seconds=i)).isoformat(),
                    "lat": ORIGIN[0] + (DESTINATION[0] - ORIGIN[0]) * t,
                    "lon": ORIGIN[1] + (DESTINATION[1] - ORIGIN[1]) * t,
                    "speed_kmh": 120.0 if i == 0 else 60.0,
                }
            )
        return orjson.dumps({"events": events})

    async def post(self, request_id: str, device: int, body: bytes) -> None:
        upload = self.uploads[request_id]
        _, key = self.devices[device]
        try:
            answer = await self.http.post(
                f"{self.ingest.url}/v1/telemetry",
                content=body,
                headers={
                    "X-Device-Key": key,
                    "X-Request-ID": request_id,
                    "Content-Type": "application/json",
                },
            )
        except httpx.HTTPError:
            self.refused += 1
            return
        if answer.status_code == 202:
            upload.accepted = time.monotonic()
        else:
            self.refused += 1

    def arrived(self, request_id: str | None, channel: str) -> None:
        upload = self.uploads.get(request_id or "")
        if upload is not None and getattr(upload, channel) is None:
            setattr(upload, channel, time.monotonic())


async def prepare(
    dsn: str, devices: int, webhook_url: str
) -> tuple[list[tuple[uuid.UUID, str]], str, datetime]:
    """A user with a live session, `devices` devices each on an active trip (80 km/h limit,
    500 m corridor, arrival far ahead) and a webhook endpoint; returns the devices, an access
    token and when the trips started (the device time uploads count from)."""
    started = datetime.now(UTC) - timedelta(days=7)
    conn = await asyncpg.connect(dsn)
    try:
        user_id = await insert_bench_user(conn)
        session_id = await conn.fetchval(
            "INSERT INTO auth_sessions (user_id, expires_at) "
            "VALUES ($1, now() + interval '1 day') RETURNING id",
            user_id,
        )
        made = await insert_bench_devices(conn, user_id, devices)
        for device_id, _ in made:
            await conn.execute(
                "INSERT INTO trips (owner_id, device_id, name, status, origin_lat, origin_lon,"
                " destination_lat, destination_lon, planned_start, planned_arrival,"
                " speed_limit_kmh, corridor_m, started_at)"
                " VALUES ($1, $2, 'e2e', 'active', $3, $4, $5, $6, $7, $8, $9, 500, $7)",
                user_id,
                device_id,
                *ORIGIN,
                *DESTINATION,
                started,
                started + timedelta(days=365),
                SPEED_LIMIT_KMH,
            )
        await conn.execute(
            "INSERT INTO webhook_endpoints (owner_id, url, secret) VALUES ($1, $2, $3)",
            user_id,
            webhook_url,
            "bench-webhook-secret",
        )
    finally:
        await conn.close()
    settings = CommonSettings(_env_file=None, secret_key=SECRET, access_token_ttl_seconds=86_400)
    token = create_access_token(settings, user_id=user_id, session_id=session_id, role="user")
    return made, token, started


async def subscribe(pipeline: Pipeline, token: str, opened: asyncio.Event) -> None:
    """The WebSocket subscriber: note when each upload's alert arrives; answer pings."""
    url = pipeline.api.url.replace("http://", "ws://", 1) + "/v1/alerts/ws"
    async with connect(url, additional_headers={"Authorization": f"Bearer {token}"}) as socket:
        opened.set()
        async for raw in socket:
            message = json.loads(raw)
            if message.get("type") == "ping":
                await socket.send('{"type":"pong"}')
            elif message.get("type") == "alert.raised":
                pipeline.arrived(message["alert"].get("request_id"), "on_websocket")


async def pending(dsn: str) -> int:
    """The pipeline's backlog: batches and webhook deliveries not yet done. The deliveries
    count too: a step that outran the worker leaves them queued after its batches, and they
    would otherwise be worked off during the next measurement."""
    conn = await asyncpg.connect(dsn)
    try:
        count: int = await conn.fetchval(
            "SELECT (SELECT count(*) FROM telemetry_batches WHERE status = 'pending')"
            " + (SELECT count(*) FROM webhook_deliveries WHERE status = 'pending')"
        )
        return count
    finally:
        await conn.close()


async def send(
    pipeline: Pipeline, rate: float, seconds: float, size: int, started: datetime
) -> list[str]:
    """Post uploads open loop at `rate` per second for `seconds`; return their request IDs."""
    ids, tasks = [], []
    t0 = time.monotonic()
    n = 0
    while (due := t0 + n / rate) < t0 + seconds:
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        device = n % len(pipeline.devices)
        request_id = f"e2e-{uuid.uuid4().hex}"
        pipeline.uploads[request_id] = Upload(sent=time.monotonic())
        tasks.append(
            asyncio.create_task(
                pipeline.post(request_id, device, pipeline.body(device, size, started))
            )
        )
        ids.append(request_id)
        n += 1
    await asyncio.gather(*tasks)
    return ids


async def ramp(pipeline: Pipeline, args: argparse.Namespace, started: datetime) -> float:
    """The highest rate (uploads/s) of the ramp that the pipeline kept up with."""
    rate, kept = args.start_rate, 0.0
    while rate <= args.max_rate:
        refused = pipeline.refused
        ids = await send(pipeline, rate, args.step_seconds, args.batch_size, started)
        await asyncio.sleep(1.0)
        backlog = await pending(pipeline.dsn)
        lag = percentile(await processing_times(pipeline.dsn, ids), 99)
        ok = (
            pipeline.refused == refused
            and backlog < max(1.0, rate / 2)
            and lag < RAMP_MAX_PROCESSING_P99_S
        )
        print(
            f"ramp {rate:7.1f} uploads/s ({rate * args.batch_size:8.0f} events/s): "
            f"{backlog} batches and deliveries pending 1 s after, accepted -> processed p99 "
            f"{lag * 1000:.0f} ms, {pipeline.refused - refused} not accepted -> "
            f"{'kept up' if ok else 'fell behind'}",
            flush=True,
        )
        await drain(pipeline.dsn, 60)
        if not ok:
            break
        kept = rate
        rate *= 1.5
    return kept


async def processing_times(dsn: str, ids: list[str]) -> list[float]:
    """`processed_at - received_at` of the batches of uploads `ids` processed so far, sorted."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT extract(epoch FROM processed_at - received_at) FROM telemetry_batches"
            " WHERE request_id = ANY($1::varchar[]) AND processed_at IS NOT NULL",
            ids,
        )
    finally:
        await conn.close()
    return sorted(float(seconds) for (seconds,) in rows)


async def drain(dsn: str, timeout: float) -> None:
    """Wait until no batch or delivery is pending (at most `timeout` seconds)."""
    deadline = time.monotonic() + timeout
    while True:
        if not await pending(dsn) or time.monotonic() > deadline:
            return
        await asyncio.sleep(0.2)


async def redis_probe(redis_url: str, stop_probe: asyncio.Event) -> list[float]:
    """Round trips of a bare Redis publish -> subscribe, one every 50 ms until `stop_probe`."""
    channel = f"bench:e2e:probe:{uuid.uuid4().hex[:8]}"
    publisher, subscriber = Redis.from_url(redis_url), Redis.from_url(redis_url)
    pubsub = subscriber.pubsub()
    await pubsub.subscribe(channel)
    await pubsub.get_message(timeout=1.0)  # The subscription's confirmation.
    trips: list[float] = []
    try:
        while not stop_probe.is_set():
            sent = time.monotonic()
            await publisher.publish(channel, b"x")
            message = None
            while message is None and time.monotonic() - sent < 5:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5)
            if message is not None:
                trips.append(time.monotonic() - sent)
            await asyncio.sleep(0.05)
    finally:
        await pubsub.aclose()
        await publisher.aclose()
        await subscriber.aclose()
    return trips


@dataclass
class Phase:
    """What one measured phase gave."""

    name: str
    rate: float
    accepted: list[float]
    websocket: list[float]
    webhook: list[float]
    redis: list[float]
    processed: list[float]
    """Each batch's `processed_at - received_at` (accepted -> processed, Postgres's clock)."""
    missing_websocket: int
    missing_webhook: int
    cpu: dict[str, float]
    events: int


async def measure(
    pipeline: Pipeline,
    name: str,
    rate: float,
    args: argparse.Namespace,
    started: datetime,
    redis_url: str,
) -> Phase:
    """Uploads at `rate` for `--measure-seconds`, then until their alerts arrive (10 s at
    most): latencies of each view, and the CPU the pipeline spent."""
    conn = await asyncpg.connect(pipeline.dsn)
    try:
        backends_before = await database_backends(conn)
        cpu_before = {
            "ingest": cpu_seconds(pipeline.ingest.process.pid),
            "worker": cpu_seconds(pipeline.worker.process.pid),
        }
        stop_probe = asyncio.Event()
        probe = asyncio.create_task(redis_probe(redis_url, stop_probe))
        ids = await send(pipeline, rate, args.measure_seconds, args.batch_size, started)
        stop_probe.set()
        await drain(pipeline.dsn, 60)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            waiting = [u for u in (pipeline.uploads[i] for i in ids) if u.accepted is not None]
            if all(u.on_websocket is not None and u.at_webhook is not None for u in waiting):
                break
            await asyncio.sleep(0.1)
        backends_after = await database_backends(conn)
        cpu = {
            "ingest": cpu_seconds(pipeline.ingest.process.pid) - cpu_before["ingest"],
            "worker": cpu_seconds(pipeline.worker.process.pid) - cpu_before["worker"],
            # Backends that came and went in between are missed; the pools keep theirs open.
            "postgres": sum(
                used - backends_before.get(pid, 0.0) for pid, used in backends_after.items()
            ),
        }
    finally:
        await conn.close()
    uploads = [pipeline.uploads[i] for i in ids]
    done = [u for u in uploads if u.accepted is not None]
    return Phase(
        name=name,
        rate=rate,
        accepted=sorted(u.accepted - u.sent for u in done if u.accepted is not None),
        websocket=sorted(u.on_websocket - u.sent for u in done if u.on_websocket is not None),
        webhook=sorted(u.at_webhook - u.sent for u in done if u.at_webhook is not None),
        redis=sorted(await probe),
        processed=await processing_times(pipeline.dsn, ids),
        missing_websocket=sum(1 for u in done if u.on_websocket is None),
        missing_webhook=sum(1 for u in done if u.at_webhook is None),
        cpu=cpu,
        events=len(done) * args.batch_size,
    )


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


def ms(values: list[float], p: float) -> str:
    return f"{percentile(values, p) * 1000:7.1f}"


@dataclass
class Floor:
    """CPU-seconds per million rows of the other benchmarks' baselines, in this run."""

    copy: float
    worker_writes: float


async def floors(database: ScratchDatabase, seconds: float, batch_size: int) -> Floor:
    """The worker's writes-only floor (`bench_worker.baseline`, on batches of `batch_size`
    events of its own data, 20,000 events in all) and the COPY loop (`bench_ingest.baseline`,
    one connection, `batch_size`-row copies for `seconds`) on a database of their own: CPU of
    this process (the client) and of the baselines' backends, per million rows."""
    dsn = database.dsn
    batches_of_floor = max(16, 20_000 // batch_size)
    made = await bench_worker.prepare(dsn, devices=8, batches=batches_of_floor, size=batch_size)
    _, events, worker_cpu = await bench_worker.baseline(dsn)
    devices = [(uuid.UUID(device_id), key) for device_id, key in made]
    start = datetime.now(UTC) - timedelta(hours=1)
    batches = [bench_ingest.make_events(batch_size, start, n) for n in range(len(devices))]
    copied = await bench_ingest.baseline(dsn, devices, batches, seconds, cpu=True)
    copy = copied.cpu_s / (copied.events_per_s * seconds) * 1e6
    return Floor(copy=copy, worker_writes=worker_cpu / events * 1e6)


def per_million(phase: Phase) -> dict[str, float]:
    return {name: used / phase.events * 1e6 for name, used in phase.cpu.items()}


async def run(
    args: argparse.Namespace, database: ScratchDatabase, floor_db: ScratchDatabase, workdir: Path
) -> int:
    receiver = WebhookReceiver()
    pipeline: Pipeline | None = None
    services: list[Service] = []
    listener: asyncio.Task[None] | None = None
    try:
        devices, token, started = await prepare(database.dsn, args.devices, receiver.url)
        env = database.service_env(
            ARQ_QUEUE_NAME=f"tripline:bench:e2e:{uuid.uuid4().hex[:8]}",
            DEVICE_RATE_LIMIT="100000000",
            LOST_SIGNAL_AFTER_SECONDS=str(10 * 365 * 86_400),  # Device times are days old.
            SMTP_HOST="127.0.0.1",
        )
        ingest = start_service("tripline-ingest", env, workdir)
        services.append(ingest)
        # The webhook receiver is on 127.0.0.1, which a staging worker refuses to call (the
        # SSRF guard): the worker runs as in tests, where private targets are allowed.
        worker = start_service("tripline-worker", {**env, "ENVIRONMENT": "test"}, workdir)
        services.append(worker)
        api = start_service("tripline-api", env, workdir)
        services.append(api)

        def on_webhook(request: object) -> None:
            body = json.loads(getattr(request, "body", b"{}") or b"{}")
            request_id = body.get("alert", {}).get("request_id")
            loop.call_soon_threadsafe(pipeline.arrived, request_id, "at_webhook")  # type: ignore[union-attr]

        loop = asyncio.get_running_loop()
        receiver.on_request = on_webhook
        receiver.start()
        async with httpx.AsyncClient(
            timeout=30, limits=httpx.Limits(max_connections=200, max_keepalive_connections=200)
        ) as http:
            pipeline = Pipeline(ingest, worker, api, database.dsn, devices, http)
            opened = asyncio.Event()
            listener = asyncio.create_task(subscribe(pipeline, token, opened))
            await asyncio.wait_for(opened.wait(), 20)
            print(
                f"{args.devices} devices on active trips, {args.batch_size} events per upload, "
                f"each raising one speeding alert (WebSocket + webhook)",
                flush=True,
            )
            await send(pipeline, args.start_rate, 2, args.batch_size, started)  # Warm up.
            await drain(database.dsn, 30)
            maximum = await ramp(pipeline, args, started)
            if maximum == 0:
                print("the pipeline did not keep up with the ramp's first rate")
                maximum = args.start_rate
            phases = [
                await measure(
                    pipeline, "half the maximum", maximum / 2, args, started, database.redis_url
                ),
                await measure(pipeline, "the maximum", maximum, args, started, database.redis_url),
            ]
        floor = await floors(floor_db, args.floor_seconds, args.batch_size)
        return report(args, maximum, phases, floor, pipeline.refused)
    finally:
        if listener is not None:
            listener.cancel()
            with contextlib.suppress(BaseException):
                await listener
        receiver.stop()
        for service in services:
            stop(service.process)


def row(label: str, values: list[float], note: str) -> str:
    """One latency line: p50 and p99 in ms, then `note`."""
    return f"  {label:<30} {ms(values, 50)} {ms(values, 99)}   ({note})"


def report(
    args: argparse.Namespace, maximum: float, phases: list[Phase], floor: Floor, refused: int
) -> int:
    print(
        f"\nmaximum sustainable rate: {maximum:.1f} uploads/s "
        f"({maximum * args.batch_size:.0f} events/s)"
    )
    print("\nlatency from the upload sent, ms     p50     p99   (uploads; alerts missing)")
    for phase in phases:
        print(f"at {phase.name} ({phase.rate:.1f} uploads/s):")
        print(row("baseline: 202 accepted", phase.accepted, f"{len(phase.accepted)}"))
        print(
            row(
                "alert on the WebSocket",
                phase.websocket,
                f"{len(phase.websocket)}; {phase.missing_websocket} missing",
            )
        )
        print(
            row(
                "alert at the webhook",
                phase.webhook,
                f"{len(phase.webhook)}; {phase.missing_webhook} missing",
            )
        )
        print(row("(batch accepted -> processed)", phase.processed, "in Postgres's clock"))
        print(row("bare Redis publish->receive", phase.redis, f"{len(phase.redis)} probes"))
    at_max = phases[-1]
    cost = per_million(at_max)
    total = sum(cost.values())
    floor_total = floor.copy + floor.worker_writes
    print(f"\nCPU-seconds per million events at the maximum ({at_max.events} events):")
    for name, value in cost.items():
        print(f"  {name:<9} {value:7.1f}")
    print(f"  {'total':<9} {total:7.1f}  ({total / floor_total:.1f}x the floor)")
    print(
        f"floor, same run: COPY loop {floor.copy:.1f} + worker writes only "
        f"{floor.worker_writes:.1f} = {floor_total:.1f} CPU-s per million rows"
    )
    half = phases[0]
    missing = sum(p.missing_websocket + p.missing_webhook for p in phases)
    checks = []
    for path, values in (("WebSocket", half.websocket), ("webhook", half.webhook)):
        p99 = percentile(values, 99)
        checks.append(
            (
                f"p99 upload -> {path} at half the maximum: {p99 * 1000:.0f} ms "
                f"(target < {TARGET_P99_S * 1000:.0f})",
                p99 < TARGET_P99_S,
            )
        )
    checks.append(
        (
            f"every accepted upload's alert arrived both ways: {missing} missing; "
            f"uploads not accepted: {refused}",
            refused == 0 and missing == 0,
        )
    )
    return verdict(checks)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=16, help="devices, each on a trip")
    parser.add_argument("--batch-size", type=int, default=50, help="events per upload")
    parser.add_argument("--start-rate", type=float, default=4, help="first rate of the ramp")
    parser.add_argument("--max-rate", type=float, default=400, help="the ramp stops there")
    parser.add_argument("--step-seconds", type=float, default=10, help="seconds per ramp step")
    parser.add_argument("--measure-seconds", type=float, default=15, help="seconds per phase")
    parser.add_argument("--floor-seconds", type=float, default=5, help="COPY floor's length")
    args = parser.parse_args()

    database = ScratchDatabase.create("e2e")
    floor_db = ScratchDatabase.create("e2e_floor")
    workdir = Path(tempfile.mkdtemp(prefix="bench-e2e-"))
    try:
        return asyncio.run(run(args, database, floor_db, workdir))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        floor_db.drop()
        database.drop()


if __name__ == "__main__":
    sys.exit(main())
