"""The admin app under attack: forged or tampered bearer tokens and console cookies get nobody
in, whatever role they claim (the role comes from the database); console sessions end with
their lifetime; a script sent in a form comes back as text; the login form does not tell
unknown emails from wrong passwords.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from admin_helpers import form_token
from sqlalchemy import select

from tests.support.users import PASSWORD
from tripline_admin.console.security import cookie_name, sign
from tripline_common.data.models import AuthSession, UserRole
from tripline_common.security.auth.tokens import ALGORITHM


def claims(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})


def resign(payload: dict[str, Any], key: str, algorithm: str = ALGORITHM) -> str:
    return jwt.encode(payload, key, algorithm=algorithm)


# Each takes (a real operator token's claims, the real key) and returns a forged token.
FORGERIES = {
    "alg-none-claiming-admin": lambda c, key: resign({**c, "role": "admin"}, "", "none"),
    "signed-with-another-key": lambda c, key: resign({**c, "role": "admin"}, "x" * 48),
    "other-hmac-algorithm": lambda c, key: resign(c, key, "HS512"),
    "wrong-audience": lambda c, key: resign({**c, "aud": "tripline-elsewhere"}, key),
    "wrong-issuer": lambda c, key: resign({**c, "iss": "someone-else"}, key),
    "expired": lambda c, key: resign({**c, "iat": c["iat"] - 7200, "exp": c["iat"] - 3600}, key),
    "unknown-session": lambda c, key: resign({**c, "sid": str(uuid.uuid4())}, key),
    "missing-session-claim": lambda c, key: resign({k: v for k, v in c.items() if k != "sid"}, key),
}


# HS512 with our 40-byte test key makes PyJWT warn; the forgery is the point.
@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
@pytest.mark.parametrize("forge", FORGERIES.values(), ids=FORGERIES.keys())
async def test_a_forged_or_tampered_operator_token_is_a_401(
    client, operator, operator_headers, admin_settings, forge
) -> None:
    token = operator_headers["Authorization"].removeprefix("Bearer ")
    forged = forge(claims(token), admin_settings.secret_key.get_secret_value())

    response = await client.get("/v1/users", headers={"Authorization": f"Bearer {forged}"})

    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"].startswith("Bearer")
    # The genuine token still works: the refusal is about the forgery alone.
    assert (await client.get("/v1/users", headers=operator_headers)).status_code == 200


async def test_a_role_claimed_in_the_token_grants_nothing(
    client, make_user, auth_headers, admin_settings
) -> None:
    user = await make_user(UserRole.USER)
    token = (await auth_headers(user))["Authorization"].removeprefix("Bearer ")
    # Even signed with the real key (as if it had leaked), the role claim is not trusted:
    # the role is read from the user's row on every request.
    elevated = resign(
        {**claims(token), "role": "admin"}, admin_settings.secret_key.get_secret_value()
    )

    response = await client.get("/v1/users", headers={"Authorization": f"Bearer {elevated}"})

    assert response.status_code == 403, response.text
    assert response.json()["code"] == "insufficient_role"


@pytest.mark.parametrize(
    "cookie",
    [
        pytest.param(lambda settings, sid, uid: "garbage", id="garbage"),
        pytest.param(
            lambda settings, sid, uid: (
                sign(settings, "session", {"sid": sid, "uid": uid})[:-3] + "AAA"
            ),
            id="bad-signature",
        ),
        pytest.param(
            lambda settings, sid, uid: sign(
                settings.model_copy(update={"secret_key": type(settings.secret_key)("y" * 48)}),
                "session",
                {"sid": sid, "uid": uid},
            ),
            id="signed-with-another-key",
        ),
        pytest.param(
            lambda settings, sid, uid: sign(settings, "csrf", {"sid": sid, "uid": uid}),
            id="signed-for-another-purpose",
        ),
        pytest.param(
            lambda settings, sid, uid: sign(
                settings, "session", {"sid": str(uuid.uuid4()), "uid": uid}
            ),
            id="unknown-session",
        ),
    ],
)
async def test_a_forged_console_cookie_gets_the_login_page(
    browser, operator, sign_in, admin_settings, session_factory, cookie
) -> None:
    await sign_in(browser, operator)
    async with session_factory() as session:
        sid = await session.scalar(select(AuthSession.id).where(AuthSession.user_id == operator.id))
    name = cookie_name(admin_settings, "session")
    browser.cookies.set(name, cookie(admin_settings, str(sid), str(operator.id)))

    response = await browser.get("/console/users")

    assert response.status_code == 303, response.text
    assert response.headers["location"].startswith("/console/login")


async def test_a_console_session_ends_after_its_lifetime_however_active(
    browser, operator, admin_settings, session_factory
) -> None:
    page = await browser.get("/console/login")
    signed_in = await browser.post(
        "/console/login",
        data={"email": operator.email, "password": PASSWORD, "csrf_token": form_token(page.text)},
    )
    assert signed_in.status_code == 303
    async with session_factory() as session:
        [console] = await session.scalars(
            select(AuthSession).where(AuthSession.user_id == operator.id)
        )
        lifetime = console.expires_at - console.created_at
        assert abs(lifetime - timedelta(seconds=admin_settings.console_session_ttl_seconds)) < (
            timedelta(minutes=1)
        )
        assert admin_settings.console_session_ttl_seconds == 8 * 3600  # as the docs say
        # Used a moment ago, but past its end (an hour past: the test's transaction, and so
        # Postgres' now(), began before this line).
        console.expires_at = datetime.now(UTC) - timedelta(hours=1)
        console.last_seen_at = datetime.now(UTC)
        await session.commit()

    response = await browser.get("/console/users")

    assert response.status_code == 303
    assert response.headers["location"].startswith("/console/login")


async def test_a_cookie_naming_an_api_session_opens_no_console(
    browser, operator, operator_headers, admin_settings, session_factory
) -> None:
    # A valid, signed cookie (as if the key leaked) naming the operator's live *API* session.
    async with session_factory() as session:
        api_session = await session.scalar(
            select(AuthSession.id).where(AuthSession.user_id == operator.id)
        )
    value = sign(admin_settings, "session", {"sid": str(api_session), "uid": str(operator.id)})
    browser.cookies.set(cookie_name(admin_settings, "session"), value)

    response = await browser.get("/console/users")

    assert response.status_code == 303
    assert response.headers["location"].startswith("/console/login")


async def test_a_script_in_a_form_value_comes_back_escaped_in_the_flash_message(
    browser, operator, sign_in
) -> None:
    # Reflected through the flash message: the unknown email is quoted back to the operator.
    console = await sign_in(browser, operator)
    script = "<script>alert(1)</script>@example.com"

    posted = await browser.post(
        "/console/devices",
        data={"csrf_token": console.csrf, "owner_email": script, "name": "<img src=x onerror=1>"},
    )
    page = await browser.get(posted.headers["location"])

    assert posted.status_code == 303 and page.status_code == 200
    assert "No user has the email" in page.text
    assert "<script>alert(1)</script>" not in page.text and "<img src=x" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text


async def test_the_console_login_does_not_say_whether_an_email_has_an_account(
    browser, operator
) -> None:
    async def refused(email: str) -> tuple[int, str]:
        page = await browser.get("/console/login")
        response = await browser.post(
            "/console/login",
            data={
                "email": email,
                "password": "not the password",
                "csrf_token": form_token(page.text),
            },
        )
        # The form is rendered again with a fresh CSRF token; the rest must be identical.
        return response.status_code, re.sub(r'value="[^"]*"', 'value=""', response.text)

    wrong_password = await refused(operator.email)
    unknown_email = await refused("nobody-" + operator.email)

    assert wrong_password[0] == unknown_email[0] == 401
    assert "Incorrect email or password." in wrong_password[1]
    assert wrong_password[1] == unknown_email[1]
