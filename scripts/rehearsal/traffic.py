"""Steady traffic through the Services, as real clients send it, and a ledger of what each of
them sent and saw: reads and writes on the API, uploads to ingest (some of them speeding, each
burst an alert the rules must raise once), operators' reads on admin, WebSocket subscribers that
reconnect when their replica drains and catch up from `GET /v1/alerts`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidHandshake, WebSocketException

from rehearsal.replicas import Cluster, Replica

# The demo route's start and end (scripts/seed.py's Berlin -> Wannsee): fixes stay near the start
# and on the line, so no corridor, arrival or late alert is due, only the speeding ones sent.
ORIGIN = (52.5200, 13.4050)
DESTINATION = (52.4560, 13.2900)
SPEED_LIMIT_KMH = 80
SPEEDING_KMH = 120.0
CRUISING_KMH = 50.0
FIXES_PER_BATCH = 3
# A request that takes longer is a failure (a client would give up); not a measurement.
REQUEST_TIMEOUT_SECONDS = 15.0


@dataclass(frozen=True)
class Outcome:
    """One request a client made: in which step, to which replica, what came back, how long."""

    step: str
    operation: str
    replica: str
    status: int | None
    error: str | None
    seconds: float

    @property
    def failed(self) -> bool:
        return self.error is not None


@dataclass
class Subscriber:
    """One WebSocket client of the demo user, across its reconnections."""

    name: str
    connections: int = 0
    live: set[str] = field(default_factory=set)
    caught_up: set[str] = field(default_factory=set)
    drops: list[str] = field(default_factory=list)
    """Why each connection ended (close codes, errors)."""

    @property
    def seen(self) -> set[str]:
        return self.live | self.caught_up


@dataclass
class Device:
    """A device of the demo user with its active trip, and the speeding bursts it sent."""

    id: str
    key: str
    trip_id: str
    bursts: int = 0
    last_burst: float = 0.0


@dataclass
class Ledger:
    """Everything the clients did and saw, by step."""

    step: str = "setup"
    outcomes: list[Outcome] = field(default_factory=list)
    batches: dict[str, int] = field(default_factory=dict)
    """Batch ID -> events, for every upload ingest accepted with 202."""
    created_trips: list[str] = field(default_factory=list)
    devices: list[Device] = field(default_factory=list)
    subscribers: list[Subscriber] = field(default_factory=list)


class Clients:
    """HTTP clients of the Services, one connection pool per replica (kept alive, as real
    clients keep them), each request recorded in the ledger."""

    def __init__(self, cluster: Cluster, ledger: Ledger) -> None:
        self.cluster = cluster
        self.ledger = ledger
        self._pools: dict[str, httpx.AsyncClient] = {}

    def _pool(self, replica: Replica) -> httpx.AsyncClient:
        pool = self._pools.get(replica.name)
        if pool is None:
            pool = httpx.AsyncClient(base_url=replica.url, timeout=REQUEST_TIMEOUT_SECONDS)
            self._pools[replica.name] = pool
        return pool

    async def request(
        self,
        component: str,
        operation: str,
        method: str,
        path: str,
        *,
        expect: tuple[int, ...] = (200,),
        **kwargs: Any,
    ) -> httpx.Response | None:
        """Send one request to a replica the Service picks; the response if its status is
        expected, else None (the failure is in the ledger)."""
        replica = self.cluster.service(component).pick()
        started = time.monotonic()
        status: int | None = None
        error: str | None = None
        response: httpx.Response | None = None
        try:
            response = await self._pool(replica).request(method, path, **kwargs)
            status = response.status_code
            if status not in expect:
                error = f"{status} {response.text[:300]}"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        self.ledger.outcomes.append(
            Outcome(
                self.ledger.step,
                operation,
                replica.name,
                status,
                error,
                time.monotonic() - started,
            )
        )
        return response if error is None else None

    async def aclose(self) -> None:
        await asyncio.gather(*(pool.aclose() for pool in self._pools.values()))


def fixes(at: datetime, speed_kmh: float, offset: int) -> list[dict[str, Any]]:
    """A batch of fixes one second apart ending at `at`, near the route's start."""
    step = (offset % 50) / 20_000
    return [
        {
            "recorded_at": (at - timedelta(seconds=FIXES_PER_BATCH - 1 - i)).isoformat(),
            "lat": ORIGIN[0] + (DESTINATION[0] - ORIGIN[0]) * step,
            "lon": ORIGIN[1] + (DESTINATION[1] - ORIGIN[1]) * step,
            "speed_kmh": speed_kmh,
            "accuracy_m": 5.0,
        }
        for i in range(FIXES_PER_BATCH)
    ]


