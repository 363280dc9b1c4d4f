"""Ingest test helpers: a stored device and its key."""

from __future__ import annotations

import uuid

import pytest

from tripline_common.data.models import Device, User
from tripline_common.security import issue_api_key


@pytest.fixture
async def device_key(session_factory) -> str:
    """The key of a device stored (in the test's transaction) for a new owner."""
    key = issue_api_key()
    async with session_factory() as session:
        user = User(email=f"{uuid.uuid4().hex}@example.com", display_name="O", password_hash="x")
        session.add(user)
        await session.flush()
        session.add(
            Device(
                owner_id=user.id, name="van", api_key_prefix=key.prefix, api_key_hash=key.key_hash
            )
        )
        await session.commit()
    return key.key
