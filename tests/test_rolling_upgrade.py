"""The rolling-upgrade rehearsal in its short form (`make rehearse` runs the long one): two
replicas of each app and two workers at the previous release under steady traffic, the expand
migration, every Deployment rolled to this release one replica at a time with the chart's drain,
the contract migration, and a rollback the same way; nothing fails, nothing is lost or doubled.
The report is written to test-artifacts/rehearsal-short.md."""

from __future__ import annotations

import os
import uuid

import pytest
from rehearsal.plan import Plan, rehearse
from rehearse import ARTIFACTS, builds

SHORT = Plan(
    hold_seconds=5.0,
    devices=2,
    subscribers=2,
    rates={"reads": 8.0, "writes": 1.0, "admin": 1.0, "uploads": 1.0},
)


@pytest.mark.slow
@pytest.mark.timeout(900)  # 32 process starts on a loaded 2-core machine, not a measurement.
async def test_a_rolling_upgrade_and_its_rollback_under_load_fail_no_request_and_lose_nothing(
    scratch_database, redis_url, tmp_path
) -> None:
    previous, head = builds()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DATABASE_", "REDIS_", "SENTRY_", "PYTEST_", "OTEL_"))
    }
    env.update(
        DATABASE_URL=scratch_database(),  # Empty: the previous release installs its schema.
        REDIS_URL=redis_url,
        ARQ_QUEUE_NAME=f"tripline:test:{uuid.uuid4().hex[:8]}",
        ENVIRONMENT="test",
        LOG_FORMAT="json",
        PYTHONUNBUFFERED="1",
    )

    report = await rehearse(SHORT, previous, head, env, tmp_path)

    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "rehearsal-short.md").write_text(report.markdown())
    assert report.problems == [], report.markdown()
    steps = {s.name: s for s in report.steps}
    assert len(steps) == 7
    assert all(s.requests > 0 and s.failed == 0 for s in steps.values()), report.markdown()
    # Every replica of the four components replaced twice (upgrade, rollback), gracefully.
    assert report.summary["replicas replaced"] == 4 * 2 * 2
    assert report.summary["alerts raised"] > 0
