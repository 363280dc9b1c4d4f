"""The audit log as operators read it: every action's who, what, target, when, request ID and
source address; filtered, paginated, and impossible to change through the app."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi.routing import iter_route_contexts

from tripline_common.data import AuditActor, AuditOrigin
from tripline_common.data.audit import record


async def seed(session_factory, operator, count: int = 3) -> None:
    async with session_factory() as session:
        for n in range(count):
            await record(
                session,
                actor=AuditActor.of(operator),
                action="user.disable" if n % 2 == 0 else "device.revoke",
                target_type="user" if n % 2 == 0 else "device",
                target_id=f"target-{n}",
                details={"n": n},
                origin=AuditOrigin(request_id=f"req-{n}", source_ip="10.0.0.7"),
            )
        await record(session, actor=AuditActor(None, "system"), action="session.cleanup")
        await session.commit()


async def test_entries_show_who_did_what_to_what_when_and_from_where(
    client, operator, operator_headers, session_factory
) -> None:
    await seed(session_factory, operator, count=1)
    response = await client.get(
        "/v1/audit-log", params={"actor": "operator"}, headers=operator_headers
    )
    assert response.status_code == 200, response.text
    [entry] = response.json()["items"]
    assert entry | {"id": 0, "created_at": None} == {
        "id": 0,
        "created_at": None,
        "actor_id": str(operator.id),
        "actor_label": operator.email,
        "action": "user.disable",
        "target_type": "user",
        "target_id": "target-0",
        "details": {"n": 0},
        "request_id": "req-0",
        "source_ip": "10.0.0.7",
    }


async def test_the_audit_log_is_filtered_and_paginated(
    client, operator, operator_headers, session_factory
) -> None:
    await seed(session_factory, operator, count=5)

    async def actions(**params) -> list[str]:
        response = await client.get("/v1/audit-log", params=params, headers=operator_headers)
        assert response.status_code == 200, response.text
        return [e["action"] + ":" + (e["target_id"] or "") for e in response.json()["items"]]

    assert await actions(action="device.revoke") == [
        "device.revoke:target-3",
        "device.revoke:target-1",
    ]
    assert len(await actions(action="user.")) == 3
    assert await actions(target_type="user", target_id="target-2") == ["user.disable:target-2"]
    assert await actions(request_id="req-4") == ["user.disable:target-4"]
    assert await actions(actor="system") == ["session.cleanup:"]
    assert await actions(actor=str(operator.id), limit=2, sort="created_at") == [
        "user.disable:target-0",
        "device.revoke:target-1",
    ]
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert await actions(since=future) == []
    assert len(await actions(until=future)) == 6
    refused = await client.get(
        "/v1/audit-log", params={"since": future, "until": future}, headers=operator_headers
    )
    assert refused.status_code == 422


def test_no_route_can_write_the_audit_log(admin_app) -> None:
    audit_routes = [
        (sorted(route.methods or ()), route.path)
        for route in iter_route_contexts(admin_app.routes)
        if "audit" in (route.path or "")
    ]
    assert audit_routes == [(["GET"], "/v1/audit-log"), (["GET"], "/console/audit")]


@pytest.mark.parametrize("name", ["since", "until"])
@pytest.mark.parametrize("text", ["0.5", "1796112000", "nan", "2026-12-01T08:00:00", "soon"])
async def test_times_must_be_iso_8601_with_an_offset_not_numbers(
    client, operator_headers, name: str, text: str
) -> None:
    response = await client.get("/v1/audit-log", params={name: text}, headers=operator_headers)

    assert response.status_code == 422, response.text
    assert [error["loc"] for error in response.json()["details"]] == [["query", name]]


@pytest.mark.parametrize("text", ["2026-12-01T08:00:00Z", "2026-12-01T09:00:00+01:00"])
async def test_times_take_iso_8601_text_with_an_offset(client, operator_headers, text: str) -> None:
    response = await client.get("/v1/audit-log", params={"since": text}, headers=operator_headers)

    assert response.status_code == 200, response.text
