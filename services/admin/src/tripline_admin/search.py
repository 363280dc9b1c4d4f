"""Text search helpers shared by the admin list filters: safe, case-insensitive `LIKE` patterns."""

from __future__ import annotations

import uuid


def like_pattern(text: str) -> str:
    """`%text%` with the LIKE wildcards in `text` escaped (use with `escape="\\\\"`), so a search
    for `50%` or `a_b` matches those characters literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def as_uuid(text: str) -> uuid.UUID | None:
    """`text` as a UUID when it is one (a search box may hold an ID), else None."""
    try:
        return uuid.UUID(text.strip())
    except ValueError:
        return None
