"""The shared `Idempotency-Key` support, on a small app built with the real factory: replay,
mismatch, concurrency, release on failure, expiry with a short TTL, Redis unavailable."""

from __future__ import annotations

import asyncio
import socket
from typing import Annotated, Any

import pytest
from fastapi import APIRouter, Depends, Header, Response
from pydantic import BaseModel
from redis.asyncio import Redis

from tripline_common.platform import ConflictError
from tripline_common.web import IdempotentRoute, ServiceState, create_app
from tripline_common.web.idempotency import REPLAYED_HEADER, idempotency, request_fingerprint


async def caller_scope(x_caller: Annotated[str, Header()] = "anonymous") -> str:
    """Stands in for authentication: the caller named by a header."""
    return f"caller:{x_caller}"


class Order(BaseModel):
    item: str
    quantity: int = 1


class Shop:
    """The app under test, with what it did."""

    def __init__(self) -> None:
        self.orders: list[Order] = []
        self.release_slow = asyncio.Event()
        self.slow_started = asyncio.Event()

    def router(self) -> APIRouter:
        router = APIRouter(route_class=IdempotentRoute)
        keyed = [Depends(idempotency(caller_scope, ttl_seconds=1, lock_seconds=5))]

        @router.post("/orders", status_code=201, dependencies=keyed)
        async def place_order(order: Order, response: Response) -> dict[str, Any]:
            self.orders.append(order)
            response.headers["Location"] = f"/v1/orders/{len(self.orders)}"
            return {"number": len(self.orders), "item": order.item}

        @router.post("/slow-orders", status_code=201, dependencies=keyed)
        async def place_slow_order(order: Order) -> dict[str, Any]:
            self.slow_started.set()
            await self.release_slow.wait()
            self.orders.append(order)
            return {"number": len(self.orders)}

        @router.post("/refused-orders", dependencies=keyed)
        async def refuse_order(order: Order) -> None:
            self.orders.append(order)
            raise ConflictError("Out of stock.", code="out_of_stock")

        @router.post("/broken-orders", dependencies=keyed)
        async def break_order(order: Order) -> None:
            self.orders.append(order)
            raise RuntimeError("bug")

        @router.post("/unkeyed-orders", status_code=201)
        async def place_unkeyed_order(order: Order) -> dict[str, int]:
            self.orders.append(order)
            return {"number": len(self.orders)}

        return router


@pytest.fixture
def shop() -> Shop:
    return Shop()


@pytest.fixture
async def client(shop, make_settings, app_client):
    # JSON logs: the console renderer spends seconds drawing the stack of a crash.
    settings = make_settings(service_name="idempotency-test", log_format="json")
    app = create_app(
        state=ServiceState(settings), title="t", description="t", routers=[shop.router()]
    )
    async with app_client(app) as client:
        yield client


@pytest.fixture
async def redis(redis_url):
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


KEY = {"Idempotency-Key": "order-0001"}


async def test_the_same_key_and_body_replays_status_body_and_headers(client, shop) -> None:
    first = await client.post("/v1/orders", json={"item": "tea"}, headers=KEY)
    again = await client.post("/v1/orders", json={"item": "tea"}, headers=KEY)

    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() == {"number": 1, "item": "tea"}
    assert again.headers["Location"] == "/v1/orders/1"
    assert again.headers[REPLAYED_HEADER] == "true" and REPLAYED_HEADER not in first.headers
    assert again.headers["content-type"] == "application/json"
    assert len(shop.orders) == 1


async def test_another_body_with_the_same_key_is_a_409(client, shop) -> None:
    await client.post("/v1/orders", json={"item": "tea"}, headers=KEY)
    other = await client.post("/v1/orders", json={"item": "coffee"}, headers=KEY)

    assert other.status_code == 409
    assert other.json()["code"] == "idempotency_key_reused"
    assert len(shop.orders) == 1


async def test_keys_are_per_caller_and_per_endpoint(client, shop) -> None:
    await client.post("/v1/orders", json={"item": "tea"}, headers={**KEY, "X-Caller": "ann"})
    bob = await client.post("/v1/orders", json={"item": "tea"}, headers={**KEY, "X-Caller": "bob"})
    elsewhere = await client.post(
        "/v1/refused-orders", json={"item": "tea"}, headers={**KEY, "X-Caller": "ann"}
    )

    assert bob.status_code == 201 and REPLAYED_HEADER not in bob.headers
    assert elsewhere.json()["code"] == "out_of_stock"
    assert len(shop.orders) == 3


