"""Queue health for operators, read from the real Redis queue."""

from __future__ import annotations

from tripline_admin.state import AdminState


async def test_queue_stats_count_queued_jobs(admin_app, client, operator_headers) -> None:
    redis = AdminState.of(admin_app).resources.redis
    for n in range(3):
        await redis.enqueue_job("noop", n, _job_id=f"noop:{n}")
    await redis.enqueue_job("noop", "later", _job_id="noop:later", _defer_by=3600)

    response = await client.get("/v1/queues", headers=operator_headers)

    assert response.status_code == 200
    [stats] = response.json()
    assert stats["queue"] == AdminState.of(admin_app).settings.arq_queue_name
    assert stats["queued"] == 4
    assert stats["due"] == 3
    assert stats["in_progress"] == 0
    assert stats["oldest_due_age_seconds"] >= 0


async def test_queue_stats_are_for_operators_only(client, make_user, auth_headers) -> None:
    assert (await client.get("/v1/queues")).status_code == 401
    user = await make_user()
    response = await client.get("/v1/queues", headers=await auth_headers(user))
    assert response.status_code == 403
    assert response.json()["code"] == "insufficient_role"
