"""Rotating SECRET_KEY does not sign operators out of the console: session cookies and CSRF
tokens made with the key now in SECRET_KEY_PREVIOUS stay valid until that key is removed.

Each phase of a rolling deploy is a real admin app with that phase's settings, on one database.
"""

from __future__ import annotations

import uuid

import httpx
import pytest
from admin_helpers import form_token

from tests.support.users import PASSWORD
from tripline_admin.console.security import cookie_name, csrf_token, sign
from tripline_admin.main import create_admin_app
from tripline_admin.settings import AdminSettings
from tripline_common.data.models import SessionKind
from tripline_common.security import open_session

OLD_KEY = "old-console-key-" + "o" * 32
NEW_KEY = "new-console-key-" + "n" * 32


@pytest.fixture
def keys(make_settings):
    """`keys(secret_key, *previous)` -> admin settings with these keys (plain-HTTP cookies, so
    the test clients' jars send them)."""

    def make(secret_key: str, *previous: str) -> AdminSettings:
        return make_settings(
            AdminSettings,
            secret_key=secret_key,
            secret_key_previous=list(previous),
            console_cookie_secure=False,
        )

    return make


async def console_session(
    session_factory, settings: AdminSettings, user
) -> tuple[uuid.UUID, str, str]:
    """A console login made under `settings`: its ID, signed cookie value and CSRF token."""
    async with session_factory() as session:
        issued = await open_session(
            session=session, settings=settings, user=user, kind=SessionKind.CONSOLE
        )
        await session.commit()
    sid = issued.session.id
    cookie = sign(settings, "session", {"sid": str(sid), "uid": str(user.id)})
    return sid, cookie, csrf_token(settings, sid)


def with_cookies(client: httpx.AsyncClient, cookies: dict[str, str]) -> httpx.AsyncClient:
    for name, value in cookies.items():
        client.cookies.set(name, value)
    return client


def is_login_redirect(response: httpx.Response) -> bool:
    return response.status_code in (302, 303, 307) and response.headers["location"].startswith(
        "/console/login"
    )


async def test_a_console_session_and_its_forms_survive_the_rotation(
    keys, app_client, session_factory, operator
) -> None:
    old = keys(OLD_KEY)
    sid, session_cookie, old_csrf = await console_session(session_factory, old, operator)
    async with app_client(create_admin_app(old)) as before:
        login_page = await before.get("/console/login")
        login_token = form_token(login_page.text)
        nonce = before.cookies[cookie_name(old, "login")]

    rotated = keys(NEW_KEY, OLD_KEY)
    async with app_client(create_admin_app(rotated)) as after:
        # The session cookie signed with the old key still signs the operator in...
        with_cookies(after, {cookie_name(rotated, "session"): session_cookie})
        page = await after.get("/console/users")
        assert page.status_code == 200, page.text
        assert operator.email in page.text
        # ...pages now carry a CSRF token made with the new key...
        assert form_token(page.text) == csrf_token(rotated, sid)
        assert form_token(page.text) != old_csrf
        # ...and a form loaded before the rotation (old CSRF token) is still accepted.
        signed_out = await after.post("/console/logout", data={"csrf_token": old_csrf})
        assert signed_out.status_code == 303, signed_out.text
        assert signed_out.headers["location"].startswith("/console/login")
        after.cookies.clear()

        # The login form served before the rotation can be submitted after it.
        with_cookies(after, {cookie_name(rotated, "login"): nonce})
        login = await after.post(
            "/console/login",
            data={"email": operator.email, "password": PASSWORD, "csrf_token": login_token},
        )
        assert login.status_code == 303, login.text
        assert cookie_name(rotated, "session") in login.headers.get("set-cookie", "")


async def test_once_the_previous_key_is_removed_its_cookies_and_tokens_are_refused(
    keys, app_client, session_factory, operator
) -> None:
    old, finished = keys(OLD_KEY), keys(NEW_KEY)
    _, old_cookie, _ = await console_session(session_factory, old, operator)
    sid, new_cookie, new_csrf = await console_session(session_factory, finished, operator)

    async with app_client(create_admin_app(finished)) as after:
        with_cookies(after, {cookie_name(finished, "session"): old_cookie})
        assert is_login_redirect(await after.get("/console/users"))

        # A session signed with the new key works, but a CSRF token made for it with the
        # removed key does not.
        after.cookies.clear()
        with_cookies(after, {cookie_name(finished, "session"): new_cookie})
        assert (await after.get("/console/users")).status_code == 200
        stale = await after.post("/console/logout", data={"csrf_token": csrf_token(old, sid)})
        assert stale.status_code == 403
        assert (await after.get("/console/users")).status_code == 200  # Still signed in.
        accepted = await after.post("/console/logout", data={"csrf_token": new_csrf})
        assert accepted.status_code == 303
