"""The chaos soak in its 90-second form (`make soak` runs the long one): the fleet drives two
replicas each of the API, ingest and the worker while a worker is SIGKILLed, an API replica
SIGTERMed, Redis and Postgres restarted, the webhook receiver taken down and back, and the links
to Postgres and Redis slowed; the checker finds nothing lost, doubled, late or broken. Its
report is written to test-artifacts/soak-short.md and .png. The checker's controls, records
with each fault it must catch, are tests/test_soak_checker.py."""

from __future__ import annotations

import pytest
from chaos.run import soak
from chaos.schedule import SHORT
from rehearse import this_checkout
from soak import environment, short_plan, write_report


@pytest.mark.slow
@pytest.mark.timeout(1200)  # 10 replica starts and 2 server restarts on a loaded 2-core machine
async def test_under_faults_nothing_acknowledged_is_lost_or_doubled_and_every_alert_arrives(
    tmp_path,
) -> None:
    record = await soak(short_plan(), this_checkout(), environment(), tmp_path)

    problems = write_report("soak-short", record)
    assert problems == [], "\n".join(problems)
    assert sorted(f.kind for f in record.faults) == sorted(f.kind for f in SHORT)
    assert len(record.accepted) > 0
    assert len(record.alerts) > 0
    assert record.notes["replicas replaced"] == 2
