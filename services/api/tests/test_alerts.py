"""Alerts: owner-scoped reads, idempotent handling, paging and filters, bulk acknowledge (207)."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select
from trip_factories import START, store_alerts

from tripline_common.data.models import Alert, AlertRule, AlertStatus


async def stored_status(session_factory, alert_id) -> AlertStatus:
    async with session_factory() as session:
        return await session.scalar(select(Alert.status).where(Alert.id == alert_id))


async def test_an_alert_is_read_by_its_owner_only(
    client, headers, owner, make_user, auth_headers, session_factory
) -> None:
    (alert,) = await store_alerts(session_factory, owner, 1)
    stranger = await auth_headers(await make_user())

    mine = await client.get(f"/v1/alerts/{alert.id}", headers=headers)
    theirs = await client.get(f"/v1/alerts/{alert.id}", headers=stranger)

    assert mine.status_code == 200
    assert mine.json()["id"] == str(alert.id)
    assert mine.json()["details"] == {"speed_kmh": 140}
    assert theirs.status_code == 404
    assert theirs.json()["code"] == "alert_not_found"
    listed = await client.get("/v1/alerts", headers=stranger)
    assert listed.json()["items"] == []


async def test_another_users_alert_cannot_be_handled(
    client, owner, make_user, auth_headers, session_factory
) -> None:
    (alert,) = await store_alerts(session_factory, owner, 1)
    stranger = await auth_headers(await make_user())

    for action in ("acknowledge", "resolve"):
        response = await client.post(f"/v1/alerts/{alert.id}/{action}", headers=stranger)
        assert response.status_code == 404
    assert await stored_status(session_factory, alert.id) == AlertStatus.OPEN


async def test_alerts_need_a_token(client) -> None:
    response = await client.get("/v1/alerts")
    assert response.status_code == 401
    assert set(response.json()) >= {"code", "message", "request_id"}


async def test_acknowledging_is_idempotent(client, headers, owner, session_factory) -> None:
    (alert,) = await store_alerts(session_factory, owner, 1)

    first = await client.post(f"/v1/alerts/{alert.id}/acknowledge", headers=headers)
    second = await client.post(f"/v1/alerts/{alert.id}/acknowledge", headers=headers)

    assert first.status_code == second.status_code == 200
    assert first.json()["status"] == "acknowledged"
    assert first.json()["acknowledged_at"] is not None
    assert second.json()["acknowledged_at"] == first.json()["acknowledged_at"]


async def test_resolving_is_idempotent_and_final(client, headers, owner, session_factory) -> None:
    (alert,) = await store_alerts(session_factory, owner, 1)

    first = await client.post(f"/v1/alerts/{alert.id}/resolve", headers=headers)
    second = await client.post(f"/v1/alerts/{alert.id}/resolve", headers=headers)
    acknowledge = await client.post(f"/v1/alerts/{alert.id}/acknowledge", headers=headers)

    assert first.status_code == second.status_code == 200
    assert first.json()["status"] == "resolved"
    assert second.json()["resolved_at"] == first.json()["resolved_at"]
    assert acknowledge.status_code == 409
    assert acknowledge.json()["code"] == "invalid_alert_transition"
    assert await stored_status(session_factory, alert.id) == AlertStatus.RESOLVED


async def test_an_acknowledged_alert_can_be_resolved(
    client, headers, owner, session_factory
) -> None:
    (alert,) = await store_alerts(session_factory, owner, 1)
    await client.post(f"/v1/alerts/{alert.id}/acknowledge", headers=headers)

    response = await client.post(f"/v1/alerts/{alert.id}/resolve", headers=headers)

    assert response.status_code == 200
    assert response.json()["status"] == "resolved"
    assert response.json()["acknowledged_at"] is not None


async def test_alerts_are_paged_newest_first_with_links(
    client, headers, owner, session_factory
) -> None:
    alerts = await store_alerts(session_factory, owner, 5)

    first = await client.get("/v1/alerts", params={"limit": 2}, headers=headers)
    body = first.json()
    assert first.status_code == 200
    assert [item["id"] for item in body["items"]] == [str(a.id) for a in alerts[4:2:-1]]
    assert 'rel="next"' in first.headers["link"]

    second = await client.get(
        "/v1/alerts", params={"limit": 2, "cursor": body["next_cursor"]}, headers=headers
    )
    assert [item["id"] for item in second.json()["items"]] == [str(a.id) for a in alerts[2:0:-1]]

    counted = await client.get("/v1/alerts", params={"include_total": "true"}, headers=headers)
    assert counted.json()["total"] == 5


async def test_alerts_are_filtered(client, headers, owner, session_factory) -> None:
    speeding = await store_alerts(session_factory, owner, 3)
    (late,) = await store_alerts(session_factory, owner, 1, rule=AlertRule.LATE)
    await client.post(f"/v1/alerts/{speeding[0].id}/resolve", headers=headers)

    async def ids(**params) -> set[str]:
        response = await client.get("/v1/alerts", params=params, headers=headers)
        assert response.status_code == 200, response.text
        return {item["id"] for item in response.json()["items"]}

    assert await ids(rule="late") == {str(late.id)}
    assert await ids(status="resolved") == {str(speeding[0].id)}
    assert await ids(status=["open", "acknowledged"], rule="speeding") == {
        str(a.id) for a in speeding[1:]
    }
    assert await ids(trip_id=str(late.trip_id)) == {str(late.id)}
    assert await ids(
        raised_from=(START + timedelta(minutes=1)).isoformat(),
        raised_to=(START + timedelta(minutes=2)).isoformat(),
    ) == {str(speeding[1].id)}


@pytest.mark.parametrize(
    "params",
    [
        {"sort": "message"},
        {"sort": "-owner_id"},
        {"fields": "id,secret"},
        {"cursor": "forged"},
    ],
)
async def test_bad_list_queries_are_a_400(client, headers, params) -> None:
    response = await client.get("/v1/alerts", params=params, headers=headers)
    assert response.status_code == 400
    assert response.json()["code"].startswith("invalid_")


@pytest.mark.parametrize(
    "params",
    [
        {"status": "closed"},
        {"rule": "parking"},
        {"trip_id": "not-a-uuid"},
        {"raised_from": "2026-12-01T00:00:00"},  # no offset
        {"raised_to": "0.5"},  # a number is not a time
        {"raised_from": "1764158400"},
        {"raised_from": "2026-12-02T00:00:00Z", "raised_to": "2026-12-01T00:00:00Z"},
        {"raised_from": "2026-12-01T00:00:00Z", "raised_to": "2026-12-01T01:00:00+01:00"},
        {"limit": 0},
    ],
)
async def test_bad_filters_are_a_422(client, headers, params) -> None:
    response = await client.get("/v1/alerts", params=params, headers=headers)
    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"


async def test_bulk_acknowledge_reports_each_alert(
    client, headers, owner, make_user, session_factory
) -> None:
    mine = await store_alerts(session_factory, owner, 3)
    (theirs,) = await store_alerts(session_factory, await make_user(), 1)
    await client.post(f"/v1/alerts/{mine[2].id}/resolve", headers=headers)
    await client.post(f"/v1/alerts/{mine[1].id}/acknowledge", headers=headers)
    ids = [mine[0].id, mine[1].id, theirs.id, mine[2].id, uuid.uuid4(), mine[0].id]

    response = await client.post(
        "/v1/alerts/acknowledge", json={"ids": [str(i) for i in ids]}, headers=headers
    )

    assert response.status_code == 207
    body = response.json()
    assert (body["succeeded"], body["failed"]) == (3, 3)
    results = body["results"]
    assert [r["id"] for r in results] == [str(i) for i in ids]
    assert [r["status"] for r in results] == [200, 200, 404, 409, 404, 200]
    assert results[0]["alert"]["status"] == "acknowledged" and results[0]["error"] is None
    assert results[2]["alert"] is None and results[2]["error"]["code"] == "alert_not_found"
    assert results[3]["error"]["code"] == "invalid_alert_transition"
    assert await stored_status(session_factory, mine[0].id) == AlertStatus.ACKNOWLEDGED
    assert await stored_status(session_factory, theirs.id) == AlertStatus.OPEN
    assert await stored_status(session_factory, mine[2].id) == AlertStatus.RESOLVED


@pytest.mark.parametrize(
    "body",
    [{"ids": []}, {"ids": ["nope"]}, {"ids": [str(uuid.uuid4())] * 101}, {}, {"ids": [1]}],
)
async def test_bad_bulk_bodies_are_a_422(client, headers, body) -> None:
    response = await client.post("/v1/alerts/acknowledge", json=body, headers=headers)
    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"


async def test_a_path_that_is_not_a_uuid_is_a_404(client, headers) -> None:
    response = await client.get("/v1/alerts/not-an-id", headers=headers)
    assert response.status_code == 404
