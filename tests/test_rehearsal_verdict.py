"""The rehearsal's verdict (scripts/rehearsal/verdict.py) names every way an upgrade can lose or
double something: each fault below, put in an otherwise clean record, is reported, and the clean
record passes. (The whole rehearsal with the drain switched off reports its failed requests:
docs/operations.md, "The rolling upgrade, rehearsed".)"""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from pathlib import Path

import pytest
from rehearsal.chart import Rollout
from rehearsal.replicas import Cluster, Replica
from rehearsal.traffic import Device, Ledger, Outcome, Subscriber
from rehearsal.verdict import Facts, problems

ALERT = "a1"


def clean(tmp_path: Path) -> tuple[Facts, Ledger, Cluster]:
    """One device that sent one speeding burst: its batch processed, its alert raised, delivered
    once and seen by the one subscriber, who reconnected; one replica stopped gracefully."""
    ledger = Ledger(
        outcomes=[Outcome("rolling upgrade", "upload", "ingest-prev-1", 202, None, 0.01)],
        batches={"b1": 3},
        created_trips=["t1"],
        devices=[Device("d1", "key", "t1", bursts=1)],
        subscribers=[Subscriber("ws-0", connections=2, live={ALERT})],
    )
    facts = Facts(
        processed={"b1": 3},
        alerts={"t1": Counter(speeding=1)},
        alert_ids={ALERT},
        trips_found=1,
        deliveries=Counter({ALERT: 1}),
    )
    rollout = Rollout("api", {"SHUTDOWN_DRAIN_SECONDS": "5"}, 30, 5, 1, 0)
    cluster = Cluster({}, tmp_path, {"api": rollout}, 1.0)
    log = tmp_path / "api-prev-1.log"
    log.write_text(json.dumps({"level": "info", "event": "stopped"}) + "\n")
    popen = subprocess.Popen(["true"])
    popen.wait()
    cluster.stopped.append(Replica("api-prev-1", "api", "prev", 1, 2, popen, log, exit_code=143))
    return facts, ledger, cluster


def test_a_clean_record_passes(tmp_path) -> None:
    assert problems(*clean(tmp_path)) == []


def _failed_request(facts, ledger, cluster) -> None:
    ledger.outcomes.append(
        Outcome("rollback", "list trips", "api-head-2", None, "ConnectError: refused", 0.0)
    )


def _unprocessed_batch(facts, ledger, cluster) -> None:
    ledger.batches["b2"] = 3


def _events_lost(facts, ledger, cluster) -> None:
    facts.processed["b1"] = 2


def _alert_missing(facts, ledger, cluster) -> None:
    ledger.devices[0].bursts = 2


def _alert_doubled(facts, ledger, cluster) -> None:
    facts.alerts["t1"]["speeding"] = 2


def _unexpected_rule(facts, ledger, cluster) -> None:
    facts.alerts["t1"]["corridor"] = 1


def _webhook_missed(facts, ledger, cluster) -> None:
    facts.deliveries.clear()


def _webhook_twice(facts, ledger, cluster) -> None:
    facts.deliveries[ALERT] = 2


def _subscriber_missed(facts, ledger, cluster) -> None:
    ledger.subscribers[0].live.clear()


def _never_reconnected(facts, ledger, cluster) -> None:
    ledger.subscribers[0].connections = 1


def _trip_lost(facts, ledger, cluster) -> None:
    facts.trips_found = 0


def _killed(facts, ledger, cluster) -> None:
    cluster.stopped[0].killed = True


def _bad_exit(facts, ledger, cluster) -> None:
    cluster.stopped[0].exit_code = 1


def _error_logged(facts, ledger, cluster) -> None:
    with cluster.stopped[0].log_path.open("a") as log:
        log.write(json.dumps({"level": "error", "event": "job_failed"}) + "\n")


@pytest.mark.parametrize(
    ("fault", "reported"),
    [
        (_failed_request, "failed request in 'rollback'"),
        (_unprocessed_batch, "1 of 2 accepted batches were not processed"),
        (_events_lost, "store a different number of events"),
        (_alert_missing, "2 speeding bursts sent, alerts raised: {'speeding': 1}"),
        (_alert_doubled, "1 speeding bursts sent, alerts raised: {'speeding': 2}"),
        (_unexpected_rule, "'corridor': 1"),
        (_webhook_missed, "1 alerts never reached the webhook"),
        (_webhook_twice, "1 alerts reached the webhook more than once"),
        (_subscriber_missed, "ws-0 never saw 1 alerts"),
        (_never_reconnected, "ws-0 never reconnected"),
        (_trip_lost, "1 of 1 created trips are missing"),
        (_killed, "killed after its grace period"),
        (_bad_exit, "did not stop gracefully (exit 1"),
        (_error_logged, "api-prev-1: job_failed"),
    ],
    ids=lambda value: value.__name__.strip("_") if callable(value) else "",
)
def test_each_way_of_losing_or_doubling_something_is_reported(tmp_path, fault, reported) -> None:
    facts, ledger, cluster = clean(tmp_path)
    fault(facts, ledger, cluster)
    found = problems(facts, ledger, cluster)
    assert any(reported in line for line in found), found
