"""The chart hands the admin app the public API's address, where its docs log in."""

from __future__ import annotations

from chart_render import render_profile

from tripline_admin.settings import AdminSettings


def test_the_prod_profile_points_the_admin_docs_at_the_public_apis_token_endpoint() -> None:
    rendered = render_profile("prod")
    admin = next(d for d in rendered.kind("Deployment") if d["metadata"]["name"].endswith("-admin"))
    container = admin["spec"]["template"]["spec"]["containers"][0]
    config_map_names = {ref["configMapRef"]["name"] for ref in container["envFrom"]}
    env = {
        key: value
        for config_map in rendered.kind("ConfigMap")
        if config_map["metadata"]["name"] in config_map_names
        for key, value in (config_map.get("data") or {}).items()
    }
    env |= {var["name"]: var.get("value") for var in container.get("env") or []}
    settings = AdminSettings(
        _env_file=None, environment="test", public_base_url=env["PUBLIC_BASE_URL"]
    )
    assert settings.auth_token_url == "https://api.tripline.example.com/v1/auth/token"
