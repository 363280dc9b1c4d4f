"""The console's defences: CSRF on every state-changing route, escaping of every value, strict
headers, cookie flags, and cacheable static files."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest
from admin_helpers import form_token
from fastapi.routing import iter_route_contexts
from sqlalchemy import func, select

from tripline_admin.console.app import CONSOLE_CSP
from tripline_admin.console.rendering import STATIC_DIR, TEMPLATES_DIR, static_url
from tripline_admin.console.security import cookie_name
from tripline_admin.settings import AdminSettings
from tripline_common.data import AuditActor, AuditOrigin, job_arq_id
from tripline_common.data.audit import record
from tripline_common.data.models import AuditLogEntry, AuthSession, Device, Job, JobStatus, User

XSS = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"


def console_posts(app) -> list[str]:
    """Every state-changing console route, from the app's route table."""
    return sorted(
        route.path
        for route in iter_route_contexts(app.routes)
        if route.path
        and route.path.startswith("/console/")
        and (route.methods or set()) - {"GET", "HEAD"}
    )


@pytest.fixture
async def targets(make_user, make_device, session_factory) -> dict[str, str]:
    """Real objects for every path parameter, so a request with the right token would act."""
    user = await make_user(email="target@example.com")
    device, _ = await make_device(user)
    async with session_factory() as session:
        job_id = uuid.uuid4()
        session.add(
            Job(
                id=job_id,
                kind="export_trips",
                status=JobStatus.FAILED,
                arq_job_id=job_arq_id("export_trips", job_id),
            )
        )
        await session.commit()
    return {
        "user_id": str(user.id),
        "session_id": str(uuid.uuid4()),
        "device_id": str(device.id),
        "job_id": str(job_id),
        "source": "job",
        "failure_id": str(job_id),
    }


async def state_of(session_factory) -> tuple:
    """A fingerprint of everything a console form can change."""
    async with session_factory() as session:
        return (
            await session.scalar(select(func.count()).select_from(AuditLogEntry)),
            tuple(await session.scalars(select(User.is_active).order_by(User.id))),
            tuple(await session.scalars(select(User.role).order_by(User.id))),
            tuple(await session.scalars(select(Device.api_key_hash).order_by(Device.id))),
            tuple(await session.scalars(select(Device.revoked_at).order_by(Device.id))),
            tuple(await session.scalars(select(Job.status).order_by(Job.id))),
            tuple(await session.scalars(select(AuthSession.revoked_at).order_by(AuthSession.id))),
        )


def test_every_state_changing_console_route_is_covered(admin_app) -> None:
    # The CSRF test below walks this same list; this pins it so a new form shows up here.
    assert console_posts(admin_app) == [
        "/console/devices",
        "/console/devices/{device_id}/revoke",
        "/console/devices/{device_id}/rotate",
        "/console/failures/{source}/{failure_id}/retry",
        "/console/jobs/{job_id}/cancel",
        "/console/login",
        "/console/logout",
        "/console/users/{user_id}/disable",
        "/console/users/{user_id}/enable",
        "/console/users/{user_id}/role",
        "/console/users/{user_id}/sessions/revoke-all",
        "/console/users/{user_id}/sessions/{session_id}/revoke",
    ]


@pytest.mark.parametrize("token", ["missing", "wrong", "another session's"])
async def test_a_post_without_the_right_csrf_token_is_a_403_and_changes_nothing(
    browser, admin_app, admin, make_user, sign_in, targets, session_factory, token
) -> None:
    other = await sign_in(browser, await make_user(role=admin.role))
    mine = await sign_in(browser, admin)  # The browser's cookie is now this session's.
    sent = {"missing": None, "wrong": "0" * 64, "another session's": other.csrf}[token]
    form = {"role": "operator", "owner_email": "target@example.com", "name": "x"}
    if sent is not None:
        form["csrf_token"] = sent
    before = await state_of(session_factory)

    for path in console_posts(admin_app):
        url = path.format(**targets)
        response = await browser.post(url, data=form)
        assert response.status_code == 403, (url, response.status_code)
        assert "form has expired" in response.text

    assert await state_of(session_factory) == before
    # The same forms with this session's token do act (so the check above meant something).
    accepted = await browser.post(
        f"/console/users/{targets['user_id']}/disable", data={**form, "csrf_token": mine.csrf}
    )
    assert accepted.status_code == 303
    assert await state_of(session_factory) != before


async def test_the_login_form_is_csrf_protected_too(browser, operator, session_factory) -> None:
    page = await browser.get("/console/login")
    token = form_token(page.text)
    browser.cookies.clear()  # A cross-site form post carries no nonce cookie of ours.

    response = await browser.post(
        "/console/login",
        data={"email": operator.email, "password": "correct horse battery", "csrf_token": token},
    )

    assert response.status_code == 403
    async with session_factory() as session:
        assert await session.scalar(select(func.count()).select_from(AuthSession)) == 0


