"""API test helpers: the app on the test database, users, and tokens for them."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest

from tripline_api.main import create_api_app
from tripline_api.settings import ApiSettings
from tripline_common.auth.service import open_session
from tripline_common.models import User, UserRole
from tripline_common.passwords import hash_password

PASSWORD = "correct horse battery"


@pytest.fixture
def api_settings(make_settings: Callable[..., Any]) -> ApiSettings:
    return make_settings(ApiSettings)


@pytest.fixture
async def client(api_settings: ApiSettings, app_client) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client talking to the API in-process (lifespan run, test transaction)."""
    async with app_client(create_api_app(api_settings)) as api:
        yield api


@pytest.fixture
def make_user(session_factory) -> Callable[..., Awaitable[User]]:
    """`await make_user(role=UserRole.USER, email=None, active=True)` -> a stored user whose
    password is `PASSWORD`."""

    async def make(
        role: UserRole = UserRole.USER, email: str | None = None, active: bool = True
    ) -> User:
        async with session_factory() as session:
            user = User(
                email=email or f"user-{uuid.uuid4().hex[:10]}@example.com",
                display_name="Test User",
                role=role,
                is_active=active,
                password_hash=await hash_password(PASSWORD),
            )
            session.add(user)
            await session.commit()
            return user

    return make


@pytest.fixture
def auth_headers(session_factory, api_settings) -> Callable[[User], Awaitable[dict[str, str]]]:
    """`await auth_headers(user)` -> an Authorization header with a token for a new session."""

    async def make(user: User) -> dict[str, str]:
        async with session_factory() as session:
            issued = await open_session(session=session, settings=api_settings, user=user)
            await session.commit()
        return {"Authorization": f"Bearer {issued.access_token}"}

    return make
