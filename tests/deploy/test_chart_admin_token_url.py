"""The chart hands the admin app the public API's address, where its docs log in, and (where
the docs are served) the API allows the admin's origin to call its token endpoint."""

from __future__ import annotations

import re

from chart_render import render_profile

from tests.conftest import ROOT
from tripline_admin.settings import AdminSettings


def _container_env(rendered, component: str) -> dict[str, str]:
    """The environment the chart gives `component`'s container (its ConfigMaps, then `env`)."""
    deployment = next(
        d for d in rendered.kind("Deployment") if d["metadata"]["name"].endswith(f"-{component}")
    )
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    config_map_names = {ref["configMapRef"]["name"] for ref in container["envFrom"]}
    env = {
        key: value
        for config_map in rendered.kind("ConfigMap")
        if config_map["metadata"]["name"] in config_map_names
        for key, value in (config_map.get("data") or {}).items()
    }
    return env | {var["name"]: var.get("value") for var in container.get("env") or []}


def test_the_prod_profile_points_the_admin_docs_at_the_public_apis_token_endpoint() -> None:
    env = _container_env(render_profile("prod"), "admin")
    settings = AdminSettings(
        _env_file=None, environment="test", public_base_url=env["PUBLIC_BASE_URL"]
    )
    assert settings.auth_token_url == "https://api.tripline.example.com/v1/auth/token"


def test_under_tilt_the_admin_docs_log_in_at_the_forwarded_api_which_allows_their_origin() -> None:
    # Tilt forwards each service to localhost at the port of tilt/tripline.star's SERVICES.
    star = (ROOT / "tilt" / "tripline.star").read_text()
    port = {name: int(p) for name, p in re.findall(r'"(\w+)": \{"port": (\d+)', star)}
    rendered = render_profile("dev")
    admin, api = _container_env(rendered, "admin"), _container_env(rendered, "api")

    assert admin["DOCS_ENABLED"] == "true"
    assert admin["PUBLIC_BASE_URL"] == f"http://localhost:{port['api']}"
    assert f"http://localhost:{port['admin']}" in api["CORS_ORIGINS"].split(",")
