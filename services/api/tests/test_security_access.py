"""Access control of the public API, route by route: no token, no access; another user's
resource, a 404 that changes nothing.

Both tests walk the app's own route table, so a new route is checked (or the test names it)
without anyone remembering to add a case.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from fastapi.routing import iter_route_contexts
from sqlalchemy import select
from trip_factories import START, store_device, store_trips, trip_body, trip_body_v2

from tests.support.routes import EVERY_APP_PUBLIC
from tripline_api.main import create_api_app
from tripline_common.data import create_job, unit_of_work
from tripline_common.data.models import Alert, AlertRule, AuthSession, User
from tripline_common.messaging import IMPORT_WAYPOINTS, JobQueue, create_redis

# The routes anyone may call: probes, the API's docs (its streams' AsyncAPI document too),
# registration, the two token exchanges and the account routes that a mailed single-use token
# authorises (verification, password reset).
PUBLIC = EVERY_APP_PUBLIC | {
    ("GET", "/asyncapi.json"),
    ("POST", "/v1/auth/token"),
    ("POST", "/v1/auth/refresh"),
    ("POST", "/v1/users"),
    ("GET", "/v1/accounts/verify-email"),
    ("POST", "/v1/accounts/verify-email"),
    ("POST", "/v1/accounts/password-reset/request"),
    ("POST", "/v1/accounts/password-reset"),
}
# Path parameters that name something a user owns.
OWNED = {"trip_id", "device_id", "webhook_id", "alert_id", "job_id", "session_id"}
PARAM = re.compile(r"{(\w+)(?::\w+)?}")


def api_routes() -> list[tuple[str, str]]:
    """(method, path template) of every HTTP route of the API app, documented or not."""
    return sorted(
        (method, route.path)
        for route in iter_route_contexts(create_api_app().routes)
        if route.methods  # the WebSocket route has none: services/api/tests/test_alerts_stream.py
        for method in route.methods - {"HEAD"}
    )


def fill(path: str, values: dict[str, str]) -> str:
    return PARAM.sub(lambda match: values[match.group(1)], path)


def request_body(method: str, path: str) -> dict[str, Any]:
    """A body each route would accept from its owner, so a refusal is about access alone."""
    v2 = path.startswith("/v2/")
    if path.endswith("/waypoints/import"):
        return {"files": {"file": ("w.csv", b"lat,lon,name\n53.0,11.0,Depot\n", "text/csv")}}
    if method == "PUT":
        body = trip_body_v2(status="planned") if v2 else trip_body(status="planned")
        return {"json": {**body, "name": "mine now"}}
    if method == "PATCH":
        return {"json": {"name": "mine now"}}
    return {}


@pytest.mark.parametrize(
    ("method", "path"), [route for route in api_routes() if route not in PUBLIC]
)
async def test_every_route_but_the_public_ones_refuses_a_request_without_a_token(
    client, method: str, path: str
) -> None:
    url = fill(path, {name: str(uuid.uuid4()) for name in PARAM.findall(path)})
    response = await client.request(method, url, **request_body(method, path))

    assert response.status_code == 401, response.text
    assert response.json()["code"] == "unauthorized"
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_the_public_routes_are_exactly_the_declared_ones() -> None:
    public_in_schema = {
        (method.upper(), path)
        for path, operations in create_api_app().openapi()["paths"].items()
        for method, operation in operations.items()
        if not operation.get("security")
    }
    assert public_in_schema <= PUBLIC


@pytest.fixture
async def owned(session_factory, make_user, auth_headers, api_settings) -> dict[str, Any]:
    """A user with one of everything a path can name, and the ids to put in the paths."""
    owner: User = await make_user()
    headers = await auth_headers(owner)
    device = await store_device(session_factory, owner)
    (trip,) = await store_trips(session_factory, owner, 1, device_id=device.id)
    redis = create_redis(api_settings)
    try:
        queue = JobQueue(redis, api_settings.arq_queue_name)
        async with unit_of_work(session_factory, queue) as session:
            job = await create_job(
                session=session,
                queue=queue,
                kind=IMPORT_WAYPOINTS,
                owner_id=owner.id,
                params={"trip_id": str(trip.id)},
            )
            alert = Alert(
                owner_id=owner.id,
                trip_id=trip.id,
                device_id=device.id,
                rule=AlertRule.SPEEDING,
                message="Too fast",
                details={"speed_kmh": 150},
                dedupe_key=f"test:{uuid.uuid4().hex}",
                raised_at=START,
            )
            session.add(alert)
    finally:
        await redis.aclose()
    async with session_factory() as session:
        session_id = await session.scalar(
            select(AuthSession.id).where(AuthSession.user_id == owner.id)
        )
    return {
        "owner": owner,
        "headers": headers,
        "ids": {
            "trip_id": str(trip.id),
            "device_id": str(device.id),
            "alert_id": str(alert.id),
            "job_id": str(job.id),
            "session_id": str(session_id),
        },
    }


async def snapshot(client, owned: dict[str, Any]) -> dict[str, Any]:
    """What the owner sees of each owned resource."""
    ids, headers = owned["ids"], owned["headers"]
    urls = {
        "trip": f"/v1/trips/{ids['trip_id']}",
        "device": f"/v1/devices/{ids['device_id']}",
        "webhook": f"/v1/webhooks/{ids['webhook_id']}",
        "alert": f"/v1/alerts/{ids['alert_id']}",
        "job": f"/v1/jobs/{ids['job_id']}",
        "sessions": "/v1/auth/sessions",
    }
    seen = {}
    for name, url in urls.items():
        response = await client.get(url, headers=headers)
        assert response.status_code == 200, (url, response.text)
        body = response.json()
        if name == "sessions":  # `current` depends on who asks, `last_used_at` on when
            body = sorted((item["id"], item.get("revoked_at")) for item in body)
        seen[name] = body
    return seen


async def test_another_users_resources_are_a_404_on_every_route_and_stay_unchanged(
    client, owned, make_user, auth_headers
) -> None:
    created = await client.post(
        "/v1/webhooks", json={"url": "https://hooks.example.com/a"}, headers=owned["headers"]
    )
    assert created.status_code == 201, created.text
    owned["ids"]["webhook_id"] = created.json()["id"]
    before = await snapshot(client, owned)
    intruder = await auth_headers(await make_user())

    tried = []
    for method, path in api_routes():
        if not OWNED & set(PARAM.findall(path)):
            continue
        response = await client.request(
            method, fill(path, owned["ids"]), headers=intruder, **request_body(method, path)
        )
        tried.append((method, path))
        assert response.status_code == 404, (method, path, response.text)
        assert set(response.json()) >= {"code", "message", "request_id"}

    # The bulk route names alerts in its body: someone else's fails alone, as a 404 item.
    bulk = await client.post(
        "/v1/alerts/acknowledge", json={"ids": [owned["ids"]["alert_id"]]}, headers=intruder
    )
    assert bulk.status_code == 207, bulk.text
    assert [item["status"] for item in bulk.json()["results"]] == [404]

    assert len(tried) >= 20  # the route table was really walked
    assert await snapshot(client, owned) == before
