"""Queue health for operators, read from the real Redis queue."""

from __future__ import annotations

from tripline_admin.main import create_admin_app
from tripline_admin.settings import AdminSettings


async def test_queue_stats_count_queued_jobs(make_settings, app_client) -> None:
    app = create_admin_app(make_settings(AdminSettings))
    async with app_client(app) as client:
        redis = app.state.resources.redis
        for n in range(3):
            await redis.enqueue_job("noop", n, _job_id=f"noop:{n}")
        await redis.enqueue_job("noop", "later", _job_id="noop:later", _defer_by=3600)
        response = await client.get("/v1/queues")
    assert response.status_code == 200
    [stats] = response.json()
    assert stats["queue"] == app.state.settings.arq_queue_name
    assert stats["queued"] == 4
    assert stats["due"] == 3
    assert stats["in_progress"] == 0
    assert stats["oldest_due_age_seconds"] >= 0
