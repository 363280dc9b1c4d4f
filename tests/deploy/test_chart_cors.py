"""CORS origins reach the API alone: never the shared ConfigMap, never the admin console."""

from __future__ import annotations

import helm_python
import pytest
from chart_render import render, render_profile


def test_shared_config_refuses_cors_origins() -> None:
    with pytest.raises(helm_python.HelmValuesError) as refused:
        render(
            {
                "secrets": {"existingSecret": "s"},
                "config": {"CORS_ORIGINS": "https://app.tripline.example.com"},
            }
        )
    assert "/config/CORS_ORIGINS" in str(refused.value), str(refused.value)


@pytest.mark.parametrize("profile", ["dev", "ci", "prod"])
def test_only_the_api_gets_cors_origins(profile: str) -> None:
    rendered = render_profile(profile)
    for config_map in rendered.kind("ConfigMap"):
        assert "CORS_ORIGINS" not in (config_map.get("data") or {})
    with_cors = {
        deployment["metadata"]["name"]
        for deployment in rendered.kind("Deployment")
        for container in deployment["spec"]["template"]["spec"]["containers"]
        if any(var["name"] == "CORS_ORIGINS" for var in container.get("env") or [])
    }
    assert with_cors <= {"tripline-api"}
    if profile in ("dev", "prod"):
        assert with_cors == {"tripline-api"}
