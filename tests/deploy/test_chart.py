"""The chart, rendered by the real Helm SDK: lint, the schema, and the properties every profile
must keep (hardening, probes, shutdown, hooks, credentials, network policy, monitoring)."""

from __future__ import annotations

import ipaddress
import json
import re

import helm_python
import pytest
from chart_render import (
    CHART,
    MONITORING_APIS,
    OLDEST_KUBERNETES,
    PROFILES,
    profile_values,
    render,
    render_profile,
)

from tripline_common.platform import CommonSettings

APP_PROFILES = ["dev", "ci", "prod"]
TESTS_SELECTOR = {
    "app.kubernetes.io/name": "tripline",
    "app.kubernetes.io/instance": "tripline",
    "app.kubernetes.io/component": "tests",
}
COMPONENTS = {"api", "admin", "ingest", "worker"}


@pytest.fixture(scope="module")
def renders():
    return {profile: render_profile(profile) for profile in PROFILES if profile != "default"}


@pytest.mark.parametrize("profile", [p for p in PROFILES if p != "default"])
def test_helm_lint_strict_is_clean_for_every_profile(profile: str) -> None:
    result = helm_python.lint(
        CHART, profile_values(profile), strict=True, kube_version=f"v{OLDEST_KUBERNETES}"
    )
    assert result["errors"] == [] and result["messages"] == [], json.dumps(result, indent=2)


def test_lint_with_chart_defaults_and_only_a_secret_name_is_clean() -> None:
    values = {"secrets": {"existingSecret": "tripline-credentials"}}
    result = helm_python.lint(CHART, values, strict=True)
    assert result["errors"] == [] and result["messages"] == [], result
    assert render(values).kind("Deployment")


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"config": {"DATABASE_URL": "postgresql://u:p@db/x"}}, "/config/DATABASE_URL"),
        ({"components": {"api": {"env": {"SECRET_KEY": "x"}}}}, "/components/api/env/SECRET_KEY"),
        ({"components": {"api": {"replicas": 3}}}, "additional properties 'replicas'"),
        ({"components": {"api": {"port": "8000"}}}, "/components/api/port"),
        ({"defaults": {"containerSecurityContext": {"runAsUser": 0}}}, "runAsUser"),
        (
            {"defaults": {"containerSecurityContext": {"allowPrivilegeEscalation": True}}},
            "allowPrivilegeEscalation",
        ),
        ({"defaults": {"livenessProbe": {"path": "/readyz"}}}, "/defaults/livenessProbe/path"),
        ({"config": {"ENVIRONMENT": "production"}}, "/config/ENVIRONMENT"),
        ({"secrets": {"values": {"secretKey": "short"}}}, "/secrets/values/secretKey"),
        ({"imagePullSecret": []}, "additional properties 'imagePullSecret'"),
        ({"config": {"FORWARDED_ALLOW_IPS": "*"}}, "/config/FORWARDED_ALLOW_IPS"),
        ({"config": {"FORWARDED_ALLOW_IPS": "ingress-nginx"}}, "/config/FORWARDED_ALLOW_IPS"),
    ],
)
def test_bad_values_are_refused_by_the_schema_with_a_readable_message(values, message) -> None:
    values = {"secrets": {"existingSecret": "s"}, **values} if "secrets" not in values else values
    with pytest.raises(helm_python.HelmValuesError) as refused:
        render(values)
    assert message in str(refused.value), str(refused.value)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({}, "no credentials: set secrets.existingSecret"),
        (
            {
                "secrets": {
                    "create": True,
                    "values": {
                        "databaseUrl": "postgresql://a/b",
                        "redisUrl": "redis://r",
                        "secretKey": "k" * 40,
                    },
                }
            },
            "secrets.create is for dev and CI only",
        ),
        (
            {"secrets": {"existingSecret": "s"}, "devDatabases": {"enabled": True}},
            "devDatabases must be a release of their own",
        ),
        (
            {
                "secrets": {"existingSecret": "s"},
                "components": {"worker": {"ingress": {"enabled": True}}},
            },
            "components.worker.ingress needs",
        ),
        (
            {
                "secrets": {"existingSecret": "s"},
                "components": {"api": {"ingress": {"enabled": True}}},
            },
            "components.api.ingress is enabled but config.FORWARDED_ALLOW_IPS is empty",
        ),
    ],
)
def test_unsafe_combinations_fail_the_render_with_a_reason(values, message) -> None:
    with pytest.raises(helm_python.HelmError) as refused:
        render(values)
    assert message in str(refused.value)


