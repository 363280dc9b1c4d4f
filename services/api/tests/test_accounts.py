"""Accounts under attack: enumeration, bulk sign-up, hash-slot starvation, mailed tokens that are
forged, reused or expired, and password changes that must end the other sessions."""

from __future__ import annotations

import asyncio
import threading
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import delete, select, update

from tests.support.users import PASSWORD  # the password `make_user` gives users
from tripline_api.main import create_api_app
from tripline_api.settings import ApiSettings
from tripline_common.data import create_engine, create_session_factory
from tripline_common.data.models import AccountToken, AuthSession, User
from tripline_common.security import hash_password, passwords
from tripline_common.security.passwords import ACCOUNT_HASH_SLOTS
from tripline_devstack import DevMailServer

NEW_PASSWORD = "violet tractor 42"


def headers_without_noise(response) -> dict[str, str]:
    # `RateLimit` counts this client's sign-ups down by one per request, whatever the address.
    noisy = {"x-request-id", "date", "content-length", "ratelimit"}
    return {k: v for k, v in response.headers.items() if k.lower() not in noisy}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def login(client, email: str, password: str):
    return await client.post("/v1/auth/token", data={"username": email, "password": password})


def verify_token(mail_server: DevMailServer, email: str, index: int = -1) -> str:
    links = [link for mail in mail_server.to(email) for link in mail.links]
    return parse_qs(urlsplit(links[index]).query)["token"][0]


def reset_token(mail_server: DevMailServer, email: str) -> str:
    return [token for mail in mail_server.to(email) for token in mail.tokens][-1]


@pytest.fixture
async def client(api_settings, app_client):
    async with app_client(create_api_app(api_settings)) as api:
        yield api


# --- enumeration -------------------------------------------------------------------------------


async def test_sign_up_answers_a_taken_and_a_new_address_the_same_way(
    client, make_user, deliver_account_mail, mail_server
) -> None:
    taken = await make_user()
    new = await client.post(
        "/v1/users",
        json={"email": "newcomer@example.com", "display_name": "N", "password": NEW_PASSWORD},
    )
    again = await client.post(
        "/v1/users", json={"email": taken.email, "display_name": "N", "password": NEW_PASSWORD}
    )
    assert new.status_code == again.status_code == 202
    assert new.content == again.content
    assert headers_without_noise(new) == headers_without_noise(again)
    # What differs goes to the mailbox, which only the address's owner reads.
    assert await deliver_account_mail() == 2
    assert [m.subject for m in mail_server.to("newcomer@example.com")] == [
        "Confirm your email address for Tripline"
    ]
    assert [m.subject for m in mail_server.to(taken.email)] == [
        "Someone tried to sign up to Tripline with your address"
    ]


class CountingHasher:
    """Argon2 as usual, counting the hashes computed."""

    def __init__(self, real) -> None:
        self.real = real
        self.hashes = 0

    def hash(self, password: str) -> str:
        self.hashes += 1
        return self.real.hash(password)

    def verify(self, password: str, password_hash: str) -> bool:
        return self.real.verify(password, password_hash)


async def test_sign_up_does_the_same_expensive_work_for_a_taken_and_a_new_address(
    client, make_user, monkeypatch
) -> None:
    """Time cannot tell the two apart by the Argon2 hash: both paths compute exactly one."""
    taken = await make_user()
    hasher = CountingHasher(passwords._hasher())
    monkeypatch.setattr(passwords, "_hasher", lambda: hasher)
    counts = []
    for email in ("fresh@example.com", taken.email):
        before = hasher.hashes
        answer = await client.post(
            "/v1/users", json={"email": email, "display_name": "N", "password": NEW_PASSWORD}
        )
        assert answer.status_code == 202
        counts.append(hasher.hashes - before)
    assert counts == [1, 1]


async def test_password_reset_requests_answer_the_same_for_any_address(
    client, make_user, deliver_account_mail, mail_server
) -> None:
    user = await make_user()
    known = await client.post("/v1/accounts/password-reset/request", json={"email": user.email})
    unknown = await client.post(
        "/v1/accounts/password-reset/request", json={"email": "nobody@example.com"}
    )
    assert known.status_code == unknown.status_code == 202
    assert known.content == unknown.content
    assert await deliver_account_mail() == 1
    assert mail_server.to("nobody@example.com") == []
    assert [m.subject for m in mail_server.to(user.email)] == ["Reset your Tripline password"]


# --- bulk sign-up and hashing capacity ---------------------------------------------------------


