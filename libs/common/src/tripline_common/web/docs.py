"""API docs served offline: Swagger UI and ReDoc from self-hosted assets, with an exact CSP.

Clusters are often offline, so nothing loads from a CDN: the assets ship inside the
`fastapi-offline` wheel and are served by the app itself with long cache headers. The only
inline scripts, Swagger UI's start-up snippet and its OAuth2 redirect page, are allowed by their
SHA-256 hashes, so the pages' Content-Security-Policy needs no `'unsafe-inline'` for scripts.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
from importlib.resources import files
from pathlib import Path
from urllib.parse import urlsplit

from fastapi import FastAPI
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from starlette.responses import Response
from starlette.staticfiles import PathLike
from starlette.types import Scope

DOCS_URL = "/docs"
REDOC_URL = "/redoc"
OPENAPI_URL = "/openapi.json"
OAUTH2_REDIRECT_URL = "/docs/oauth2-redirect"
STATIC_URL = "/docs/static"
STATIC_DIR = Path(str(files("fastapi_offline") / "static"))

_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


class CachedStaticFiles(StaticFiles):
    """Static files with a cache lifetime: the assets change only with a new release."""

    def file_response(
        self, full_path: PathLike, stat_result: os.stat_result, scope: Scope, status_code: int = 200
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers.setdefault("Cache-Control", "public, max-age=86400")
        return response


def _script_hashes(*pages: HTMLResponse) -> list[str]:
    hashes = set()
    for page in pages:
        for script in _INLINE_SCRIPT.findall(bytes(page.body).decode()):
            digest = hashlib.sha256(script.encode()).digest()
            hashes.add(f"'sha256-{base64.b64encode(digest).decode()}'")
    return sorted(hashes)


def _origin(url: str) -> str:
    """The origin (`scheme://host[:port]`) of an absolute URL; `'self'` for a relative one."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else "'self'"


def install_docs(app: FastAPI, *, token_url: str | None = None) -> dict[str, str]:
    """Serve /docs, /redoc and their assets from the app; return the CSP for those paths.

    A `token_url` on another origin (the admin docs log in at the public API) is added to the
    pages' `connect-src`, so Swagger UI's Authorize button may post to it."""
    app.mount(STATIC_URL, CachedStaticFiles(directory=STATIC_DIR), name="docs-static")

    def swagger_page() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=OPENAPI_URL,
            title=f"{app.title} - Swagger UI",
            oauth2_redirect_url=OAUTH2_REDIRECT_URL,
            swagger_js_url=f"{STATIC_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{STATIC_URL}/swagger-ui.css",
            swagger_favicon_url=f"{STATIC_URL}/favicon.png",
        )

    def redoc_page() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=OPENAPI_URL,
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{STATIC_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{STATIC_URL}/favicon.png",
            with_google_fonts=False,
        )

    @app.get(DOCS_URL, include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return swagger_page()

    @app.get(OAUTH2_REDIRECT_URL, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get(REDOC_URL, include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return redoc_page()

    scripts = " ".join(
        ["'self'", *_script_hashes(swagger_page(), get_swagger_ui_oauth2_redirect_html())]
    )
    login_origin = _origin(token_url) if token_url else "'self'"
    connect = "'self'" if login_origin == "'self'" else f"'self' {login_origin}"
    # Swagger UI and ReDoc set inline styles and ReDoc runs a blob: worker; nothing else is needed.
    policy = (
        f"default-src 'none'; script-src {scripts}; style-src 'self' 'unsafe-inline'; "
        f"img-src 'self' data:; font-src 'self'; connect-src {connect}; worker-src 'self' blob:; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    )
    return {DOCS_URL: policy, REDOC_URL: policy}
