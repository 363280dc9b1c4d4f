"""`GET /v1/jobs/{id}`: the current user's jobs, and nobody else's."""

from __future__ import annotations

import uuid

import pytest

from tripline_common.data import create_job, unit_of_work
from tripline_common.data.models import Job
from tripline_common.messaging import JobQueue, create_redis


@pytest.fixture
async def queue(api_settings):
    redis = create_redis(api_settings)
    yield JobQueue(redis, api_settings.arq_queue_name)
    await redis.aclose()


async def new_job(session_factory, queue, owner_id) -> Job:
    async with unit_of_work(session_factory, queue) as session:
        return await create_job(
            session=session,
            queue=queue,
            kind="import_waypoints",
            owner_id=owner_id,
            params={"trip_id": str(uuid.uuid4())},
        )


async def test_a_job_of_yours_is_shown(
    client, make_user, auth_headers, session_factory, queue
) -> None:
    owner = await make_user()
    job = await new_job(session_factory, queue, owner.id)
    response = await client.get(f"/v1/jobs/{job.id}", headers=await auth_headers(owner))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"] == str(job.id)
    assert body["kind"] == "import_waypoints"
    assert body["status"] == "queued" and body["progress"] == 0
    assert body["result"] is None and body["error"] is None
    assert set(body) == {
        "id",
        "kind",
        "status",
        "progress",
        "result",
        "error",
        "request_id",
        "created_at",
        "started_at",
        "finished_at",
    }  # Params (the uploaded file, say) are not echoed back.


async def test_another_users_job_and_a_missing_job_are_404(
    client, make_user, auth_headers, session_factory, queue
) -> None:
    owner, other = await make_user(), await make_user()
    job = await new_job(session_factory, queue, owner.id)
    headers = await auth_headers(other)
    for job_id in (job.id, uuid.uuid4()):
        response = await client.get(f"/v1/jobs/{job_id}", headers=headers)
        assert response.status_code == 404, response.text
        assert response.json()["code"] == "job_not_found"


async def test_jobs_need_a_token(client) -> None:
    response = await client.get(f"/v1/jobs/{uuid.uuid4()}")
    assert response.status_code == 401