async def test_bulk_sign_up_from_one_client_is_refused_beyond_the_limit(
    make_settings, app_client
) -> None:
    settings = make_settings(ApiSettings, signup_rate_limit=3)
    async with app_client(create_api_app(settings)) as client:
        answers = [
            await client.post(
                "/v1/users",
                json={
                    "email": f"bulk{n}@example.com",
                    "display_name": "B",
                    "password": NEW_PASSWORD,
                },
            )
            for n in range(5)
        ]
        metrics = (await client.get("/metrics")).text
    assert [a.status_code for a in answers] == [202, 202, 202, 429, 429]
    refused = answers[-1]
    assert refused.json()["code"] == "rate_limited"
    assert set(refused.json()) == {"code", "message", "details", "request_id"}
    assert int(refused.headers["retry-after"]) >= 1
    assert 'tripline_api_rate_limit_rejections_total{limit="signup"} 2.0' in metrics


async def test_sign_ups_from_all_clients_together_are_capped(make_settings, app_client) -> None:
    settings = make_settings(ApiSettings, signup_rate_limit=100, signup_global_rate_limit=2)
    async with app_client(create_api_app(settings)) as client:
        codes = [
            (
                await client.post(
                    "/v1/users",
                    json={
                        "email": f"g{n}@example.com",
                        "display_name": "G",
                        "password": NEW_PASSWORD,
                    },
                )
            ).status_code
            for n in range(3)
        ]
    assert codes == [202, 202, 429]


class BlockingHasher:
    """Argon2 as usual, except that `hash` (sign-up's step) waits until `release` is set and
    counts how many hashes run at once; `verify` (login's step) runs freely."""

    def __init__(self, real) -> None:
        self.real = real
        self.release = threading.Event()
        self.lock = threading.Lock()
        self.inside = 0
        self.most_inside = 0

    def hash(self, password: str) -> str:
        with self.lock:
            self.inside += 1
            self.most_inside = max(self.most_inside, self.inside)
        try:
            self.release.wait(60)
            return self.real.hash(password)
        finally:
            with self.lock:
                self.inside -= 1

    def verify(self, password: str, password_hash: str) -> bool:
        return self.real.verify(password, password_hash)


async def test_a_burst_of_sign_ups_cannot_make_logins_wait(
    make_settings, monkeypatch, database_url
) -> None:
    """Sign-ups whose hashing never finishes hold at most their share of the Argon2 slots;
    a login still gets a slot and succeeds while they hang. (With every sign-up allowed to
    take any slot, the login waits behind them and the deadline below fails the test.)"""
    settings = make_settings(ApiSettings, signup_rate_limit=100)
    engine = create_engine(settings)
    sessions = create_session_factory(engine)
    email = f"steady-{uuid.uuid4().hex[:8]}@example.com"
    burst = [f"burst-{uuid.uuid4().hex[:8]}-{n}@example.com" for n in range(8)]
    async with sessions() as session:
        session.add(
            User(
                email=email,
                display_name="Steady",
                password_hash=await hash_password(PASSWORD),
                email_verified_at=datetime.now(UTC),
            )
        )
        await session.commit()
    hasher = BlockingHasher(passwords._hasher())
    monkeypatch.setattr(passwords, "_hasher", lambda: hasher)
    try:
        # The app's own pools (not the test's one connection): the requests really run at once.
        app = create_api_app(settings)
        async with (
            LifespanManager(app) as manager,
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=manager.app), base_url="http://testserver"
            ) as client,
        ):
            sign_ups = [
                asyncio.create_task(
                    client.post(
                        "/v1/users",
                        json={"email": a, "display_name": "B", "password": NEW_PASSWORD},
                    )
                )
                for a in burst
            ]
            try:
                deadline = asyncio.get_running_loop().time() + 30
                while hasher.inside < 1:  # The burst has reached the hashing step.
                    assert asyncio.get_running_loop().time() < deadline, "no sign-up hashed"
                    await asyncio.sleep(0.01)
                response = await asyncio.wait_for(login(client, email, PASSWORD), timeout=30)
                assert response.status_code == 200, response.text
                assert hasher.inside == ACCOUNT_HASH_SLOTS  # The burst still hangs meanwhile.
            finally:
                hasher.release.set()
                answers = await asyncio.gather(*sign_ups)
        assert [a.status_code for a in answers] == [202] * len(burst)
        assert hasher.most_inside == ACCOUNT_HASH_SLOTS
    finally:
        async with sessions() as session:
            await session.execute(delete(User).where(User.email.in_([email, *burst])))  # type: ignore[attr-defined]
            await session.commit()
        await engine.dispose()


