"""The chaos soak's checker on records made by hand: a clean record passes, and each loss, double,
delay or failure the soak exists to catch is caught (the controls of tests/test_soak.py)."""

from __future__ import annotations

import dataclasses

from chaos.checker import Bounds, delivery_deadline, memory_slope, verdict
from chaos.record import (
    Delivery,
    Exchange,
    FaultWindow,
    MemorySample,
    SoakRecord,
    StoredAlert,
    StoredBatch,
)

T0 = 1_800_000_000.0
HOOK = "/hooks/fleet-1"


def clean_record() -> SoakRecord:
    """Two batches stored and processed once, two required alerts raised once, each delivered to
    the webhook and seen on both streams; a 503 inside a fault window; flat memory."""
    alerts = [
        StoredAlert("a1", "t1", "speeding:t1@100", T0 + 10),
        StoredAlert("a2", "t1", "late:t1", T0 + 20),
    ]
    return SoakRecord(
        started=T0,
        ended=T0 + 120,
        accepted={"b1": 5, "b2": 5},
        batches=[StoredBatch("b1", "processed", 5, 1), StoredBatch("b2", "processed", 5, 1)],
        expected_alerts=["late:t1", "speeding:t1@100"],
        alerts=alerts,
        webhooks=[HOOK],
        deliveries=[
            Delivery("a1", "d1", HOOK, T0 + 11),
            Delivery("a1", "d1", HOOK, T0 + 12),  # a repeat, with the same delivery ID
            Delivery("a2", "d2", HOOK, T0 + 21),
        ],
        streams={"sse": ["a1", "a2"], "websocket": ["a1", "a2"]},
        exchanges=[
            Exchange(T0 + 1, 0.01, "GET", "/v1/alerts", 200),
            Exchange(T0 + 31, 0.01, "GET", "/v1/alerts", 503),
        ],
        faults=[FaultWindow("restart-postgres", "postgres", T0 + 30, T0 + 35)],
        memory=[MemorySample("api-head-0", T0 + t, 100 * 2**20) for t in range(0, 120, 2)],
    )


def test_a_clean_record_passes() -> None:
    assert verdict(clean_record()) == []


def test_a_batch_acknowledged_but_not_stored_is_a_loss() -> None:
    record = clean_record()
    record.batches = record.batches[:1]

    assert verdict(record) == ["batch b2 was acknowledged with 202 but is not stored"]


def test_a_batch_stored_twice_or_left_pending_is_caught() -> None:
    record = clean_record()
    record.batches = [StoredBatch("b1", "pending", 5, 1), StoredBatch("b2", "processed", 10, 2)]

    assert verdict(record) == [
        "batch b1 is pending, not processed",
        "batch b2 stores 10 events of the 5 sent",
        "batch b2 is stored 2 times",
    ]


def test_an_alert_raised_twice_is_caught() -> None:
    record = clean_record()
    record.alerts.append(StoredAlert("a3", "t1", "speeding:t1@100", T0 + 10))
    record.streams = {"sse": ["a1", "a2", "a3"], "websocket": ["a1", "a2", "a3"]}
    record.deliveries.append(Delivery("a3", "d3", HOOK, T0 + 11))

    assert verdict(record) == ["alert speeding:t1@100 was raised 2 times"]


def test_a_required_alert_never_raised_and_one_no_rule_requires_are_caught() -> None:
    record = clean_record()
    record.expected_alerts = ["late:t1", "speeding:t1@100", "corridor:t1@130"]
    record.alerts[1] = StoredAlert("a2", "t1", "lost_signal:t1", T0 + 20)

    assert verdict(record) == [
        "alert corridor:t1@130 is required by the rules but was never raised",
        "alert late:t1 is required by the rules but was never raised",
        "alert lost_signal:t1 was raised but no rule requires it",
    ]


