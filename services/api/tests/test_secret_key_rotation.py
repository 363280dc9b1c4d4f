"""Rotating SECRET_KEY without logging anyone out: the retired key moves to SECRET_KEY_PREVIOUS,
where it still verifies access tokens and pagination cursors (never signs), until it is removed.

Each phase of a rolling deploy is a real API app with that phase's settings, on one database.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jwt
import pytest

from tripline_api.main import create_api_app
from tripline_api.settings import ApiSettings
from tripline_common.security import open_session
from tripline_common.security.auth.tokens import ALGORITHM

OLD_KEY = "old-secret-key-" + "o" * 32
NEW_KEY = "new-secret-key-" + "n" * 32
UNKNOWN_KEY = "unknown-secret-key-" + "u" * 32


@pytest.fixture
def phase(make_settings, app_client):
    """`async with phase(secret_key, previous) as client`: the API running with these keys."""

    def make(secret_key: str, previous: list[str] | str | None = None):
        settings = make_settings(
            ApiSettings, secret_key=secret_key, secret_key_previous=previous or []
        )
        return app_client(create_api_app(settings))

    return make


async def token_for(make_settings, session_factory, user, secret_key: str) -> str:
    """An access token of a real session, signed by an app whose SECRET_KEY is `secret_key`."""
    settings = make_settings(ApiSettings, secret_key=secret_key)
    async with session_factory() as session:
        issued = await open_session(session=session, settings=settings, user=user)
        await session.commit()
    return issued.access_token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def signed_with(token: str, key: str) -> bool:
    try:
        jwt.decode(token, key, algorithms=[ALGORITHM], options={"verify_aud": False})
    except jwt.InvalidSignatureError:
        return False
    return True


def assert_invalid_token(response) -> None:
    assert response.status_code == 401, response.text
    body = response.json()
    assert body["code"] == "invalid_token"
    assert set(body) == {"code", "message", "details", "request_id"}
    assert body["request_id"] == response.headers["x-request-id"]
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_a_token_signed_with_the_previous_key_verifies_until_that_key_is_removed(
    phase, make_settings, session_factory, make_user
) -> None:
    user = await make_user()
    old_token = await token_for(make_settings, session_factory, user, OLD_KEY)

    # Rolling deploy: the new key is current, the old one previous. Nobody is logged out.
    async with phase(NEW_KEY, OLD_KEY) as rotated:
        me = await rotated.get("/v1/users/me", headers=bearer(old_token))
        assert me.status_code == 200, me.text
        assert me.json()["id"] == str(user.id)
        # What this phase issues is signed with the new key only.
        login = await rotated.post(
            "/v1/auth/token", data={"username": user.email, "password": "correct horse battery"}
        )
        new_token = login.json()["access_token"]
        assert signed_with(new_token, NEW_KEY) and not signed_with(new_token, OLD_KEY)
        assert (await rotated.get("/v1/users/me", headers=bearer(new_token))).status_code == 200

    # Once every old token has expired, the previous key is removed: what it signed is refused
    # (even though the token verified a moment ago in this process: the keys are in the cache
    # key), and tokens signed with the new key still work.
    async with phase(NEW_KEY) as finished:
        assert_invalid_token(await finished.get("/v1/users/me", headers=bearer(old_token)))
        assert (await finished.get("/v1/users/me", headers=bearer(new_token))).status_code == 200


async def test_a_token_signed_with_an_unknown_key_is_refused(
    phase, make_settings, session_factory, make_user
) -> None:
    user = await make_user()
    foreign = await token_for(make_settings, session_factory, user, UNKNOWN_KEY)

    async with phase(NEW_KEY, [OLD_KEY, "another-old-key-" + "a" * 32]) as rotated:
        assert_invalid_token(await rotated.get("/v1/users/me", headers=bearer(foreign)))


async def test_previous_keys_only_verify_what_is_otherwise_valid(
    phase, make_settings, session_factory, make_user
) -> None:
    """A previous key is a signing key like the current one, nothing more: an expired token, or
    one with another audience, signed with it is refused as it would be with the current key."""
    user = await make_user()
    valid = await token_for(make_settings, session_factory, user, OLD_KEY)
    claims = jwt.decode(valid, OLD_KEY, algorithms=[ALGORITHM], audience="tripline")
    now = datetime.now(UTC)
    expired = jwt.encode(
        {**claims, "iat": now - timedelta(hours=1), "exp": now - timedelta(minutes=30)},
        OLD_KEY,
        algorithm=ALGORITHM,
    )
    other_audience = jwt.encode({**claims, "aud": "elsewhere"}, OLD_KEY, algorithm=ALGORITHM)

    async with phase(NEW_KEY, OLD_KEY) as rotated:
        response = await rotated.get("/v1/users/me", headers=bearer(expired))
        assert response.status_code == 401 and response.json()["code"] == "token_expired"
        assert_invalid_token(await rotated.get("/v1/users/me", headers=bearer(other_audience)))
        assert (await rotated.get("/v1/users/me", headers=bearer(valid))).status_code == 200


async def test_a_cursor_issued_before_the_rotation_still_pages_until_the_key_is_removed(
    phase, make_settings, session_factory, make_user
) -> None:
    user = await make_user()
    async with phase(OLD_KEY) as before:
        headers = bearer(await token_for(make_settings, session_factory, user, OLD_KEY))
        for n in range(3):
            created = await before.post(
                "/v1/webhooks", json={"url": f"https://hooks.example.com/{n}"}, headers=headers
            )
            assert created.status_code == 201, created.text
        first = await before.get("/v1/webhooks", params={"limit": 2}, headers=headers)
        cursor = first.json()["next_cursor"]
        assert cursor

    async with phase(NEW_KEY, OLD_KEY) as rotated:
        headers = bearer(await token_for(make_settings, session_factory, user, NEW_KEY))
        second = await rotated.get(
            "/v1/webhooks", params={"limit": 2, "cursor": cursor}, headers=headers
        )
        assert second.status_code == 200, second.text
        seen = [item["id"] for item in first.json()["items"] + second.json()["items"]]
        assert len(set(seen)) == 3

    async with phase(NEW_KEY) as finished:
        refused = await finished.get(
            "/v1/webhooks", params={"limit": 2, "cursor": cursor}, headers=headers
        )
        assert refused.status_code == 400 and refused.json()["code"] == "invalid_cursor"


def test_production_refuses_a_weak_previous_key() -> None:
    strong = {"environment": "prod", "secret_key": NEW_KEY, "database_url": "postgresql://x/y"}
    with pytest.raises(ValueError, match="SECRET_KEY_PREVIOUS"):
        ApiSettings(_env_file=None, **strong, secret_key_previous="too-short")
    settings = ApiSettings(_env_file=None, **strong, secret_key_previous=f'["{OLD_KEY}"]')
    assert settings.secret_keys() == (NEW_KEY, OLD_KEY)
    assert OLD_KEY not in repr(settings)  # A SecretStr like SECRET_KEY: never printed.


def test_secret_key_previous_is_read_from_the_environment(monkeypatch) -> None:
    monkeypatch.setenv("SECRET_KEY", NEW_KEY)
    monkeypatch.setenv("SECRET_KEY_PREVIOUS", OLD_KEY)
    assert ApiSettings(_env_file=None).secret_keys() == (NEW_KEY, OLD_KEY)
    # A JSON list for two retired keys; a key containing a comma stays one key.
    comma_key = "with,a,comma-" + "c" * 32
    monkeypatch.setenv("SECRET_KEY_PREVIOUS", f'["{OLD_KEY}", "{comma_key}"]')
    assert ApiSettings(_env_file=None).secret_keys() == (NEW_KEY, OLD_KEY, comma_key)
    monkeypatch.setenv("SECRET_KEY_PREVIOUS", comma_key)
    assert ApiSettings(_env_file=None).secret_keys() == (NEW_KEY, comma_key)
    monkeypatch.setenv("SECRET_KEY_PREVIOUS", "")
    assert ApiSettings(_env_file=None).secret_keys() == (NEW_KEY,)
