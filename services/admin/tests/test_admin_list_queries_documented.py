"""Every list operation of the admin API accepts the `fields` value its own document gives as
an example and publishes the pattern of what it accepts; text filters state that NUL is refused."""

from __future__ import annotations

import re

import pytest

from tests.support.openapi import fields_examples


async def test_every_admin_list_accepts_its_documented_fields_example(
    client, operator_headers
) -> None:
    lists = fields_examples((await client.get("/openapi.json")).json())
    assert len(lists) >= 4  # users, devices, jobs, audit log

    for path, example in lists:
        response = await client.get(path, params={"fields": example}, headers=operator_headers)
        assert response.status_code == 200, (path, response.text)


@pytest.mark.parametrize(
    ("path", "parameter"),
    [
        ("/v1/users", "q"),
        ("/v1/devices", "q"),
        ("/v1/jobs", "kind"),
        ("/v1/audit-log", "action"),
        ("/v1/audit-log", "actor"),
        ("/v1/audit-log", "target_type"),
        ("/v1/audit-log", "target_id"),
        ("/v1/audit-log", "request_id"),
    ],
)
async def test_a_text_filter_with_a_nul_character_is_refused_as_its_schema_says(
    client, operator_headers, path, parameter
) -> None:
    spec = (await client.get("/openapi.json")).json()
    [documented] = [p for p in spec["paths"][path]["get"]["parameters"] if p["name"] == parameter]
    pattern = documented["schema"]["anyOf"][0]["pattern"]

    response = await client.get(path, params={parameter: "ada\x00"}, headers=operator_headers)

    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"  # Not the database's `invalid_value`.
    assert not re.search(pattern, "ada\x00") and re.search(pattern, "ada")