# --- email verification ------------------------------------------------------------------------


async def test_an_unverified_account_cannot_log_in_until_its_link_is_followed(
    client, deliver_account_mail, mail_server
) -> None:
    email = "lin@example.com"
    await client.post(
        "/v1/users", json={"email": email, "display_name": "Lin", "password": NEW_PASSWORD}
    )
    wrong = await login(client, email, "not the password at all")
    early = await login(client, email, NEW_PASSWORD)
    # A guesser learns nothing new: only the right password hears about verification.
    assert wrong.status_code == 401 and wrong.json()["code"] == "invalid_credentials"
    assert early.status_code == 403 and early.json()["code"] == "email_not_verified"
    await deliver_account_mail()
    verified = await client.post(
        "/v1/accounts/verify-email", json={"token": verify_token(mail_server, email)}
    )
    assert verified.status_code == 200 and verified.json() == {"status": "verified"}
    assert (await login(client, email, NEW_PASSWORD)).status_code == 200


async def test_each_sign_up_link_sets_its_own_password_and_retires_the_others(
    client, deliver_account_mail, mail_server, session_factory
) -> None:
    """Someone signs up with another person's address first; the owner signs up too. The
    owner's link gives the account the owner's password, and the squatter's link is dead."""
    email = "owner@example.com"
    squatter_password, owner_password = "squatter pass 99", "lilac harbour 77"
    for password in (squatter_password, owner_password):
        answer = await client.post(
            "/v1/users", json={"email": email, "display_name": "O", "password": password}
        )
        assert answer.status_code == 202
    assert await deliver_account_mail() == 2
    squatter_link, owner_link = (
        verify_token(mail_server, email, 0),
        verify_token(mail_server, email, 1),
    )
    assert (
        await client.get("/v1/accounts/verify-email", params={"token": owner_link})
    ).status_code == 200
    stale = await client.get("/v1/accounts/verify-email", params={"token": squatter_link})
    assert stale.status_code == 410 and stale.json()["code"] == "token_used"
    assert (await login(client, email, squatter_password)).status_code == 401
    assert (await login(client, email, owner_password)).status_code == 200
    async with session_factory() as session:
        rows = (await session.scalars(select(AccountToken))).all()
    assert all(len(row.token_hash or "") == 64 for row in rows)  # Only hashes are stored.
    assert owner_link not in {row.token_hash for row in rows}


