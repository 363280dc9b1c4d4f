"""The chart's `tracing` values: the standard OTEL_* variables every component reads, and the
egress to the collector, both only when an endpoint is set."""

from __future__ import annotations

import helm_python
import pytest
from chart_render import render_profile

from tripline_common.platform.tracing import tracing_config

COLLECTOR_PORT = 4318


def _config(rendered) -> dict[str, str]:
    """The OTEL_* settings, which every component's ConfigMap holds alike."""
    configs = [
        {k: v for k, v in (m.get("data") or {}).items() if k.startswith("OTEL_")}
        for m in rendered.kind("ConfigMap")
    ]
    assert len(configs) == 4 and all(c == configs[0] for c in configs)
    return configs[0]


def _egress_ports(policy) -> set[int]:
    return {port["port"] for rule in policy["spec"].get("egress", []) for port in rule["ports"]}


def _component_policies(rendered) -> list[dict]:
    names = {d["metadata"]["name"] for d in rendered.kind("Deployment")}
    return [p for p in rendered.kind("NetworkPolicy") if p["metadata"]["name"] in names]


def test_the_prod_profile_sends_traces_to_its_collector_and_may_reach_it() -> None:
    rendered = render_profile("prod")
    config = _config(rendered)
    # What the processes read: tracing_config parses exactly these variables.
    parsed = tracing_config(config, service_name="api", service_version="0.1.0")
    assert parsed is not None
    assert parsed.endpoint == "http://otel-collector.observability:4318/v1/traces"
    assert (parsed.sampler, parsed.ratio) == ("parentbased_traceidratio", 0.1)
    policies = _component_policies(rendered)
    assert len(policies) == 4
    for policy in policies:
        assert COLLECTOR_PORT in _egress_ports(policy), policy["metadata"]["name"]
    migrations = rendered.get("NetworkPolicy", "tripline-migrations")
    assert COLLECTOR_PORT not in _egress_ports(migrations)  # The migrations make no traces.


@pytest.mark.parametrize("profile", ["dev", "ci"])
def test_without_an_endpoint_nothing_is_traced_and_no_egress_is_opened(profile: str) -> None:
    rendered = render_profile(profile)
    assert not [key for key in _config(rendered) if key.startswith("OTEL_")]
    for policy in rendered.kind("NetworkPolicy"):
        assert COLLECTOR_PORT not in _egress_ports(policy), policy["metadata"]["name"]


def test_the_chart_refuses_a_sampler_ratio_the_processes_would_refuse() -> None:
    with pytest.raises(helm_python.HelmValuesError) as refused:
        render_profile("prod", {"tracing": {"samplerRatio": "1.5"}})
    assert "/tracing/samplerRatio" in str(refused.value), str(refused.value)
