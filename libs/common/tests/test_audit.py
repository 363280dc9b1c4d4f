"""The audit log service and the database's guarantee that entries are never changed."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from tripline_common.data import AuditActor, AuditOrigin
from tripline_common.data.audit import SYSTEM, record
from tripline_common.data.models import AuditLogEntry, User
from tripline_common.platform.correlation import bind_request_id


@pytest.fixture
async def actor(session_factory) -> User:
    async with session_factory() as session:
        user = User(email="auditor@example.com", display_name="Auditor", password_hash="x")
        session.add(user)
        await session.commit()
    return user


async def test_an_entry_records_who_what_target_when_and_where(session_factory, actor) -> None:
    target = uuid.uuid4()
    async with session_factory() as session:
        entry = await record(
            session,
            actor=AuditActor.of(actor),
            action="device.revoke",
            target_type="device",
            target_id=target,
            details={"device": target, "count": 2},
            origin=AuditOrigin(request_id="req-1", source_ip="192.0.2.10"),
        )
        await session.commit()
        stored = await session.get(AuditLogEntry, entry.id)
    assert stored is not None
    assert (stored.actor_id, stored.actor_label) == (actor.id, "auditor@example.com")
    assert (stored.action, stored.target_type, stored.target_id) == (
        "device.revoke",
        "device",
        str(target),
    )
    assert stored.details == {"device": str(target), "count": 2}
    assert (stored.request_id, stored.source_ip) == ("req-1", "192.0.2.10")
    assert stored.created_at is not None


async def test_without_an_origin_the_current_correlation_id_is_used(session_factory) -> None:
    bind_request_id("job-request-7")
    try:
        async with session_factory() as session:
            entry = await record(session, actor=SYSTEM, action="session.cleanup")
    finally:
        bind_request_id(None)
    assert (entry.actor_id, entry.actor_label) == (None, "system")
    assert (entry.request_id, entry.source_ip) == ("job-request-7", None)


@pytest.mark.parametrize("action", ["disable", "User.Disable", "user disable", "user."])
async def test_actions_must_be_dotted_lower_case_verbs(session_factory, action) -> None:
    async with session_factory() as session:
        with pytest.raises(ValueError, match="dotted"):
            await record(session, actor=SYSTEM, action=action)


async def test_an_entry_rolls_back_with_the_work_it_describes(session_factory) -> None:
    async with session_factory() as session:
        await record(session, actor=SYSTEM, action="user.disable")
        await session.rollback()
        count = await session.scalar(text("SELECT count(*) FROM audit_log"))
    assert count == 0


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_log SET action = 'user.enable'",
        "UPDATE audit_log SET actor_label = 'someone else'",
        "DELETE FROM audit_log",
        "TRUNCATE audit_log",
    ],
)
async def test_the_database_refuses_to_change_or_delete_entries(
    db_connection, session_factory, actor, statement
) -> None:
    async with session_factory() as session:
        await record(session, actor=AuditActor.of(actor), action="user.disable")
        await session.commit()

    with pytest.raises(DBAPIError, match="append-only"):
        async with db_connection.begin_nested():
            await db_connection.execute(text(statement))

    rows = (await db_connection.execute(text("SELECT action, actor_label FROM audit_log"))).all()
    assert [tuple(row) for row in rows] == [("user.disable", "auditor@example.com")]


async def test_deleting_the_acting_user_keeps_their_entries_by_label(
    db_connection, session_factory, actor
) -> None:
    async with session_factory() as session:
        await record(session, actor=AuditActor.of(actor), action="user.disable")
        await session.commit()

    await db_connection.execute(text("DELETE FROM users WHERE id = :id"), {"id": actor.id})

    row = (await db_connection.execute(text("SELECT actor_id, actor_label FROM audit_log"))).one()
    assert tuple(row) == (None, "auditor@example.com")
