"""The RBAC matrix: every route of the admin app, tried anonymously, as a plain user, as an
operator and as an admin.

The routes come from the app's own route table and each must be listed in `ACCESS` below: a
route added without deciding who may call it fails `test_every_route_has_a_declared_access`.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from enum import StrEnum

import pytest
from fastapi.routing import iter_route_contexts

from tripline_common.data.models import Trip, UserRole


class Access(StrEnum):
    PUBLIC = "public"  # Probes, metrics, docs, the login form, static files: same for all.
    OPERATOR = "operator"  # JSON API: operators and admins.
    ADMIN = "admin"  # JSON API: admins only.
    CONSOLE = "console"  # Console page or form: operators and admins with a console session.
    CONSOLE_ADMIN = "console_admin"


ACCESS: dict[tuple[str, str], Access] = {
    ("GET", "/"): Access.PUBLIC,
    ("GET", "/openapi.json"): Access.PUBLIC,
    ("GET", "/docs"): Access.PUBLIC,
    ("GET", "/docs/oauth2-redirect"): Access.PUBLIC,
    ("GET", "/redoc"): Access.PUBLIC,
    ("MOUNT", "/docs/static"): Access.PUBLIC,
    ("GET", "/metrics"): Access.PUBLIC,
    ("GET", "/livez"): Access.PUBLIC,
    ("GET", "/readyz"): Access.PUBLIC,
    ("GET", "/startupz"): Access.PUBLIC,
    ("GET", "/v1/overview"): Access.OPERATOR,
    ("GET", "/v1/users"): Access.OPERATOR,
    ("GET", "/v1/users/{user_id}"): Access.OPERATOR,
    ("PUT", "/v1/users/{user_id}/role"): Access.ADMIN,
    ("POST", "/v1/users/{user_id}/disable"): Access.OPERATOR,
    ("POST", "/v1/users/{user_id}/enable"): Access.OPERATOR,
    ("GET", "/v1/users/{user_id}/sessions"): Access.OPERATOR,
    ("DELETE", "/v1/users/{user_id}/sessions/{session_id}"): Access.OPERATOR,
    ("DELETE", "/v1/users/{user_id}/sessions"): Access.OPERATOR,
    ("GET", "/v1/devices"): Access.OPERATOR,
    ("POST", "/v1/devices"): Access.OPERATOR,
    ("GET", "/v1/devices/{device_id}"): Access.OPERATOR,
    ("POST", "/v1/devices/{device_id}/key"): Access.OPERATOR,
    ("POST", "/v1/devices/{device_id}/revoke"): Access.OPERATOR,
    ("GET", "/v1/jobs"): Access.OPERATOR,
    ("GET", "/v1/jobs/{job_id}"): Access.OPERATOR,
    ("POST", "/v1/jobs/{job_id}/cancel"): Access.OPERATOR,
    ("GET", "/v1/failures"): Access.OPERATOR,
    ("POST", "/v1/failures/{source}/{failure_id}/retry"): Access.OPERATOR,
    ("GET", "/v1/queues"): Access.OPERATOR,
    ("GET", "/v1/audit-log"): Access.OPERATOR,
    ("GET", "/console/login"): Access.PUBLIC,
    ("POST", "/console/login"): Access.PUBLIC,
    ("POST", "/console/logout"): Access.CONSOLE,
    ("GET", "/console/"): Access.CONSOLE,
    ("GET", "/console/users"): Access.CONSOLE,
    ("GET", "/console/users/{user_id}"): Access.CONSOLE,
    ("GET", "/console/trips/{trip_id}"): Access.CONSOLE,
    ("GET", "/console/activity"): Access.CONSOLE,
    ("POST", "/console/users/{user_id}/disable"): Access.CONSOLE,
    ("POST", "/console/users/{user_id}/enable"): Access.CONSOLE,
    ("POST", "/console/users/{user_id}/role"): Access.CONSOLE_ADMIN,
    ("POST", "/console/users/{user_id}/sessions/{session_id}/revoke"): Access.CONSOLE,
    ("POST", "/console/users/{user_id}/sessions/revoke-all"): Access.CONSOLE,
    ("GET", "/console/devices"): Access.CONSOLE,
    ("POST", "/console/devices"): Access.CONSOLE,
    ("POST", "/console/devices/{device_id}/rotate"): Access.CONSOLE,
    ("POST", "/console/devices/{device_id}/revoke"): Access.CONSOLE,
    ("GET", "/console/jobs"): Access.CONSOLE,
    ("POST", "/console/jobs/{job_id}/cancel"): Access.CONSOLE,
    ("POST", "/console/failures/{source}/{failure_id}/retry"): Access.CONSOLE,
    ("GET", "/console/audit"): Access.CONSOLE,
    ("MOUNT", "/console/static"): Access.PUBLIC,
}

ROLES = ("anonymous", "user", "operator", "admin")


def app_routes(app) -> list[tuple[str, str]]:
    """(method, path) for every route of the app; mounts as ("MOUNT", path)."""
    routes = []
    for route in iter_route_contexts(app.routes):
        methods = (route.methods or {"MOUNT"}) - {"HEAD"}
        routes += [(method, route.path) for method in methods]
    return sorted(routes)


def expected(access: Access, role: str) -> str:
    """What a caller in `role` should meet: allowed, a 401, a 403 or a redirect to login."""
    console = access in (Access.CONSOLE, Access.CONSOLE_ADMIN)
    if access == Access.PUBLIC:
        return "same for everyone"
    if role == "anonymous":
        return "login" if console else "401"
    if role == "user":
        return "403"
    if role == "operator" and access in (Access.ADMIN, Access.CONSOLE_ADMIN):
        return "403"
    return "allowed"


def test_every_route_has_a_declared_access(admin_app) -> None:
    undeclared = set(app_routes(admin_app)) - set(ACCESS)
    assert not undeclared, f"decide who may call these routes and add them to ACCESS: {undeclared}"
    assert set(ACCESS) <= set(app_routes(admin_app)), "ACCESS lists routes the app no longer has"


async def test_the_rbac_matrix(
    client, browser, admin_app, make_user, make_device, auth_headers, sign_in, session_factory
) -> None:
    target = await make_user(email="target@example.com")
    device, _ = await make_device(target)
    async with session_factory() as session:
        trip = Trip(
            owner_id=target.id,
            name="Matrix run",
            origin_lat=52.5,
            origin_lon=13.4,
            destination_lat=52.4,
            destination_lon=13.1,
            planned_start=datetime.now(UTC),
            planned_arrival=datetime.now(UTC) + timedelta(hours=1),
        )
        session.add(trip)
        await session.commit()
    params = {
        "trip_id": trip.id,
        "user_id": target.id,
        "session_id": uuid.uuid4(),
        "device_id": device.id,
        "job_id": uuid.uuid4(),
        "source": "job",
        "failure_id": uuid.uuid4(),
    }
    bodies = {
        ("PUT", "/v1/users/{user_id}/role"): {"role": "user"},
        ("POST", "/v1/devices"): {"owner_id": str(target.id), "name": "Matrix van"},
    }
    users = {
        "user": await make_user(UserRole.USER),
        "operator": await make_user(UserRole.OPERATOR),
        "admin": await make_user(UserRole.ADMIN),
    }
    failures = []
    public_outcomes: dict[tuple[str, str], str] = {}
    for role in ROLES:
        for (method, path), access in sorted(ACCESS.items()):
            if method == "MOUNT" or path == "/console/logout":
                continue  # Static files: `test_static_files_...`; logout: tested last, below.
            console = path.startswith("/console")
            headers: dict[str, str] = {}
            data = None
            browser.cookies.clear()
            if role != "anonymous":
                if console:
                    data = {
                        "csrf_token": (await sign_in(browser, users[role])).csrf,
                        "role": "user",
                    }
                else:
                    headers = await auth_headers(users[role])
            caller = browser if console else client
            response = await caller.request(
                method,
                path.format(**params),
                headers=headers,
                json=bodies.get((method, path)),
                data=data if method != "GET" else None,
            )
            outcome = outcome_of(response)
            want = expected(access, role)
            if access == Access.PUBLIC:
                # Public routes answer everyone alike (the login form's own CSRF check included).
                want = public_outcomes.setdefault((method, path), outcome)
            if outcome != want:
                failures.append(
                    f"{role:9} {method:6} {path}: {response.status_code} ({outcome}), want {want}"
                )
    assert not failures, "\n".join(failures)


def outcome_of(response) -> str:
    location = response.headers.get("location", "")
    if response.status_code == 303 and location.startswith("/console/login?next="):
        return "login"
    if response.status_code in (401, 403):
        return str(response.status_code)
    assert response.status_code < 500, (response.request.url, response.text)
    return "allowed"


@pytest.mark.parametrize("role", ROLES)
async def test_logout_needs_a_console_session(browser, make_user, sign_in, role) -> None:
    data = {}
    if role != "anonymous":
        user = await make_user(UserRole(role))
        data = {"csrf_token": (await sign_in(browser, user)).csrf}
    response = await browser.post("/console/logout", data=data)
    assert outcome_of(response) == expected(ACCESS[("POST", "/console/logout")], role)


async def test_a_405_lists_every_method_the_path_allows(client, operator_headers) -> None:
    response = await client.request("OPTIONS", "/v1/devices", headers=operator_headers)
    assert response.status_code == 405
    assert set(response.headers["allow"].split(", ")) == {"GET", "POST"}
    sessions = await client.patch(f"/v1/users/{uuid.uuid4()}/sessions", headers=operator_headers)
    assert set(sessions.headers["allow"].split(", ")) == {"DELETE", "GET"}
