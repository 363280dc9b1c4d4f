"""The admin docs' Authorize button in a real browser (Debian's Chromium, Playwright): the admin
app issues no tokens, so its docs log in at the public API's token endpoint (`PUBLIC_BASE_URL`),
another origin, which the API's CORS_ORIGINS allows (as `make dev` and the chart set it)."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

from tests.browser.test_console_browser import CHROMIUM, CHROMIUM_ARGS, HAVE_CHROMIUM
from tests.conftest import ROOT, ProcessRunner
from tripline_devstack import free_port

playwright = pytest.importorskip("playwright.async_api")


@pytest.mark.slow
async def test_the_admin_docs_log_an_operator_in_at_the_public_api(
    processes: ProcessRunner,
) -> None:
    if not HAVE_CHROMIUM:
        pytest.fail(f"no Chromium at {CHROMIUM} (.ci/run installs Debian's chromium package)")
    from scripts.seed import DEMO_PASSWORD

    seed = [sys.executable, str(ROOT / "scripts" / "seed.py")]
    await asyncio.to_thread(
        subprocess.run, seed, env=processes.env, check=True, capture_output=True
    )
    admin_port = free_port()
    admin_origin = f"http://127.0.0.1:{admin_port}"
    api = processes.start("api", "tripline-api", CORS_ORIGINS=admin_origin)
    admin = processes.start(
        "admin", "tripline-admin", PORT=str(admin_port), PUBLIC_BASE_URL=api.url
    )
    for process in (api, admin):
        await asyncio.to_thread(processes.wait_ready, process)

    async with playwright.async_playwright() as driver:
        browser = await driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page()
            problems: list[str] = []
            page.on("console", lambda m: m.type == "error" and problems.append(m.text))
            await page.goto(f"{admin_origin}/docs")
            await page.get_by_role("button", name="Authorize").first.click()
            dialog = page.locator(".dialog-ux")
            await page.locator("#oauth_username").fill("operator@tripline.dev")
            await page.locator("#oauth_password").fill(DEMO_PASSWORD)
            async with page.expect_response(f"{api.url}/v1/auth/token") as answer:
                await dialog.locator("button.authorize").first.click()
            assert (await answer.value).status == 200
            # Swagger UI says "Authorized" and offers "Logout" once it holds a token.
            await playwright.expect(dialog.get_by_text("Authorized", exact=True)).to_be_visible()
            await playwright.expect(dialog.locator("button", has_text="Logout")).to_be_visible()
        finally:
            await browser.close()
    assert problems == []
    assert any(
        '"path": "/v1/auth/token"' in line or "/v1/auth/token" in line for line in api.log_lines()
    )
