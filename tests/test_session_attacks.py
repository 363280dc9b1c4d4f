"""Attacks on API sessions, run against the real API process over real HTTP: replaying a spent
refresh token, locking an account out by spending its login budget, an idle session."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import jwt
import pytest

from tests.support.database import fetch
from tripline_common.data import asyncpg_dsn
from tripline_common.security import hash_password

PASSWORD = "correct horse battery"
VICTIM = "victim@example.com"


async def make_user(database_url: str, email: str) -> uuid.UUID:
    rows = await fetch(
        database_url,
        "INSERT INTO users (email, password_hash, display_name, email_verified_at) "
        "VALUES ($1, $2, 'Test', now()) "
        "RETURNING id",
        email,
        await hash_password(PASSWORD),
    )
    user_id: uuid.UUID = rows[0]["id"]
    return user_id


async def wait_for_lock_waiters(database_url: str, count: int) -> None:
    """Return once `count` sessions of this database wait for a lock (deadline 15 s)."""
    deadline = asyncio.get_running_loop().time() + 15
    while asyncio.get_running_loop().time() < deadline:
        # A fresh query outside any transaction: pg_stat_activity is a per-transaction snapshot.
        [row] = await fetch(
            database_url,
            "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock'",
        )
        if row["n"] >= count:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{count} requests did not come to wait for the lock in time")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def api(processes: Any) -> Callable[..., str]:
    """`api(**env)` starts the real API process with extra settings and returns its URL."""

    def start(**env: str) -> str:
        process = processes.start("api", "tripline-api", **env)
        processes.wait_ready(process)
        return str(process.url)

    return start


@pytest.fixture
async def client_from() -> AsyncIterator[Callable[[str, str], httpx.AsyncClient]]:
    """`client_from(url, "127.0.0.2")`: an HTTP client whose socket is bound to that loopback
    address, so the API sees it as another client (`request.client.host`)."""
    clients: list[httpx.AsyncClient] = []

    def make(url: str, address: str) -> httpx.AsyncClient:
        transport = httpx.AsyncHTTPTransport(local_address=address)
        client = httpx.AsyncClient(base_url=url, transport=transport, timeout=15)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


async def login(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> httpx.Response:
    return await client.post("/v1/auth/token", data={"username": email, "password": password})


# --------------------------------------------------------------------------- refresh reuse


@pytest.mark.slow
async def test_reused_refresh_token_revokes_the_whole_session(
    api: Callable[..., str], client_from: Callable[..., httpx.AsyncClient], process_env: dict
) -> None:
    database_url = process_env["DATABASE_URL"]
    user_id = await make_user(database_url, VICTIM)
    client = client_from(api(), "127.0.0.1")
    first = (await login(client, VICTIM)).json()
    session_id = uuid.UUID(
        jwt.decode(first["access_token"], options={"verify_signature": False})["sid"]
    )
    rotated = await client.post("/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert rotated.status_code == 200
    newest = rotated.json()
    assert (
        await client.get("/v1/users/me", headers=bearer(newest["access_token"]))
    ).status_code == 200

    # The thief (or the owner) presents the spent token again.
    replay = await client.post("/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})

    assert replay.status_code == 401
    assert replay.json()["code"] == "session_revoked"
    after_rt = await client.post(
        "/v1/auth/refresh", json={"refresh_token": newest["refresh_token"]}
    )
    assert after_rt.status_code == 401
    assert after_rt.json()["code"] in {"invalid_refresh_token", "session_revoked"}
    me = await client.get("/v1/users/me", headers=bearer(newest["access_token"]))
    assert me.status_code == 401
    assert me.json()["code"] == "session_revoked"
    [row] = await fetch(
        database_url,
        "SELECT revoked_at, revoked_reason FROM auth_sessions WHERE id = $1",
        session_id,
    )
    assert row["revoked_at"] is not None
    assert row["revoked_reason"] == "refresh_token_reused"
    entries = await fetch(
        database_url,
        "SELECT actor_id, target_type, target_id, source_ip FROM audit_log "
        "WHERE action = 'session.refresh_reuse'",
    )
    assert [dict(e) for e in entries] == [
        {
            "actor_id": user_id,
            "target_type": "session",
            "target_id": str(session_id),
            "source_ip": "127.0.0.1",
        }
    ]

    # Replaying again at the ended session writes nothing more.
    again = await client.post("/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert again.status_code == 401
    assert len(await fetch(database_url, "SELECT 1 FROM audit_log")) == 1


@pytest.mark.slow
async def test_two_refreshes_racing_with_one_token_end_the_session(
    api: Callable[..., str], client_from: Callable[..., httpx.AsyncClient], process_env: dict
) -> None:
    database_url = process_env["DATABASE_URL"]
    await make_user(database_url, VICTIM)
    url = api()
    owner, thief = client_from(url, "127.0.0.1"), client_from(url, "127.0.0.2")
    first = (await login(owner, VICTIM)).json()
    body = {"refresh_token": first["refresh_token"]}

    # Hold the session row so that both refreshes are certainly in flight at once: each has
    # found the row by the token and waits for its lock when the holder lets go.
    holder = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        held = holder.transaction()
        await held.start()
        await holder.execute("SELECT 1 FROM auth_sessions FOR UPDATE")
        racing = [
            asyncio.create_task(owner.post("/v1/auth/refresh", json=body)),
            asyncio.create_task(thief.post("/v1/auth/refresh", json=body)),
        ]
        await wait_for_lock_waiters(database_url, 2)
        await held.rollback()
    finally:
        await holder.close()
    answers = await asyncio.gather(*racing)

    assert sorted(a.status_code for a in answers) == [200, 401]
    [winner] = [a.json() for a in answers if a.status_code == 200]
    me = await owner.get("/v1/users/me", headers=bearer(winner["access_token"]))
    assert me.status_code == 401
    refreshed = await owner.post(
        "/v1/auth/refresh", json={"refresh_token": winner["refresh_token"]}
    )
    assert refreshed.status_code == 401
    rows = await fetch(database_url, "SELECT revoked_reason FROM auth_sessions")
    assert [r["revoked_reason"] for r in rows] == ["refresh_token_reused"]
    assert len(await fetch(database_url, "SELECT 1 FROM audit_log")) == 1


# --------------------------------------------------------------------------- idle sessions


@pytest.mark.slow
async def test_an_api_session_idle_beyond_the_timeout_is_refused(
    api: Callable[..., str], client_from: Callable[..., httpx.AsyncClient], process_env: dict
) -> None:
    database_url = process_env["DATABASE_URL"]
    await make_user(database_url, VICTIM)
    client = client_from(api(API_SESSION_IDLE_TIMEOUT_SECONDS="3600"), "127.0.0.1")
    pair = (await login(client, VICTIM)).json()
    [row] = await fetch(database_url, "SELECT last_seen_at, idle_expires_at FROM auth_sessions")
    assert row["idle_expires_at"] - row["last_seen_at"] == timedelta(hours=1)
    trip = await client.get(f"/v1/trips/{uuid.uuid4()}", headers=bearer(pair["access_token"]))
    assert trip.status_code == 404  # Live session, no such trip.

    # The session was last used (a token issued) two hours ago.
    two_hours_ago = datetime.now(UTC) - timedelta(hours=2)
    await fetch(
        database_url,
        "UPDATE auth_sessions SET last_seen_at = $1::timestamptz, "
        "idle_expires_at = $1::timestamptz + interval '1 hour'",
        two_hours_ago,
    )

    me = await client.get("/v1/users/me", headers=bearer(pair["access_token"]))
    assert me.status_code == 401
    assert me.json()["code"] == "session_revoked"
    trip = await client.get(f"/v1/trips/{uuid.uuid4()}", headers=bearer(pair["access_token"]))
    assert trip.status_code == 401  # The hot read checks it too.
    refreshed = await client.post("/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert refreshed.status_code == 401
    assert refreshed.json()["code"] == "session_revoked"
    [row] = await fetch(database_url, "SELECT revoked_reason FROM auth_sessions")
    assert row["revoked_reason"] == "idle_timeout"


# --------------------------------------------------------------------------- login lockout


@pytest.mark.slow
async def test_an_attacker_spending_the_login_budget_does_not_lock_the_owner_out(
    api: Callable[..., str], client_from: Callable[..., httpx.AsyncClient], process_env: dict
) -> None:
    await make_user(process_env["DATABASE_URL"], VICTIM)
    # An hour's window: the fixed window cannot roll over between the attempts.
    url = api(LOGIN_RATE_LIMIT="3", LOGIN_RATE_WINDOW_SECONDS="3600")
    attacker, owner = client_from(url, "127.0.0.2"), client_from(url, "127.0.0.1")

    guesses = [(await login(attacker, VICTIM, f"guess {n}")).status_code for n in range(3)]
    refused = await login(attacker, VICTIM, PASSWORD)  # Even the right password waits now.
    owners = await login(owner, VICTIM)
    still_refused = await login(attacker, VICTIM, "guess 4")

    assert guesses == [401, 401, 401]
    assert owners.status_code == 200, owners.text
    for answer in (refused, still_refused):
        assert answer.status_code == 429
        assert answer.json()["code"] == "rate_limited"
        assert set(answer.json()) >= {"code", "message", "request_id"}
        assert 1 <= int(answer.headers["retry-after"]) <= 3601


@pytest.mark.slow
async def test_failures_from_many_clients_meet_the_per_account_ceiling(
    api: Callable[..., str], client_from: Callable[..., httpx.AsyncClient], process_env: dict
) -> None:
    await make_user(process_env["DATABASE_URL"], VICTIM)
    url = api(LOGIN_RATE_LIMIT="2", LOGIN_ACCOUNT_RATE_LIMIT="4", LOGIN_RATE_WINDOW_SECONDS="3600")
    clients = [client_from(url, f"127.0.0.{n}") for n in (2, 3)]

    guesses = [(await login(c, VICTIM, "guess")).status_code for c in clients for _ in range(2)]
    fifth = await login(client_from(url, "127.0.0.4"), VICTIM, "guess")

    assert guesses == [401, 401, 401, 401]
    assert fifth.status_code == 429
