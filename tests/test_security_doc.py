"""docs/security.md cannot drift: every test it names exists, every threat has a proof, and no
row is left to fill; the other documents that name tests (practices, operations) name real ones.
"""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SECURITY = ROOT / "docs" / "security.md"
# `path/to/test_file.py::test_name`, or `::test_name` for another test of the file named last.
NODE_ID = re.compile(r"`((?:[\w.-]+/)*test_\w+\.py)?::(test_\w+)`")


@cache
def functions_of(path: Path) -> frozenset[str]:
    """Names of the module-level test functions of a test file (parsed, not imported)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    return frozenset(
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.name.startswith("test_")
    )


def cited_tests(text: str) -> list[tuple[str, str]]:
    """(file, test) for every node ID in `text`, resolving `::name` to the file named before."""
    cited, last_file = [], None
    for match in NODE_ID.finditer(text):
        last_file = match.group(1) or last_file
        assert last_file, f"`::{match.group(2)}` names no file before it"
        cited.append((last_file, match.group(2)))
    return cited


def missing_tests(text: str) -> list[str]:
    missing = []
    for file, name in cited_tests(text):
        path = ROOT / file
        if not path.is_file():
            missing.append(f"{file} (no such file)")
        elif name not in functions_of(path):
            missing.append(f"{file}::{name}")
    return missing


def threat_rows() -> list[list[str]]:
    """The cells of every row of the threat tables (header and separator rows left out)."""
    rows = []
    for line in SECURITY.read_text().splitlines():
        if not line.startswith("| ") or line.startswith(("| threat ", "|---")):
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split(" | ")]
        rows.append(cells)
    return rows


def test_every_test_named_in_security_md_exists() -> None:
    cited = cited_tests(SECURITY.read_text())
    assert len(cited) > 50  # the pattern really found the table's node IDs
    assert missing_tests(SECURITY.read_text()) == []


def test_every_threat_has_a_control_and_a_proving_test() -> None:
    rows = threat_rows()
    assert len(rows) > 40
    for cells in rows:
        assert len(cells) == 3, f"a row needs threat | control | proven by: {cells}"
        threat, control, proof = cells
        assert threat and control, cells
        assert cited_tests(proof) or "TODO" in proof, f"no test proves: {threat}"


def test_no_row_is_left_to_fill() -> None:
    todo = [cells[0] for cells in threat_rows() if "TODO" in " ".join(cells)]
    assert todo == [], "rows still to fill in docs/security.md"


@pytest.mark.parametrize("document", ["docs/practices.md", "docs/operations.md", "README.md"])
def test_the_other_documents_name_only_tests_that_exist(document: str) -> None:
    assert missing_tests((ROOT / document).read_text()) == []
