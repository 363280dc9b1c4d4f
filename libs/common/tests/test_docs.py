"""API docs are served offline, from the app's own assets, under a CSP that allows exactly them."""

from __future__ import annotations

import base64
import hashlib
import re


def inline_script_hashes(html: str) -> set[str]:
    return {
        "'sha256-" + base64.b64encode(hashlib.sha256(script.encode()).digest()).decode() + "'"
        for script in re.findall(r"<script>(.*?)</script>", html, re.DOTALL)
    }


async def test_swagger_ui_loads_only_self_hosted_assets(build_app, app_client) -> None:
    async with app_client(build_app()) as client:
        page = await client.get("/docs")
        assert page.status_code == 200
        sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
        assert sources, "expected script and stylesheet references"
        assert all(source.startswith("/docs/static/") for source in sources), sources
        for source in sources:
            asset = await client.get(source)
            assert asset.status_code == 200, source
            assert asset.headers["cache-control"] == "public, max-age=86400"
    assert "cdn" not in page.text.lower()


async def test_docs_csp_allows_the_inline_script_by_hash_and_nothing_inline_else(
    build_app, app_client
) -> None:
    async with app_client(build_app()) as client:
        page = await client.get("/docs")
        redirect = await client.get("/docs/oauth2-redirect")
        api = await client.get("/livez")
    csp = page.headers["content-security-policy"]
    script_src = re.search(r"script-src ([^;]+)", csp).group(1).split()
    assert "'unsafe-inline'" not in script_src and "'unsafe-eval'" not in script_src
    assert inline_script_hashes(page.text) <= set(script_src)
    assert inline_script_hashes(redirect.text) <= set(script_src)
    assert "http" not in csp  # No third-party origin at all.
    # The JSON API keeps its script-free policy.
    assert api.headers["content-security-policy"].startswith("default-src 'none'")


async def test_redoc_is_self_hosted_too(build_app, app_client) -> None:
    async with app_client(build_app()) as client:
        page = await client.get("/redoc")
        js = await client.get("/docs/static/redoc.standalone.js")
    assert page.status_code == 200
    assert 'src="/docs/static/redoc.standalone.js"' in page.text
    assert "fonts.googleapis" not in page.text
    assert js.status_code == 200
    assert "javascript" in js.headers["content-type"]


async def test_docs_can_be_switched_off(build_app, app_client) -> None:
    async with app_client(build_app(docs_enabled=False)) as client:
        for path in ("/docs", "/redoc", "/openapi.json", "/docs/static/swagger-ui.css"):
            assert (await client.get(path)).status_code == 404, path
