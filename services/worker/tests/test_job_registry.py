"""The job registry and the worker agree: every registered job runs, every job run is registered."""

from __future__ import annotations

import uuid

import pytest

from tripline_common.data import create_job
from tripline_common.messaging import (
    IMPORT_WAYPOINTS,
    JOBS,
    PROCESS_BATCH,
    REQUEUE_STUCK_BATCHES,
    job_spec,
)
from tripline_worker.context import context
from tripline_worker.runner import JOB_FUNCTIONS, cron_jobs, worker_functions
from tripline_worker.settings import WorkerServiceSettings


@pytest.fixture
def settings() -> WorkerServiceSettings:
    return WorkerServiceSettings(_env_file=None)  # type: ignore[call-arg]


def test_the_worker_runs_every_registered_job_and_nothing_else(settings) -> None:
    on_demand = {function.name for function in worker_functions(settings)}
    periodic = {cron.name for cron in cron_jobs(settings)}
    assert on_demand == {name for name, spec in JOBS.items() if not spec.periodic}
    assert periodic == {name for name, spec in JOBS.items() if spec.periodic}
    assert set(JOB_FUNCTIONS) == set(JOBS.values())


def test_each_job_function_is_named_as_its_registry_entry(settings) -> None:
    # The name is the metrics' `function` label and the logs' `job` field.
    for spec, function in JOB_FUNCTIONS.items():
        assert function.__name__ == spec.name
    for function in worker_functions(settings):
        assert function.coroutine.__name__ == function.name
    for cron in cron_jobs(settings):
        assert cron.coroutine.__name__ == cron.name


def test_job_ids_follow_one_rule_and_periodic_jobs_have_none() -> None:
    batch = uuid.uuid4()
    assert PROCESS_BATCH.job_id(batch) == f"process_batch:{batch}"
    with pytest.raises(ValueError, match="periodic"):
        REQUEUE_STUCK_BATCHES.job_id(batch)


def test_an_unknown_job_name_is_refused() -> None:
    assert job_spec("import_waypoints") is IMPORT_WAYPOINTS
    with pytest.raises(KeyError, match="no job called 'export_everything'"):
        job_spec("export_everything")


async def test_only_a_tracked_job_gets_a_jobs_row(ctx, make_owner) -> None:
    owner = await make_owner()
    async with context(ctx).session_factory() as session:
        with pytest.raises(ValueError, match="not a tracked job"):
            await create_job(
                session=session,
                queue=context(ctx).job_queue,
                kind=PROCESS_BATCH,
                owner_id=owner.user_id,
            )
