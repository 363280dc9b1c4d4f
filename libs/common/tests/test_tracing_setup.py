"""`init_tracing`: the standard `OTEL_*` variables read as the SDK defines them, nothing at all
installed without an endpoint, settings it cannot honour refused at start-up."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from tripline_common.platform import TracingConfigError, tracing_config
from tripline_common.web import ServiceState, create_app

ENDPOINT = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}


def test_without_an_endpoint_tracing_is_off() -> None:
    assert tracing_config({}, "api") is None
    assert tracing_config({"OTEL_EXPORTER_OTLP_ENDPOINT": "  "}, "api") is None
    assert tracing_config({**ENDPOINT, "OTEL_SDK_DISABLED": "true"}, "api") is None


def test_the_endpoint_gets_the_traces_path_unless_the_traces_endpoint_names_it() -> None:
    config = tracing_config({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/"}, "api")
    assert config is not None and config.endpoint == "http://collector:4318/v1/traces"
    config = tracing_config(
        {**ENDPOINT, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://traces.example.com/in"}, "api"
    )
    assert config is not None and config.endpoint == "https://traces.example.com/in"


def test_headers_are_percent_decoded_and_the_traces_ones_win() -> None:
    config = tracing_config(
        {**ENDPOINT, "OTEL_EXPORTER_OTLP_HEADERS": "api-key=a%20b,x-tenant=t1"}, "api"
    )
    assert config is not None and config.headers == {"api-key": "a b", "x-tenant": "t1"}
    config = tracing_config(
        {
            **ENDPOINT,
            "OTEL_EXPORTER_OTLP_HEADERS": "api-key=generic",
            "OTEL_EXPORTER_OTLP_TRACES_HEADERS": "api-key=traces",
        },
        "api",
    )
    assert config is not None and config.headers == {"api-key": "traces"}


def test_the_default_sampler_is_parent_based_with_a_ratio_of_one_in_ten() -> None:
    config = tracing_config(ENDPOINT, "api")
    assert config is not None
    assert (config.sampler, config.ratio) == ("parentbased_traceidratio", 0.1)
    description = config.build_sampler().get_description()
    assert description.startswith("ParentBased{root:TraceIdRatioBased{0.1}")


def test_the_sampler_and_its_ratio_are_read_from_the_environment() -> None:
    config = tracing_config(
        {**ENDPOINT, "OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.25"},
        "api",
    )
    assert config is not None
    assert config.build_sampler().get_description() == "TraceIdRatioBased{0.25}"
    config = tracing_config({**ENDPOINT, "OTEL_TRACES_SAMPLER": "parentbased_always_on"}, "api")
    assert config is not None
    assert config.build_sampler().get_description().startswith("ParentBased{root:AlwaysOnSampler")


def test_the_service_name_is_the_process_unless_otel_service_name_says_otherwise() -> None:
    config = tracing_config(
        {**ENDPOINT, "OTEL_RESOURCE_ATTRIBUTES": "k8s.pod.name=api-7f%2C1,team=trips"},
        "api",
        service_version="1.2.3",
        environment="prod",
    )
    assert config is not None
    assert config.resource == {
        "k8s.pod.name": "api-7f,1",
        "team": "trips",
        "service.name": "api",
        "service.version": "1.2.3",
        "deployment.environment.name": "prod",
    }
    named = tracing_config(
        {
            **ENDPOINT,
            "OTEL_RESOURCE_ATTRIBUTES": "service.name=from-attributes",
            "OTEL_SERVICE_NAME": "tripline-api",
        },
        "api",
    )
    assert named is not None and named.resource["service.name"] == "tripline-api"
    attributes = tracing_config(
        {**ENDPOINT, "OTEL_RESOURCE_ATTRIBUTES": "service.name=from-attributes"}, "api"
    )
    assert attributes is not None and attributes.resource["service.name"] == "from-attributes"


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "grpc exporter is not installed"),
        ({"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/json"}, "only http/protobuf"),
        ({"OTEL_TRACES_SAMPLER": "jaeger_remote"}, "OTEL_TRACES_SAMPLER"),
        ({"OTEL_TRACES_SAMPLER_ARG": "1.5"}, "between 0 and 1"),
        ({"OTEL_TRACES_SAMPLER_ARG": "half"}, "not a number"),
        ({"OTEL_RESOURCE_ATTRIBUTES": "team"}, "not key=value"),
    ],
)
def test_settings_that_cannot_be_honoured_are_refused(
    variables: dict[str, str], message: str
) -> None:
    with pytest.raises(TracingConfigError, match=message):
        tracing_config({**ENDPOINT, **variables}, "api")


def test_an_app_configured_for_grpc_refuses_to_start(
    make_settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    with pytest.raises(TracingConfigError, match="grpc"):
        create_app(state=ServiceState(make_settings()), title="t", description="d")


# A fresh process: what a service does at start with no OTEL_* variable set.
UNCONFIGURED_PROCESS = textwrap.dedent(
    """
    import os, threading
    for name in list(os.environ):
        if name.startswith("OTEL_"):
            del os.environ[name]
    from opentelemetry import trace
    from tripline_common.platform import init_tracing
    from tripline_common.platform.tracing import tracing_enabled
    from tripline_common.web.middleware import EdgeMiddleware

    threads = threading.active_count()
    assert init_tracing("api") is None
    assert not tracing_enabled()
    assert type(trace.get_tracer_provider()).__name__ == "ProxyTracerProvider"
    with trace.get_tracer("anything").start_as_current_span("work") as span:
        assert not span.is_recording()
        assert not trace.get_current_span().get_span_context().is_valid
    assert threading.active_count() == threads, threading.enumerate()
    print("nothing installed")
    """
)


def test_without_an_endpoint_no_provider_no_thread_and_no_span_exist() -> None:
    result = subprocess.run(
        [sys.executable, "-c", UNCONFIGURED_PROCESS],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "nothing installed"
