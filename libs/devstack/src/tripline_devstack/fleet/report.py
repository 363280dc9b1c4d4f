"""The fleet's account of a run: what it sent, which alerts the rules must have raised, and
which ones were raised and reached each channel."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from tripline_devstack.fleet.expectations import AlertKey

CHANNELS = ("raised", "sse", "websocket", "webhook")


def key_of(alert: dict[str, Any]) -> AlertKey:
    """The identity of an alert as the API, the streams and webhooks show it."""
    first_at = (alert.get("details") or {}).get("first_at")
    anchor = int(datetime.fromisoformat(first_at).timestamp()) if first_at else None
    return AlertKey(str(alert["trip_id"]), str(alert["rule"]), anchor)


@dataclass
class Traffic:
    """What the fleet sent."""

    users: int = 0
    devices: int = 0
    trips: int = 0
    trips_completed: int = 0
    batches: int = 0
    events: int = 0
    gzip_batches: int = 0
    resent_batches: int = 0
    timeouts: int = 0
    duplicates_acknowledged: int = 0
    signal_gaps: int = 0


@dataclass
class FleetReport:
    """Expected alerts beside the alerts of each channel (as sorted `AlertKey` strings, one per
    distinct alert), and what the fleet sent."""

    traffic: Traffic
    expected: list[str]
    received: dict[str, list[str]]
    repeats: dict[str, int] = field(default_factory=dict)
    """Copies of an alert beyond the first, per channel (webhooks are at least once)."""
    bad_signatures: int = 0

    @classmethod
    def build(
        cls,
        traffic: Traffic,
        expected: list[AlertKey],
        received: dict[str, list[dict[str, Any]]],
        repeats: dict[str, int],
        bad_signatures: int,
    ) -> FleetReport:
        return cls(
            traffic=traffic,
            expected=sorted(str(key) for key in expected),
            received={
                channel: sorted(str(key_of(alert)) for alert in alerts)
                for channel, alerts in received.items()
            },
            repeats=repeats,
            bad_signatures=bad_signatures,
        )

    def missing(self, channel: str) -> list[str]:
        """Expected alerts the channel lacks (with multiplicity)."""
        return sorted((Counter(self.expected) - Counter(self.received[channel])).elements())

    def unexpected(self, channel: str) -> list[str]:
        """Alerts of the channel that were not expected (with multiplicity)."""
        return sorted((Counter(self.received[channel]) - Counter(self.expected)).elements())

    @property
    def matches(self) -> bool:
        """Every channel holds exactly the expected alerts, and every signature was right."""
        return self.bad_signatures == 0 and all(
            self.received[channel] == self.expected for channel in self.received
        )

    def summary(self) -> str:
        """One line for a log."""
        t = self.traffic
        counts = ", ".join(f"{channel} {len(keys)}" for channel, keys in self.received.items())
        return (
            f"{t.devices} devices, {t.trips} trips, {t.batches} batches ({t.events} fixes, "
            f"{t.gzip_batches} gzip, {t.resent_batches} resent, {t.signal_gaps} signal gaps); "
            f"alerts expected {len(self.expected)}: {counts}"
        )

    def as_json(self) -> dict[str, Any]:
        """The report as a JSON document, with what each channel lacks or has in excess."""
        document = asdict(self)
        document["matches"] = self.matches
        document["missing"] = {channel: self.missing(channel) for channel in self.received}
        document["unexpected"] = {channel: self.unexpected(channel) for channel in self.received}
        return document
