"""The import graph of the first-party packages: no cycles, floors that only look down, front doors.

Built by grimp from the source (nothing is imported). Imports under `if TYPE_CHECKING:` count:
they do not run, but a type one module needs from another that imports it back is the same
tangle of layers that the cycle rule is there to prevent, and it turns into a real cycle the
day someone needs the name at run time.
"""

from __future__ import annotations

import grimp
import pytest

PACKAGES = (
    "tripline_common",
    "tripline_api",
    "tripline_ingest",
    "tripline_admin",
    "tripline_worker",
    "tripline_devstack",
)
COMMON = "tripline_common"
# Bottom to top: a module may import its own floor and the floors below it, never above.
FLOORS = ("platform", "messaging", "data", "security", "web")
FRONT_DOORS = {f"{COMMON}.{floor}" for floor in FLOORS} | {f"{COMMON}.data.models"}
# Modules services may import by path, and why (everything else comes through a front door).
DOCUMENTED_EXCEPTIONS = {
    # Imported as a namespace so that calls read `audit.record(...)`, not a bare `record(...)`.
    f"{COMMON}.data.audit",
    # Imported as a namespace (`service.open_session(...)`): the session functions of the
    # token endpoints, named after the module that owns them.
    f"{COMMON}.security.auth.service",
}


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph(*PACKAGES, exclude_type_checking_imports=False)


def _strongly_connected(graph: grimp.ImportGraph) -> list[list[str]]:
    """The graph's strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = 0

    for root in sorted(graph.modules):
        if root in index:
            continue
        # Iterative, so that a long chain cannot hit the recursion limit.
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        components.append(sorted(component))
            elif child not in index:
                index[child] = low[child] = counter
                counter += 1
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(graph.find_modules_directly_imported_by(child)))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return components


def _cycle_through(graph: grimp.ImportGraph, component: list[str]) -> str:
    """One cycle inside `component`, written out module by module."""
    first = component[0]
    for imported in sorted(graph.find_modules_directly_imported_by(first)):
        if imported in component:
            back = graph.find_shortest_chain(importer=imported, imported=first)
            if back:
                return " -> ".join([first, *back])
    return ", ".join(component)


def _floor(module: str) -> int | None:
    parts = module.split(".")
    if parts[0] != COMMON or len(parts) < 2 or parts[1] not in FLOORS:
        return None
    return FLOORS.index(parts[1])


def test_first_party_packages_import_each_other_without_cycles(graph: grimp.ImportGraph) -> None:
    cycles = [_cycle_through(graph, component) for component in _strongly_connected(graph)]
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_the_cycle_finder_prints_a_planted_cycle_and_ignores_a_chain() -> None:
    planted = grimp.ImportGraph()
    for module in ("pkg", "pkg.a", "pkg.b", "pkg.c", "pkg.d"):
        planted.add_module(module)
    for importer, imported in (("pkg.a", "pkg.b"), ("pkg.b", "pkg.c"), ("pkg.c", "pkg.a")):
        planted.add_import(importer=importer, imported=imported)
    planted.add_import(importer="pkg.d", imported="pkg.a")
    cycles = [_cycle_through(planted, component) for component in _strongly_connected(planted)]
    assert cycles == ["pkg.a -> pkg.b -> pkg.c -> pkg.a"]


def test_every_common_module_sits_on_a_floor_or_is_the_migrations_tool(
    graph: grimp.ImportGraph,
) -> None:
    stray = sorted(
        module
        for module in graph.find_descendants(COMMON)
        if _floor(module) is None and not module.startswith(f"{COMMON}.migrations")
    )
    assert not stray, f"modules outside the floors {FLOORS}: {stray}"


def test_common_floors_import_only_their_own_floor_and_the_floors_below(
    graph: grimp.ImportGraph,
) -> None:
    upward = []
    for importer in sorted(graph.find_descendants(COMMON)):
        floor = _floor(importer)
        if floor is None:
            continue  # the migrations tool stands beside the floors and may use them all
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            target = _floor(imported)
            if imported.startswith(f"{COMMON}.migrations") or (
                target is not None and target > floor
            ):
                upward.append(f"{importer} ({FLOORS[floor]}) -> {imported}")
    assert not upward, "imports that reach up a floor:\n" + "\n".join(upward)


def test_services_reach_common_only_through_its_front_doors(graph: grimp.ImportGraph) -> None:
    allowed = FRONT_DOORS | DOCUMENTED_EXCEPTIONS | {f"{COMMON}.migrations"}
    bypasses = [
        f"{importer} -> {imported}"
        for importer in sorted(graph.modules)
        if not importer.startswith(COMMON)
        for imported in sorted(graph.find_modules_directly_imported_by(importer))
        if imported.startswith(COMMON) and imported not in allowed
    ]
    assert not bypasses, "imports past a front door:\n" + "\n".join(bypasses)