def test_an_alert_that_never_reached_the_webhook_is_caught() -> None:
    record = clean_record()
    record.deliveries = [d for d in record.deliveries if d.alert_id != "a2"]

    assert verdict(record) == [f"alert late:t1 never reached the webhook {HOOK}"]


def test_a_delivery_past_its_bound_is_late_but_a_fault_moves_the_bound() -> None:
    record = clean_record()
    bound = Bounds().webhook_seconds
    # The alert was raised at +20 s; the Postgres restart (+30 s to +35 s) held it: its bound
    # runs from +35 s.
    record.deliveries[2] = Delivery("a2", "d2", HOOK, T0 + 35 + bound + 5)

    [late] = verdict(record)
    assert late.startswith(f"alert late:t1 reached {HOOK} 5.0 s after its deadline")

    # The receiver was down from just before the alert until +50 s: the bound runs from its
    # return.
    record.faults.append(FaultWindow("webhook-down", "webhook", T0 + 19, T0 + 50))
    assert verdict(record) == []


def test_copies_of_a_delivery_must_carry_one_delivery_id() -> None:
    record = clean_record()
    record.deliveries[1] = Delivery("a1", "another", HOOK, T0 + 12)

    [problem] = verdict(record)
    assert problem.startswith("alert speeding:t1@100's copies at /hooks/fleet-1 do not carry")


def test_a_subscriber_that_missed_an_alert_is_caught() -> None:
    record = clean_record()
    record.streams["websocket"] = ["a1"]

    assert verdict(record) == ["the websocket subscriber never received 1 alerts: late:t1"]


def test_a_5xx_outside_every_fault_window_is_caught_and_one_inside_is_not() -> None:
    record = clean_record()
    grace = Bounds().window_grace_seconds
    record.exchanges += [
        Exchange(T0 + 35 + grace - 1, 0.01, "POST", "/v1/telemetry", 500),  # in the grace
        Exchange(T0 + 80, 0.01, "POST", "/v1/telemetry", 500),
    ]

    assert verdict(record) == ["500 on POST /v1/telemetry at +80.0 s, outside every fault window"]


def test_memory_still_growing_after_warm_up_is_caught() -> None:
    record = clean_record()
    growing = [
        MemorySample("worker-head-1", T0 + t, (100 + t // 6) * 2**20) for t in range(0, 120, 2)
    ]  # 10 MiB/min throughout
    record.memory += growing

    assert 9.5 < memory_slope(growing) / 2**20 < 10.5
    [problem] = verdict(record)
    assert problem.startswith("worker-head-1's memory still grows after warm-up: 9.9 MiB/min")


def test_memory_that_grows_during_warm_up_only_passes() -> None:
    record = clean_record()
    record.memory = [
        MemorySample("api-head-0", T0 + t, (50 + min(t, 50)) * 2**20) for t in range(0, 120, 2)
    ]

    assert verdict(record) == []


def test_a_process_too_short_lived_is_not_judged_on_memory() -> None:
    record = clean_record()
    lived = int(Bounds().memory_min_lifetime_seconds) - 10
    record.memory = [MemorySample("api-head-3", T0 + t, t * 2**20) for t in range(0, lived, 2)]

    assert verdict(record) == []


def test_overlapping_faults_push_the_delivery_deadline_past_each() -> None:
    faults = [
        FaultWindow("kill-worker", "worker-head-1", 100.0, 110.0),
        FaultWindow("webhook-down", "webhook", 130.0, 160.0),
        FaultWindow("slow-redis", "redis", 400.0, 410.0),
    ]

    assert delivery_deadline(50.0, faults, 20.0) == 70.0  # before every fault: untouched
    # The kill holds it to 130, when the receiver's outage begins: 160 + 20.
    assert delivery_deadline(105.0, faults, 20.0) == 180.0
    assert delivery_deadline(105.0, faults, 30.0) == 190.0


def test_a_record_survives_its_json_form() -> None:
    record = clean_record()

    assert dataclasses.asdict(SoakRecord.from_json(record.as_json())) == record.as_json()
