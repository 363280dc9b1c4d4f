"""Every list operation of the API accepts the `fields` value its own document gives as an
example and publishes the pattern of what it accepts."""

from __future__ import annotations

import re


async def test_every_list_accepts_its_documented_fields_example(client, headers) -> None:
    spec = (await client.get("/openapi.json")).json()
    lists = [
        (path, parameter)
        for path, item in spec["paths"].items()
        for parameter in item.get("get", {}).get("parameters", [])
        if parameter["name"] == "fields"
    ]
    assert len(lists) >= 4  # trips v1 and v2, alerts, devices, webhooks

    for path, parameter in lists:
        example = parameter["schema"]["examples"][0]
        assert re.search(parameter["schema"]["pattern"], example), path
        response = await client.get(path, params={"fields": example}, headers=headers)
        assert response.status_code == 200, (path, response.text)
