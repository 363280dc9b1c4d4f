"""Users and bearer tokens for the app tests, as a pytest plugin: the root `conftest.py` loads it,
and each app's `conftest.py` names the settings its tokens are signed with (`service_settings`)."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tripline_common.data.models import User, UserRole
from tripline_common.security import hash_password, open_session

PASSWORD = "correct horse battery"


@pytest.fixture(scope="session")
async def password_hash() -> str:
    """The Argon2 hash of `PASSWORD`, computed once: hashing is slow on purpose."""
    return await hash_password(PASSWORD)


@pytest.fixture
def make_user(
    session_factory: async_sessionmaker[AsyncSession], password_hash: str
) -> Callable[..., Awaitable[User]]:
    """`await make_user(role=UserRole.USER, email=None, active=True, name="Test User")` -> a
    stored user whose password is `PASSWORD` and whose address is confirmed (sign-up's link
    followed)."""

    async def make(
        role: UserRole = UserRole.USER,
        email: str | None = None,
        active: bool = True,
        name: str = "Test User",
    ) -> User:
        async with session_factory() as session:
            user = User(
                email=email or f"{role.value}-{uuid.uuid4().hex[:10]}@example.com",
                display_name=name,
                role=role,
                is_active=active,
                password_hash=password_hash,
                email_verified_at=datetime.now(UTC),
            )
            session.add(user)
            await session.commit()
            return user

    return make


@pytest.fixture
def auth_headers(
    session_factory: async_sessionmaker[AsyncSession], service_settings: Any
) -> Callable[[User], Awaitable[dict[str, str]]]:
    """`await auth_headers(user)` -> an Authorization header with a token for a new session,
    signed with the app's own settings."""

    async def make(user: User) -> dict[str, str]:
        async with session_factory() as session:
            issued = await open_session(session=session, settings=service_settings, user=user)
            await session.commit()
        return {"Authorization": f"Bearer {issued.access_token}"}

    return make