async def test_verification_tokens_that_are_forged_reused_or_expired_are_refused(
    client, deliver_account_mail, mail_server, session_factory
) -> None:
    for n in (1, 2):
        await client.post(
            "/v1/users",
            json={"email": f"v{n}@example.com", "display_name": "V", "password": NEW_PASSWORD},
        )
    await deliver_account_mail()
    first, second = (
        verify_token(mail_server, "v1@example.com"),
        verify_token(mail_server, "v2@example.com"),
    )
    forged = await client.post("/v1/accounts/verify-email", json={"token": "x" * 43})
    assert forged.status_code == 400 and forged.json()["code"] == "invalid_token"
    assert (
        await client.post("/v1/accounts/verify-email", json={"token": first})
    ).status_code == 200
    reused = await client.post("/v1/accounts/verify-email", json={"token": first})
    assert reused.status_code == 410 and reused.json()["code"] == "token_used"
    async with session_factory() as session:
        await session.execute(
            update(AccountToken).values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
        await session.commit()
    expired = await client.post("/v1/accounts/verify-email", json={"token": second})
    assert expired.status_code == 410 and expired.json()["code"] == "token_expired"
    assert set(expired.json()) == {"code", "message", "details", "request_id"}


# --- password reset ----------------------------------------------------------------------------


async def test_a_password_reset_sets_the_password_once_and_ends_every_session(
    client, make_user, auth_headers, deliver_account_mail, mail_server
) -> None:
    user = await make_user()
    phone, laptop = await auth_headers(user), await auth_headers(user)
    await client.post("/v1/accounts/password-reset/request", json={"email": user.email})
    await deliver_account_mail()
    token = reset_token(mail_server, user.email)

    weak = await client.post(
        "/v1/accounts/password-reset", json={"token": token, "new_password": "password1234"}
    )
    assert weak.status_code == 422 and weak.json()["code"] == "weak_password"
    done = await client.post(
        "/v1/accounts/password-reset", json={"token": token, "new_password": NEW_PASSWORD}
    )
    assert done.status_code == 204, done.text
    for headers in (phone, laptop):
        assert (await client.get("/v1/users/me", headers=headers)).status_code == 401
    assert (await login(client, user.email, PASSWORD)).status_code == 401
    assert (await login(client, user.email, NEW_PASSWORD)).status_code == 200
    reused = await client.post(
        "/v1/accounts/password-reset", json={"token": token, "new_password": "another fine 55"}
    )
    assert reused.status_code == 410 and reused.json()["code"] == "token_used"


async def test_reset_tokens_that_are_forged_or_expired_are_refused(
    client, make_user, deliver_account_mail, mail_server, session_factory
) -> None:
    user = await make_user()
    await client.post("/v1/accounts/password-reset/request", json={"email": user.email})
    await deliver_account_mail()
    token = reset_token(mail_server, user.email)
    forged = await client.post(
        "/v1/accounts/password-reset",
        json={"token": token[:-2] + "xx", "new_password": NEW_PASSWORD},
    )
    assert forged.status_code == 400 and forged.json()["code"] == "invalid_token"
    async with session_factory() as session:
        await session.execute(
            update(AccountToken).values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
        await session.commit()
    expired = await client.post(
        "/v1/accounts/password-reset", json={"token": token, "new_password": NEW_PASSWORD}
    )
    assert expired.status_code == 410 and expired.json()["code"] == "token_expired"
    assert (await login(client, user.email, PASSWORD)).status_code == 200  # Unchanged.


async def test_a_verification_token_cannot_reset_a_password(
    client, deliver_account_mail, mail_server
) -> None:
    await client.post(
        "/v1/users", json={"email": "x@example.com", "display_name": "X", "password": NEW_PASSWORD}
    )
    await deliver_account_mail()
    answer = await client.post(
        "/v1/accounts/password-reset",
        json={"token": verify_token(mail_server, "x@example.com"), "new_password": "other good 88"},
    )
    assert answer.status_code == 400 and answer.json()["code"] == "invalid_token"


async def test_reset_requests_for_one_address_are_rate_limited(make_settings, app_client) -> None:
    settings = make_settings(ApiSettings, password_reset_rate_limit=2)
    async with app_client(create_api_app(settings)) as client:
        codes = [
            (
                await client.post(
                    "/v1/accounts/password-reset/request", json={"email": "target@example.com"}
                )
            ).status_code
            for _ in range(3)
        ]
    assert codes == [202, 202, 429]


# --- password change ---------------------------------------------------------------------------


async def test_changing_the_password_ends_the_other_sessions_and_keeps_this_one(
    client, make_user, auth_headers, session_factory
) -> None:
    user = await make_user()
    other = await auth_headers(user)
    current = await auth_headers(user)
    changed = await client.post(
        "/v1/accounts/password",
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        headers=current,
    )
    assert changed.status_code == 204, changed.text
    assert (await client.get("/v1/users/me", headers=current)).status_code == 200
    assert (await client.get("/v1/users/me", headers=other)).status_code == 401
    async with session_factory() as session:
        reasons = set(
            await session.scalars(
                select(AuthSession.revoked_reason).where(AuthSession.user_id == user.id)  # type: ignore[arg-type]
            )
        )
    assert reasons == {None, "password_changed"}
    assert (await login(client, user.email, NEW_PASSWORD)).status_code == 200


async def test_changing_the_password_needs_the_current_one_and_a_strong_new_one(
    client, make_user, auth_headers
) -> None:
    user = await make_user()
    headers = await auth_headers(user)
    wrong = await client.post(
        "/v1/accounts/password",
        json={"current_password": "not it at all", "new_password": NEW_PASSWORD},
        headers=headers,
    )
    assert wrong.status_code == 403 and wrong.json()["code"] == "wrong_password"
    local_part = user.email.split("@")[0]
    weak = await client.post(
        "/v1/accounts/password",
        json={"current_password": PASSWORD, "new_password": f"{local_part}-2026"},
        headers=headers,
    )
    assert weak.status_code == 422 and weak.json()["code"] == "weak_password"
    assert weak.json()["details"][0]["loc"] == ["body", "new_password"]
    anonymous = await client.post(
        "/v1/accounts/password", json={"current_password": PASSWORD, "new_password": NEW_PASSWORD}
    )
    assert anonymous.status_code == 401