def test_global_values_are_allowed_for_umbrella_charts() -> None:
    render({"global": {"imageRegistry": "r.example"}, "secrets": {"existingSecret": "s"}})


def test_an_invalid_release_name_is_refused() -> None:
    with pytest.raises(helm_python.HelmError):
        render({"secrets": {"existingSecret": "s"}}, release="Not_Valid")


@pytest.mark.parametrize("profile", APP_PROFILES)
def test_each_component_has_its_objects(renders, profile: str) -> None:
    r = renders[profile]
    names = {
        kind: {d["metadata"]["name"] for d in r.kind(kind)}
        for kind in ("Deployment", "Service", "ServiceAccount", "NetworkPolicy")
    }
    assert names["Deployment"] == {f"tripline-{c}" for c in COMPONENTS}
    assert names["Service"] == {
        f"tripline-{c}{suffix}" for c in COMPONENTS - {"worker"} for suffix in ("", "-ops")
    }
    assert {f"tripline-{c}" for c in COMPONENTS} | {"tripline-migrations"} <= names[
        "ServiceAccount"
    ]
    assert {"tripline-default-deny", "tripline-migrations", "tripline-tests"} | {
        f"tripline-{c}" for c in COMPONENTS
    } <= names["NetworkPolicy"]
    for sa in r.kind("ServiceAccount"):
        assert sa["automountServiceAccountToken"] is False
    if profile != "dev":
        assert {d["metadata"]["name"] for d in r.kind("PodDisruptionBudget")} == {
            f"tripline-{c}" for c in COMPONENTS
        }
        for pdb in r.kind("PodDisruptionBudget"):
            assert pdb["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"


@pytest.mark.parametrize("profile", APP_PROFILES)
def test_pods_are_hardened(renders, profile: str) -> None:
    for deployment in renders[profile].kind("Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        assert pod["automountServiceAccountToken"] is False
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}} in pod["volumes"]
        for container in pod["containers"] + pod["initContainers"]:
            context = container["securityContext"]
            assert context["runAsUser"] >= 10000 and context["runAsGroup"] >= 10000
            assert context["allowPrivilegeEscalation"] is False
            assert context["capabilities"] == {"drop": ["ALL"]}
            assert context["seccompProfile"] == {"type": "RuntimeDefault"}
            # Only the dev profile's app containers (Tilt's live update) write into the image.
            writable = profile == "dev" and container in pod["containers"]
            assert context["readOnlyRootFilesystem"] is not writable
            assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
            assert container["resources"]["requests"]["memory"]
            assert container["resources"]["limits"]["memory"]
            assert container["command"] == ["tini", "--"]


@pytest.mark.parametrize("profile", APP_PROFILES)
def test_probes_differ_and_shutdown_fits_the_grace_period(renders, profile: str) -> None:
    for deployment in renders[profile].kind("Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        paths = {
            kind: container[f"{kind}Probe"]["httpGet"]["path"]
            for kind in ("startup", "readiness", "liveness")
        }
        assert paths == {"startup": "/startupz", "readiness": "/readyz", "liveness": "/livez"}
        env = {e["name"]: e.get("value") for e in container["env"]}
        wait = float(env["SHUTDOWN_DRAIN_SECONDS"]) + float(env["GRACEFUL_SHUTDOWN_TIMEOUT"])
        wait += float(env.get("JOB_COMPLETION_WAIT", 0))
        assert pod["terminationGracePeriodSeconds"] > wait
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        assert re.fullmatch(r"[0-9a-f]{64}", annotations["checksum/config"])
        assert re.fullmatch(r"[0-9a-f]{64}", annotations["checksum/secret"])
        (init,) = pod["initContainers"]
        assert init["args"][:2] == ["tripline-migrate", "wait"]
    worker = renders[profile].get("Deployment", "tripline-worker")["spec"]["template"]["spec"]
    assert any(e["name"] == "JOB_COMPLETION_WAIT" for e in worker["containers"][0]["env"])


def test_a_config_change_rolls_the_pods_and_a_replica_change_does_not() -> None:
    base = render_profile("ci")
    changed = render_profile("ci", {"config": {"LOG_LEVEL": "DEBUG"}})
    scaled = render_profile("ci", {"defaults": {"replicaCount": 3}})

    def checksums(r):
        return {
            d["metadata"]["name"]: d["spec"]["template"]["metadata"]["annotations"][
                "checksum/config"
            ]
            for d in r.kind("Deployment")
        }

    assert all(
        a != b for a, b in zip(checksums(base).values(), checksums(changed).values(), strict=True)
    )
    assert checksums(base) == checksums(scaled)


