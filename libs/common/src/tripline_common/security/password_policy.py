"""The one password rule set (NIST SP 800-63B): length, not blank, not common, not the email.

Sign-up, password reset and password change all call `check_new_password`; it raises a 422 in
the shared error shape naming the rule that failed. There are no composition rules (digits,
symbols): NIST advises against them; length and a blocklist do the work.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

from tripline_common.platform.errors import UnprocessableError

PASSWORD_MIN_LENGTH = 12
# Generous, as NIST asks (at least 64), and still a bound on what a request makes Argon2 read.
PASSWORD_MAX_LENGTH = 128
# A blocklisted word followed by digits or symbols ("letmein123!") is as guessable as the word.
_TRAILING_NOISE = re.compile(r"[\d\W_]+$")


@lru_cache
def _blocklist() -> frozenset[str]:
    """The 30,000 most common passwords of public breach corpora, shipped with zxcvbn (MIT);
    loaded on first use, never fetched at run time."""
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    return frozenset(FREQUENCY_LISTS["passwords"])


def password_problem(password: str, *, email: str) -> str | None:
    """Why `password` is refused for the account `email`, or None when it is acceptable."""
    normalized = unicodedata.normalize("NFKC", password)
    if not normalized.strip():
        return "The password must not be blank."
    if len(normalized) < PASSWORD_MIN_LENGTH:
        return f"The password must have at least {PASSWORD_MIN_LENGTH} characters."
    if len(normalized) > PASSWORD_MAX_LENGTH:
        return f"The password must have at most {PASSWORD_MAX_LENGTH} characters."
    folded = normalized.casefold()
    compact = re.sub(r"\s+", "", folded)
    blocklist = _blocklist()
    if any(
        candidate in blocklist
        for candidate in (folded, compact, _TRAILING_NOISE.sub("", compact))
        if candidate
    ):
        return "The password is too common; it appears in lists of breached passwords."
    local_part = email.rpartition("@")[0].casefold()
    if len(local_part) >= 3 and local_part in compact:
        return "The password must not contain your email address."
    return None


def check_new_password(password: str, *, email: str, field: str = "password") -> None:
    """Raise a 422 (`weak_password`, in the shared error shape) unless `password` is acceptable
    as the new password of the account `email`."""
    problem = password_problem(password, email=email)
    if problem is not None:
        raise UnprocessableError(
            problem,
            code="weak_password",
            details=[{"loc": ["body", field], "msg": problem, "type": "weak_password"}],
        )
