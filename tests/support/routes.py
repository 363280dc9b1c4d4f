"""The routes the app factory gives every app, open to anyone: probes, metrics and the docs."""

from __future__ import annotations

EVERY_APP_PUBLIC = {
    ("GET", "/docs"),
    ("GET", "/docs/oauth2-redirect"),
    ("GET", "/redoc"),
    ("GET", "/openapi.json"),
    ("GET", "/livez"),
    ("GET", "/readyz"),
    ("GET", "/startupz"),
    ("GET", "/metrics"),
}
