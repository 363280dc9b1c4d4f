"""Write each app's OpenAPI document to docs/openapi/<app>.json, refusing a breaking change, and
the API's AsyncAPI document (its alert streams) to docs/asyncapi/api.json.

    make openapi-snapshot                             # after a deliberate, compatible change
    ALLOW_BREAKING="<why>" make openapi-snapshot      # after a deliberate breaking one

`tests/test_openapi_snapshot.py` fails while a snapshot differs from what its app serves, and
while the app breaks a client of the snapshot (`scripts/openapi_diff.py` says what breaks). The
AsyncAPI snapshot is compared the same way; no rule set guards it against breaking changes yet,
so review its diff.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from fastapi import FastAPI

from scripts.openapi_diff import breaking_changes
from tripline_admin.main import create_admin_app
from tripline_admin.settings import AdminSettings
from tripline_api.alerts_stream.asyncapi import asyncapi_document
from tripline_api.main import create_api_app
from tripline_api.settings import ApiSettings
from tripline_common.platform import CommonSettings
from tripline_ingest.main import create_ingest_app
from tripline_ingest.settings import IngestSettings

ROOT = Path(__file__).resolve().parents[1]
SNAPSHOT_DIR = ROOT / "docs" / "openapi"
ASYNCAPI_SNAPSHOT = ROOT / "docs" / "asyncapi" / "api.json"

# The settings a snapshot is built with: the tests' environment, docs on, and the version a
# build without VERSION serves, pinned: a release sets VERSION to its image tag, which names a
# build, not a contract. Nothing else in the settings reaches the document.
SNAPSHOT_SETTINGS: dict[str, Any] = {
    "environment": "test",
    "docs_enabled": True,
    "version": CommonSettings.model_fields["version"].default,
}


class App(NamedTuple):
    """An app with an HTTP API: its factory and its settings class. (The worker's HTTP app
    serves probes only; its document has no paths, which a test checks.)"""

    create: Callable[[Any], FastAPI]
    settings: type[CommonSettings]


APPS = {
    "api": App(create_api_app, ApiSettings),
    "ingest": App(create_ingest_app, IngestSettings),
    "admin": App(create_admin_app, AdminSettings),
}


def build_document(name: str) -> dict[str, Any]:
    """The OpenAPI document app `name` serves at /openapi.json (no `.env` read)."""
    app = APPS[name]
    settings = app.settings(_env_file=None, **SNAPSHOT_SETTINGS)
    return app.create(settings).openapi()


def build_asyncapi_document() -> dict[str, Any]:
    """The AsyncAPI document the API serves at /asyncapi.json (no `.env` read)."""
    return asyncapi_document(ApiSettings(_env_file=None, **SNAPSHOT_SETTINGS))


def render(document: dict[str, Any]) -> str:
    """The snapshot's text: pretty-printed with sorted keys, so a diff shows only real changes."""
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def snapshot_path(name: str) -> Path:
    return SNAPSHOT_DIR / f"{name}.json"


def main() -> int:
    """Rewrite every snapshot; refuse (exit 1, nothing written) if a change breaks a client
    and `ALLOW_BREAKING` does not say why."""
    reason = os.environ.get("ALLOW_BREAKING", "").strip()
    if reason.lower() in {"1", "true", "yes"}:
        print('ALLOW_BREAKING is the reason, in words: ALLOW_BREAKING="<why>"', file=sys.stderr)
        return 1
    documents = {name: build_document(name) for name in APPS}
    breaking = {
        name: breaking_changes(json.loads(snapshot_path(name).read_text()), document)
        for name, document in documents.items()
        if snapshot_path(name).exists()
    }
    for name, changes in breaking.items():
        for change in changes:
            print(f"breaking ({name}): {change}", file=sys.stderr)
    if any(breaking.values()) and not reason:
        print(
            "Refused: these changes break clients of /v1 or /v2. Make the change additive, or "
            'rerun with ALLOW_BREAKING="<why>" and say it in docs/migrations/.',
            file=sys.stderr,
        )
        return 1
    SNAPSHOT_DIR.mkdir(parents=True, exist_ok=True)
    ASYNCAPI_SNAPSHOT.parent.mkdir(parents=True, exist_ok=True)
    snapshots = [(snapshot_path(name), document) for name, document in documents.items()]
    for path, document in [*snapshots, (ASYNCAPI_SNAPSHOT, build_asyncapi_document())]:
        text = render(document)
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
            print(f"wrote {path.relative_to(ROOT)}")
    if any(breaking.values()):
        print(f"Breaking change allowed: {reason}. Say so in the commit message.", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
