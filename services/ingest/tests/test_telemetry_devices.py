"""`telemetry/devices.py`'s last-seen throttle: at most one `last_seen_at` write per device and
interval, in bounded memory (pure, no database)."""

from __future__ import annotations

import uuid

from tripline_ingest.telemetry.devices import LastSeenThrottle


def test_a_device_is_due_for_a_last_seen_write_once_per_interval() -> None:
    throttle = LastSeenThrottle(interval=3600, max_size=10)
    device, other = uuid.uuid4(), uuid.uuid4()
    assert throttle.due(device) is True
    assert throttle.due(device) is False  # Written a moment ago: the row is not locked again.
    assert throttle.due(other) is True  # Each device has its own interval.


def test_a_zero_interval_writes_last_seen_on_every_upload() -> None:
    throttle = LastSeenThrottle(interval=0, max_size=10)
    device = uuid.uuid4()
    assert [throttle.due(device) for _ in range(3)] == [True, True, True]


def test_a_full_throttle_forgets_rather_than_grows() -> None:
    throttle = LastSeenThrottle(interval=3600, max_size=2)
    first, second, third = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    assert throttle.due(first) and throttle.due(second)
    assert throttle.due(third) is True  # Full: everything is forgotten, then `third` noted.
    assert throttle.due(first) is True  # Worst case of forgetting: one extra write.
    assert throttle.due(third) is False
