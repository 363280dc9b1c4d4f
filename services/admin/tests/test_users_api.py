"""Operators' user endpoints: search, roles, disabling, sessions, and what each change does to
the public API on its very next request."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from tripline_api.main import create_api_app
from tripline_api.settings import ApiSettings
from tripline_common.data.models import AuditLogEntry, AuthSession, User, UserRole


@pytest.fixture
async def api(make_settings, app_client):
    """The real public API, in-process, on the same test transaction as the admin app."""
    async with app_client(create_api_app(make_settings(ApiSettings))) as api_client:
        yield api_client


async def audit_entries(session_factory, action: str) -> list[AuditLogEntry]:
    async with session_factory() as session:
        rows = await session.scalars(
            select(AuditLogEntry).where(AuditLogEntry.action == action).order_by(AuditLogEntry.id)
        )
        return list(rows)


async def test_search_finds_users_by_part_of_email_or_name_role_and_status(
    client, operator_headers, make_user
) -> None:
    ada = await make_user(email="ada.lovelace@example.com", name="Ada Lovelace")
    await make_user(email="grace@example.com", name="Grace Hopper", active=False)
    await make_user(UserRole.ADMIN, email="root@example.com", name="Root")

    async def emails(**params) -> list[str]:
        response = await client.get("/v1/users", params=params, headers=operator_headers)
        assert response.status_code == 200, response.text
        return sorted(item["email"] for item in response.json()["items"])

    assert await emails(q="LOVELACE") == ["ada.lovelace@example.com"]
    assert await emails(q="hopper") == ["grace@example.com"]
    assert await emails(q=str(ada.id)) == ["ada.lovelace@example.com"]
    assert await emails(role="admin", q="example.com") == ["root@example.com"]
    assert await emails(active="false") == ["grace@example.com"]
    assert await emails(q="%") == []  # LIKE wildcards are matched literally


async def test_the_user_list_is_paginated_with_the_shared_helper(
    client, operator_headers, make_user
) -> None:
    for n in range(5):
        await make_user(email=f"page-{n}@example.com")
    params = {"q": "page-", "limit": 2, "sort": "email", "include_total": "true"}

    first = (await client.get("/v1/users", params=params, headers=operator_headers)).json()
    second = (
        await client.get(
            "/v1/users", params={**params, "cursor": first["next_cursor"]}, headers=operator_headers
        )
    ).json()

    assert first["total"] == 5
    assert [u["email"] for u in first["items"] + second["items"]] == [
        f"page-{n}@example.com" for n in range(4)
    ]
    bad_sort = await client.get("/v1/users?sort=password_hash", headers=operator_headers)
    assert bad_sort.status_code == 400
    assert bad_sort.json()["code"] == "invalid_sort"


async def test_viewing_a_user_never_shows_the_password_hash(
    client, operator_headers, make_user
) -> None:
    user = await make_user()
    response = await client.get(f"/v1/users/{user.id}", headers=operator_headers)
    assert response.status_code == 200
    assert response.json()["email"] == user.email
    assert "password" not in response.text
    missing = await client.get(f"/v1/users/{uuid.uuid4()}", headers=operator_headers)
    assert missing.status_code == 404
    assert missing.json()["code"] == "user_not_found"


async def test_only_admins_change_roles_and_it_applies_on_the_next_request(
    client, api, admin, admin_headers, operator_headers, make_user, auth_headers, session_factory
) -> None:
    user = await make_user()
    user_headers = await auth_headers(user)
    assert (await client.get("/v1/queues", headers=user_headers)).status_code == 403

    refused = await client.put(
        f"/v1/users/{user.id}/role", json={"role": "operator"}, headers=operator_headers
    )
    assert refused.status_code == 403
    promoted = await client.put(
        f"/v1/users/{user.id}/role", json={"role": "operator"}, headers=admin_headers
    )

    assert promoted.status_code == 200
    assert promoted.json()["role"] == "operator"
    # The same token, issued while the user was a plain user, now reaches the admin API.
    assert (await client.get("/v1/queues", headers=user_headers)).status_code == 200
    [entry] = await audit_entries(session_factory, "user.role_change")
    assert entry.actor_id == admin.id
    assert entry.details == {"email": user.email, "from": "user", "to": "operator"}


async def test_nobody_changes_their_own_role_or_disables_themselves(
    client, admin, admin_headers
) -> None:
    demote = await client.put(
        f"/v1/users/{admin.id}/role", json={"role": "user"}, headers=admin_headers
    )
    disable = await client.post(f"/v1/users/{admin.id}/disable", headers=admin_headers)
    assert demote.status_code == disable.status_code == 403
    assert demote.json()["code"] == disable.json()["code"] == "own_account"


async def test_operators_manage_plain_users_only(
    client, operator_headers, admin_headers, make_user
) -> None:
    other_admin = await make_user(UserRole.ADMIN)
    refused = await client.post(f"/v1/users/{other_admin.id}/disable", headers=operator_headers)
    assert refused.status_code == 403
    assert refused.json()["code"] == "admin_required"
    allowed = await client.post(f"/v1/users/{other_admin.id}/disable", headers=admin_headers)
    assert allowed.status_code == 200


async def test_disabling_a_user_ends_their_api_sessions_at_once(
    client, api, operator, operator_headers, make_user, auth_headers, session_factory
) -> None:
    user = await make_user()
    user_headers = await auth_headers(user)
    assert (await api.get("/v1/users/me", headers=user_headers)).status_code == 200

    response = await client.post(
        f"/v1/users/{user.id}/disable",
        headers={**operator_headers, "X-Request-ID": "disable-req-1"},
    )

    assert response.status_code == 200
    assert response.json()["is_active"] is False
    me = await api.get("/v1/users/me", headers=user_headers)
    assert me.status_code == 401
    login = await api.post(
        "/v1/auth/token", data={"username": user.email, "password": "correct horse battery"}
    )
    assert login.status_code == 401
    [entry] = await audit_entries(session_factory, "user.disable")
    assert (entry.actor_id, entry.actor_label) == (operator.id, operator.email)
    assert (entry.target_type, entry.target_id) == ("user", str(user.id))
    assert entry.request_id == "disable-req-1"
    assert entry.source_ip == "127.0.0.1"
    assert entry.details == {"email": user.email, "sessions_revoked": 1}

    # Enabling lets them log in again, but the revoked token stays revoked.
    enabled = await client.post(f"/v1/users/{user.id}/enable", headers=operator_headers)
    assert enabled.json()["is_active"] is True
    assert (await api.get("/v1/users/me", headers=user_headers)).status_code == 401
    login = await api.post(
        "/v1/auth/token", data={"username": user.email, "password": "correct horse battery"}
    )
    assert login.status_code == 200


async def test_revoking_a_session_takes_effect_on_the_public_apis_next_request(
    client, api, operator_headers, make_user, auth_headers, session_factory
) -> None:
    user = await make_user()
    kept, revoked = await auth_headers(user), await auth_headers(user)
    sessions = (await client.get(f"/v1/users/{user.id}/sessions", headers=operator_headers)).json()
    assert len(sessions) == 2 and all(s["active"] and s["kind"] == "api" for s in sessions)
    async with session_factory() as session:
        newest = await session.scalar(
            select(AuthSession)
            .where(AuthSession.user_id == user.id)
            .order_by(AuthSession.created_at.desc())
        )

    response = await client.delete(
        f"/v1/users/{user.id}/sessions/{newest.id}", headers=operator_headers
    )

    assert response.status_code == 204
    assert (await api.get("/v1/users/me", headers=revoked)).status_code == 401
    assert (await api.get("/v1/users/me", headers=kept)).status_code == 200
    listed = (await client.get(f"/v1/users/{user.id}/sessions", headers=operator_headers)).json()
    assert {s["id"]: s["revoked_reason"] for s in listed}[str(newest.id)] == "revoked_by_operator"
    unknown = await client.delete(
        f"/v1/users/{user.id}/sessions/{uuid.uuid4()}", headers=operator_headers
    )
    assert unknown.status_code == 404


async def test_revoking_all_sessions_logs_the_user_out_everywhere(
    client, api, operator_headers, make_user, auth_headers, session_factory
) -> None:
    user = await make_user()
    tokens = [await auth_headers(user) for _ in range(3)]

    response = await client.delete(f"/v1/users/{user.id}/sessions", headers=operator_headers)

    assert response.json() == {"revoked": 3}
    for headers in tokens:
        assert (await api.get("/v1/users/me", headers=headers)).status_code == 401
    async with session_factory() as session:
        user_row = await session.get(User, user.id)
    assert user_row.is_active  # Still allowed to log in again.
    [entry] = await audit_entries(session_factory, "session.revoke_all")
    assert entry.details["sessions_revoked"] == 3
