"""A fleet run: users signed up (or logged in), their webhook endpoints and alert streams, their
devices driving planned trips and uploading, and at the end the expected alerts beside the
received ones. Everything goes through the public HTTP interfaces of the API and ingest."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from tripline_devstack.fleet.client import (
    DeviceClient,
    FleetHTTPError,
    UserClient,
    iso,
    verification_token,
)
from tripline_devstack.fleet.driving import TripPlan, mischief_for, plan_trip
from tripline_devstack.fleet.expectations import (
    AlertKey,
    Rules,
    SentFix,
    TripRecord,
    expected_alerts,
)
from tripline_devstack.fleet.listeners import StreamListener, WebhookInbox
from tripline_devstack.fleet.report import CHANNELS, FleetReport, Traffic
from tripline_devstack.mailbox import DevMailServer
from tripline_devstack.webhook_receiver import ReceivedRequest, WebhookReceiver

MAIL_DOMAIN = "fleet.tripline.dev"
UPLOAD_ATTEMPTS = 3  # a batch whose upload fails this often (errors, refusals) is dropped
UPLOAD_RETRY_PAUSE_S = 2.0  # between two attempts of one batch
STOPPING_WAIT_S = 3.0  # the wait for a pending batch, and for late alerts, once asked to stop
STATUS_RETRY_PAUSE_S = 0.5  # before asking again for a batch's status after a failed request


@dataclass(frozen=True)
class FleetConfig:
    """How big the fleet is, where it drives, and how fast."""

    api_url: str = "http://127.0.0.1:8000"
    ingest_url: str = "http://127.0.0.1:8002"
    devices: int = 3
    users: int = 1
    """Users to sign up (their confirmation mail must reach `mailbox_port`)."""
    logins: tuple[tuple[str, str], ...] = ()
    """Existing accounts (email, password) to use instead of signing up."""
    mailbox_port: int | None = None
    trips_per_device: int = 1
    """0: keep driving trip after trip until stopped."""
    seed: int = 1
    time_scale: float = 1.0
    """Device seconds per wall-clock second."""
    batch_fixes: int = 5
    legs: int = 3
    speed_limit_kmh: float = 50.0
    corridor_m: float = 60.0
    rules: Rules = field(default_factory=Rules)
    max_gap_s: float = 30.0
    max_ahead_s: float = 240.0
    """Device time never runs further ahead of the server's (ingest refuses 300 s by default)."""
    pause_between_trips_s: float = 20.0
    in_order: bool = True
    """A device uploads its next batch once its last one is processed, so that the worker
    judges a trip's batches in the order the fleet expects them judged (ARQ runs jobs
    concurrently: two batches of one device in the queue at once may run in either order)."""
    webhook_port: int | None = None
    webhook_host: str = "127.0.0.1"
    webhook_base_url: str | None = None
    """How the deployment reaches the receiver; default http://<webhook_host>:<port>."""
    webhook_log: Path | None = None
    finish_wait_s: float = 30.0
    """How long a trip's last batch may stay pending before the device goes on (uploads its
    next batch, or completes the trip); the chaos soak waits out its faults' recoveries."""
    settle_s: float = 30.0
    summary_every_s: float = 30.0
    report_path: Path | None = None


@dataclass
class Member:
    """One user of the fleet and what listens on their behalf."""

    client: UserClient
    listener: StreamListener
    webhook: WebhookInbox | None = None


