"""What platform teams expect of a chart: a Gateway API HTTPRoute or an Ingress (never both for
one component, refused by values.schema.json), a cert-manager Certificate, spread over zones and
nodes by default, a priority class, a VPA that only recommends, and PodMonitor or ServiceMonitor
scraping."""

from __future__ import annotations

import helm_python
import pytest
from chart_render import GOLDEN_PROFILES, MONITORING_APIS, render_profile

GATEWAY = [{"name": "public", "namespace": "gateway-system", "sectionName": "https"}]
# prod turns the Ingress on for api, admin and ingest: a route replaces it for the api.
API_ROUTE = {
    "components": {
        "api": {
            "ingress": {"enabled": False},
            "route": {"enabled": True, "parentRefs": GATEWAY, "hostnames": ["api.example.com"]},
        }
    }
}


@pytest.mark.parametrize(
    ("values", "path"),
    [
        # Both on in one component.
        (
            {"components": {"api": {"route": {"enabled": True, "parentRefs": GATEWAY}}}},
            "/components/api/ingress/enabled",
        ),
        # The Ingress on through `defaults`, the route on in the component.
        (
            {
                "defaults": {"ingress": {"enabled": True}},
                "components": {"worker": {"route": {"enabled": True, "parentRefs": GATEWAY}}},
            },
            "'/components/worker': missing property 'ingress'",
        ),
        # The route on through `defaults`, the Ingress on in the component.
        (
            {"defaults": {"route": {"enabled": True, "parentRefs": GATEWAY}}},
            "'/components/api': missing property 'route'",
        ),
        # Both on in `defaults`.
        (
            {"defaults": {"ingress": {"enabled": True}, "route": {"enabled": True}}},
            "/defaults/ingress/enabled",
        ),
    ],
    ids=["component", "ingress-by-default", "route-by-default", "defaults"],
)
def test_the_schema_refuses_an_ingress_and_a_route_for_one_component(values, path) -> None:
    with pytest.raises(helm_python.HelmValuesError) as refused:
        render_profile("prod", values)
    assert path in str(refused.value), str(refused.value)


def test_a_route_attaches_to_the_gateway_and_reaches_only_the_http_port() -> None:
    r = render_profile("prod", API_ROUTE)
    route = r.get("HTTPRoute", "tripline-api")
    assert route["spec"]["parentRefs"] == GATEWAY
    assert route["spec"]["hostnames"] == ["api.example.com"]
    [rule] = route["spec"]["rules"]
    assert rule["matches"] == [{"path": {"type": "PathPrefix", "value": "/"}}]
    service = r.get("Service", "tripline-api")
    http = next(p for p in service["spec"]["ports"] if p["name"] == "http")
    assert rule["backendRefs"] == [{"name": "tripline-api", "port": http["port"]}]
    # The api has no Ingress any more; the other components keep theirs.
    assert {i["metadata"]["name"] for i in r.kind("Ingress")} == {
        "tripline-admin",
        "tripline-ingest",
    }
    assert "https://api.example.com/" in r.notes


@pytest.mark.parametrize(
    ("profile", "values", "message"),
    [
        (
            "prod",
            {"components": {"api": {"ingress": {"enabled": False}, "route": {"enabled": True}}}},
            "components.api.route needs parentRefs",
        ),
        (
            "prod",
            {"components": {"worker": {"route": {"enabled": True, "parentRefs": GATEWAY}}}},
            "components.worker.route needs components.worker.service.enabled",
        ),
        # ci trusts no proxy (FORWARDED_ALLOW_IPS empty): a Gateway's proxy would be every client.
        (
            "ci",
            {"components": {"api": {"route": {"enabled": True, "parentRefs": GATEWAY}}}},
            "components.api.route is enabled but config.FORWARDED_ALLOW_IPS is empty",
        ),
        (
            "prod",
            {"components": {"api": {"certificate": {"enabled": True}}}},
            "components.api.certificate needs issuerRef.name",
        ),
        (
            "prod",
            {
                "components": {
                    "worker": {"certificate": {"enabled": True, "issuerRef": {"name": "x"}}}
                }
            },
            "components.worker.certificate has no name to certify",
        ),
    ],
)
def test_incomplete_routes_and_certificates_fail_the_render_with_a_reason(
    profile, values, message
) -> None:
    with pytest.raises(helm_python.HelmError) as refused:
        render_profile(profile, values)
    assert message in str(refused.value), str(refused.value)


