"""Every list operation of the API accepts the `fields` value its own document gives as an
example and publishes the pattern of what it accepts."""

from __future__ import annotations

from tests.support.openapi import fields_examples


async def test_every_list_accepts_its_documented_fields_example(client, headers) -> None:
    lists = fields_examples((await client.get("/openapi.json")).json())
    assert len(lists) >= 4  # trips v1 and v2, alerts, devices, webhooks

    for path, example in lists:
        response = await client.get(path, params={"fields": example}, headers=headers)
        assert response.status_code == 200, (path, response.text)
