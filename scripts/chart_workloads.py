"""What the chart tells Kubernetes to run, as plain data: each workload's containers with their
command line, environment (ConfigMap, Secret and literal values resolved), port, probes, user and
grace period. Both the chart <-> process conformance test (tests/deploy) and the image run script
(scripts/images/run_as_chart.py) start processes from this, and probe them the way the kubelet
does (`probe_once`).
"""

from __future__ import annotations

import base64
import http.client
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from chart_render import Render

# Environment the image itself sets (deploy/Dockerfile, runtime stage, `ENV`), minus PATH.
IMAGE_ENV = {
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONUNBUFFERED": "1",
    "PYTHONFAULTHANDLER": "1",
    "HOST": "0.0.0.0",  # noqa: S104 - a container listens on its pod's address
    "ENVIRONMENT": "prod",
    "DOCS_ENABLED": "false",
}
# After a graceful shutdown uvicorn re-raises SIGTERM; tini passes that on as 128 + 15.
GRACEFUL_EXIT_CODES = (0, 143)


@dataclass
class Probe:
    """An httpGet probe as the kubelet runs it."""

    kind: str  # startup, readiness or liveness
    path: str
    port: int
    headers: dict[str, str]
    initial_delay: float
    period: float
    timeout: float
    failure_threshold: int
    success_threshold: int

    @property
    def budget(self) -> float:
        """Seconds the kubelet gives this probe to succeed before it acts."""
        return self.initial_delay + self.period * self.failure_threshold


@dataclass
class Container:
    name: str
    argv: list[str]
    env: dict[str, str]
    port: int | None
    probes: dict[str, Probe] = field(default_factory=dict)
    run_as_user: int | None = None
    run_as_group: int | None = None
    read_only_root: bool = False
    tmp_mounted: bool = False

    def shell(self) -> str:
        return shlex.join(self.argv)


@dataclass
class Workload:
    kind: str
    name: str
    component: str
    containers: list[Container]
    init_containers: list[Container]
    termination_grace: int
    hook: str | None = None


def _secret_data(doc: Mapping[str, Any]) -> dict[str, str]:
    data = {key: str(value) for key, value in (doc.get("stringData") or {}).items()}
    for key, value in (doc.get("data") or {}).items():
        data[key] = base64.b64decode(value).decode()
    return data


def _env(
    container: Mapping[str, Any],
    config_maps: Mapping[str, Mapping[str, str]],
    secrets: Mapping[str, Mapping[str, str]],
) -> dict[str, str]:
    env: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        if "configMapRef" in source:
            env.update(config_maps[source["configMapRef"]["name"]])
        elif "secretRef" in source:
            env.update(secrets[source["secretRef"]["name"]])
        else:
            raise ValueError(f"unsupported envFrom source: {source}")
    for var in container.get("env") or []:
        if "value" in var:
            env[var["name"]] = str(var["value"])
            continue
        ref = (var.get("valueFrom") or {}).get("secretKeyRef")
        if ref is None:
            raise ValueError(f"unsupported env source for {var['name']}: {var}")
        secret = secrets.get(ref["name"])
        if secret is None or ref["key"] not in secret:
            if ref.get("optional"):
                continue
            raise KeyError(f"{var['name']}: Secret {ref['name']!r} has no key {ref['key']!r}")
        env[var["name"]] = secret[ref["key"]]
    return env


def _port(container: Mapping[str, Any], port: int | str) -> int:
    if isinstance(port, int):
        return port
    for declared in container.get("ports") or []:
        if declared.get("name") == port:
            return int(declared["containerPort"])
    raise KeyError(f"container {container['name']} declares no port named {port!r}")


