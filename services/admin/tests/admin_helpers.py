"""Helpers shared by the admin tests (fixtures are in conftest.py)."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass


@dataclass
class ConsoleSession:
    """A console login made directly in the database: its ID and CSRF token."""

    session_id: uuid.UUID
    csrf: str


def form_token(html: str) -> str:
    """The CSRF token of the first form in a page."""
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF token in the page"
    return match.group(1)
