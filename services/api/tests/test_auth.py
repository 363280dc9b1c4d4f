"""Identity: the OAuth2 password flow, tokens tied to revocable sessions, roles, brute force."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from fastapi import APIRouter
from sqlalchemy import select

from tests.support.users import PASSWORD  # the password `make_user` gives users
from tripline_api.settings import ApiSettings
from tripline_api.state import ApiState
from tripline_common.data.models import AuthSession, UserRole
from tripline_common.security.auth import service
from tripline_common.security.auth.tokens import ALGORITHM
from tripline_common.web import OperatorUser, create_app


async def login(client, email: str, password: str = PASSWORD, **headers: str):
    return await client.post(
        "/v1/auth/token", data={"username": email, "password": password}, headers=headers
    )


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def forge(settings: ApiSettings, user_id: uuid.UUID, session_id: uuid.UUID, **overrides) -> str:
    now = datetime.now(UTC)
    payload = {
        "sub": str(user_id),
        "sid": str(session_id),
        "role": "user",
        "iat": now,
        "exp": now + timedelta(minutes=5),
        "jti": uuid.uuid4().hex,
        "aud": settings.jwt_audience,
        "iss": settings.jwt_issuer,
        **overrides,
    }
    return jwt.encode(payload, settings.secret_key.get_secret_value(), algorithm=ALGORITHM)


async def test_login_issues_tokens_for_a_new_session(client, make_user, session_factory) -> None:
    user = await make_user()
    response = await login(client, user.email, **{"User-Agent": "pytest-phone"})
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 900
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert {"sub", "sid", "exp", "iat", "jti", "aud", "iss"} <= set(claims)
    assert claims["sub"] == str(user.id)
    assert claims["exp"] - claims["iat"] == 900
    async with session_factory() as session:
        row = await session.get(AuthSession, uuid.UUID(claims["sid"]))
    assert row is not None and row.user_id == user.id and row.revoked_at is None
    assert row.user_agent == "pytest-phone"
    assert row.refresh_token_hash != body["refresh_token"]  # Stored hashed.
    me = await client.get("/v1/users/me", headers=bearer(body["access_token"]))
    assert me.status_code == 200
    assert me.json()["id"] == str(user.id)


async def test_wrong_password_and_unknown_email_get_the_same_answer(client, make_user) -> None:
    user = await make_user()
    wrong = await login(client, user.email, "not the password")
    unknown = await login(client, "nobody@example.com")
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json()["code"] == unknown.json()["code"] == "invalid_credentials"
    assert wrong.json()["message"] == unknown.json()["message"]


async def test_a_disabled_user_cannot_log_in_and_their_tokens_stop_working(
    client, make_user, auth_headers, session_factory
) -> None:
    user = await make_user()
    headers = await auth_headers(user)
    assert (await client.get("/v1/users/me", headers=headers)).status_code == 200
    async with session_factory() as session:
        stored = await session.get(type(user), user.id)
        stored.is_active = False
        await session.commit()
    assert (await client.get("/v1/users/me", headers=headers)).status_code == 401
    refused = await login(client, user.email)
    assert refused.status_code == 401
    assert refused.json()["code"] == "account_disabled"


async def test_requests_without_a_token_get_a_401_with_a_challenge(client) -> None:
    response = await client.get("/v1/users/me")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["code"] == "unauthorized"


async def test_an_expired_token_is_rejected(client, make_user, auth_headers, api_settings) -> None:
    user = await make_user()
    session_id = await _session_id(await auth_headers(user))
    past = datetime.now(UTC) - timedelta(hours=1)
    token = forge(api_settings, user.id, session_id, iat=past, exp=past + timedelta(minutes=15))
    response = await client.get("/v1/users/me", headers=bearer(token))
    assert response.status_code == 401
    assert response.json()["code"] == "token_expired"


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(
            lambda t, s, u, sid: t[:-4] + ("AAAA" if not t.endswith("AAAA") else "BBBB"),
            id="bad-signature",
        ),
        pytest.param(
            lambda t, s, u, sid: jwt.encode(
                jwt.decode(t, options={"verify_signature": False}), key="", algorithm="none"
            ),
            id="alg-none",
        ),
        pytest.param(
            lambda t, s, u, sid: forge(s, u, sid, aud="another-service"), id="wrong-audience"
        ),
        pytest.param(lambda t, s, u, sid: forge(s, u, sid, iss="someone-else"), id="wrong-issuer"),
        pytest.param(
            lambda t, s, u, sid: jwt.encode(
                {**jwt.decode(t, options={"verify_signature": False}), "sub": str(uuid.uuid4())},
                s.secret_key.get_secret_value(),
                algorithm=ALGORITHM,
            ),
            id="other-user-same-session",
        ),
        pytest.param(lambda t, s, u, sid: "not.a.jwt", id="garbage"),
        pytest.param(
            lambda t, s, u, sid: jwt.encode({"sub": str(u)}, s.secret_key.get_secret_value()),
            id="missing-claims",
        ),
    ],
)
async def test_forged_or_tampered_tokens_are_rejected(
    client, make_user, auth_headers, api_settings, tamper
) -> None:
    user = await make_user()
    headers = await auth_headers(user)
    token = headers["Authorization"].removeprefix("Bearer ")
    session_id = await _session_id(headers)
    response = await client.get(
        "/v1/users/me", headers=bearer(tamper(token, api_settings, user.id, session_id))
    )
    assert response.status_code == 401
    assert response.json()["code"] in {"invalid_token", "session_revoked"}


async def test_logout_takes_effect_on_the_very_next_request(client, make_user) -> None:
    user = await make_user()
    tokens = (await login(client, user.email)).json()
    headers = bearer(tokens["access_token"])
    assert (await client.get("/v1/users/me", headers=headers)).status_code == 200
    assert (await client.post("/v1/auth/logout", headers=headers)).status_code == 204
    after = await client.get("/v1/users/me", headers=headers)
    assert after.status_code == 401
    assert after.json()["code"] == "session_revoked"
    refreshed = await client.post(
        "/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert refreshed.status_code == 401


async def test_refresh_rotates_and_an_old_refresh_token_is_refused(client, make_user) -> None:
    user = await make_user()
    first = (await login(client, user.email)).json()
    second = await client.post("/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert second.status_code == 200
    pair = second.json()
    assert pair["refresh_token"] != first["refresh_token"]
    assert (
        await client.get("/v1/users/me", headers=bearer(pair["access_token"]))
    ).status_code == 200
    reused = await client.post("/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert reused.status_code == 401


async def test_sessions_are_listed_and_one_can_be_revoked(client, make_user) -> None:
    user = await make_user()
    phone = (await login(client, user.email, **{"User-Agent": "phone"})).json()["access_token"]
    laptop = (await login(client, user.email, **{"User-Agent": "laptop"})).json()["access_token"]
    listed = await client.get("/v1/auth/sessions", headers=bearer(laptop))
    assert listed.status_code == 200
    sessions = {s["user_agent"]: s for s in listed.json()}
    assert sessions["laptop"]["current"] is True
    assert sessions["phone"]["current"] is False
    revoke = await client.delete(
        f"/v1/auth/sessions/{sessions['phone']['id']}", headers=bearer(laptop)
    )
    assert revoke.status_code == 204
    again = await client.delete(
        f"/v1/auth/sessions/{sessions['phone']['id']}", headers=bearer(laptop)
    )
    assert again.status_code == 204  # Idempotent.
    assert (await client.get("/v1/users/me", headers=bearer(phone))).status_code == 401
    assert (await client.get("/v1/users/me", headers=bearer(laptop))).status_code == 200


async def test_another_users_session_cannot_be_revoked(client, make_user, auth_headers) -> None:
    alice, bob = await make_user(), await make_user()
    bob_headers = await auth_headers(bob)
    bob_session = await _session_id(bob_headers)
    response = await client.delete(
        f"/v1/auth/sessions/{bob_session}", headers=await auth_headers(alice)
    )
    assert response.status_code == 404
    assert (await client.get("/v1/users/me", headers=bob_headers)).status_code == 200


async def test_an_operators_revocation_takes_effect_on_the_next_request(
    client, make_user, auth_headers, session_factory
) -> None:
    user = await make_user()
    headers = await auth_headers(user)
    async with session_factory() as session:
        await service.revoke_session(
            session=session, session_id=await _session_id(headers), user_id=None, reason="operator"
        )
        await session.commit()
        row = await session.scalar(select(AuthSession).where(AuthSession.user_id == user.id))
    assert row.revoked_reason == "operator"
    assert (await client.get("/v1/users/me", headers=headers)).status_code == 401


async def test_login_attempts_are_rate_limited_with_retry_after(
    make_settings, app_client, make_user
) -> None:
    from tripline_api.main import create_api_app

    user = await make_user()
    # An hour's window: the fixed window cannot roll over between the attempts.
    app = create_api_app(
        make_settings(ApiSettings, login_rate_limit=3, login_rate_window_seconds=3600)
    )
    async with app_client(app) as client:
        answers = [
            (await login(client, user.email, "wrong password")).status_code for _ in range(3)
        ]
        limited = await login(client, user.email)  # Even the right password waits now.
    assert answers == [401, 401, 401]
    assert limited.status_code == 429
    assert limited.json()["code"] == "rate_limited"
    assert 1 <= int(limited.headers["retry-after"]) <= 3601


async def test_right_passwords_do_not_count_against_the_failure_limit(
    make_settings, app_client, make_user
) -> None:
    from tripline_api.main import create_api_app

    user = await make_user()
    app = create_api_app(
        make_settings(ApiSettings, login_rate_limit=2, login_rate_window_seconds=3600)
    )
    async with app_client(app) as client:
        answers = [
            (await login(client, user.email, password)).status_code
            for password in ("wrong password", PASSWORD, PASSWORD, PASSWORD, "wrong again")
        ]
        limited = await login(client, user.email)
    assert answers == [401, 200, 200, 200, 401]  # Two failures: the limit, not beyond it.
    assert limited.status_code == 429


async def test_one_client_trying_many_emails_meets_its_own_limit(make_settings, app_client) -> None:
    from tripline_api.main import create_api_app

    app = create_api_app(
        make_settings(ApiSettings, login_client_rate_limit=3, login_rate_window_seconds=3600)
    )
    async with app_client(app) as client:
        answers = [(await login(client, f"nobody-{n}@example.com")).status_code for n in range(4)]
    assert answers == [401, 401, 401, 429]


@pytest.mark.parametrize(
    ("role", "expected"),
    [(UserRole.USER, 403), (UserRole.OPERATOR, 200), (UserRole.ADMIN, 200)],
)
async def test_require_role_allows_only_the_listed_roles(
    make_settings, app_client, make_user, auth_headers, role, expected
) -> None:
    router = APIRouter()

    @router.get("/ops-only")
    async def ops_only(user: OperatorUser) -> dict[str, str]:
        return {"role": user.role.value}

    app = create_app(
        state=ApiState(make_settings(ApiSettings)), title="t", description="t", routers=[router]
    )
    user = await make_user(role=role)
    async with app_client(app) as client:
        anonymous = await client.get("/v1/ops-only")
        response = await client.get("/v1/ops-only", headers=await auth_headers(user))
    assert anonymous.status_code == 401
    assert response.status_code == expected
    if expected == 403:
        assert response.json()["code"] == "insufficient_role"


async def _session_id(headers: dict[str, str]) -> uuid.UUID:
    token = headers["Authorization"].removeprefix("Bearer ")
    return uuid.UUID(jwt.decode(token, options={"verify_signature": False})["sid"])


async def test_a_value_the_database_cannot_store_is_a_422_not_a_500(client) -> None:
    response = await login(client, "nul\x00byte@example.com")
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_value"