async def paced(rate: float, stop: asyncio.Event, action: Callable[[int], Awaitable[None]]) -> None:
    """Call `action(n)` `rate` times a second until `stop`, each call awaited (one client)."""
    interval = 1 / rate
    n = 0
    next_at = time.monotonic()
    while not stop.is_set():
        await action(n)
        n += 1
        next_at += interval
        delay = next_at - time.monotonic()
        if delay > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
        else:
            next_at = time.monotonic()


@dataclass
class Traffic:
    """The demo user's and an operator's clients."""

    clients: Clients
    ledger: Ledger
    user_token: str
    operator_token: str
    alert_window_seconds: int
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def user(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.user_token}"}

    async def add_device(self, name: str, webhook_url: str | None) -> Device:
        """A device with an active trip on the demo route, through the API as a user does."""
        api = self.clients
        device = await api.request(
            "api", "create device", "POST", "/v1/devices", expect=(201,),
            json={"name": name}, headers=self.user,
        )  # fmt: skip
        assert device is not None, "the device could not be created"
        trip = await self.create_trip(device.json()["id"], name)
        assert trip is not None, "the trip could not be created"
        active = await api.request(
            "api", "start trip", "PATCH", f"/v1/trips/{trip}", json={"status": "active"},
            headers=self.user,
        )  # fmt: skip
        assert active is not None, "the trip could not be started"
        if webhook_url:
            hook = await api.request(
                "api", "add webhook", "POST", "/v1/webhooks", expect=(201,),
                json={"url": webhook_url}, headers=self.user,
            )  # fmt: skip
            assert hook is not None, "the webhook endpoint could not be added"
        # The first burst waits like the others: a burst is dated back to its window's start,
        # and fixes from before the trip started belong to no trip.
        added = Device(
            device.json()["id"], device.json()["api_key"], trip, last_burst=time.monotonic()
        )
        self.ledger.devices.append(added)
        return added

    async def create_trip(self, device_id: str, name: str) -> str | None:
        start = datetime.now(UTC)
        created = await self.clients.request(
            "api",
            "create trip",
            "POST",
            "/v1/trips",
            expect=(201,),
            json={
                "name": name,
                "device_id": device_id,
                "planned_start": start.isoformat(),
                "planned_arrival": (start + timedelta(hours=12)).isoformat(),
                "speed_limit_kmh": SPEED_LIMIT_KMH,
                "origin_lat": ORIGIN[0],
                "origin_lon": ORIGIN[1],
                "destination_lat": DESTINATION[0],
                "destination_lon": DESTINATION[1],
            },
            headers=self.user,
        )
        if created is None:
            return None
        trip_id = str(created.json()["id"])
        self.ledger.created_trips.append(trip_id)
        return trip_id

    async def upload(self, device: Device, n: int) -> None:
        """One batch: a speeding burst when the device's last one is two alert windows behind
        (so each burst is an alert of its own), cruising fixes otherwise."""
        now = time.monotonic()
        speeding = now - device.last_burst >= 2 * self.alert_window_seconds + FIXES_PER_BATCH
        at = datetime.now(UTC)
        if speeding:
            # The burst inside one clock window of the alert window's length: the previous
            # release's rule counts windows on the clock (one alert per window a burst touches),
            # this one slides them from the first fix; so both raise exactly one.
            window, seconds = self.alert_window_seconds, int(at.timestamp())
            last = seconds // window * window + FIXES_PER_BATCH - 1
            at = datetime.fromtimestamp(last if last <= seconds else last - window, UTC)
        events = fixes(at, SPEEDING_KMH if speeding else CRUISING_KMH, offset=n)
        response = await self.clients.request(
            "ingest",
            "upload",
            "POST",
            "/v1/telemetry",
            expect=(202,),
            json={"client_batch_id": uuid.uuid4().hex, "events": events},
            headers={"X-Device-Key": device.key},
        )
        if response is not None:
            self.ledger.batches[response.json()["batch_id"]] = len(events)
            if speeding:
                device.bursts += 1
                device.last_burst = now

    async def read(self, n: int) -> None:
        """The API's reads in turn: a trip list, one trip, the alert list."""
        device = self.ledger.devices[n % len(self.ledger.devices)]
        which = n % 3
        if which == 0:
            await self.clients.request(
                "api", "list trips", "GET", "/v1/trips", params={"limit": 20}, headers=self.user
            )
        elif which == 1:
            await self.clients.request(
                "api", "get trip", "GET", f"/v1/trips/{device.trip_id}", headers=self.user
            )
        else:
            await self.clients.request(
                "api", "list alerts", "GET", "/v1/alerts", params={"limit": 20}, headers=self.user
            )

    async def write(self, n: int) -> None:
        """A planned trip for one of the devices (a write with a row and its waypoints)."""
        device = self.ledger.devices[n % len(self.ledger.devices)]
        await self.create_trip(device.id, f"Planned {n}")

    async def operate(self, n: int) -> None:
        """An operator's reads on admin: the overview, the user list."""
        headers = {"Authorization": f"Bearer {self.operator_token}"}
        if n % 2 == 0:
            await self.clients.request("admin", "overview", "GET", "/v1/overview", headers=headers)
        else:
            await self.clients.request(
                "admin", "list users", "GET", "/v1/users", params={"limit": 20}, headers=headers
            )

    async def alert_ids(self, since: datetime) -> set[str]:
        """The demo user's alerts raised after `since`, newest first, page by page (what a
        WebSocket client reads to catch up)."""
        found: set[str] = set()
        params: dict[str, Any] = {"limit": 100}
        while True:
            page = await self.clients.request(
                "api", "catch up", "GET", "/v1/alerts", params=params, headers=self.user
            )
            if page is None:
                return found
            body = page.json()
            items = body["items"]
            found.update(a["id"] for a in items if datetime.fromisoformat(a["raised_at"]) > since)
            if not body.get("next_cursor") or (
                items and datetime.fromisoformat(items[-1]["raised_at"]) <= since
            ):
                return found
            params = {"limit": 100, "cursor": body["next_cursor"]}

    async def subscribe(self, subscriber: Subscriber, started: datetime) -> None:
        """Hold a WebSocket open on a replica the Service picks; when it closes (its replica
        drains: 1001), connect again and catch up from the REST list, as the AsyncAPI document
        tells clients to."""
        while not self.stop.is_set():
            try:
                replica = self.clients.cluster.service("api").pick()
            except LookupError:
                await asyncio.sleep(0.2)
                continue
            url = replica.url.replace("http://", "ws://") + "/v1/alerts/ws"
            try:
                async with connect(url, additional_headers=self.user, open_timeout=10) as socket:
                    subscriber.connections += 1
                    if subscriber.connections > 1:
                        # Subscribed again first, then the gap: a few seconds before the first
                        # alert missed could have committed late (operations.md).
                        subscriber.caught_up |= await self.alert_ids(started)
                    async for message in socket:
                        event = json.loads(message)
                        if event.get("type") == "alert.raised":
                            subscriber.live.add(event["alert"]["id"])
                    subscriber.drops.append(f"closed {socket.close_code} {socket.close_reason}")
            except (OSError, InvalidHandshake, WebSocketException, TimeoutError) as exc:
                subscriber.drops.append(f"{type(exc).__name__}: {exc}")
            if not self.stop.is_set():
                await asyncio.sleep(0.2)

    def run(self, rates: Mapping[str, float], subscribers: int) -> list[asyncio.Task[None]]:
        """Start every client; they run until `stop`. The request loops come first in the list,
        then the `subscribers` WebSocket clients (they run until cancelled)."""
        started = datetime.now(UTC) - timedelta(minutes=1)
        tasks = [
            asyncio.create_task(paced(rates["reads"], self.stop, self.read)),
            asyncio.create_task(paced(rates["writes"], self.stop, self.write)),
            asyncio.create_task(paced(rates["admin"], self.stop, self.operate)),
        ]
        for device in self.ledger.devices:

            async def upload(n: int, device: Device = device) -> None:
                await self.upload(device, n)

            tasks.append(asyncio.create_task(paced(rates["uploads"], self.stop, upload)))
        for i in range(subscribers):
            subscriber = Subscriber(f"ws-{i}")
            self.ledger.subscribers.append(subscriber)
            tasks.append(asyncio.create_task(self.subscribe(subscriber, started)))
        return tasks
