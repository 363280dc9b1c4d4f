"""Rotating a webhook secret without a failed verification: the user rotates it through the real
API, and until the overlap ends the worker signs each delivery with both secrets (new first),
so a receiver holding either one verifies it; afterwards only the new secret signs.

The overlap is ended through the database (its expiry set in the past), not by waiting.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, text, update
from worker_factories import along_route, job, window_aligned

from tripline_api.main import create_api_app
from tripline_api.settings import ApiSettings
from tripline_common.data.models import DeliveryStatus, User, WebhookDelivery, WebhookEndpoint
from tripline_common.messaging import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify_signature
from tripline_common.security import open_session

OLD_SECRET = "whsec_the-secret-before-rotation"


@pytest.fixture
async def setup(ctx, session_factory, make_owner, make_trip, make_batch, make_endpoint):
    """An owner with one endpoint (secret OLD_SECRET) and a speeding alert pending delivery to
    `webhook_receiver`; returns (owner, endpoint id, delivery id)."""

    async def make(url: str):
        owner = await make_owner()
        await make_trip(owner, speed_limit_kmh=50)
        endpoint_id = await make_endpoint(owner, url, secret=OLD_SECRET)
        batch_id = await make_batch(
            owner, along_route(2, start=window_aligned(), speed_kmh=90), request_id="rot-1"
        )
        await job("process_batch")(ctx, str(batch_id), request_id="rot-1")
        async with session_factory() as session:
            delivery_id = await session.scalar(select(WebhookDelivery.id))
        return owner, endpoint_id, delivery_id

    return make


@pytest.fixture
def api(make_settings, app_client, session_factory):
    """`async with api(owner) as (client, headers)`: the real API and a token for the owner."""
    settings = make_settings(ApiSettings)

    class Api:
        def __init__(self, owner) -> None:
            self.owner = owner

        async def __aenter__(self):
            async with session_factory() as session:
                user = await session.get(User, self.owner.user_id)
                issued = await open_session(session=session, settings=settings, user=user)
                await session.commit()
            self._running = app_client(create_api_app(settings))
            client = await self._running.__aenter__()
            return client, {"Authorization": f"Bearer {issued.access_token}"}

        async def __aexit__(self, *exc):
            await self._running.__aexit__(*exc)

    return Api


async def deliver_again(ctx, session_factory, delivery_id: uuid.UUID) -> None:
    """One more attempt of the delivery (made pending again), as a retry would be."""
    async with session_factory() as session:
        await session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id == delivery_id)
            .values(status=DeliveryStatus.PENDING)
        )
        await session.commit()
    deliver = job("deliver_webhook", ctx["settings"])
    assert await deliver(ctx, str(delivery_id), request_id="rot-1") == "delivered"


def verifies(secret: str, request) -> bool:
    headers = request.headers
    return verify_signature(
        secret, request.body, headers[TIMESTAMP_HEADER], headers[SIGNATURE_HEADER]
    )


async def test_during_the_overlap_either_secret_verifies_and_after_it_only_the_new_one(
    ctx, session_factory, webhook_receiver, setup, api
) -> None:
    owner, endpoint_id, delivery_id = await setup(webhook_receiver.url)
    async with api(owner) as (client, headers):
        response = await client.post(f"/v1/webhooks/{endpoint_id}/rotate-secret", headers=headers)
        fetched = await client.get(f"/v1/webhooks/{endpoint_id}", headers=headers)

    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    new_secret = body["secret"]
    assert new_secret.startswith("whsec_") and new_secret != OLD_SECRET
    expires = datetime.fromisoformat(body["previous_secret_expires_at"])
    assert abs(expires - (datetime.now(UTC) + timedelta(hours=24))) < timedelta(minutes=1)
    assert new_secret not in fetched.text and OLD_SECRET not in fetched.text

    await deliver_again(ctx, session_factory, delivery_id)
    during = webhook_receiver.received[-1]
    # A receiver still configured with the old secret, and one already given the new, both
    # verify; the new secret's signature comes first.
    assert verifies(OLD_SECRET, during) and verifies(new_secret, during)
    assert not verifies("whsec_some-other-secret", during)
    first, second = during.headers[SIGNATURE_HEADER].split(",")
    assert verify_signature(new_secret, during.body, during.headers[TIMESTAMP_HEADER], first)
    assert verify_signature(OLD_SECRET, during.body, during.headers[TIMESTAMP_HEADER], second)

    async with session_factory() as session:
        await session.execute(
            text(
                "UPDATE webhook_endpoints SET previous_secret_expires_at = now() - interval "
                "'1 second' WHERE id = :id"
            ),
            {"id": endpoint_id},
        )
        await session.commit()
    await deliver_again(ctx, session_factory, delivery_id)
    after = webhook_receiver.received[-1]
    assert verifies(new_secret, after)
    assert not verifies(OLD_SECRET, after)
    assert "," not in after.headers[SIGNATURE_HEADER]


async def test_without_an_overlap_only_the_new_secret_signs_at_once(
    ctx, session_factory, webhook_receiver, setup, api
) -> None:
    owner, endpoint_id, delivery_id = await setup(webhook_receiver.url)
    async with api(owner) as (client, headers):
        response = await client.post(
            f"/v1/webhooks/{endpoint_id}/rotate-secret",
            params={"grace_seconds": 0},
            headers=headers,
        )

    assert response.status_code == 200, response.text
    assert response.json()["previous_secret_expires_at"] is None
    await deliver_again(ctx, session_factory, delivery_id)
    request = webhook_receiver.received[-1]
    assert verifies(response.json()["secret"], request)
    assert not verifies(OLD_SECRET, request)


async def test_a_second_rotation_drops_the_first_secret(
    ctx, session_factory, webhook_receiver, setup, api
) -> None:
    owner, endpoint_id, delivery_id = await setup(webhook_receiver.url)
    async with api(owner) as (client, headers):
        url = f"/v1/webhooks/{endpoint_id}/rotate-secret"
        second = (await client.post(url, headers=headers)).json()["secret"]
        third = (await client.post(url, headers=headers)).json()["secret"]

    await deliver_again(ctx, session_factory, delivery_id)
    request = webhook_receiver.received[-1]
    assert verifies(third, request) and verifies(second, request)
    assert not verifies(OLD_SECRET, request)


async def test_only_the_owner_can_rotate_and_the_overlap_is_bounded(
    session_factory, webhook_receiver, make_owner, make_endpoint, api
) -> None:
    owner, stranger = await make_owner(), await make_owner()
    endpoint_id = await make_endpoint(owner, webhook_receiver.url, secret=OLD_SECRET)
    url = f"/v1/webhooks/{endpoint_id}/rotate-secret"

    async with api(stranger) as (client, headers):
        foreign = await client.post(url, headers=headers)
    async with api(owner) as (client, headers):
        too_long = await client.post(url, params={"grace_seconds": 7 * 86_400 + 1}, headers=headers)
        negative = await client.post(url, params={"grace_seconds": -1}, headers=headers)
        anonymous = await client.post(url)

    assert foreign.status_code == 404 and foreign.json()["code"] == "webhook_not_found"
    for refused in (too_long, negative):
        assert refused.status_code == 422 and refused.json()["code"] == "validation_error"
    assert anonymous.status_code == 401
    async with session_factory() as session:
        stored = await session.get(WebhookEndpoint, endpoint_id, populate_existing=True)
    assert stored.secret == OLD_SECRET and stored.previous_secret is None
