"""Admin test helpers: the app on the test database, users of each role, tokens, and a signed-in
console client (HTTPS, so the browser-like cookie jar honours the `Secure` flag)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from admin_helpers import ConsoleSession
from fastapi import FastAPI

from tripline_admin.console.security import cookie_name, csrf_token, sign
from tripline_admin.main import create_admin_app
from tripline_admin.settings import AdminSettings
from tripline_common.data.models import Device, SessionKind, User, UserRole
from tripline_common.security import issue_api_key, open_session


@pytest.fixture
def admin_settings(make_settings: Callable[..., Any]) -> AdminSettings:
    # An hour-long login window: a fixed 60 s window can roll over between a test's attempts.
    return make_settings(AdminSettings, login_rate_window_seconds=3600)


@pytest.fixture
def service_settings(admin_settings: AdminSettings) -> AdminSettings:
    """The settings `auth_headers` signs tokens with."""
    return admin_settings


@pytest.fixture
def admin_app(admin_settings: AdminSettings) -> FastAPI:
    return create_admin_app(admin_settings)


@pytest.fixture
async def client(admin_app: FastAPI, app_client) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client talking to the admin app in-process (lifespan run, test transaction)."""
    async with app_client(admin_app) as admin:
        yield admin


@pytest.fixture
async def browser(
    admin_app: FastAPI, client: httpx.AsyncClient
) -> AsyncIterator[httpx.AsyncClient]:
    """A client for the console, over HTTPS like a real browser, following no redirects."""
    transport = httpx.ASGITransport(app=admin_app)
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as console:
        yield console


@pytest.fixture
async def operator(make_user) -> User:
    return await make_user(UserRole.OPERATOR, name="Olga Operator")


@pytest.fixture
async def admin(make_user) -> User:
    return await make_user(UserRole.ADMIN, name="Ada Admin")


@pytest.fixture
async def operator_headers(operator, auth_headers) -> dict[str, str]:
    return await auth_headers(operator)


@pytest.fixture
async def admin_headers(admin, auth_headers) -> dict[str, str]:
    return await auth_headers(admin)


@pytest.fixture
def sign_in(session_factory, admin_settings) -> Callable[..., Awaitable[ConsoleSession]]:
    """`await sign_in(client, user)`: open a console session for `user` (whatever their role)
    and put its signed cookie in `client`'s jar, as a successful login would."""

    async def make(console: httpx.AsyncClient, user: User) -> ConsoleSession:
        async with session_factory() as session:
            issued = await open_session(
                session=session, settings=admin_settings, user=user, kind=SessionKind.CONSOLE
            )
            await session.commit()
        value = sign(
            admin_settings, "session", {"sid": str(issued.session.id), "uid": str(user.id)}
        )
        console.cookies.set(cookie_name(admin_settings, "session"), value)
        return ConsoleSession(
            session_id=issued.session.id, csrf=csrf_token(admin_settings, issued.session.id)
        )

    return make


@pytest.fixture
def make_device(session_factory) -> Callable[..., Awaitable[tuple[Device, str]]]:
    """`await make_device(owner, name="van")` -> a stored device of `owner` and its current key."""

    async def make(owner: User, name: str = "van") -> tuple[Device, str]:
        key = issue_api_key()
        async with session_factory() as session:
            device = Device(
                owner_id=owner.id, name=name, api_key_prefix=key.prefix, api_key_hash=key.key_hash
            )
            session.add(device)
            await session.commit()
            return device, key.key

    return make


@pytest.fixture
async def device_with_key(make_user, make_device) -> tuple[Device, str]:
    """A plain user's device (the console's target) and its current key."""
    return await make_device(await make_user(email="owner@example.com"), name="Blue van")