@pytest.mark.parametrize("profile", APP_PROFILES)
def test_migrations_are_an_expand_hook_before_the_pods_and_a_contract_hook_after_them(
    renders, profile: str
) -> None:
    r = renders[profile]
    expand = r.get("Job", "tripline-migrations")
    contract = r.get("Job", "tripline-migrations-contract")
    hooks = {
        "expand": ("pre-install,pre-upgrade", ["tripline-migrate", "upgrade", "--expand"]),
        "contract": ("post-install,post-upgrade", ["tripline-migrate", "upgrade", "head"]),
    }
    for phase, job in (("expand", expand), ("contract", contract)):
        hook, args = hooks[phase]
        annotations = job["metadata"]["annotations"]
        assert annotations["helm.sh/hook"] == hook
        assert "before-hook-creation" in annotations["helm.sh/hook-delete-policy"]
        assert job["spec"]["activeDeadlineSeconds"] > 0 and job["spec"]["backoffLimit"] >= 1
        pod = job["spec"]["template"]["spec"]
        assert pod["containers"][0]["args"] == args
        # Everything the hook Job needs exists before it, at each of its hooks: hooks with a
        # lower weight made for that same hook, or (prod) a Secret the operator made
        # beforehand. Nothing it needs comes from the release itself.
        sa = r.get("ServiceAccount", pod["serviceAccountName"])
        assert set(hook.split(",")) <= set(sa["metadata"]["annotations"]["helm.sh/hook"].split(","))
        assert int(sa["metadata"]["annotations"]["helm.sh/hook-weight"]) < int(
            annotations["helm.sh/hook-weight"]
        )
        ref = pod["containers"][0]["env"][0]["valueFrom"]["secretKeyRef"]
        if profile == "prod":
            assert ref["name"] == "tripline-credentials" and not r.kind("Secret")
        else:
            secret = r.get("Secret", ref["name"])
            secret_hooks = secret["metadata"]["annotations"]["helm.sh/hook"].split(",")
            assert set(hook.split(",")) <= set(secret_hooks)
        assert not pod["containers"][0].get("envFrom"), (
            "the ConfigMap does not exist yet at pre-install"
        )


def test_prod_has_no_credentials_in_its_render(renders) -> None:
    text = renders["prod"].text()
    assert "kind: Secret" not in text
    assert not re.search(r"(postgres(ql)?(\+asyncpg)?|rediss?)://", text)


def test_prod_ingress_autoscaling_and_custom_metrics(renders) -> None:
    r = renders["prod"]
    assert {i["metadata"]["name"] for i in r.kind("Ingress")} == {
        "tripline-api",
        "tripline-admin",
        "tripline-ingest",
    }
    for ingress in r.kind("Ingress"):
        assert ingress["spec"]["tls"][0]["hosts"] == [ingress["spec"]["rules"][0]["host"]]
    hpas = {h["metadata"]["name"]: h for h in r.kind("HorizontalPodAutoscaler")}
    assert set(hpas) == {"tripline-api", "tripline-ingest", "tripline-worker"}
    assert {m["type"] for m in hpas["tripline-worker"]["spec"]["metrics"]} == {"Resource", "Pods"}
    assert "replicas" not in r.get("Deployment", "tripline-worker")["spec"]


def test_monitoring_objects_only_when_the_cluster_has_their_crds() -> None:
    values = profile_values("prod")
    without = render(values)
    with_crds = render(values, api_versions=MONITORING_APIS)
    kinds = ("ServiceMonitor", "PodMonitor", "PrometheusRule")
    assert not any(without.kind(k) for k in kinds)
    assert "no ServiceMonitor CRD" in without.notes
    assert len(with_crds.kind("ServiceMonitor")) == 3 and len(with_crds.kind("PodMonitor")) == 1
    assert len(with_crds.kind("PrometheusRule")) == 1


