"""docs/practices.md cannot drift: every path, `path.py: symbol` and test a practice names exists,
every practice names its code and a test (or says plainly that none exists), and rows stay short.
The other documents that name code (operations, performance, deploying, security, README) are
held to the same resolver, accepting their shorter path forms."""

from __future__ import annotations

import pytest

from tests.support.doc_references import (
    ROOT,
    cited_tests,
    missing_tests,
    path_references,
    unresolved_paths,
)

PRACTICES = ROOT / "docs" / "practices.md"
# One or two sentences per cell; an explanation longer than that belongs in the topic's document.
MAX_ROW_CHARS = 600
UNTESTED = "Untested:"


def practice_rows() -> list[list[str]]:
    """The cells (practice, where, proved by) of every table row, headers left out."""
    rows = []
    for line in PRACTICES.read_text().splitlines():
        if not line.startswith("| ") or line.startswith(("| Practice |", "|---")):
            continue
        rows.append([cell.strip() for cell in line.strip().strip("|").split(" | ")])
    return rows


def test_every_path_and_symbol_the_practices_map_names_exists() -> None:
    rows = "\n".join(" | ".join(cells) for cells in practice_rows())
    assert len([ref for ref in path_references(rows) if ref.symbols]) > 100
    assert unresolved_paths(rows) == []  # rows: full paths from the repository root only
    assert unresolved_paths(PRACTICES.read_text(), lenient=True) == []  # the notes too


def test_every_test_the_practices_map_names_exists() -> None:
    text = PRACTICES.read_text()
    assert len(cited_tests(text)) > 100
    assert missing_tests(text) == []


def test_every_practice_names_its_code_and_a_test_or_says_it_is_untested() -> None:
    rows = practice_rows()
    assert len(rows) > 120
    for cells in rows:
        assert len(cells) == 3, f"a row is practice | where | proved by: {cells}"
        practice, where, proof = cells
        assert any(ref.symbols for ref in path_references(where)), f"no code named: {practice}"
        assert cited_tests(proof) or proof.startswith(UNTESTED), f"no test named: {practice}"


def test_rows_are_one_or_two_sentences() -> None:
    long = [row[0] for row in practice_rows() if len(" | ".join(row)) > MAX_ROW_CHARS]
    assert long == [], f"move the detail to the topic's document: {long}"


def test_the_deliberate_differences_from_the_standard_are_explained() -> None:
    text = PRACTICES.read_text()
    assert "on_event" in text and "lifespan" in text
    assert "class Config" in text and "model_config" in text


@pytest.mark.parametrize(
    "document",
    [
        "docs/architecture.md",
        "docs/operations.md",
        "docs/performance.md",
        "docs/deploying.md",
        "docs/security.md",
        "docs/fleet.md",
        "README.md",
    ],
)
def test_the_other_documents_name_only_paths_and_tests_that_exist(document: str) -> None:
    text = (ROOT / document).read_text()
    assert unresolved_paths(text, lenient=True) == []
    assert missing_tests(text) == []


def test_a_made_up_path_symbol_or_test_is_reported() -> None:
    made_up = (
        "`libs/common/src/tripline_common/data/db.py: unit_of_work, unit_of_play` "
        "`libs/common/src/tripline_common/messaging/queue.py: JobQueue.enqueue_after_commit, "
        "JobQueue.nope` "
        "`libs/common/src/tripline_common/nowhere.py` "
        "`services/api/tests/test_users.py::test_nobody_wrote_this`"
    )
    assert unresolved_paths(made_up) == [
        "libs/common/src/tripline_common/data/db.py: unit_of_play (not defined there)",
        "libs/common/src/tripline_common/messaging/queue.py: JobQueue.nope (not defined there)",
        "libs/common/src/tripline_common/nowhere.py (no such file or folder)",
    ]
    assert missing_tests(made_up) == ["services/api/tests/test_users.py::test_nobody_wrote_this"]