async def test_a_duplicate_while_the_first_runs_is_a_409_then_a_replay(client, shop) -> None:
    first = asyncio.create_task(client.post("/v1/slow-orders", json={"item": "tea"}, headers=KEY))
    await asyncio.wait_for(shop.slow_started.wait(), 5)

    duplicate = await client.post("/v1/slow-orders", json={"item": "tea"}, headers=KEY)
    shop.release_slow.set()
    original = await first
    after = await client.post("/v1/slow-orders", json={"item": "tea"}, headers=KEY)

    assert duplicate.status_code == 409
    assert duplicate.json()["code"] == "idempotency_key_in_use"
    assert duplicate.headers["Retry-After"] == "1"
    assert original.status_code == 201
    assert after.status_code == 201 and after.headers[REPLAYED_HEADER] == "true"
    assert len(shop.orders) == 1


async def test_an_error_response_releases_the_key(client, shop) -> None:
    first = await client.post("/v1/refused-orders", json={"item": "tea"}, headers=KEY)
    second = await client.post("/v1/refused-orders", json={"item": "tea"}, headers=KEY)

    assert first.status_code == second.status_code == 409
    assert REPLAYED_HEADER not in second.headers  # Run again, not replayed.
    assert len(shop.orders) == 2


async def test_a_crash_releases_the_key(client, shop) -> None:
    first = await client.post("/v1/broken-orders", json={"item": "tea"}, headers=KEY)
    second = await client.post("/v1/broken-orders", json={"item": "tea"}, headers=KEY)

    assert first.status_code == second.status_code == 500
    assert len(shop.orders) == 2


async def test_an_invalid_body_releases_the_key(client, shop) -> None:
    invalid = await client.post("/v1/orders", json={"quantity": "many"}, headers=KEY)
    valid = await client.post("/v1/orders", json={"item": "tea"}, headers=KEY)

    assert invalid.status_code == 422
    assert valid.status_code == 201 and REPLAYED_HEADER not in valid.headers


async def test_records_expire_after_their_ttl(client, shop, redis) -> None:
    await client.post("/v1/orders", json={"item": "tea"}, headers=KEY)
    [key] = [key async for key in redis.scan_iter(match="idempotency:caller:anonymous:*")]
    assert 0 < await redis.pttl(key) <= 1000

    await asyncio.sleep(1.1)
    again = await client.post("/v1/orders", json={"item": "tea"}, headers=KEY)

    assert again.status_code == 201 and REPLAYED_HEADER not in again.headers
    assert len(shop.orders) == 2


async def test_without_a_key_nothing_is_recorded(client, shop, redis) -> None:
    await client.post("/v1/orders", json={"item": "tea"})
    await client.post("/v1/orders", json={"item": "tea"})

    assert len(shop.orders) == 2
    assert [key async for key in redis.scan_iter(match="idempotency:*")] == []


async def test_routes_without_the_dependency_are_untouched(client, shop) -> None:
    for _ in range(2):
        response = await client.post("/v1/unkeyed-orders", json={"item": "tea"}, headers=KEY)
        assert response.status_code == 201 and REPLAYED_HEADER not in response.headers

    assert len(shop.orders) == 2


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_redis_unavailable_refuses_keyed_requests_with_a_503(
    shop, make_settings, app_client
) -> None:
    settings = make_settings(
        service_name="idempotency-test",
        redis_url=f"redis://127.0.0.1:{_closed_port()}/0",
        redis_timeout=0.5,
    )
    app = create_app(
        state=ServiceState(settings), title="t", description="t", routers=[shop.router()]
    )
    async with app_client(app) as client:
        keyed = await client.post("/v1/orders", json={"item": "tea"}, headers=KEY)
        unkeyed = await client.post("/v1/orders", json={"item": "tea"})

    assert keyed.status_code == 503
    assert keyed.json()["code"] == "idempotency_unavailable"
    assert unkeyed.status_code == 201
    assert len(shop.orders) == 1


async def test_a_keyed_route_without_the_route_class_fails_loudly(
    make_settings, app_client
) -> None:
    router = APIRouter()

    @router.post("/misconfigured", dependencies=[Depends(idempotency(caller_scope))])
    async def misconfigured() -> dict[str, str]:
        return {}

    settings = make_settings(log_format="json")
    app = create_app(state=ServiceState(settings), title="t", description="t", routers=[router])
    async with app_client(app) as client:
        response = await client.post("/v1/misconfigured", headers=KEY)

    assert response.status_code == 500


def test_the_fingerprint_compares_json_by_meaning() -> None:
    assert request_fingerprint(b'{"a": 1, "b": [1, 2]}') == request_fingerprint(
        b'{\n  "b": [1,2],\n  "a": 1\n}'
    )
    assert request_fingerprint(b'{"a": 1}') != request_fingerprint(b'{"a": 2}')
    assert request_fingerprint(b"not json") == request_fingerprint(b"not json")
    assert request_fingerprint(b"") != request_fingerprint(b"{}")
