"""Configuration per component: each component's ConfigMap and environment hold only the
settings its Settings class reads (files/component-settings.yaml, generated from the classes),
so the admin app never receives the public API's CORS origins and only the worker gets SMTP."""

from __future__ import annotations

from typing import Any

import chart_settings
import helm_python
import pytest
from chart_render import MONITORING_APIS, Render, render, render_profile

APP_PROFILES = ["dev", "ci", "prod"]


def container_env(r: Render, component: str) -> dict[str, Any]:
    """Every variable the chart gives `component`'s container: its ConfigMaps, then `env`."""
    deployment = r.get("Deployment", f"tripline-{component}")
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    env: dict[str, Any] = {}
    for source in container.get("envFrom", []):
        env |= r.get("ConfigMap", source["configMapRef"]["name"]).get("data") or {}
    return env | {var["name"]: var.get("value", var.get("valueFrom")) for var in container["env"]}


def test_the_chart_list_of_settings_is_generated_from_the_settings_classes() -> None:
    committed = chart_settings.OUTPUT.read_text()
    assert committed == chart_settings.rendered(), "stale: run `make charts-docs`"


def test_a_setting_left_out_of_a_component_is_one_its_class_discards(monkeypatch) -> None:
    monkeypatch.setenv("CORS_ORIGINS", "https://app.example.com")
    for component, discarded in chart_settings.DISCARDED.items():
        settings = chart_settings.SETTINGS[component](_env_file=None, environment="test")
        for name in discarded:
            assert name in chart_settings.env_names(chart_settings.SETTINGS[component])
            assert not getattr(settings, name.lower()), (component, name)


@pytest.mark.parametrize("profile", APP_PROFILES)
def test_each_component_gets_only_settings_its_settings_class_declares(profile: str) -> None:
    r = render_profile(profile, api_versions=MONITORING_APIS)
    envs = {c: container_env(r, c) for c in chart_settings.SETTINGS}
    for component, env in envs.items():
        declared = set(chart_settings.env_names(chart_settings.SETTINGS[component]))
        foreign = {n for n in env if n not in declared and not n.startswith("OTEL_")}
        assert not foreign, (component, foreign)
    assert "CORS_ORIGINS" not in envs["admin"]
    if profile != "ci":
        assert "CORS_ORIGINS" in envs["api"]
    if profile == "prod":
        smtp = {c for c, env in envs.items() if any(n.startswith("SMTP_") for n in env)}
        assert smtp == {"worker"}
        assert {c for c, env in envs.items() if "PUBLIC_BASE_URL" in env} == {"admin", "worker"}
        assert all("OTEL_EXPORTER_OTLP_ENDPOINT" in env for env in envs.values())


@pytest.mark.parametrize("profile", APP_PROFILES)
def test_every_component_has_a_config_map_of_its_own_and_none_is_shared(profile: str) -> None:
    r = render_profile(profile)
    config_maps = {m["metadata"]["name"] for m in r.kind("ConfigMap")} - {"tripline-dashboard"}
    used = {}
    for deployment in r.kind("Deployment"):
        [container] = deployment["spec"]["template"]["spec"]["containers"]
        used[deployment["metadata"]["name"]] = [
            s["configMapRef"]["name"] for s in container["envFrom"]
        ]
    assert used == {name: [f"{name}-config"] for name in used}
    assert {n for names in used.values() for n in names} <= config_maps


def test_a_change_rolls_only_the_components_that_read_the_setting() -> None:
    def checksums(smtp_host: str) -> dict[str, str]:
        r = render_profile("prod", {"config": {"SMTP_HOST": smtp_host}})
        return {
            d["metadata"]["name"]: d["spec"]["template"]["metadata"]["annotations"][
                "checksum/config"
            ]
            for d in r.kind("Deployment")
        }

    before, after = checksums("smtp.example.com"), checksums("smtp2.example.com")
    assert {name for name in before if before[name] != after[name]} == {"tripline-worker"}


def test_a_setting_no_component_reads_is_refused() -> None:
    with pytest.raises(helm_python.HelmError) as refused:
        render({"secrets": {"existingSecret": "s"}, "config": {"SMTP_HOTS": "typo"}})
    assert "config.SMTP_HOTS is read by no component" in str(refused.value)


def test_a_component_env_entry_it_does_not_read_is_refused() -> None:
    values = {
        "secrets": {"existingSecret": "s"},
        "components": {"admin": {"env": {"CORS_ORIGINS": "https://app.example.com"}}},
    }
    with pytest.raises(helm_python.HelmError) as refused:
        render(values)
    assert "components.admin.env.CORS_ORIGINS: the admin component does not read" in str(
        refused.value
    )
