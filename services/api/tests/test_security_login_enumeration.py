"""Login does not tell an unknown email from a wrong password: the same answer, and the same
work (one Argon2id verification with the same cost parameters), so not the same time either.
Counted, not timed: a timing threshold would be flaky on a shared machine."""

from __future__ import annotations

import re

import pytest
from pwdlib import PasswordHash

from tripline_common.security import passwords


@pytest.fixture
def verifications(monkeypatch) -> list[str]:
    """The hashes every Argon2 verification is run against, in order."""
    seen: list[str] = []
    real = PasswordHash.verify

    def spy(self, password, hash, *args, **kwargs):
        seen.append(hash)
        return real(self, password, hash, *args, **kwargs)

    monkeypatch.setattr(PasswordHash, "verify", spy)
    return seen


def cost(password_hash: str) -> str:
    """The algorithm and cost parameters of a PHC string: `$argon2id$v=19$m=...,t=...,p=...`."""
    match = re.match(r"^\$(argon2id)\$v=\d+\$(m=\d+,t=\d+,p=\d+)\$", password_hash)
    assert match, password_hash
    return "/".join(match.groups())


async def test_an_unknown_email_costs_one_argon2_verification_like_a_wrong_password(
    client, make_user, verifications
) -> None:
    user = await make_user()

    async def attempt(email: str) -> tuple[int, dict]:
        response = await client.post(
            "/v1/auth/token", data={"username": email, "password": "not the password"}
        )
        body = response.json()
        return response.status_code, {k: v for k, v in body.items() if k != "request_id"}

    wrong = await attempt(user.email)
    wrong_hashes = list(verifications)
    verifications.clear()
    unknown = await attempt("nobody-" + user.email)

    assert wrong == unknown
    assert wrong[0] == 401
    assert len(wrong_hashes) == len(verifications) == 1
    assert cost(verifications[0]) == cost(wrong_hashes[0]) == cost(user.password_hash)
    assert verifications[0] == passwords._DUMMY_HASH  # not the user's, of course
