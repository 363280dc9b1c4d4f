"""The request latency histogram's exemplars and /metrics' two formats: a request inside a
sampled server span leaves its trace ID on the bucket it fell in, shown only in the OpenMetrics
exposition a scraper asks for with `Accept`; no exemplar with tracing off or unsampled."""

from __future__ import annotations

import httpx
from opentelemetry.trace import SpanKind
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families

from tests.support.tracing import recording_spans

OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8; escaping=underscores"
# What Prometheus 2.x asks for by default.
PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
    "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)
LATENCY = "tripline_testapp_http_request_duration_seconds"
HANDLER = {"handler": "/v1/items/missing", "method": "GET"}
PARENT = "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7"


async def latency_exemplars(client: httpx.AsyncClient) -> list[dict[str, str]]:
    """The exemplar labels on the latency buckets of `GET /v1/items/missing`, read from the
    OpenMetrics exposition (which parses strictly: it must end in `# EOF`)."""
    response = await client.get("/metrics", headers={"Accept": PROMETHEUS_ACCEPT})
    assert response.headers["content-type"] == OPENMETRICS
    [family] = [f for f in openmetrics_families(response.text) if f.name == LATENCY]
    buckets = [
        s
        for s in family.samples
        if s.name == f"{LATENCY}_bucket" and HANDLER.items() <= s.labels.items()
    ]
    assert buckets, "the request was not observed"
    return [s.exemplar.labels for s in buckets if s.exemplar is not None]


async def test_a_sampled_request_leaves_its_trace_id_as_an_exemplar_in_openmetrics_only(
    build_app, app_client
) -> None:
    with recording_spans() as spans:
        async with app_client(build_app()) as client:
            assert (await client.get("/v1/items/missing")).status_code == 404
            exemplars = await latency_exemplars(client)
            classic = await client.get("/metrics")
        [server] = [s for s in spans.finished() if s.kind is SpanKind.SERVER]

    assert exemplars == [{"trace_id": format(server.context.trace_id, "032x")}]
    assert classic.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert "trace_id" not in classic.text and "# EOF" not in classic.text
    families = {f.name for f in text_string_to_metric_families(classic.text)}
    assert LATENCY in families


async def test_a_request_whose_trace_is_not_sampled_leaves_no_exemplar(
    build_app, app_client
) -> None:
    # Parent-based: the caller said "not sampled" (flags 00), so no span of it is exported.
    with recording_spans("parentbased_always_on") as spans:
        async with app_client(build_app()) as client:
            headers = {"traceparent": f"00-{PARENT}-00"}
            assert (await client.get("/v1/items/missing", headers=headers)).status_code == 404
            assert await latency_exemplars(client) == []
        assert spans.finished() == []


async def test_with_tracing_off_a_request_leaves_no_exemplar(build_app, app_client) -> None:
    async with app_client(build_app()) as client:
        assert (await client.get("/v1/items/missing")).status_code == 404
        assert await latency_exemplars(client) == []
