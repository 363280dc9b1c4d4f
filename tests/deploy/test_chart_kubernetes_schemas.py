"""Every rendered object validates strictly against Kubernetes' own OpenAPI schemas, for the
oldest and the newest Kubernetes the chart supports; the custom resources listed here on purpose
(KEDA, Gateway API, cert-manager, Prometheus Operator, VPA) validate against the schemas their
projects publish, as packaged on npm (crd-schemas/package.json, pinned); the alert rules pass
promtool."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from chart_render import (
    MONITORING_APIS,
    NEWEST_KUBERNETES,
    OLDEST_KUBERNETES,
    PROFILES,
    deep_merge,
    profile_values,
    render,
    render_profile,
)

# Custom resources the chart renders deliberately (the monitors only when the cluster serves
# them; the others when their values turn them on), each with a published schema on npm.
KNOWN_CRDS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PodMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
    ("keda.sh/v1alpha1", "ScaledObject"),
    ("gateway.networking.k8s.io/v1", "HTTPRoute"),
    ("cert-manager.io/v1", "Certificate"),
    ("autoscaling.k8s.io/v1", "VerticalPodAutoscaler"),
}
VERSIONS = [OLDEST_KUBERNETES, NEWEST_KUBERNETES]
RENDERED = [p for p in PROFILES if p != "default"]


def everything(profile: str, *overrides: dict[str, Any]):
    """The profile with every optional object on: monitoring CRDs present, preStop sleep, the
    worker scaled by KEDA (its HPA off), the api behind an HTTPRoute with a Certificate, a VPA
    for every component."""
    values = profile_values(profile)
    if profile != "dev-databases":
        values.setdefault("defaults", {}).setdefault("shutdown", {})["preStopSleepSeconds"] = 2
        values["defaults"]["vpa"] = {"enabled": True, "minAllowed": {"cpu": "50m"}}
        values["metrics"] = {
            "serviceMonitor": {"enabled": True},
            "prometheusRule": {"enabled": True},
        }
        values["keda"] = {"enabled": True}
        values.setdefault("config", {})["FORWARDED_ALLOW_IPS"] = "10.30.255.0/28"
        components = values.setdefault("components", {})
        components.setdefault("worker", {}).setdefault("autoscaling", {})["enabled"] = False
        components.setdefault("api", {}).update(
            ingress={"enabled": False},
            route={
                "enabled": True,
                "parentRefs": [{"name": "public", "namespace": "gateway", "sectionName": "https"}],
                "hostnames": ["api.tripline.example.com"],
            },
            certificate={"enabled": True, "issuerRef": {"name": "letsencrypt"}},
        )
        for override in overrides:
            values = deep_merge(values, override)
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


APP_PROFILES = [p for p in RENDERED if p != "dev-databases"]
POD_MONITORS = {"metrics": {"serviceMonitor": {"enabled": False}, "podMonitor": {"enabled": True}}}


def published_schema_errors(validator: list[str], documents: list[dict]) -> list[str | None]:
    """Per document: None when it is valid under its project's published schema, else why not."""
    result = subprocess.run(
        validator, input=json.dumps(documents), capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize("monitors", ["service-monitors", "pod-monitors"])
@pytest.mark.parametrize("profile", APP_PROFILES)
def test_every_custom_resource_is_valid_under_its_published_schema(
    crd_validator, profile: str, monitors: str
) -> None:
    overrides = [POD_MONITORS] if monitors == "pod-monitors" else []
    documents = everything(profile, *overrides).documents
    crds = [d for d in documents if (d["apiVersion"], d["kind"]) in KNOWN_CRDS]
    expected = {kind for _, kind in KNOWN_CRDS}
    if monitors == "pod-monitors":
        expected.remove("ServiceMonitor")
    assert {d["kind"] for d in crds} == expected
    errors = published_schema_errors(crd_validator, crds)
    failures = [
        f"{d['kind']}/{d['metadata']['name']}: {error}"
        for d, error in zip(crds, errors, strict=True)
        if error is not None
    ]
    assert not failures, "\n".join(failures)


BREAKAGES = {
    "ScaledObject": lambda spec: spec.update(minReplicaCount="one"),
    "HTTPRoute": lambda spec: spec.update(hostnames=["Not_A_Host"]),
    "Certificate": lambda spec: spec.pop("issuerRef"),
    "ServiceMonitor": lambda spec: spec.pop("selector"),
    "PodMonitor": lambda spec: spec["podMetricsEndpoints"][0].update(interval="soon"),
    "PrometheusRule": lambda spec: spec["groups"][0].pop("name"),
    "VerticalPodAutoscaler": lambda spec: spec["updatePolicy"].update(updateMode="Sometimes"),
}


def test_a_custom_resource_that_breaks_its_published_schema_is_refused(crd_validator) -> None:
    documents = everything("prod").documents + everything("prod", POD_MONITORS).kind("PodMonitor")
    broken = []
    for kind, breakage in BREAKAGES.items():
        doc = copy.deepcopy(next(d for d in documents if d["kind"] == kind))
        breakage(doc["spec"])
        broken.append(doc)
    unknown = {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledThing", "metadata": {}, "spec": {}}
    errors = published_schema_errors(crd_validator, [*broken, unknown])
    refused = {doc["kind"]: error for doc, error in zip([*broken, unknown], errors, strict=True)}
    assert all(refused.values()), refused
    assert "updateMode" in refused["VerticalPodAutoscaler"]
    assert "hostnames" in refused["HTTPRoute"]
    assert "no schema" in refused["ScaledThing"]