def _probes(container: Mapping[str, Any]) -> dict[str, Probe]:
    probes = {}
    for kind in ("startup", "readiness", "liveness"):
        spec = container.get(f"{kind}Probe")
        if not spec:
            continue
        http = spec.get("httpGet")
        if http is None:
            raise ValueError(f"{container['name']}: {kind} probe is not httpGet")
        probes[kind] = Probe(
            kind=kind,
            path=http["path"],
            port=_port(container, http["port"]),
            headers={h["name"]: h["value"] for h in http.get("httpHeaders") or []},
            initial_delay=spec.get("initialDelaySeconds", 0),
            period=spec.get("periodSeconds", 10),
            timeout=spec.get("timeoutSeconds", 1),
            failure_threshold=spec.get("failureThreshold", 3),
            success_threshold=spec.get("successThreshold", 1),
        )
    return probes


def _container(
    spec: Mapping[str, Any],
    pod: Mapping[str, Any],
    config_maps: Mapping[str, Mapping[str, str]],
    secrets: Mapping[str, Mapping[str, str]],
) -> Container:
    argv = list(spec.get("command") or []) + list(spec.get("args") or [])
    if not spec.get("command"):
        raise ValueError(f"{spec['name']}: no command (the chart must not rely on the image's)")
    pod_context = pod.get("securityContext") or {}
    context = {**pod_context, **(spec.get("securityContext") or {})}
    ports = spec.get("ports") or []
    return Container(
        name=spec["name"],
        argv=argv,
        env=_env(spec, config_maps, secrets),
        port=int(ports[0]["containerPort"]) if ports else None,
        probes=_probes(spec),
        run_as_user=context.get("runAsUser"),
        run_as_group=context.get("runAsGroup"),
        read_only_root=bool(context.get("readOnlyRootFilesystem")),
        tmp_mounted=any(m["mountPath"] == "/tmp" for m in spec.get("volumeMounts") or []),  # noqa: S108 - the container's path
    )


def workloads(
    render: Render, existing_secrets: Mapping[str, Mapping[str, str]] | None = None
) -> list[Workload]:
    """Deployments and Jobs of `render`, resolved. `existing_secrets` stands in for Secrets the
    chart references but does not make (secrets.existingSecret): name -> key -> value."""
    config_maps = {
        doc["metadata"]["name"]: doc.get("data") or {} for doc in render.kind("ConfigMap")
    }
    secrets = {doc["metadata"]["name"]: _secret_data(doc) for doc in render.kind("Secret")}
    secrets.update({name: dict(data) for name, data in (existing_secrets or {}).items()})
    result = []
    for doc in render.kind("Deployment") + render.kind("Job"):
        pod = doc["spec"]["template"]["spec"]
        labels = doc["metadata"].get("labels") or {}
        result.append(
            Workload(
                kind=doc["kind"],
                name=doc["metadata"]["name"],
                component=labels.get("app.kubernetes.io/component", doc["metadata"]["name"]),
                containers=[_container(c, pod, config_maps, secrets) for c in pod["containers"]],
                init_containers=[
                    _container(c, pod, config_maps, secrets)
                    for c in pod.get("initContainers") or []
                ],
                termination_grace=int(pod.get("terminationGracePeriodSeconds", 30)),
                hook=(doc["metadata"].get("annotations") or {}).get("helm.sh/hook"),
            )
        )
    return result


def probe_once(probe: Probe, host: str = "127.0.0.1") -> tuple[bool, str]:
    """One probe the way the kubelet sends it: GET path on the port, its headers (Host defaults
    to the pod address), its timeout; 200-399 is success. Returns (success, what happened)."""
    headers = {"Host": f"{host}:{probe.port}", "User-Agent": "kube-probe/1.37", **probe.headers}
    connection = http.client.HTTPConnection(host, probe.port, timeout=probe.timeout)
    try:
        connection.request("GET", probe.path, headers=headers)
        response = connection.getresponse()
        body = response.read(300).decode(errors="replace")
    except (OSError, http.client.HTTPException) as exc:
        return False, f"{type(exc).__name__}: {exc}"
    finally:
        connection.close()
    return 200 <= response.status < 400, f"{response.status} {body}"
