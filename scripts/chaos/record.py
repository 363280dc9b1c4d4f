"""What a soak run leaves for the checker and the report: the fleet's requests, the faults as they
were injected, the processes' memory, the webhook deliveries received, and what the database
holds; plain data (wall-clock seconds since 1970 throughout), written out as JSON beside the
report so that a verdict can be re-read later."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Exchange:
    """One HTTP request of the fleet: when it started, how long it took, how it ended."""

    at: float
    seconds: float
    method: str
    path: str
    status: int | None
    """None: no answer (the connection was refused or dropped, or timed out)."""
    error: str | None = None
    deliberate: bool = False
    """The fleet gave up waiting on purpose (its resend-after-timeout uploads)."""

    @property
    def unanswered(self) -> bool:
        """No answer came, and not because the fleet gave up on purpose."""
        return self.status is None and not self.deliberate


@dataclass(frozen=True)
class FaultWindow:
    """One fault, from its injection until the system had recovered from it (the replacement
    replica ready, the server answering again, the latency gone)."""

    kind: str
    target: str
    start: float
    end: float

    def covers(self, moment: float, grace: float) -> bool:
        return self.start <= moment <= self.end + grace


@dataclass(frozen=True)
class MemorySample:
    process: str
    at: float
    rss_bytes: int


@dataclass(frozen=True)
class Delivery:
    """A webhook request the receiver got, with its signature valid."""

    alert_id: str
    delivery_id: str | None
    """`X-Tripline-Delivery`: the same on every retry of one delivery, so repeats can be dropped."""
    path: str
    at: float


@dataclass(frozen=True)
class StoredBatch:
    """An acknowledged batch as the database holds it."""

    batch_id: str
    status: str
    event_count: int
    """Events stored under the batch."""
    rows: int
    """Batch rows of the device with this batch's client_batch_id (1 when stored once)."""


@dataclass(frozen=True)
class StoredAlert:
    alert_id: str
    trip_id: str
    key: str
    """The alert's identity as the fleet names it (`rule:trip@anchor`)."""
    raised_at: float


@dataclass
class SoakRecord:
    """Everything the checker judges."""

    started: float = 0.0
    ended: float = 0.0
    accepted: dict[str, int] = field(default_factory=dict)
    """Batch ID -> fixes, for every batch ingest acknowledged with 202."""
    batches: list[StoredBatch] = field(default_factory=list)
    expected_alerts: list[str] = field(default_factory=list)
    alerts: list[StoredAlert] = field(default_factory=list)
    webhooks: list[str] = field(default_factory=list)
    """The paths of the webhook endpoints registered (each must receive every alert)."""
    deliveries: list[Delivery] = field(default_factory=list)
    streams: dict[str, list[str]] = field(default_factory=dict)
    """Subscriber (`sse`, `websocket`) -> the alert IDs it received, live or by resuming."""
    exchanges: list[Exchange] = field(default_factory=list)
    faults: list[FaultWindow] = field(default_factory=list)
    memory: list[MemorySample] = field(default_factory=list)
    notes: dict[str, Any] = field(default_factory=dict)
    """Figures for the report that the checker does not judge."""

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SoakRecord:
        return cls(
            started=data["started"],
            ended=data["ended"],
            accepted=data["accepted"],
            batches=[StoredBatch(**b) for b in data["batches"]],
            expected_alerts=data["expected_alerts"],
            alerts=[StoredAlert(**a) for a in data["alerts"]],
            webhooks=data["webhooks"],
            deliveries=[Delivery(**d) for d in data["deliveries"]],
            streams=data["streams"],
            exchanges=[Exchange(**e) for e in data["exchanges"]],
            faults=[FaultWindow(**f) for f in data["faults"]],
            memory=[MemorySample(**m) for m in data["memory"]],
            notes=data["notes"],
        )