def test_a_certificate_names_the_ingress_hosts_or_the_route_hostnames() -> None:
    issuer = {"name": "letsencrypt"}
    values = {
        "components": {
            "api": {
                **API_ROUTE["components"]["api"],
                "certificate": {"enabled": True, "issuerRef": issuer},
            },
            "admin": {
                "certificate": {"enabled": True, "issuerRef": issuer, "secretName": "admin-cert"}
            },
            "ingest": {
                "certificate": {
                    "enabled": True,
                    "issuerRef": {"name": "internal", "kind": "Issuer"},
                    "dnsNames": ["ingest.internal.example.com"],
                }
            },
        }
    }
    r = render_profile("prod", values)
    certificates = {c["metadata"]["name"]: c["spec"] for c in r.kind("Certificate")}
    assert certificates["tripline-api"]["dnsNames"] == ["api.example.com"]
    assert certificates["tripline-api"]["secretName"] == "tripline-api-tls"
    assert certificates["tripline-api"]["issuerRef"] == {
        "name": "letsencrypt",
        "kind": "ClusterIssuer",
        "group": "cert-manager.io",
    }
    ingress_hosts = [h["host"] for h in r.get("Ingress", "tripline-admin")["spec"]["rules"]]
    assert certificates["tripline-admin"]["dnsNames"] == ingress_hosts
    assert certificates["tripline-admin"]["secretName"] == "admin-cert"
    assert certificates["tripline-ingest"]["dnsNames"] == ["ingest.internal.example.com"]
    assert certificates["tripline-ingest"]["issuerRef"]["kind"] == "Issuer"


def test_pods_spread_over_zones_and_nodes_by_default_and_take_a_priority_class() -> None:
    r = render_profile("prod", {"components": {"api": {"priorityClassName": "tripline-web"}}})
    for deployment in r.kind("Deployment"):
        spec = deployment["spec"]["template"]["spec"]
        selector = deployment["spec"]["selector"]
        constraints = spec["topologySpreadConstraints"]
        assert [c["topologyKey"] for c in constraints] == [
            "topology.kubernetes.io/zone",
            "kubernetes.io/hostname",
        ]
        for constraint in constraints:
            assert constraint["whenUnsatisfiable"] == "ScheduleAnyway"
            assert constraint["maxSkew"] == 1
            assert constraint["labelSelector"] == selector  # Its own pods, no other component's.
        expected = "tripline-web" if deployment["metadata"]["name"] == "tripline-api" else None
        assert spec.get("priorityClassName") == expected


def test_a_vpa_only_recommends_and_may_sit_beside_the_cpu_hpa() -> None:
    values = {
        "components": {
            "api": {"vpa": {"enabled": True, "maxAllowed": {"cpu": "2", "memory": "1Gi"}}},
            "worker": {"vpa": {"enabled": True, "controlledResources": ["memory"]}},
        }
    }
    r = render_profile("prod", values)
    vpas = {v["metadata"]["name"]: v["spec"] for v in r.kind("VerticalPodAutoscaler")}
    assert set(vpas) == {"tripline-api", "tripline-worker"}
    for name, spec in vpas.items():
        assert spec["updatePolicy"] == {"updateMode": "Off"}  # Never evicts, never resizes.
        assert spec["targetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
    [api_policy] = vpas["tripline-api"]["resourcePolicy"]["containerPolicies"]
    assert api_policy == {
        "containerName": "api",
        "controlledResources": ["cpu", "memory"],
        "maxAllowed": {"cpu": "2", "memory": "1Gi"},
    }
    [worker_policy] = vpas["tripline-worker"]["resourcePolicy"]["containerPolicies"]
    assert worker_policy["controlledResources"] == ["memory"]
    assert "tripline-api" in {h["metadata"]["name"] for h in r.kind("HorizontalPodAutoscaler")}


def test_pod_monitors_replace_the_service_monitors_when_chosen() -> None:
    values = {
        "metrics": {
            "serviceMonitor": {"enabled": False},
            "podMonitor": {"enabled": True, "interval": "15s", "labels": {"release": "kps"}},
        }
    }
    r = render_profile("prod", values)
    assert r.kind("ServiceMonitor") == []
    monitors = {m["metadata"]["name"]: m for m in r.kind("PodMonitor")}
    assert set(monitors) == {f"tripline-{c}" for c in ("api", "admin", "ingest", "worker")}
    for name, monitor in monitors.items():
        component = name.removeprefix("tripline-")
        assert monitor["metadata"]["labels"]["release"] == "kps"
        assert (
            monitor["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] == component
        )
        assert monitor["spec"]["podMetricsEndpoints"] == [
            {"port": "ops", "path": "/metrics", "interval": "15s"}
        ]


def test_the_schema_refuses_service_monitors_and_pod_monitors_together() -> None:
    with pytest.raises(helm_python.HelmValuesError) as refused:
        render_profile("prod", {"metrics": {"podMonitor": {"enabled": True}}})
    assert "/metrics/podMonitor/enabled" in str(refused.value)


def test_pod_monitors_need_their_crd() -> None:
    values = {"metrics": {"serviceMonitor": {"enabled": False}, "podMonitor": {"enabled": True}}}
    assert render_profile("prod", values, api_versions=()).kind("PodMonitor") == []
    assert render_profile("prod", values, api_versions=MONITORING_APIS).kind("PodMonitor")


@pytest.mark.parametrize("profile", GOLDEN_PROFILES)
def test_routes_certificates_and_vpas_are_opt_in(profile: str) -> None:
    r = render_profile(profile)
    assert r.kind("HTTPRoute") == r.kind("Certificate") == r.kind("VerticalPodAutoscaler") == []