def test_network_policy_denies_by_default_and_allows_only_app_ports(renders) -> None:
    r = renders["prod"]
    deny = r.get("NetworkPolicy", "tripline-default-deny")
    assert deny["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert "ingress" not in deny["spec"] and "egress" not in deny["spec"]
    for name in COMPONENTS:
        policy = r.get("NetworkPolicy", f"tripline-{name}")
        app, ops = policy["spec"]["ingress"]
        assert app["ports"] == [{"port": "http", "protocol": "TCP"}]
        assert ops["ports"] == [{"port": "ops", "protocol": "TCP"}]
        # The ingress controller reaches only the app port; Prometheus and the `helm test` pods
        # only the ops port (the kubelet's probes come from the node, which is not filtered).
        namespaces = lambda rule: {  # noqa: E731
            peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
            for peer in rule["from"]
            if "namespaceSelector" in peer
        }
        assert namespaces(app) == {"ingress-nginx"} and namespaces(ops) == {"monitoring"}
        assert {"podSelector": {"matchLabels": TESTS_SELECTOR}} in ops["from"]
        egress_ports = {p["port"] for rule in policy["spec"]["egress"] for p in rule["ports"]}
        # Every component sends its traces to the collector (4318); the worker alone reaches
        # out: webhooks (443) and account mail (SMTP, 587).
        assert egress_ports == (
            {53, 5432, 6379, 4318, 443, 587} if name == "worker" else {53, 5432, 6379, 4318}
        )


def test_notes_print_urls_and_next_steps(renders) -> None:
    notes = render_profile("ci").notes
    assert "port-forward svc/tripline-api" in notes and "helm test tripline" in notes
    assert (
        "https://api.tripline.example.com/"
        in render_profile("prod", api_versions=MONITORING_APIS).notes
    )
    assert "tripline-data-postgres:5432" in renders["dev-databases"].notes


def test_helm_test_hooks_call_every_service_readiness(renders) -> None:
    pods = renders["ci"].kind("Pod")
    assert {p["metadata"]["annotations"]["helm.sh/hook"] for p in pods} == {"test"}
    scripts = " ".join(p["spec"]["containers"][0]["command"][-1] for p in pods)
    for name in COMPONENTS - {"worker"}:
        assert f"http://tripline-{name}-ops:9000/readyz" in scripts


def test_dev_databases_use_official_images_and_run_unprivileged(renders) -> None:
    r = renders["dev-databases"]
    images = {
        c["image"].split(":")[0]
        for s in r.kind("StatefulSet")
        for c in s["spec"]["template"]["spec"]["containers"]
    }
    assert images == {"docker.io/library/postgres", "docker.io/library/redis"}
    assert not r.kind("Deployment") and not r.kind("Job")
    for statefulset in r.kind("StatefulSet"):
        pod = statefulset["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsUser"] >= 10000
    # The app profiles point at this release's Services.
    dsn = profile_values("dev")["secrets"]["values"]["databaseUrl"]
    assert "@tripline-data-postgres:5432/" in dsn
    assert {s["metadata"]["name"] for s in r.kind("Service")} == {
        "tripline-data-postgres",
        "tripline-data-redis",
    }


def test_prestop_sleep_is_available_when_wanted() -> None:
    r = render_profile("ci", {"defaults": {"shutdown": {"preStopSleepSeconds": 5}}})
    api = r.get("Deployment", "tripline-api")["spec"]["template"]["spec"]
    assert api["containers"][0]["lifecycle"] == {"preStop": {"sleep": {"seconds": 5}}}
    assert api["terminationGracePeriodSeconds"] == 5 + 5 + 20 + 5


@pytest.mark.parametrize("profile", APP_PROFILES)
def test_only_listed_proxies_may_set_the_client_address(renders, profile: str) -> None:
    """No profile trusts every peer; the apps accept each profile's list; a profile with an
    Ingress trusts a few addresses (the controller's pool), never a whole pod network."""
    configs = renders[profile].kind("ConfigMap")
    # Every app component reads it, each from its own ConfigMap: one value for all.
    (value,) = {c["data"]["FORWARDED_ALLOW_IPS"] for c in configs if "data" in c}
    assert sum("FORWARDED_ALLOW_IPS" in c.get("data", {}) for c in configs) == 4
    assert "*" not in value
    assert CommonSettings(_env_file=None, forwarded_allow_ips=value)  # type: ignore[call-arg]
    networks = [ipaddress.ip_network(entry) for entry in value.split(",") if entry.strip()]
    if renders[profile].kind("Ingress"):
        assert networks and all(n.num_addresses <= 256 for n in networks), value
    else:
        assert networks == [], f"{profile} has no proxy in front, yet trusts {value}"


# One address inside each range a webhook must never reach, and public ones it must.
NEVER_WEBHOOK_DESTINATIONS = [
    "0.0.0.1",  # "this network"
    "10.1.2.3",
    "100.64.0.1",  # shared address space (CGNAT; some clusters' pod or node networks)
    "127.0.0.1",
    "169.254.169.254",  # cloud metadata
    "172.16.0.1",
    "172.31.255.254",
    "192.0.0.170",  # IETF protocol assignments (NAT64 discovery)
    "192.168.1.1",
    "198.18.0.1",  # benchmarking
    "198.19.255.254",
    "::1",
    "::ffff:10.0.0.1",  # IPv4-mapped
    "fd00::1",  # unique local
    "fc00::1",
    "fe80::1",  # link-local
]
PUBLIC_WEBHOOK_DESTINATIONS = ["93.184.215.14", "8.8.8.8", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"]


def egress_allows(rule: dict, address: str) -> bool:
    """Whether a NetworkPolicy egress rule's ipBlock peers let traffic to `address` out."""
    ip = ipaddress.ip_address(address)
    for peer in rule.get("to", []):
        block = peer.get("ipBlock")
        if block is None:
            continue
        cidr = ipaddress.ip_network(block["cidr"])
        excluded = any(ip in ipaddress.ip_network(e) for e in block.get("except", []))
        if ip.version == cidr.version and ip in cidr and not excluded:
            return True
    return False


@pytest.mark.parametrize("profile", APP_PROFILES)
def test_webhook_egress_reaches_the_internet_but_no_internal_range(renders, profile: str) -> None:
    policy = renders[profile].get("NetworkPolicy", "tripline-worker")
    (webhooks,) = [
        rule for rule in policy["spec"]["egress"] if {p["port"] for p in rule["ports"]} == {443}
    ]
    reachable = [a for a in NEVER_WEBHOOK_DESTINATIONS if egress_allows(webhooks, a)]
    assert reachable == [], f"webhook egress reaches internal addresses: {reachable}"
    for address in PUBLIC_WEBHOOK_DESTINATIONS:
        assert egress_allows(webhooks, address), address
    # No other component may open outgoing HTTPS at all.
    for name in COMPONENTS - {"worker"}:
        egress = renders[profile].get("NetworkPolicy", f"tripline-{name}")["spec"]["egress"]
        assert all(443 not in {p["port"] for p in rule["ports"]} for rule in egress), name


@pytest.mark.parametrize("profile", APP_PROFILES)
def test_probes_and_metrics_are_served_off_the_routed_port(profile: str) -> None:
    """Kubelet probes and the Prometheus Operator's scrapes use the `ops` port, exposed by the
    `-ops` Service alone; the Ingress and its Service reach only `http`, where the apps answer 404
    for those paths."""
    r = render_profile(profile, api_versions=MONITORING_APIS)
    for deployment in r.kind("Deployment"):
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert set(ports) == {"http", "ops"} and ports["http"] != ports["ops"]
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["PORT"] == str(ports["http"]) and env["OPS_PORT"] == str(ports["ops"])
        for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert container[kind]["httpGet"]["port"] == "ops", (deployment["metadata"], kind)
    services = {s["metadata"]["name"]: s for s in r.kind("Service")}
    for name, service in services.items():
        targets = {p["name"]: p["targetPort"] for p in service["spec"]["ports"]}
        assert targets == ({"ops": "ops"} if name.endswith("-ops") else {"http": "http"}), name
    assert set(services) == {
        f"tripline-{c}{s}" for c in COMPONENTS - {"worker"} for s in ("", "-ops")
    }
    for ingress in r.kind("Ingress"):
        backends = [
            path["backend"]["service"]["port"]
            for rule in ingress["spec"]["rules"]
            for path in rule["http"]["paths"]
        ]
        assert backends and all(port == {"name": "http"} for port in backends), backends
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                routed = services[path["backend"]["service"]["name"]]
                assert [p["name"] for p in routed["spec"]["ports"]] == ["http"]
    monitors = r.kind("ServiceMonitor") + r.kind("PodMonitor")
    assert len(monitors) == (4 if profile == "prod" else 0)
    for monitor in monitors:
        endpoints = monitor["spec"].get("endpoints") or monitor["spec"]["podMetricsEndpoints"]
        assert [e["port"] for e in endpoints] == ["ops"]
    for monitor in r.kind("ServiceMonitor"):
        wanted = monitor["spec"]["selector"]["matchLabels"].items()
        selected = [n for n, s in services.items() if wanted <= s["metadata"]["labels"].items()]
        assert selected == [f"{monitor['metadata']['name']}-ops"]


def test_the_ops_port_must_differ_from_the_app_port() -> None:
    values = {"secrets": {"existingSecret": "s"}, "components": {"api": {"opsPort": 8000}}}
    with pytest.raises(helm_python.HelmError) as refused:
        render(values)
    assert "components.api.opsPort must differ from components.api.port" in str(refused.value)
