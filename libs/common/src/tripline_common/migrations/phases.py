"""Expand and contract: which revisions may run while the previous release still serves.

An **expand** revision only adds (a table, a nullable column or one with a default, an index, a
constraint on its own new columns, a backfill): the old code keeps working on the new schema,
so it runs in the pre-upgrade hook. A **contract** revision takes something away or tightens it
(drops or renames a column or table, changes a type, adds NOT NULL without a default, adds a
constraint to existing columns): the old code would break, so it runs only once every pod runs
the new code, in the post-upgrade hook. Each revision declares its `phase`; `contract_reasons`
reads its SQL, and a test refuses a revision that declares expand but does a contract step.
"""

from __future__ import annotations

import re
from typing import Literal

Phase = Literal["expand", "contract"]
PHASES: tuple[Phase, ...] = ("expand", "contract")

_IDENTIFIER = r'"?(\w+)"?'
_ADD_COLUMN = re.compile(
    rf"ALTER TABLE (?:ONLY )?{_IDENTIFIER} ADD COLUMN (?:IF NOT EXISTS )?{_IDENTIFIER}(.*)",
    re.IGNORECASE | re.DOTALL,
)
_ADD_CONSTRAINT = re.compile(
    rf"ALTER TABLE (?:ONLY )?{_IDENTIFIER} ADD CONSTRAINT {_IDENTIFIER} (.*)",
    re.IGNORECASE | re.DOTALL,
)
_CREATE_TABLE = re.compile(rf"CREATE TABLE (?:IF NOT EXISTS )?{_IDENTIFIER}", re.IGNORECASE)
_UNIQUE_INDEX = re.compile(
    rf"CREATE UNIQUE INDEX (?:CONCURRENTLY )?(?:IF NOT EXISTS )?{_IDENTIFIER} ON (?:ONLY )?"
    rf"{_IDENTIFIER}",
    re.IGNORECASE,
)
_ALWAYS_CONTRACT = [
    (re.compile(r"\bDROP TABLE\b", re.IGNORECASE), "drops a table"),
    (re.compile(r"\bDROP COLUMN\b", re.IGNORECASE), "drops a column"),
    (re.compile(r"\bRENAME\b", re.IGNORECASE), "renames"),
    (re.compile(r"\bALTER COLUMN \S+ (?:SET DATA )?TYPE\b", re.IGNORECASE), "changes a type"),
    (re.compile(r"\bSET NOT NULL\b", re.IGNORECASE), "sets NOT NULL"),
    (re.compile(r"\bDROP DEFAULT\b", re.IGNORECASE), "drops a default"),
    (re.compile(r"\bVALIDATE CONSTRAINT\b", re.IGNORECASE), "validates a constraint"),
    (re.compile(r"\bDROP (?:INDEX|CONSTRAINT)\b", re.IGNORECASE), "drops an index or constraint"),
]
_WORD = re.compile(r"[A-Za-z_]\w*")
_SQL_WORDS = {
    "check", "unique", "foreign", "key", "references", "is", "null", "not", "and", "or", "in",
    "between", "true", "false", "on", "delete", "cascade", "set", "restrict", "no", "action",
    "primary", "exclude", "using", "with", "where", "valid", "deferrable", "initially",
    "deferred", "immediate", "lower", "upper", "coalesce", "length", "char_length",
}  # fmt: skip


def statements(sql: str) -> list[str]:
    """`sql` split into statements, comments and blank ones left out (dollar-quoted bodies are
    kept whole: a function's body is not statements of the migration)."""
    parts: list[str] = []
    current: list[str] = []
    in_dollar = False
    for piece in re.split(r"(\$\$|;)", sql):
        if piece == "$$":
            in_dollar = not in_dollar
            current.append(piece)
        elif piece == ";" and not in_dollar:
            parts.append("".join(current))
            current = []
        else:
            current.append(piece)
    parts.append("".join(current))
    cleaned = []
    for part in parts:
        lines = [line for line in part.splitlines() if not line.strip().startswith("--")]
        text = " ".join(" ".join(lines).split())
        if text:
            cleaned.append(text)
    return cleaned


def contract_reasons(sql: str) -> list[str]:
    """Why the statements of one revision's SQL would break the previous release's code, one
    line per contract step; empty for an expand revision."""
    reasons: list[str] = []
    created: set[str] = set()
    added: dict[str, set[str]] = {}
    for statement in statements(sql):
        if statement.upper().startswith(("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION")):
            continue  # A body, not a schema change: its statements run later, if ever.
        if match := _CREATE_TABLE.match(statement):
            created.add(match.group(1).lower())
            continue
        bare = re.sub(r"'(?:[^']|'')*'", "''", statement)  # A comment's text is no statement.
        for pattern, reason in _ALWAYS_CONTRACT:
            if pattern.search(bare):
                reasons.append(f"{reason}: {statement[:120]}")
                break
        else:
            reasons.extend(_tightening(statement, created, added))
    return reasons


def _tightening(statement: str, created: set[str], added: dict[str, set[str]]) -> list[str]:
    if match := _ADD_COLUMN.match(statement):
        table, column, rest = match.group(1).lower(), match.group(2).lower(), match.group(3)
        added.setdefault(table, set()).add(column)
        if re.search(r"\bNOT NULL\b", rest, re.IGNORECASE) and not re.search(
            r"\bDEFAULT\b", rest, re.IGNORECASE
        ):
            return [f"adds a NOT NULL column without a default: {statement[:120]}"]
        return []
    if match := _ADD_CONSTRAINT.match(statement):
        table, body = match.group(1).lower(), match.group(3)
        if table in created:
            return []
        body = re.sub(r"'[^']*'", "", body)  # String literals are not columns.
        if foreign := re.match(r"FOREIGN KEY\s*\(([^)]*)\)", body, re.IGNORECASE):
            body = foreign.group(1)  # The referencing columns; the rest names the other table.
        columns = {word.lower() for word in _WORD.findall(body)} - _SQL_WORDS
        if columns <= added.get(table, set()):
            return []  # Only columns this revision added: every existing row passes.
        return [f"constrains existing rows of {table}: {statement[:120]}"]
    if (match := _UNIQUE_INDEX.match(statement)) and match.group(2).lower() not in created:
        return [f"makes existing columns unique: {statement[:120]}"]
    return []
