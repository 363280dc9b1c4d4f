"""Another site cannot use an operator's console: the admin app sends no CORS headers (so no
script elsewhere reads a console page or its CSRF token), and a console form post that a
browser marks as cross-site is refused even with a valid token and cookie."""

from __future__ import annotations

import httpx
import pytest
from admin_helpers import form_token
from fastapi import FastAPI

from tests.support.users import PASSWORD
from tripline_admin.main import create_admin_app
from tripline_admin.settings import AdminSettings
from tripline_common.data.models import Device

PUBLIC_WEB_APP = "https://app.example"
EVIL = "https://evil.example"


@pytest.fixture
def admin_app(make_settings) -> FastAPI:
    """The admin app configured as the prod profile once was: with the public web app's
    origin in CORS_ORIGINS (a value the API needs)."""
    settings = make_settings(AdminSettings, cors_origins=[PUBLIC_WEB_APP])
    return create_admin_app(settings)


@pytest.fixture
def device(device_with_key) -> Device:
    return device_with_key[0]


async def rotate(browser: httpx.AsyncClient, device: Device, csrf: str, **headers: str):
    return await browser.post(
        f"/console/devices/{device.id}/rotate", data={"csrf_token": csrf}, headers=headers
    )


async def stored_prefix(session_factory, device: Device) -> str:
    async with session_factory() as session:
        return (await session.get(Device, device.id)).api_key_prefix


@pytest.mark.parametrize("path", ["/console/devices", "/console/login", "/v1/devices"])
async def test_the_admin_app_answers_no_origin_with_cors_headers(
    browser, operator, sign_in, path: str
) -> None:
    await sign_in(browser, operator)
    preflight = await browser.options(
        path,
        headers={
            "Origin": PUBLIC_WEB_APP,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    credentialed = await browser.get(path, headers={"Origin": PUBLIC_WEB_APP})
    for response in (preflight, credentialed):
        assert "access-control-allow-origin" not in response.headers
        assert "access-control-allow-credentials" not in response.headers
    # The operator was signed in all along: the refusal is not for want of a session.
    assert (await browser.get("/console/devices")).status_code == 200


def test_admin_settings_drop_cors_origins(make_settings) -> None:
    settings = make_settings(AdminSettings, cors_origins=[PUBLIC_WEB_APP])
    assert settings.cors_origins == []


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": EVIL},
        {"Origin": PUBLIC_WEB_APP},
        {"Origin": "null"},
        {"Origin": "null", "Sec-Fetch-Site": "cross-site"},
        {"Origin": "http://testserver"},  # the console's host over plain HTTP: another origin
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
        {"Origin": "https://testserver", "Sec-Fetch-Site": "cross-site"},
    ],
)
async def test_a_cross_site_console_post_is_refused_despite_a_valid_token_and_cookie(
    browser, operator, sign_in, device, session_factory, headers: dict[str, str]
) -> None:
    csrf = (await sign_in(browser, operator)).csrf
    before = await stored_prefix(session_factory, device)
    refused = await rotate(browser, device, csrf, **headers)
    assert refused.status_code == 403
    assert "api-key" not in refused.text
    assert await stored_prefix(session_factory, device) == before


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://testserver", "Sec-Fetch-Site": "same-origin"},
        {"Sec-Fetch-Site": "none"},
        # What a browser sends for its own form under `Referrer-Policy: no-referrer`.
        {"Origin": "null", "Sec-Fetch-Site": "same-origin"},
        {},  # a client that sends neither header relies on the token alone
    ],
)
async def test_a_same_origin_console_post_still_works(
    browser, operator, sign_in, device, session_factory, headers: dict[str, str]
) -> None:
    csrf = (await sign_in(browser, operator)).csrf
    before = await stored_prefix(session_factory, device)
    rotated = await rotate(browser, device, csrf, **headers)
    assert rotated.status_code == 200, rotated.text
    assert await stored_prefix(session_factory, device) != before


async def test_a_cross_site_login_post_is_refused(browser, operator) -> None:
    page = await browser.get("/console/login")
    form = {"csrf_token": form_token(page.text), "email": operator.email, "password": PASSWORD}
    refused = await browser.post("/console/login", data=form, headers={"Origin": EVIL})
    assert refused.status_code == 403
    signed_in = await browser.post(
        "/console/login", data=form, headers={"Origin": "https://testserver"}
    )
    assert signed_in.status_code == 303
