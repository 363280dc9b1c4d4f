"""Every ingest route but the probes and docs needs a device key: walked over the app's own
route table, so a new route is checked without anyone remembering to add a case."""

from __future__ import annotations

import re
import uuid

import pytest
from fastapi.routing import iter_route_contexts
from sqlalchemy import func, select

from tests.support.routes import EVERY_APP_PUBLIC
from tripline_common.data.models import TelemetryBatch
from tripline_ingest.main import create_ingest_app
from tripline_ingest.settings import IngestSettings

PUBLIC = EVERY_APP_PUBLIC
PARAM = re.compile(r"{(\w+)(?::\w+)?}")


def device_routes() -> list[tuple[str, str]]:
    routes = sorted(
        (method, route.path)
        for route in iter_route_contexts(create_ingest_app().routes)
        if route.methods
        for method in route.methods - {"HEAD"}
    )
    return [route for route in routes if route not in PUBLIC]


def test_the_device_routes_are_the_expected_ones() -> None:
    # Pins the list the test below walks, so a new route shows up here.
    assert [path for _, path in device_routes()] == ["/v1/batches/{batch_id}", "/v1/telemetry"]


@pytest.mark.parametrize("key", [None, "", "tl_not-a-key-anyone-was-given"])
@pytest.mark.parametrize(("method", "path"), device_routes())
async def test_a_device_route_without_a_valid_key_is_a_401_that_stores_nothing(
    make_settings, app_client, session_factory, method, path, key
) -> None:
    url = PARAM.sub(lambda _: str(uuid.uuid4()), path)
    headers = {"X-Device-Key": key} if key is not None else {}
    body = b'{"client_batch_id": "b-1", "events": []}' if method == "POST" else None
    async with app_client(create_ingest_app(make_settings(IngestSettings))) as client:
        response = await client.request(method, url, content=body, headers=headers)

    assert response.status_code == 401, response.text
    assert response.json()["code"] in {"unauthorized", "invalid_device_key"}
    assert response.headers["www-authenticate"]
    async with session_factory() as session:
        assert await session.scalar(select(func.count()).select_from(TelemetryBatch)) == 0