async def test_every_value_is_escaped_a_script_in_a_name_shows_as_text(
    browser, admin, sign_in, make_user, session_factory
) -> None:
    evil = await make_user(email="evil@example.com", name=XSS)
    async with session_factory() as session:
        session.add(
            Device(owner_id=evil.id, name=XSS, api_key_prefix="tl_abc", api_key_hash="e" * 64)
        )
        await record(
            session,
            actor=AuditActor(None, XSS),
            action="user.disable",
            target_type="user",
            target_id=str(evil.id),
            details={XSS: XSS},
            origin=AuditOrigin(request_id=None, source_ip=None),
        )
        await session.commit()
    await sign_in(browser, admin)

    for path in (
        "/console/users?q=evil",
        f"/console/users/{evil.id}",
        "/console/devices",
        "/console/audit",
        f"/console/users?q={XSS}",
    ):
        response = await browser.get(path)
        assert response.status_code == 200, path
        assert XSS not in response.text, path
        assert ESCAPED in response.text, path


def test_templates_carry_no_inline_script_style_or_event_handler() -> None:
    # The CSP would block them anyway; this keeps the pages from depending on them.
    for template in Path(TEMPLATES_DIR).glob("*.html"):
        html = template.read_text()
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), template.name
        assert "<style" not in html and " style=" not in html, template.name
        assert not re.search(r"\son[a-z]+=", html), template.name
        assert "|safe" not in html and "Markup" not in html, template.name


async def test_console_pages_send_strict_security_headers(browser, operator, sign_in) -> None:
    anonymous = [await browser.get("/console/login"), await browser.get("/console/")]
    await sign_in(browser, operator)
    pages = [await browser.get("/console/"), await browser.get("/console/nope")]

    for response in anonymous + pages:
        headers = response.headers
        assert headers["content-security-policy"] == CONSOLE_CSP
        assert headers["x-frame-options"] == "DENY"
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "no-referrer"
    for response in (anonymous[0], *pages):
        assert response.headers["cache-control"] == "no-store"
    assert "'unsafe-inline'" not in CONSOLE_CSP and "'unsafe-eval'" not in CONSOLE_CSP
    assert "script-src 'self'" in CONSOLE_CSP and "frame-ancestors 'none'" in CONSOLE_CSP


async def test_the_json_api_keeps_its_own_strict_csp(client, operator_headers) -> None:
    response = await client.get("/v1/queues", headers=operator_headers)
    assert response.headers["content-security-policy"].startswith("default-src 'none'")


async def test_every_console_cookie_is_httponly_secure_and_samesite_strict(
    browser, admin_settings, operator
) -> None:
    page = await browser.get("/console/login")
    login = await browser.post(
        "/console/login",
        data={
            "email": operator.email,
            "password": "correct horse battery",
            "csrf_token": form_token(page.text),
        },
    )
    logout_form = await browser.get("/console/")
    logout = await browser.post(
        "/console/logout", data={"csrf_token": form_token(logout_form.text)}
    )

    headers = [
        *page.headers.get_list("set-cookie"),
        *login.headers.get_list("set-cookie"),
        *logout.headers.get_list("set-cookie"),
    ]
    names = {header.split("=", 1)[0] for header in headers}
    assert names == {cookie_name(admin_settings, p) for p in ("login", "session", "flash")}
    for header in headers:
        assert header.startswith("__Host-tripline_console_")
        flags = {part.strip().lower() for part in header.split(";")[1:]}
        assert {"httponly", "secure", "samesite=strict", "path=/"} <= flags, header


def test_secure_cookies_can_be_turned_off_for_local_http_but_not_in_production(
    make_settings,
) -> None:
    local = make_settings(AdminSettings, console_cookie_secure=False)
    assert cookie_name(local, "session") == "tripline_console_session"
    with pytest.raises(ValueError, match="CONSOLE_COOKIE_SECURE"):
        make_settings(
            AdminSettings, environment="prod", secret_key="x" * 40, console_cookie_secure=False
        )


async def test_static_files_are_served_with_cache_headers(browser) -> None:
    versioned = await browser.get(static_url("console.css"))
    bare = await browser.get("/console/static/console.js")

    assert versioned.status_code == bare.status_code == 200
    assert versioned.headers["content-type"].startswith("text/css")
    assert versioned.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert "etag" in versioned.headers
    assert bare.headers["cache-control"] == "public, max-age=300"
    assert bare.headers["content-type"].startswith("text/javascript")
    assert (await browser.get("/console/static/nope.css")).status_code == 404
    assert all(path.stat().st_size < 64_000 for path in STATIC_DIR.iterdir())


def test_the_admin_api_documents_itself_in_production_only_when_asked(make_settings) -> None:
    prod = {"environment": "prod", "secret_key": "x" * 40}
    assert make_settings(AdminSettings).docs_enabled is True
    assert make_settings(AdminSettings, **prod).docs_enabled is False
    assert make_settings(AdminSettings, **prod, docs_enabled=True).docs_enabled is True


def test_docs_policy_follows_the_environment_variables(monkeypatch) -> None:
    monkeypatch.setenv("ENVIRONMENT", "staging")
    monkeypatch.setenv("SECRET_KEY", "y" * 40)
    assert AdminSettings(_env_file=None).docs_enabled is False
    monkeypatch.setenv("DOCS_ENABLED", "true")
    assert AdminSettings(_env_file=None).docs_enabled is True
