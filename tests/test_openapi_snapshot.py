"""Each app's published API is the committed snapshot in docs/openapi/ (the API's alert streams:
docs/asyncapi/api.json), and never breaks a client.

A deliberate change rewrites the snapshots with `make openapi-snapshot` in the same commit
(docs/api-contract.md); any other difference fails here with its diff.
"""

from __future__ import annotations

import difflib
import json

import pytest

from scripts.openapi_diff import breaking_changes
from scripts.openapi_snapshot import (
    APPS,
    ASYNCAPI_SNAPSHOT,
    ROOT,
    SNAPSHOT_SETTINGS,
    build_document,
    render,
    snapshot_path,
)
from tripline_api.main import create_api_app
from tripline_api.settings import ApiSettings
from tripline_worker.main import create_worker_app
from tripline_worker.settings import WorkerServiceSettings

DIFF_LINES = 150  # Enough to see what changed; `make openapi-snapshot && git diff` shows all.


def readable_diff(
    snapshot: str, live: str, name: str, path: str = "", served: str = "/openapi.json"
) -> str:
    path = path or f"docs/openapi/{name}.json"
    lines = list(
        difflib.unified_diff(
            snapshot.splitlines(),
            live.splitlines(),
            f"{path} (committed)",
            f"{name} {served} (served)",
            lineterm="",
        )
    )
    shown = "\n".join(lines[:DIFF_LINES])
    if len(lines) > DIFF_LINES:
        shown += f"\n... {len(lines) - DIFF_LINES} more lines: make openapi-snapshot, then git diff"
    return (
        f"{name}'s {served} is not its snapshot. If the change is deliberate, run "
        f"`make openapi-snapshot` and commit {path} with it.\n{shown}"
    )


@pytest.mark.parametrize("name", list(APPS))
async def test_each_app_serves_exactly_its_committed_openapi_snapshot(
    name: str, make_settings, app_client
) -> None:
    app = APPS[name]
    async with app_client(app.create(make_settings(app.settings, **SNAPSHOT_SETTINGS))) as client:
        response = await client.get("/openapi.json")
    assert response.status_code == 200
    live = render(response.json())
    snapshot = snapshot_path(name).read_text()
    if live != snapshot:
        pytest.fail(readable_diff(snapshot, live, name), pytrace=False)


async def test_the_api_serves_exactly_its_committed_asyncapi_snapshot(
    make_settings, app_client
) -> None:
    app = create_api_app(make_settings(ApiSettings, **SNAPSHOT_SETTINGS))
    async with app_client(app) as client:
        response = await client.get("/asyncapi.json")
    assert response.status_code == 200
    live = render(response.json())
    snapshot = ASYNCAPI_SNAPSHOT.read_text()
    if live != snapshot:
        path = str(ASYNCAPI_SNAPSHOT.relative_to(ROOT))
        pytest.fail(readable_diff(snapshot, live, "api", path, "/asyncapi.json"), pytrace=False)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("api", {"POST /v1/trips", "POST /v2/trips", "POST /v1/devices", "POST /v1/webhooks"}),
        ("ingest", {"POST /v1/telemetry"}),
        ("admin", {"POST /v1/devices"}),
    ],
)
def test_each_created_resource_links_to_the_operations_on_it(name: str, expected) -> None:
    # What a client (or schemathesis's stateful phase) follows from an answer to the next call:
    # each link names an operation of the document whose path takes the linked parameter.
    document = json.loads(snapshot_path(name).read_text())
    operations = {
        operation["operationId"]: path
        for path, item in document["paths"].items()
        for operation in item.values()
    }
    linking = set()
    for path, item in document["paths"].items():
        for method, operation in item.items():
            for answer in operation["responses"].values():
                for link in answer.get("links", {}).values():
                    linking.add(f"{method.upper()} {path}")
                    [parameter] = link["parameters"]
                    assert f"{{{parameter}}}" in operations[link["operationId"]], link
                    assert link["parameters"][parameter].startswith("$response.body#/")
    assert linking == expected


@pytest.mark.parametrize("name", list(APPS))
def test_no_change_inside_v1_or_v2_breaks_a_client_of_the_snapshot(name: str) -> None:
    """The baseline is the committed snapshot, and the snapshot only moves through
    `make openapi-snapshot`, which refuses a breaking change unless `ALLOW_BREAKING` says why.

    So a breaking change fails here by name (not only as a diff) until someone deliberately
    writes it down. Git history is not the baseline: CI's clone may be shallow, and on main
    there is no merge base to compare with, so the guard would pass or fail by how it was
    checked out. What this cannot stop is a hand-edited snapshot; review sees that diff in
    docs/openapi/.
    """
    snapshot = json.loads(snapshot_path(name).read_text())
    breaking = breaking_changes(snapshot, build_document(name))
    if breaking:
        pytest.fail(
            f"{name}: changes that break clients of /v1 or /v2:\n" + "\n".join(breaking),
            pytrace=False,
        )


def test_the_worker_serves_probes_only_and_no_api_operations() -> None:
    # Its HTTP app exists for /livez, /readyz and /metrics: no snapshot needed while this holds.
    settings = WorkerServiceSettings(_env_file=None, **SNAPSHOT_SETTINGS)
    assert create_worker_app(settings).openapi()["paths"] == {}
