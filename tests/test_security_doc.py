"""docs/security.md cannot drift: every test it names exists, every threat has a proof, and no
row is left to fill (the other documents are checked by `tests/test_practices_map.py`).
"""

from __future__ import annotations

from tests.support.doc_references import ROOT, cited_tests, missing_tests

SECURITY = ROOT / "docs" / "security.md"


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
