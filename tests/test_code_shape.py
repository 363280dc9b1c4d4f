"""Rules of the code's shape that docs/practices.md states, checked on the source itself: async
handlers, routers without SQL, no dumping-ground modules, every operation and field described."""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT
from tripline_admin.main import create_admin_app
from tripline_admin.settings import AdminSettings
from tripline_api.main import create_api_app
from tripline_api.settings import ApiSettings
from tripline_ingest.main import create_ingest_app
from tripline_ingest.settings import IngestSettings

SOURCES = ("libs/common/src", "services/api/src", "services/ingest/src", "services/admin/src")
ALL_SOURCES = (*SOURCES, "services/worker/src", "libs/devstack/src")
ROUTE_DECORATORS = frozenset({"get", "post", "put", "patch", "delete", "websocket", "api_route"})
DUMPING_GROUNDS = frozenset({"utils", "helpers", "misc", "common", "util", "tools"})
# Fields still to describe; listed so that a new undocumented field fails at once.
UNDESCRIBED_FIELDS = frozenset({"PasswordChange.current_password", "Overview.counts"})


def python_files(*roots: str) -> Iterator[Path]:
    for root in roots:
        yield from (ROOT / root).rglob("*.py")


def route_handlers() -> Iterator[tuple[Path, ast.FunctionDef | ast.AsyncFunctionDef]]:
    """Every function decorated as a route (`@router.get(...)`, `@app.websocket(...)`, ...)."""
    for path in python_files(*SOURCES):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for decorator in node.decorator_list:
                call = decorator.func if isinstance(decorator, ast.Call) else decorator
                if isinstance(call, ast.Attribute) and call.attr in ROUTE_DECORATORS:
                    yield path, node
                    break


def test_every_route_handler_is_async() -> None:
    handlers = list(route_handlers())
    assert len(handlers) > 80  # the walk really found the apps' routes
    blocking = [
        f"{path.relative_to(ROOT)}: {node.name}"
        for path, node in handlers
        if not isinstance(node, ast.AsyncFunctionDef)
    ]
    assert blocking == []


def imported_modules(path: Path) -> set[str]:
    modules: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            modules.add(node.module or "")
        elif isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
    return modules


def test_routers_hold_no_sql() -> None:
    """SQL lives in services and models; a router module imports nothing from SQLAlchemy."""
    routers = [p for p in python_files(*SOURCES) if p.name.startswith("router")]
    assert len(routers) > 10
    with_sql = [
        str(path.relative_to(ROOT))
        for path in routers
        if any(module.startswith("sqlalchemy") for module in imported_modules(path))
    ]
    assert with_sql == []


def test_no_module_is_a_utils_or_helpers_dumping_ground() -> None:
    named = [
        str(path.relative_to(ROOT))
        for path in python_files(*ALL_SOURCES)
        if path.stem in DUMPING_GROUNDS or path.parent.name in DUMPING_GROUNDS
    ]
    assert named == []


APPS: list[tuple[Callable[..., Any], type]] = [
    (create_api_app, ApiSettings),
    (create_ingest_app, IngestSettings),
    (create_admin_app, AdminSettings),
]


@pytest.mark.parametrize(("create", "settings"), APPS, ids=["api", "ingest", "admin"])
def test_every_field_of_the_published_models_is_described(
    create: Callable[..., Any], settings: type
) -> None:
    schemas = create(settings(_env_file=None)).openapi()["components"]["schemas"]
    undescribed = {
        f"{name}.{field}"
        for name, schema in schemas.items()
        # FastAPI writes the OAuth2 form's schema (`Body_login_...`) itself.
        if not name.startswith("Body_")
        for field, spec in schema.get("properties", {}).items()
        if "description" not in spec
    }
    assert undescribed <= UNDESCRIBED_FIELDS


@pytest.mark.parametrize(("create", "settings"), APPS, ids=["api", "ingest", "admin"])
def test_every_operation_has_a_summary_a_description_and_a_tag(
    create: Callable[..., Any], settings: type
) -> None:
    paths = create(settings(_env_file=None)).openapi()["paths"]
    operations = {
        f"{method.upper()} {path}": op
        for path, item in paths.items()
        for method, op in item.items()
    }
    assert operations
    bare = [
        name
        for name, op in operations.items()
        if not (op.get("summary") and op.get("description") and op.get("tags"))
    ]
    assert bare == []
