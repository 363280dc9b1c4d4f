"""Guards on the repository's own layout that would otherwise fail in confusing ways."""

from __future__ import annotations

from collections import defaultdict

from tests.conftest import ROOT

TEST_ROOTS = ("libs", "services", "tests")


def test_test_modules_have_unique_basenames() -> None:
    """pytest's default import mode keys test modules by file name: two `test_x.py` in
    different folders stop the whole run at collection ("import file mismatch")."""
    seen: dict[str, list[str]] = defaultdict(list)
    for root in TEST_ROOTS:
        for path in (ROOT / root).rglob("test_*.py"):
            if ".venv" not in path.parts:
                seen[path.name].append(str(path.relative_to(ROOT)))
    duplicates = {name: paths for name, paths in seen.items() if len(paths) > 1}
    assert not duplicates, f"rename one of each: {duplicates}"