class Fleet:
    """One run of the simulator; `run()` drives until done or `stop` is set."""

    def __init__(
        self,
        config: FleetConfig,
        stop: asyncio.Event,
        log: Callable[[str], None],
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        """`transport`: how the fleet's HTTP requests go out (the chaos soak records each one);
        default httpx's own."""
        self.config = config
        self.stop = stop
        self.finish = asyncio.Event()
        """Set: devices start no new trip, but drive the ones under way to their end (a stop
        that leaves nothing half done, unlike `stop`)."""
        self.log = log
        self.traffic = Traffic()
        self.records: list[TripRecord] = []
        self.trip_names: dict[str, str] = {}
        self.members: list[Member] = []
        self.hooks: dict[str, WebhookInbox] = {}  # by the path of each user's endpoint
        self.receiver: WebhookReceiver | None = None
        self.mailbox: DevMailServer | None = None
        self.loop = asyncio.get_running_loop()
        self.http = httpx.AsyncClient(
            timeout=15.0,
            trust_env=not _is_local(config.api_url, config.ingest_url),
            transport=transport,
        )
        self.tasks: list[asyncio.Task[None]] = []
        self.last_batch: dict[str, str] = {}  # each trip's last accepted batch, by trip id
        self.accepted: dict[str, int] = {}
        """Every batch ingest acknowledged with 202: its id -> the fixes it carried."""

    # -- the run ---------------------------------------------------------------------------

    async def run(self) -> FleetReport:
        """Set up, drive, wait for the alerts to arrive, report."""
        try:
            await self._set_up()
            users = len(self.members)
            self.log(
                f"driving {self.config.devices} devices for {users} user{'s' * (users != 1)} "
                f"(seed {self.config.seed}, {self.config.time_scale:g}x)"
            )
            summaries = asyncio.create_task(self._summaries())
            await self._drive_all()
            summaries.cancel()
            await self._settle()
            report = await self.report()
            self.log(f"{'matches' if report.matches else 'DIFFERS'}: {report.summary()}")
            if self.config.report_path is not None:
                document = json.dumps(report.as_json(), indent=2)
                self.config.report_path.write_text(document + "\n")
            return report
        finally:
            for task in self.tasks:
                task.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)
            await self.http.aclose()
            if self.receiver is not None:
                self.receiver.stop()
            if self.mailbox is not None:
                self.mailbox.stop()

    async def _set_up(self) -> None:
        config = self.config
        self.receiver = WebhookReceiver(
            config.webhook_port, on_request=self._on_webhook, host=config.webhook_host
        )
        self.receiver.start()
        if config.webhook_log is not None:
            config.webhook_log.parent.mkdir(parents=True, exist_ok=True)
        if not config.logins:
            if config.mailbox_port is None:
                raise SystemExit("signing up needs --mailbox-port (or use --login)")
            self.mailbox = DevMailServer(config.mailbox_port)
            self.mailbox.start()
        accounts = list(config.logins) or [
            (f"fleet-{secrets.token_hex(4)}-{n + 1}@{MAIL_DOMAIN}", secrets.token_urlsafe(18))
            for n in range(config.users)
        ]
        for n, (email, password) in enumerate(accounts):
            client = UserClient(self.http, config.api_url, email, password)
            if not config.logins:
                await self._sign_up(client, f"Fleet user {n + 1}")
            await client.log_in()
            member = Member(client, StreamListener(client, self._on_stream_alert))
            member.webhook = await self._register_webhook(client, n)
            self.members.append(member)
            self.tasks += [
                asyncio.create_task(member.listener.run_sse()),
                asyncio.create_task(member.listener.run_websocket()),
            ]
        self.traffic.users = len(self.members)
        for member in self.members:
            await member.listener.sse_open.wait()
            await member.listener.websocket_open.wait()

    async def _sign_up(self, client: UserClient, name: str) -> None:
        assert self.mailbox is not None
        await client.sign_up(name)
        mails = await asyncio.to_thread(self.mailbox.wait_for, client.email, 1, 60.0)
        token = next((t for link in mails[-1].links if (t := verification_token(link))), None)
        if token is None:
            raise FleetHTTPError(f"no confirmation link in the mail to {client.email}")
        await client.verify_email(token)

    async def _register_webhook(self, client: UserClient, n: int) -> WebhookInbox:
        assert self.receiver is not None
        host = self.config.webhook_host
        if host in ("0.0.0.0", "::"):  # noqa: S104 - listening everywhere: reached on loopback
            host = "127.0.0.1"
        base = self.config.webhook_base_url or f"http://{host}:{self.receiver.port}"
        path = f"/hooks/fleet-{n + 1}"
        if self.config.logins:  # endpoints of an earlier run: theirs are our receiver's paths
            for endpoint in await client.pages("/v1/webhooks"):
                if endpoint["url"] == base + path:
                    await client.call("DELETE", f"/v1/webhooks/{endpoint['id']}", 204)
        created = await client.call("POST", "/v1/webhooks", 201, json={"url": base + path})
        inbox = WebhookInbox(str(created["secret"]))
        self.hooks[path] = inbox
        return inbox

    # -- devices and trips -----------------------------------------------------------------

    async def _drive_all(self) -> None:
        drivers = []
        for index in range(self.config.devices):
            member = self.members[index % len(self.members)]
            device_id, key = await self._device(member.client, f"Fleet van {index + 1}")
            device = DeviceClient(self.http, self.config.ingest_url, key)
            drivers.append(
                asyncio.create_task(self._drive_device(index, member, device_id, device))
            )
        self.traffic.devices = len(drivers)
        await asyncio.gather(*drivers)

    async def _device(self, user: UserClient, name: str) -> tuple[str, str]:
        """A device of `user` and its key: registered now, or (an existing account's device
        from an earlier run) found by name, its key rotated and its leftover trip closed."""
        if self.config.logins:
            for device in await user.pages("/v1/devices"):
                if device["name"] == name:
                    rotated = await user.call("POST", f"/v1/devices/{device['id']}/rotate-key", 200)
                    for trip in await user.pages(
                        "/v1/trips", status="active", device_id=device["id"]
                    ):
                        await user.call(
                            "PATCH", f"/v1/trips/{trip['id']}", 200, json={"status": "completed"}
                        )
                    return str(device["id"]), str(rotated["api_key"])
        created = await user.call("POST", "/v1/devices", 201, json={"name": name})
        return str(created["id"]), str(created["api_key"])

    async def _drive_device(
        self, index: int, member: Member, device_id: str, device: DeviceClient
    ) -> None:
        config = self.config
        number = 0
        while (
            not self.stop.is_set()
            and not self.finish.is_set()
            and (config.trips_per_device == 0 or number < config.trips_per_device)
        ):
            plan = plan_trip(
                f"{config.seed}:{index}:{number}",
                f"Fleet van {index + 1} · trip {number + 1}",
                mischief_for(config.seed, index, number),
                legs=config.legs,
                batch_fixes=config.batch_fixes,
                speed_limit_kmh=config.speed_limit_kmh,
                corridor_m=config.corridor_m,
                late_grace_s=config.rules.late_grace_s,
                max_gap_s=min(config.max_gap_s, config.rules.lost_signal_after_s / 2),
            )
            record: TripRecord | None = None
            try:
                record = await self._start_trip(member.client, device_id, plan)
                await self._drive_trip(device, plan, record)
                await self._finish_trip(member.client, device, record)
            except (FleetHTTPError, httpx.HTTPError) as error:
                self.log(f"{plan.name}: {error}")
                await self._pause(5.0)
                if record is not None:
                    # Its fixes count for the trip active when the worker processes them: a
                    # batch still pending would land in the device's next trip.
                    await self._processed(device, record.trip_id)
                await self._close_active_trips(member.client, device_id)
            number += 1
            if config.trips_per_device == 0 or number < config.trips_per_device:
                await self._pause(config.pause_between_trips_s)

    async def _close_active_trips(self, user: UserClient, device_id: str) -> None:
        """Complete the device's trip left active by a failure (else the device could start no
        other, and the trip would end in a lost-signal alert); a failure here is logged."""
        try:
            for trip in await user.pages("/v1/trips", status="active", device_id=device_id):
                await user.call(
                    "PATCH", f"/v1/trips/{trip['id']}", 200, json={"status": "completed"}
                )
        except (FleetHTTPError, httpx.HTTPError) as error:
            self.log(f"the active trip of device {device_id} could not be completed: {error}")

    async def _start_trip(self, user: UserClient, device_id: str, plan: TripPlan) -> TripRecord:
        now = datetime.now(UTC)
        arrival = now + timedelta(seconds=plan.arrival_offset_s)
        origin, destination = plan.lat_lon(0), plan.lat_lon(len(plan.route.points) - 1)
        created = await user.call(
            "POST",
            "/v1/trips",
            201,
            json={
                "name": plan.name,
                "device_id": device_id,
                "planned_start": iso(arrival - timedelta(seconds=plan.planned_duration_s)),
                "planned_arrival": iso(arrival),
                "origin_lat": origin[0],
                "origin_lon": origin[1],
                "destination_lat": destination[0],
                "destination_lon": destination[1],
                "waypoints": [{"lat": lat, "lon": lon} for lat, lon in plan.waypoints],
                "speed_limit_kmh": plan.speed_limit_kmh,
                "corridor_m": plan.corridor_m,
            },
        )
        trip_id = str(created["id"])
        active = await user.call("PATCH", f"/v1/trips/{trip_id}", 200, json={"status": "active"})
        self.traffic.trips += 1
        self.trip_names[trip_id] = plan.name
        record = TripRecord(
            trip_id=trip_id,
            plane=plan.plane,
            route=plan.route,
            started_at=datetime.fromisoformat(active["started_at"]),
            planned_arrival=datetime.fromisoformat(active["planned_arrival"]),
            speed_limit_kmh=active["speed_limit_kmh"],
            corridor_m=active["corridor_m"],
            batches=[],
        )
        self.records.append(record)
        mischief = [name for name, on in vars(plan.mischief).items() if on]
        self.log(
            f"{plan.name} started: {plan.route.length_m / 1000:.1f} km, "
            f"{plan.duration_s:.0f} s, {', '.join(mischief) or 'uneventful'}"
        )
        return record

    async def _drive_trip(self, device: DeviceClient, plan: TripPlan, record: TripRecord) -> None:
        """Upload the plan's batches as the device's clock reaches each one's last fix."""
        config = self.config
        # Fix times are whole seconds from the second after the start (the server's clock).
        t0 = datetime.fromtimestamp(math.ceil(record.started_at.timestamp()) + 1, UTC)
        server_offset = record.started_at.timestamp() - time.time()
        wall_start = time.monotonic()
        self.traffic.signal_gaps += len(plan.gaps)
        for number, upload in enumerate(plan.uploads):
            at_s = plan.fixes[upload.last].at_s
            device_time = t0.timestamp() + at_s
            wait = max(
                wall_start + at_s / config.time_scale - time.monotonic(),
                device_time - config.max_ahead_s - (time.time() + server_offset),
            )
            if wait > 0 and await self._pause(wait):
                return
            if config.in_order:
                await self._processed(device, record.trip_id)
            fixes = [
                SentFix(
                    t0 + timedelta(seconds=fix.at_s),
                    fix.lat,
                    fix.lon,
                    fix.speed_kmh,
                    fix.accuracy_m,
                )
                for fix in plan.fixes[upload.first : upload.last + 1]
            ]
            batch_id = f"{record.trip_id[:8]}-{number}"
            accepted = None
            for attempt in range(UPLOAD_ATTEMPTS):
                try:
                    accepted = await device.upload(
                        batch_id, fixes, gzipped=upload.gzip, resend=upload.resend_after_timeout
                    )
                    break
                except (httpx.HTTPError, FleetHTTPError) as error:
                    # Sent again with the same client_batch_id: stored once whatever happened.
                    if attempt == UPLOAD_ATTEMPTS - 1:
                        self.log(f"{plan.name}: batch {batch_id} not sent: {error!r}")
                    else:
                        await asyncio.sleep(UPLOAD_RETRY_PAUSE_S)
            if accepted is None:
                continue
            record.batches.append(fixes)
            self._count(fixes, upload.gzip, accepted.resent, accepted.timed_out, accepted.duplicate)
            self.last_batch[record.trip_id] = accepted.batch_id
            self.accepted[accepted.batch_id] = len(fixes)

    def _count(
        self, fixes: list[SentFix], gzipped: bool, resent: bool, timed_out: bool, duplicate: bool
    ) -> None:
        self.traffic.batches += 1
        self.traffic.events += len(fixes)
        self.traffic.gzip_batches += gzipped
        self.traffic.resent_batches += resent
        self.traffic.timeouts += timed_out
        self.traffic.duplicates_acknowledged += duplicate

    async def _finish_trip(
        self, user: UserClient, device: DeviceClient, record: TripRecord
    ) -> None:
        """Once the trip's last batch is processed (its fixes count only while the trip is
        active), complete the trip."""
        await self._processed(device, record.trip_id)
        await user.call("PATCH", f"/v1/trips/{record.trip_id}", 200, json={"status": "completed"})
        self.traffic.trips_completed += 1
        self.log(f"{self.trip_names[record.trip_id]} completed")

    async def _processed(self, device: DeviceClient, trip_id: str) -> None:
        """Wait (at most `finish_wait_s`, less once stopping) until the trip's last accepted
        batch is no longer pending. A status request that fails is asked again: ingest may be
        briefly unavailable."""
        last = self.last_batch.get(trip_id)
        wait = STOPPING_WAIT_S if self.stop.is_set() else self.config.finish_wait_s
        deadline = time.monotonic() + wait
        while last is not None and time.monotonic() < deadline:
            try:
                if await device.batch_status(last) != "pending":
                    return
            except (FleetHTTPError, httpx.HTTPError):
                await asyncio.sleep(STATUS_RETRY_PAUSE_S)
            await asyncio.sleep(0.1)
        if last is not None and not self.stop.is_set():
            self.log(f"{self.trip_names[trip_id]}: batch {last} still pending; going on")

    async def _pause(self, seconds: float) -> bool:
        """Sleep up to `seconds`; True if a stop was requested meanwhile."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop.wait(), seconds)
        return self.stop.is_set()

    # -- what arrives ------------------------------------------------------------------------

    def _on_stream_alert(self, channel: str, alert: dict[str, Any]) -> None:
        if channel == "sse":
            name = self.trip_names.get(str(alert["trip_id"]), str(alert["trip_id"]))
            self.log(
                f"alert on the stream: {alert['rule']} ({alert['severity']}) {name}: "
                f"{alert['message']}"
            )

    def _on_webhook(self, request: ReceivedRequest) -> None:
        """Called in the receiver's thread: hand the delivery to the event loop."""
        self.loop.call_soon_threadsafe(self._webhook_received, request)

    def _webhook_received(self, request: ReceivedRequest) -> None:
        inbox = self.hooks.get(request.path)
        alert = inbox.receive(request) if inbox is not None else None
        line = {
            "received_at": datetime.now(UTC).isoformat(),
            "path": request.path,
            "delivery": request.headers.get("X-Tripline-Delivery"),
            "signature_valid": alert is not None,
            "alert": alert,
        }
        if self.config.webhook_log is not None:
            with self.config.webhook_log.open("a") as log:
                log.write(json.dumps(line) + "\n")
        if alert is not None:
            self.log(f"webhook delivered to {request.path}: {alert['rule']} {alert['id']}")

    def expected(self) -> list[AlertKey]:
        """The alerts the rules must raise for everything sent so far."""
        return [
            key for record in self.records for key in expected_alerts(record, self.config.rules)
        ]

    async def _settle(self) -> None:
        """Wait (up to `settle_s`) until every channel holds as many alerts as expected."""
        want = len(self.expected())
        settle = (
            min(self.config.settle_s, STOPPING_WAIT_S)
            if self.stop.is_set()
            else self.config.settle_s
        )
        deadline = time.monotonic() + settle
        while time.monotonic() < deadline:
            counts = self._channel_alerts()
            if all(len(counts[channel]) >= want for channel in ("sse", "websocket", "webhook")):
                return
            await asyncio.sleep(0.2)

    def _channel_alerts(self) -> dict[str, list[dict[str, Any]]]:
        ours = set(self.trip_names)
        channels: dict[str, list[dict[str, Any]]] = {"sse": [], "websocket": [], "webhook": []}
        for member in self.members:
            channels["sse"] += member.listener.sse.alerts.values()
            channels["websocket"] += member.listener.websocket.alerts.values()
            if member.webhook is not None:
                channels["webhook"] += member.webhook.alerts.alerts.values()
        return {
            channel: [alert for alert in alerts if str(alert["trip_id"]) in ours]
            for channel, alerts in channels.items()
        }

    async def report(self) -> FleetReport:
        """Expected alerts beside those raised (the API's list) and received on each channel."""
        ours = set(self.trip_names)
        raised = [
            alert
            for member in self.members
            for alert in await member.client.pages("/v1/alerts")
            if str(alert["trip_id"]) in ours
        ]
        received = {"raised": raised, **self._channel_alerts()}
        repeats = {
            "sse": sum(n - 1 for m in self.members for n in m.listener.sse.copies.values()),
            "websocket": sum(
                n - 1 for m in self.members for n in m.listener.websocket.copies.values()
            ),
            "webhook": sum(
                n - 1
                for m in self.members
                if m.webhook is not None
                for n in m.webhook.alerts.copies.values()
            ),
        }
        bad = sum(m.webhook.bad_signatures for m in self.members if m.webhook is not None)
        assert set(received) == set(CHANNELS)
        return FleetReport.build(self.traffic, self.expected(), received, repeats, bad)

    async def _summaries(self) -> None:
        """Every `summary_every_s`, one line: what was sent, what was expected and received."""
        while True:
            await asyncio.sleep(self.config.summary_every_s)
            with contextlib.suppress(FleetHTTPError, httpx.HTTPError):
                self.log((await self.report()).summary())


def _is_local(*urls: str) -> bool:
    """Whether every URL names this machine (then no proxy from the environment applies)."""
    return all(urlsplit(url).hostname in ("127.0.0.1", "localhost", "::1") for url in urls)


async def run_fleet(
    config: FleetConfig, stop: asyncio.Event | None = None, log: Callable[[str], None] = print
) -> FleetReport:
    """Run a fleet until its trips are done (or `stop` is set); its report."""
    fleet = Fleet(config, stop or asyncio.Event(), log)
    return await fleet.run()
