"""What the chart tells Kubernetes about a rollout, read from its render: each component's
shutdown settings (the drain), its grace period, its readiness probe and the surge."""

from __future__ import annotations

import math
from dataclasses import dataclass

from chart_render import render_profile
from chart_workloads import workloads

# The environment of the drain: the chart sets these from `shutdown:` (values.yaml).
SHUTDOWN_ENV = ("SHUTDOWN_DRAIN_SECONDS", "GRACEFUL_SHUTDOWN_TIMEOUT", "JOB_COMPLETION_WAIT")
COMPONENTS = ("api", "ingest", "admin", "worker")
# The production profile: the drain operators actually get.
PROFILE = "prod"


@dataclass(frozen=True)
class Rollout:
    """How one component's replicas are replaced."""

    component: str
    shutdown_env: dict[str, str]
    termination_grace: int
    """terminationGracePeriodSeconds: past it the kubelet sends SIGKILL."""
    readiness_period: float
    max_surge: int
    max_unavailable: int

    @property
    def drain_seconds(self) -> float:
        return float(self.shutdown_env.get("SHUTDOWN_DRAIN_SECONDS", "0"))


def _count(value: int | str, replicas: int, round_up: bool) -> int:
    """A Deployment's maxSurge/maxUnavailable for `replicas` (percentages round as Kubernetes
    rounds them: surge up, unavailable down)."""
    if isinstance(value, int):
        return value
    share = replicas * float(value.rstrip("%")) / 100
    return math.ceil(share) if round_up else math.floor(share)


def rollouts(replicas: int) -> dict[str, Rollout]:
    """Each component's rollout as the `prod` profile renders it, for `replicas` replicas."""
    render = render_profile(PROFILE)
    # `prod` reads credentials from a Secret made outside the chart: their values do not
    # matter here, only that every key it references exists.
    secrets: dict[str, dict[str, str]] = {}
    for doc in render.kind("Deployment"):
        for container in doc["spec"]["template"]["spec"]["containers"]:
            for var in container.get("env") or []:
                ref = (var.get("valueFrom") or {}).get("secretKeyRef")
                if ref:
                    secrets.setdefault(ref["name"], {})[ref["key"]] = ""
    strategies = {
        doc["metadata"]["name"]: doc["spec"]["strategy"]["rollingUpdate"]
        for doc in render.kind("Deployment")
    }
    result = {}
    for workload in workloads(render, secrets):
        if workload.kind != "Deployment" or workload.component not in COMPONENTS:
            continue
        [container] = workload.containers
        strategy = strategies[workload.name]
        result[workload.component] = Rollout(
            component=workload.component,
            shutdown_env={k: v for k, v in container.env.items() if k in SHUTDOWN_ENV},
            termination_grace=workload.termination_grace,
            readiness_period=container.probes["readiness"].period,
            max_surge=_count(strategy["maxSurge"], replicas, round_up=True),
            max_unavailable=_count(strategy["maxUnavailable"], replicas, round_up=False),
        )
    missing = set(COMPONENTS) - set(result)
    if missing:
        raise ValueError(f"the {PROFILE} render has no Deployment for {sorted(missing)}")
    return result
