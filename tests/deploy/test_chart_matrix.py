"""The render matrix: every combination of the chart's feature switches (Ingress or HTTPRoute,
HPA or KEDA for the worker, an existing or a chart-made Secret, no monitors or ServiceMonitors or
PodMonitors, a Certificate or not, VPAs or not) renders, each switch renders exactly its objects,
and every reference between rendered objects resolves (targets, backends, ports, selectors,
Secrets); no Service an Ingress or HTTPRoute reaches exposes the ops port."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from chart_render import MONITORING_APIS, Render, deep_merge, render_profile

HOST = "api.example.com"
COMPONENTS = {"api", "admin", "ingest", "worker"}
WITH_SERVICE = COMPONENTS - {"worker"}

SWITCHES: dict[str, dict[str, dict[str, Any]]] = {
    "exposure": {
        "ingress": {
            "components": {
                "api": {
                    "ingress": {"enabled": True, "className": "nginx", "hosts": [{"host": HOST}]}
                }
            }
        },
        "route": {
            "components": {
                "api": {
                    "route": {
                        "enabled": True,
                        "parentRefs": [{"name": "public", "namespace": "gateway"}],
                        "hostnames": [HOST],
                    }
                }
            }
        },
    },
    "scaling": {
        "hpa": {"components": {"worker": {"autoscaling": {"enabled": True}}}},
        "keda": {
            "keda": {"enabled": True},
            "components": {"worker": {"autoscaling": {"enabled": False}}},
        },
    },
    "secret": {
        "existing": {"secrets": {"create": False, "existingSecret": "my-credentials"}},
        "chart-made": {},
    },
    "monitors": {
        "none": {},
        "service": {"metrics": {"serviceMonitor": {"enabled": True}}},
        "pod": {"metrics": {"podMonitor": {"enabled": True}}},
    },
    "certificate": {
        "off": {},
        "on": {
            "components": {"api": {"certificate": {"enabled": True, "issuerRef": {"name": "le"}}}}
        },
    },
    "vpa": {"off": {}, "on": {"defaults": {"vpa": {"enabled": True}}}},
}
CASES = [
    dict(zip(SWITCHES, choice, strict=True)) for choice in itertools.product(*SWITCHES.values())
]
# The ci profile (no proxy trusted) with the ingress controller's or Gateway's proxies listed.
BASE = {"config": {"FORWARDED_ALLOW_IPS": "10.30.255.0/28"}}


def render_case(case: dict[str, str]) -> Render:
    values: dict[str, Any] = BASE
    for switch, choice in case.items():
        values = deep_merge(values, SWITCHES[switch][choice])
    return render_profile("ci", values, api_versions=MONITORING_APIS)


def names(r: Render, kind: str) -> set[str]:
    return {doc["metadata"]["name"] for doc in r.kind(kind)}


def _secret_refs(pod_specs: list[dict[str, Any]]) -> set[str]:
    return {
        env["valueFrom"]["secretKeyRef"]["name"]
        for spec in pod_specs
        for container in spec["containers"] + spec.get("initContainers", [])
        for env in container.get("env", [])
        if "secretKeyRef" in env.get("valueFrom", {})
    }


@pytest.mark.parametrize("case", CASES, ids=lambda case: "-".join(case.values()))
def test_each_switch_renders_its_objects_and_every_reference_resolves(case) -> None:
    r = render_case(case)
    deployments = {d["metadata"]["name"]: d for d in r.kind("Deployment")}
    services = {s["metadata"]["name"]: s for s in r.kind("Service")}
    assert set(deployments) == {f"tripline-{c}" for c in COMPONENTS}
    assert all(doc["metadata"]["namespace"] == "tripline" for doc in r.documents)

    # Each component with a Service has two: the client one with `http` alone, and `-ops` with
    # `ops` alone (probes, /metrics), so nothing an Ingress or HTTPRoute reaches exposes `ops`.
    assert set(services) == {
        f"tripline-{c}{suffix}" for c in WITH_SERVICE for suffix in ("", "-ops")
    }
    for name, service in services.items():
        port_names = [p["name"] for p in service["spec"]["ports"]]
        assert port_names == (["ops"] if name.endswith("-ops") else ["http"]), name
    routed = {
        path["backend"]["service"]["name"]
        for ingress in r.kind("Ingress")
        for rule in ingress["spec"]["rules"]
        for path in rule["http"]["paths"]
    } | {
        ref["name"]
        for route in r.kind("HTTPRoute")
        for rule in route["spec"]["rules"]
        for ref in rule["backendRefs"]
    }
    assert routed == {"tripline-api"}
    assert all("ops" not in {p["name"] for p in services[name]["spec"]["ports"]} for name in routed)

    # Ingress or HTTPRoute, to the api's Service `http` port, never both.
    exposed = r.kind("Ingress") if case["exposure"] == "ingress" else r.kind("HTTPRoute")
    assert names(r, "Ingress") | names(r, "HTTPRoute") == {"tripline-api"}
    [front] = exposed
    api_service = services["tripline-api"]
    http = next(p for p in api_service["spec"]["ports"] if p["name"] == "http")
    if case["exposure"] == "ingress":
        [rule] = front["spec"]["rules"]
        assert rule["host"] == HOST
        backend = rule["http"]["paths"][0]["backend"]["service"]
        assert backend == {"name": "tripline-api", "port": {"name": "http"}}
    else:
        assert front["spec"]["hostnames"] == [HOST]
        assert front["spec"]["rules"][0]["backendRefs"] == [
            {"name": "tripline-api", "port": http["port"]}
        ]

    # HPA or KEDA for the worker; either way the Deployment leaves its count to the scaler.
    hpas = {h["metadata"]["name"]: h for h in r.kind("HorizontalPodAutoscaler")}
    scaled = r.kind("ScaledObject")
    if case["scaling"] == "hpa":
        assert set(hpas) == {"tripline-worker"} and scaled == []
        target = hpas["tripline-worker"]["spec"]["scaleTargetRef"]
    else:
        assert hpas == {} and len(scaled) == 1
        target = scaled[0]["spec"]["scaleTargetRef"]
    assert target == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "tripline-worker"}
    assert "replicas" not in deployments["tripline-worker"]["spec"]
    assert deployments["tripline-api"]["spec"]["replicas"] == 1

    # Credentials: the apps' secretKeyRefs name the Secret in use; the chart makes one only if
    # asked, and then a hook-scoped copy for the migrations hook, which runs before it exists.
    secret = "my-credentials" if case["secret"] == "existing" else "tripline-credentials"
    hook_secret = set() if case["secret"] == "existing" else {"tripline-migrations"}
    app_refs = _secret_refs([d["spec"]["template"]["spec"] for d in deployments.values()])
    hook_refs = _secret_refs([j["spec"]["template"]["spec"] for j in r.kind("Job")])
    assert app_refs == {secret}
    assert hook_refs == (hook_secret or {secret})
    assert names(r, "Secret") == (set() if case["secret"] == "existing" else {secret} | hook_secret)

    # Monitors: none, a ServiceMonitor per Service (PodMonitor for the worker), or PodMonitors.
    expected_service_monitors = {
        "none": set(),
        "service": {f"tripline-{c}" for c in WITH_SERVICE},
        "pod": set(),
    }[case["monitors"]]
    expected_pod_monitors = {
        "none": set(),
        "service": {"tripline-worker"},
        "pod": {f"tripline-{c}" for c in COMPONENTS},
    }[case["monitors"]]
    assert names(r, "ServiceMonitor") == expected_service_monitors
    assert names(r, "PodMonitor") == expected_pod_monitors
    for monitor in r.kind("ServiceMonitor"):
        # Exactly the component's ops Service, which has the scraped port.
        selected = [
            s
            for s in services.values()
            if _selects(monitor["spec"]["selector"], s["metadata"]["labels"])
        ]
        assert [s["metadata"]["name"] for s in selected] == [f"{monitor['metadata']['name']}-ops"]
        assert {e["port"] for e in monitor["spec"]["endpoints"]} <= {
            p["name"] for p in selected[0]["spec"]["ports"]
        }
    for monitor in r.kind("PodMonitor"):
        pod = deployments[monitor["metadata"]["name"]]["spec"]["template"]
        assert _selects(monitor["spec"]["selector"], pod["metadata"]["labels"])
        container_ports = {p["name"] for c in pod["spec"]["containers"] for p in c["ports"]}
        assert {e["port"] for e in monitor["spec"]["podMetricsEndpoints"]} <= container_ports

    # Certificate: the exposed host, in the Secret named after the component.
    if case["certificate"] == "on":
        [certificate] = r.kind("Certificate")
        assert certificate["spec"]["dnsNames"] == [HOST]
        assert certificate["spec"]["secretName"] == "tripline-api-tls"
        assert certificate["spec"]["issuerRef"]["name"] == "le"
    else:
        assert r.kind("Certificate") == []

    # VPAs: one per Deployment, recommendation only, for the Deployment's own container.
    if case["vpa"] == "on":
        vpas = {v["metadata"]["name"]: v["spec"] for v in r.kind("VerticalPodAutoscaler")}
        assert set(vpas) == set(deployments)
        for name, spec in vpas.items():
            assert spec["updatePolicy"] == {"updateMode": "Off"}
            assert spec["targetRef"]["name"] == name
            [policy] = spec["resourcePolicy"]["containerPolicies"]
            [container] = deployments[name]["spec"]["template"]["spec"]["containers"]
            assert policy["containerName"] == container["name"]
    else:
        assert r.kind("VerticalPodAutoscaler") == []

    # Every selector of a Service and a PDB matches exactly one Deployment's pods.
    for selecting in r.kind("Service") + r.kind("PodDisruptionBudget"):
        selector = selecting["spec"]["selector"]
        selector = selector.get("matchLabels", selector)
        matches = [
            n
            for n, d in deployments.items()
            if _selects({"matchLabels": selector}, d["spec"]["template"]["metadata"]["labels"])
        ]
        assert matches == [selecting["metadata"]["name"].removesuffix("-ops")]


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    assert set(selector) == {"matchLabels"}, selector  # The chart uses matchLabels only.
    return all(labels.get(k) == v for k, v in selector["matchLabels"].items())


def test_the_matrix_covers_every_choice_of_every_switch() -> None:
    assert len(CASES) == 2 * 2 * 2 * 3 * 2 * 2
    for switch, choices in SWITCHES.items():
        assert {case[switch] for case in CASES} == set(choices)
