"""The password rules (NIST SP 800-63B) as a table: what is refused, why, and what passes."""

from __future__ import annotations

import pytest

from tripline_common.platform import UnprocessableError
from tripline_common.security import PASSWORD_MAX_LENGTH, PASSWORD_MIN_LENGTH, check_new_password
from tripline_common.security.password_policy import password_problem

EMAIL = "ada.lovelace@example.com"


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        (" " * 12, "blank"),
        ("\t\n" * 8, "blank"),
        ("\u3000" * 12, "blank"),  # Ideographic spaces are whitespace too.
        ("a" * (PASSWORD_MIN_LENGTH - 1), "at least"),
        ("x" * (PASSWORD_MAX_LENGTH + 1), "at most"),
        ("password1234", "common"),
        ("PASSWORD1234", "common"),
        ("qwertyuiop", "at least"),
        ("qwertyuiop12", "common"),
        ("iloveyou2026!!", "common"),  # A listed word plus digits and symbols.
        ("baseball1234", "common"),
        ("pass word 1234", "common"),  # Spaces do not hide a listed password.
        ("ada.lovelace-rocks", "email"),
        ("my ADA.LOVELACE pw", "email"),
    ],
)
def test_weak_passwords_are_refused_with_the_reason(password: str, reason: str) -> None:
    problem = password_problem(password, email=EMAIL)
    assert problem is not None and reason in problem


@pytest.mark.parametrize(
    "password",
    [
        "violet tractor 42",
        "correct horse battery",
        "x" * PASSWORD_MAX_LENGTH,
        "ünïcødé pässphrâse",
        "  padded but long enough  ",
    ],
)
def test_long_uncommon_passwords_pass(password: str) -> None:
    assert password_problem(password, email=EMAIL) is None


def test_a_short_local_part_is_not_matched_inside_ordinary_words() -> None:
    # "al@" would otherwise refuse every password containing "al".
    assert password_problem("totally normal phrase", email="al@example.com") is None


def test_the_refusal_is_a_422_in_the_shared_shape_naming_the_field() -> None:
    with pytest.raises(UnprocessableError) as raised:
        check_new_password("password1234", email=EMAIL, field="new_password")
    assert raised.value.status_code == 422
    assert raised.value.code == "weak_password"
    assert raised.value.details == [
        {"loc": ["body", "new_password"], "msg": raised.value.message, "type": "weak_password"}
    ]
