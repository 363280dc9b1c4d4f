"""The browser console: sign-in with a strict session cookie, pages, forms and flash messages."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack

import httpx
import pytest
from admin_helpers import form_token
from sqlalchemy import select

from tests.support.users import PASSWORD
from tripline_admin.console.security import cookie_name
from tripline_common.data.models import AuditLogEntry, AuthSession, SessionKind, UserRole


def set_cookie_headers(response) -> dict[str, str]:
    """Set-Cookie headers of a response, by cookie name."""
    cookies = {}
    for header in response.headers.get_list("set-cookie"):
        cookies[header.split("=", 1)[0]] = header
    return cookies


async def log_in(browser, email: str, password: str = PASSWORD, next_url: str | None = None):
    page = await browser.get("/console/login" + (f"?next={next_url}" if next_url else ""))
    assert page.status_code == 200
    data = {"email": email, "password": password, "csrf_token": form_token(page.text)}
    if next_url:
        data["next"] = next_url
    return await browser.post("/console/login", data=data)


async def test_signing_in_sets_a_strict_session_cookie_tied_to_a_console_session(
    browser, admin_settings, operator, session_factory
) -> None:
    response = await log_in(browser, operator.email.upper(), next_url="/console/users")

    assert response.status_code == 303
    assert response.headers["location"] == "/console/users"
    cookie = set_cookie_headers(response)[cookie_name(admin_settings, "session")]
    assert cookie.startswith("__Host-tripline_console_session=")
    flags = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "secure", "samesite=strict", "path=/"} <= flags
    assert not any(flag.startswith("domain") for flag in flags)
    async with session_factory() as session:
        [console_session] = await session.scalars(
            select(AuthSession).where(AuthSession.user_id == operator.id)
        )
        [entry] = await session.scalars(select(AuditLogEntry))
    assert console_session.kind == SessionKind.CONSOLE
    assert console_session.refresh_token_hash is None
    assert entry.action == "console.login" and entry.actor_id == operator.id
    page = await browser.get("/console/users")
    assert page.status_code == 200
    assert operator.email in page.text


async def test_a_wrong_password_or_a_plain_user_gets_no_session(
    browser, admin_settings, operator, make_user, session_factory
) -> None:
    wrong = await log_in(browser, operator.email, password="not the password")
    plain = await make_user()
    refused = await log_in(browser, plain.email)

    assert wrong.status_code == refused.status_code == 401
    assert "Incorrect email or password." in wrong.text
    assert "for operators" in refused.text
    for response in (wrong, refused):
        assert cookie_name(admin_settings, "session") not in set_cookie_headers(response)
    async with session_factory() as session:
        assert list(await session.scalars(select(AuthSession))) == []
        entries = list(await session.scalars(select(AuditLogEntry).order_by(AuditLogEntry.id)))
    assert [(e.action, e.details["reason"]) for e in entries] == [
        ("console.login_refused", "invalid_credentials"),
        ("console.login_refused", "not_staff"),
    ]


async def test_pages_need_a_session_and_send_you_back_after_signing_in(browser, operator) -> None:
    response = await browser.get("/console/devices?state=active")
    assert response.status_code == 303
    assert response.headers["location"] == "/console/login?next=%2Fconsole%2Fdevices"
    signed_in = await log_in(browser, operator.email, next_url="/console/devices")
    assert signed_in.headers["location"] == "/console/devices"


async def test_the_next_page_after_sign_in_is_always_a_console_page(browser, operator) -> None:
    for target in (
        "https://evil.example/",
        "//evil.example/",
        "/v1/users",
        "/console\\..\\x",
        "/console/../v1/users",
        "/consoles",
    ):
        response = await log_in(browser, operator.email, next_url=target)
        assert response.headers["location"] == "/console/", target


async def test_signing_out_revokes_the_session(browser, admin_settings, operator, sign_in) -> None:
    console = await sign_in(browser, operator)
    stolen = browser.cookies.get(cookie_name(admin_settings, "session"))

    response = await browser.post("/console/logout", data={"csrf_token": console.csrf})

    assert response.status_code == 303
    assert response.headers["location"] == "/console/login"
    assert (
        "max-age=0" in set_cookie_headers(response)[cookie_name(admin_settings, "session")].lower()
    )
    assert "You are signed out." in (await browser.get("/console/login")).text
    # Even a copy of the cookie taken before signing out is refused now.
    browser.cookies.set(cookie_name(admin_settings, "session"), stolen)
    again = await browser.get("/console/")
    assert again.status_code == 303
    assert again.headers["location"].startswith("/console/login")


async def test_revoking_a_console_session_through_the_api_ends_it_at_once(
    browser, client, admin_headers, make_user, sign_in
) -> None:
    colleague = await make_user(UserRole.OPERATOR)
    console = await sign_in(browser, colleague)
    assert (await browser.get("/console/")).status_code == 200

    revoked = await client.delete(
        f"/v1/users/{colleague.id}/sessions/{console.session_id}", headers=admin_headers
    )

    assert revoked.status_code == 204
    response = await browser.get("/console/")
    assert response.status_code == 303
    assert response.headers["location"].startswith("/console/login")


async def test_a_console_session_ends_when_the_user_stops_being_staff(
    browser, client, admin_headers, make_user, sign_in
) -> None:
    colleague = await make_user(UserRole.OPERATOR)
    await sign_in(browser, colleague)

    await client.put(f"/v1/users/{colleague.id}/role", json={"role": "user"}, headers=admin_headers)

    response = await browser.get("/console/users")
    assert response.status_code == 403
    assert "text/html" in response.headers["content-type"]
    assert "for operators and admins" in response.text


@pytest.fixture
async def browser_at(admin_app, client) -> AsyncIterator[Callable[..., httpx.AsyncClient]]:
    """`await browser_at("10.0.0.7")`: a console client that the app sees at that address."""
    async with AsyncExitStack() as stack:

        async def make(address: str) -> httpx.AsyncClient:
            transport = httpx.ASGITransport(app=admin_app, client=(address, 40000))
            return await stack.enter_async_context(
                httpx.AsyncClient(transport=transport, base_url="https://testserver")
            )

        yield make


async def test_refused_sign_ins_from_many_emails_and_addresses_write_a_bounded_audit_trail(
    browser_at, operator, session_factory
) -> None:
    # 40 unknown emails and 20 wrong passwords for a real account, from 5 addresses (within
    # each address's login budget): every one refused.
    answers = []
    for n in range(5):
        console = await browser_at(f"10.0.0.{n + 1}")
        for _ in range(8):
            answers.append((await log_in(console, f"{uuid.uuid4().hex}@example.com")).status_code)
        for _ in range(4):
            answers.append((await log_in(console, operator.email, "wrong")).status_code)

    assert answers == [401] * 60
    async with session_factory() as session:
        entries = list(await session.scalars(select(AuditLogEntry).order_by(AuditLogEntry.id)))
    assert len(entries) == 4  # not 60
    assert {e.action for e in entries} == {"console.login_refused"}
    # One entry at the 1st and at the 10th refusal of each count, the real account's named.
    assert sorted(
        (e.target_id or "", e.details["refusals_in_window"], e.details["reason"]) for e in entries
    ) == sorted(
        [
            ("", 1, "invalid_credentials"),
            ("", 10, "invalid_credentials"),
            (str(operator.id), 1, "invalid_credentials"),
            (str(operator.id), 10, "invalid_credentials"),
        ]
    )
    named = [e for e in entries if e.target_id == str(operator.id)]
    assert {e.actor_label for e in named} == {operator.email}
    assert {e.target_type for e in named} == {"user"}


async def test_one_address_spending_an_operators_sign_in_budget_does_not_lock_them_out(
    browser_at, admin_settings, operator
) -> None:
    attacker, owner = await browser_at("10.0.0.66"), await browser_at("10.0.0.7")
    guesses = [
        (await log_in(attacker, operator.email, f"guess {n}")).status_code
        for n in range(admin_settings.login_rate_limit)
    ]

    refused = await log_in(attacker, operator.email)
    signed_in = await log_in(owner, operator.email)

    assert guesses == [401] * admin_settings.login_rate_limit
    assert refused.status_code == 429
    assert "Too many attempts" in refused.text
    assert 1 <= int(refused.headers["retry-after"]) <= admin_settings.login_rate_window_seconds + 1
    assert signed_in.status_code == 303
