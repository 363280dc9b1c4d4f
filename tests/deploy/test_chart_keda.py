"""The worker's optional KEDA ScaledObject: queue-aware triggers read from the admin app's
gauges, and never together with the worker's HPA (values.schema.json refuses it)."""

from __future__ import annotations

import helm_python
import pytest
from chart_render import GOLDEN_PROFILES, render_profile

KEDA_ONLY = {
    "keda": {"enabled": True},
    "components": {"worker": {"autoscaling": {"enabled": False}}},
}


@pytest.mark.parametrize(
    ("profile", "values"),
    [
        # prod turns every HPA on through `defaults`: KEDA needs the worker's off in so many words.
        ("prod", {"keda": {"enabled": True}}),
        (
            "ci",
            {
                "keda": {"enabled": True},
                "components": {"worker": {"autoscaling": {"enabled": True}}},
            },
        ),
    ],
    ids=["hpa-on-through-defaults", "hpa-on-for-the-worker"],
)
def test_the_schema_refuses_keda_and_the_worker_hpa_together(profile, values) -> None:
    with pytest.raises(helm_python.HelmValuesError) as refused:
        render_profile(profile, values)
    assert "/components/worker/autoscaling" in str(refused.value), str(refused.value)


def test_keda_scales_the_worker_on_ready_jobs_per_replica_and_the_oldest_ready_age() -> None:
    r = render_profile("prod", KEDA_ONLY)
    [scaled] = r.kind("ScaledObject")
    spec = scaled["spec"]
    assert scaled["metadata"]["name"] == "tripline-worker"
    assert spec["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "tripline-worker",
    }
    assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (1, 10)
    assert spec["cooldownPeriod"] == 300
    triggers = {t["name"]: t for t in spec["triggers"]}
    ready, age = triggers["ready-jobs"], triggers["oldest-ready-age"]
    selector = 'namespace="tripline",queue="tripline:queue"'
    assert ready["metricType"] == "AverageValue"  # KEDA divides by the replicas: jobs per worker.
    assert ready["metadata"]["query"] == (
        f'max(tripline_admin_queue_jobs{{{selector},state="ready"}})'
    )
    assert ready["metadata"]["threshold"] == "50"
    assert age["metricType"] == "Value"
    assert age["metadata"]["query"] == (
        f"max(tripline_admin_queue_oldest_ready_age_seconds{{{selector}}})"
    )
    for trigger in (ready, age):
        assert trigger["type"] == "prometheus"
        assert trigger["metadata"]["ignoreNullValues"] == "false"  # Empty is an error, not 0.
    # KEDA owns the worker's count; the other components keep their HPAs.
    hpas = {h["metadata"]["name"] for h in r.kind("HorizontalPodAutoscaler")}
    assert hpas == {"tripline-api", "tripline-ingest"}
    assert "replicas" not in r.get("Deployment", "tripline-worker")["spec"]
    assert r.get("Deployment", "tripline-admin")["spec"]["replicas"] == 2


def test_scale_to_zero_lets_the_worker_go_to_no_replica() -> None:
    values = {**KEDA_ONLY, "keda": {"enabled": True, "scaleToZero": True, "cooldownPeriod": 600}}
    [scaled] = render_profile("prod", values).kind("ScaledObject")
    assert scaled["spec"]["minReplicaCount"] == 0
    assert scaled["spec"]["cooldownPeriod"] == 600


def test_thresholds_and_bounds_are_values() -> None:
    keda = {
        "enabled": True,
        "minReplicaCount": 2,
        "maxReplicaCount": 20,
        "readyJobsPerReplica": 120,
        "oldestReadyAgeSeconds": 90,
        "serverAddress": "http://prometheus.example:9090",
    }
    [scaled] = render_profile("prod", {**KEDA_ONLY, "keda": keda}).kind("ScaledObject")
    spec = scaled["spec"]
    assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (2, 20)
    thresholds = {t["name"]: t["metadata"]["threshold"] for t in spec["triggers"]}
    assert thresholds == {"ready-jobs": "120", "oldest-ready-age": "90"}
    assert {t["metadata"]["serverAddress"] for t in spec["triggers"]} == {keda["serverAddress"]}


def test_more_minimum_than_maximum_replicas_fails_the_render() -> None:
    values = {**KEDA_ONLY, "keda": {"enabled": True, "minReplicaCount": 5, "maxReplicaCount": 2}}
    with pytest.raises(helm_python.HelmError) as refused:
        render_profile("prod", values)
    assert "keda.minReplicaCount must not exceed keda.maxReplicaCount" in str(refused.value)


@pytest.mark.parametrize("profile", GOLDEN_PROFILES)
def test_keda_is_opt_in(profile: str) -> None:
    assert render_profile(profile).kind("ScaledObject") == []
