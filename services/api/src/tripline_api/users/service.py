"""User accounts: registration (no HTTP here; routers call these functions)."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tripline_api.users.schemas import UserCreate
from tripline_common.errors import ConflictError
from tripline_common.models import User
from tripline_common.passwords import hash_password


async def register_user(*, session: AsyncSession, data: UserCreate) -> User:
    """Create a user with the `user` role; a taken email (in any case) is a conflict."""
    taken = await session.scalar(
        select(User.id).where(func.lower(User.email) == data.email.lower())
    )
    if taken is not None:
        raise ConflictError("An account with this email already exists.", code="email_taken")
    user = User(
        email=data.email,
        display_name=data.display_name,
        password_hash=await hash_password(data.password),
    )
    session.add(user)
    await session.flush()  # The unique index still guards a concurrent registration.
    return user
