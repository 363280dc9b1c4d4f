"""Every rendered object validates strictly against Kubernetes' own OpenAPI schemas, for the
oldest and the newest Kubernetes the chart supports; the only kinds without a schema are the
Prometheus Operator and KEDA CRDs listed here on purpose, and their alert rules pass promtool."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from chart_render import (
    MONITORING_APIS,
    NEWEST_KUBERNETES,
    OLDEST_KUBERNETES,
    PROFILES,
    profile_values,
    render,
    render_profile,
)

# Custom resources the chart renders deliberately (only when the cluster serves them).
KNOWN_CRDS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PodMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
    ("keda.sh/v1alpha1", "ScaledObject"),
}
VERSIONS = [OLDEST_KUBERNETES, NEWEST_KUBERNETES]
RENDERED = [p for p in PROFILES if p != "default"]


def everything(profile: str):
    """The profile with every optional object on: monitoring CRDs present, preStop sleep, the
    worker scaled by KEDA (its HPA off)."""
    values = profile_values(profile)
    if profile != "dev-databases":
        values.setdefault("defaults", {}).setdefault("shutdown", {})["preStopSleepSeconds"] = 2
        values["metrics"] = {
            "serviceMonitor": {"enabled": True},
            "prometheusRule": {"enabled": True},
        }
        values["keda"] = {"enabled": True}
        worker = values.setdefault("components", {}).setdefault("worker", {})
        worker.setdefault("autoscaling", {})["enabled"] = False
    return render(
        values,
        api_versions=MONITORING_APIS,
        release="tripline-data" if profile == "dev-databases" else "tripline",
    )


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("profile", RENDERED)
def test_every_object_is_valid_for_the_supported_kubernetes_versions(
    profile: str, version: str
) -> None:
    failures = []
    documents = everything(profile).documents
    assert documents
    for doc in documents:
        where = f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            if (doc["apiVersion"], doc["kind"]) not in KNOWN_CRDS:
                failures.append(
                    f"{where}: no schema for {doc['apiVersion']} in Kubernetes {version}"
                )
        except kubernetes_validate.ValidationError as exc:
            failures.append(f"{where}: {'.'.join(map(str, exc.path))}: {exc.message}")
    assert not failures, "\n".join(failures)


def test_the_crds_are_well_formed_custom_resources() -> None:
    crds = [d for d in everything("prod").documents if (d["apiVersion"], d["kind"]) in KNOWN_CRDS]
    assert {d["kind"] for d in crds} == {kind for _, kind in KNOWN_CRDS}
    for doc in crds:
        assert doc["metadata"]["namespace"] == "tripline" and doc["spec"]
        endpoints = doc["spec"].get("endpoints") or doc["spec"].get("podMetricsEndpoints") or []
        for endpoint in endpoints:
            assert endpoint == {"port": "ops", "path": "/metrics", "interval": "30s"}


def test_alert_rules_pass_promtool(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool missing: .ci/run installs Debian's prometheus package"
    (rule,) = render_profile("prod").kind("PrometheusRule")
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    result = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
