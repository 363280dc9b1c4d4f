"""The per-process connection manager: one Redis pattern subscription, fanned out to sockets.

Each API process runs exactly one listener on `tripline:alerts:*` (started in the lifespan) and
keeps, per user, the subscribers (WebSocket connections and SSE streams) open on this process.
Each subscriber has a bounded queue: a client too slow to drain it is disconnected rather than
letting memory grow. Pub/sub is at-most-once; Postgres is the record clients catch up from.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import defaultdict
from dataclasses import dataclass, field

import structlog
from redis.asyncio import Redis

from tripline_api.alerts_stream.closes import SERVER_SHUTTING_DOWN, TOO_SLOW, StreamClose
from tripline_common.messaging import AlertEvent, listen_alerts, published_trace_ids
from tripline_common.web import Lifecycle

log = structlog.get_logger("tripline.alerts_stream")

RECONNECT_DELAY_SECONDS = 1.0
TRANSPORTS = ("websocket", "sse")


@dataclass(eq=False)
class Subscriber:
    """One open WebSocket or SSE stream of a user on this process."""

    user_id: uuid.UUID
    queue: asyncio.Queue[AlertEvent | None]
    transport: str = "websocket"  # Or "sse": labels the connections gauge.
    # Set when the manager wants the subscriber gone, with the close that says why.
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    closed_with: StreamClose = SERVER_SHUTTING_DOWN

    @property
    def close_code(self) -> int:
        return self.closed_with.code

    def close(self, close: StreamClose) -> None:
        if not self.closed.is_set():
            self.closed_with = close
            self.closed.set()
            # Wake a consumer blocked on the queue.
            with contextlib.suppress(asyncio.QueueFull):
                self.queue.put_nowait(None)


class ConnectionManager:
    """Tracks subscribers per user and feeds them from one Redis pattern subscription."""

    def __init__(
        self,
        redis: Redis,
        lifecycle: Lifecycle,
        queue_size: int = 100,
        max_streams: int = 1000,
    ) -> None:
        self.redis = redis
        self.lifecycle = lifecycle
        self.queue_size = queue_size
        self.max_streams = max_streams
        self.closing = False
        # Places taken by streams on this process, from admission to their end (a stream takes
        # its place before it subscribes, so concurrent openings cannot overshoot the cap).
        self.places = 0
        self._by_user: dict[uuid.UUID, set[Subscriber]] = defaultdict(set)
        self._tasks: list[asyncio.Task[None]] = []

    # Lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._listen(), name="alerts-listener"),
            asyncio.create_task(self._watch_shutdown(), name="alerts-shutdown-watch"),
        ]

    async def stop(self) -> None:
        """Close every subscriber with 1001 and stop listening."""
        self.close_all()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    def close_all(self) -> None:
        self.closing = True
        for subscribers in list(self._by_user.values()):
            for subscriber in list(subscribers):
                subscriber.close(SERVER_SHUTTING_DOWN)

    async def _watch_shutdown(self) -> None:
        # The signal handler flips `shutting_down` when the drain starts, before uvicorn stops
        # and long before the lifespan's shutdown hooks: close streams then, with 1001.
        # `Lifecycle` is a plain flag (set from a signal handler), hence the polling.
        while not self.lifecycle.shutting_down:  # noqa: ASYNC110
            await asyncio.sleep(0.2)
        self.close_all()

    async def _listen(self) -> None:
        while True:
            try:
                async for event in listen_alerts(self.redis):
                    self.dispatch(event)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis down: retry; clients catch up from Postgres.
                log.warning("alerts_listener_failed", error=str(exc))
                await asyncio.sleep(RECONNECT_DELAY_SECONDS)

    # Admission ---------------------------------------------------------------------------

    def take_place(self) -> bool:
        """Take one of this process's `max_streams` places; False when all are taken."""
        if self.places >= self.max_streams:
            return False
        self.places += 1
        return True

    def give_place(self) -> None:
        self.places -= 1

    # Subscribers -------------------------------------------------------------------------

    def subscribe(self, user_id: uuid.UUID, transport: str = "websocket") -> Subscriber:
        subscriber = Subscriber(user_id, asyncio.Queue(maxsize=self.queue_size), transport)
        self._by_user[user_id].add(subscriber)
        if self.closing:
            subscriber.close(SERVER_SHUTTING_DOWN)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        subscribers = self._by_user.get(subscriber.user_id)
        if subscribers is not None:
            subscribers.discard(subscriber)
            if not subscribers:
                del self._by_user[subscriber.user_id]

    def connections(self, user_id: uuid.UUID | None = None) -> int:
        """How many subscribers are open (of one user, or in all)."""
        if user_id is not None:
            return len(self._by_user.get(user_id, ()))
        return sum(len(subscribers) for subscribers in self._by_user.values())

    def connections_by_transport(self) -> dict[str, int]:
        """How many subscribers are open, per transport (`websocket`, `sse`)."""
        counts = dict.fromkeys(TRANSPORTS, 0)
        for subscribers in self._by_user.values():
            for subscriber in subscribers:
                counts[subscriber.transport] += 1
        return counts

    def dispatch(self, event: AlertEvent) -> None:
        """Hand an event to every subscriber of its owner on this process."""
        subscribers = list(self._by_user.get(event.alert.owner_id, ()))
        if subscribers:
            # The alert's correlation ID continues here: one grep finds the push too. No span
            # records here (each delivery has its own, later): the line carries the IDs of the
            # publish span, so it shows in the alert's trace.
            log.info(
                "alert_pushed",
                request_id=event.alert.request_id,
                alert_id=str(event.alert.id),
                subscribers=len(subscribers),
                **published_trace_ids(event),
            )
        for subscriber in subscribers:
            try:
                subscriber.queue.put_nowait(event)
            except asyncio.QueueFull:
                log.warning("alerts_subscriber_too_slow", user_id=str(subscriber.user_id))
                subscriber.close(TOO_SLOW)
