"""Tracing with every process real: ingest, the worker and the API send their spans over
OTLP/HTTP to a stand-in collector on 127.0.0.1 (`tripline_devstack.DevTraceCollector`).

One telemetry upload that raises an alert is one trace: ingest's server span, the worker's
batch job and its SQL, the alert's publish, its delivery on the API's WebSocket and SSE streams,
and the webhook job's POST, whose `traceparent` the receiver gets; every log line of that story
carries the trace's ID. A collector that is down, or one that answers far later than the
export timeout, changes nothing for requests and jobs: their spans are dropped and counted.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis
from websockets.asyncio.client import connect

from tests.conftest import Process
from tests.support.alerts import alert_event
from tests.test_pipeline import (
    FAST_WORKER,
    fixes,
    json_lines,
    seed,
    start_demo_trip,
    wait_for,
    window_aligned,
)
from tests.test_realtime import login, stream_ticket
from tripline_common.messaging import publish_alert
from tripline_devstack import DevTraceCollector, ReceivedSpan, free_port

WAIT = 20.0
"""A deadline for what a working pipeline does in a second or two."""
UPLOAD_DEADLINE_SECONDS = 5.0
EXPORT_TIMEOUT_SECONDS = 1
SLOW_COLLECTOR_SECONDS = 60.0
"""How late the slow collector answers each export: far beyond every deadline here, so a
request or a job held until its spans were exported would miss it (and so would one held for
the 1 s export timeout per span: an upload alone makes a dozen spans)."""

ALERTS = "tripline:alerts:{owner_id}"
REQUEST_ID = "tripline.request_id"
"""The span attribute of the correlation ID (`X-Request-ID`)."""
Alert = Callable[[str | None], Awaitable[dict[str, Any]]]


def tracing_env(endpoint: str) -> dict[str, str]:
    """Every trace sampled (parent-based: the worker and API follow the upload's decision), each
    span sent within a tenth of a second, each export given 1 s."""
    return {
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_TRACES_SAMPLER": "parentbased_always_on",
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        "OTEL_EXPORTER_OTLP_TIMEOUT": str(EXPORT_TIMEOUT_SECONDS),
    }


async def upload(ingest: Process, request_id: str) -> httpx.Response:
    """A speeding upload of the demo device (118 km/h on its 80 km/h trip): one alert."""
    from scripts.seed import DEMO_DEVICE_KEY

    async with httpx.AsyncClient(timeout=UPLOAD_DEADLINE_SECONDS) as client:
        return await client.post(
            f"{ingest.url}/v1/telemetry",
            json={
                "client_batch_id": request_id,
                "events": fixes(6, start=window_aligned(), speed_kmh=118),
            },
            headers={"X-Device-Key": DEMO_DEVICE_KEY, "X-Request-ID": request_id},
        )


@asynccontextmanager
async def alert_streams(
    api: Process, redis_url: str, token: str, user_id: uuid.UUID
) -> AsyncIterator[tuple[Alert, Alert]]:
    """A WebSocket and an SSE stream of the user on `api`, both receiving: each yielded function
    returns the stream's next alert (with that correlation ID, if given). Closed on exit."""
    ws_url = f"ws://127.0.0.1:{api.port}/v1/alerts/ws?ticket={stream_ticket(api.url, token)}"
    sse_params = {"ticket": stream_ticket(api.url, token)}
    async with (
        connect(ws_url, open_timeout=WAIT) as ws,
        httpx.AsyncClient(timeout=WAIT) as client,
        client.stream("GET", f"{api.url}/v1/alerts/stream", params=sse_params) as sse,
    ):
        assert sse.status_code == 200
        lines = sse.aiter_lines()

        async def ws_alert(request_id: str | None = None) -> dict[str, Any]:
            while True:
                message: dict[str, Any] = json.loads(await ws.recv())
                if message.get("type") == "ping":
                    await ws.send('{"type":"pong"}')
                elif request_id in (None, message["alert"]["request_id"]):
                    return message

        async def sse_alert(request_id: str | None = None) -> dict[str, Any]:
            async for line in lines:
                if line.startswith("data: "):
                    message: dict[str, Any] = json.loads(line.removeprefix("data: "))
                    if request_id in (None, message["alert"]["request_id"]):
                        return message
            raise AssertionError("the SSE stream ended")

        # The API subscribes at start-up, asynchronously: probe alerts (published without a
        # trace, as by a worker with tracing off) until both streams have one.
        redis = Redis.from_url(redis_url)
        try:
            probes = {asyncio.create_task(ws_alert()), asyncio.create_task(sse_alert())}
            for _ in range(int(WAIT / 0.25)):
                await publish_alert(redis, alert_event(user_id))
                await asyncio.wait(probes, timeout=0.25)
                if all(probe.done() for probe in probes):
                    break
            assert all(probe.done() for probe in probes), "the probe alerts never arrived"
        finally:
            await redis.aclose()
        yield ws_alert, sse_alert


def the(spans: list[ReceivedSpan], name: str, service: str, kind: str) -> ReceivedSpan:
    """The one span of `service` called `name`, of `kind`."""
    [span] = [s for s in spans if (s.name, s.service, s.kind) == (name, service, kind)]
    return span


def children(spans: list[ReceivedSpan], parent: ReceivedSpan) -> list[ReceivedSpan]:
    return [span for span in spans if span.parent_span_id == parent.span_id]


@pytest.mark.slow
async def test_an_upload_that_raises_an_alert_is_one_trace_across_ingest_worker_api_and_webhook(
    processes, process_env, webhook_receiver, trace_collector
) -> None:
    traced = tracing_env(trace_collector.endpoint)
    ingest = processes.start("ingest", "tripline-ingest", **traced)
    worker = processes.start("worker", "tripline-worker", **FAST_WORKER, **traced)
    api = processes.start("api", "tripline-api", **traced)
    seed(process_env)  # While the processes start: they need the data only when it is used.
    trip = await start_demo_trip(process_env["DATABASE_URL"], webhook_receiver.url)
    for process in (ingest, worker, api):
        processes.wait_ready(process)
    token, user_id = login(api.url)
    queue = process_env["ARQ_QUEUE_NAME"]

    request_id = f"traced-{uuid.uuid4().hex}"
    async with alert_streams(api, process_env["REDIS_URL"], token, user_id) as (ws, sse):
        response = await upload(ingest, request_id)
        assert response.status_code == 202, response.text
        on_websocket = await asyncio.wait_for(ws(request_id), WAIT)
        on_sse = await asyncio.wait_for(sse(request_id), WAIT)
        [delivery] = await wait_for(
            lambda: _async(webhook_receiver.delivered()), WAIT, "the webhook delivery"
        )
    alert_id = on_websocket["alert"]["id"]
    assert on_sse["alert"]["id"] == alert_id
    assert (on_websocket["alert"]["rule"], on_websocket["alert"]["trip_id"]) == (
        "speeding",
        str(trip["id"]),
    )

    def story_root(spans: list[ReceivedSpan]) -> ReceivedSpan | None:
        """Ingest's server span of the upload, found by its correlation ID."""
        for span in spans:
            if span.kind == "server" and span.attributes.get(REQUEST_ID) == request_id:
                return span
        return None

    def complete(spans: list[ReceivedSpan]) -> bool:
        """Every span of the story received: each process exports a span after its children,
        so with the last ones present and none missing its parent, the trace is whole."""
        root = story_root(spans)
        if root is None:
            return False
        story = [span for span in spans if span.trace_id == root.trace_id]
        ids = {span.span_id for span in story}
        names = [span.name for span in story]
        return (
            {"process deliver_webhook", "POST"} <= set(names)
            and names.count(f"deliver {ALERTS}") == 2
            and all(span.is_root or span.parent_span_id in ids for span in story)
            # The streams are closed: the SSE request's own server span has ended too.
            and any(span.name == "GET /v1/alerts/stream" for span in spans)
        )

    root = story_root(trace_collector.wait_for(complete, timeout=WAIT))
    assert root is not None
    spans = trace_collector.trace(root.trace_id)
    trace_id = root.trace_id
    by_id = {span.span_id: span for span in spans}

    # One trace, one root: ingest's server span, which the device's request started.
    assert (root.service, root.name, root.is_root) == ("ingest", "POST /v1/telemetry", True)
    assert root.attributes["http.route"] == "/v1/telemetry"
    assert root.attributes["http.response.status_code"] == 202
    assert [span for span in spans if span.is_root] == [root]
    orphans = [s.name for s in spans if not s.is_root and s.parent_span_id not in by_id]
    assert orphans == [], "spans whose parent is not in the trace"
    assert {span.service for span in spans} == {"ingest", "worker", "api"}

    # Ingest stores the batch (its SQL under the request) and enqueues the batch job; the
    # worker's run of it is a child of that enqueue.
    copy = the(children(spans, root), "COPY telemetry_events", "ingest", "client")
    assert copy.attributes["db.system"] == "postgresql"
    enqueue = the(children(spans, root), f"send {queue}", "ingest", "producer")
    assert enqueue.attributes["messaging.arq.job.function"] == "process_batch"
    batch_job = the(spans, "process process_batch", "worker", "consumer")
    assert batch_job.parent_span_id == enqueue.span_id
    assert batch_job.attributes[REQUEST_ID] == request_id
    assert batch_job.attributes["messaging.arq.job.outcome"] == "succeeded"
    statements = [
        span.attributes["db.query.text"]
        for span in children(spans, batch_job)
        if span.attributes.get("db.system") == "postgresql"
    ]
    assert any(text.startswith("INSERT INTO alerts ") for text in statements), statements

    # The job publishes the alert; each stream's delivery in the API is a child of the publish
    # span and links to it, the SSE one also to its stream's own span (in the stream's trace).
    publish = the(children(spans, batch_job), f"publish {ALERTS}", "worker", "producer")
    assert publish.attributes["messaging.message.id"] == alert_id
    deliveries = {
        span.attributes["tripline.stream.transport"]: span
        for span in spans
        if span.name == f"deliver {ALERTS}"
    }
    assert set(deliveries) == {"websocket", "sse"}
    for span in deliveries.values():
        assert (span.service, span.kind) == ("api", "consumer")
        assert span.parent_span_id == publish.span_id
        assert span.attributes["messaging.message.id"] == alert_id
    [stream] = [
        span
        for span in trace_collector.spans
        if span.service == "api" and span.name == "GET /v1/alerts/stream"
    ]
    assert stream.trace_id != trace_id
    assert deliveries["websocket"].links == [(trace_id, publish.span_id)]
    assert deliveries["sse"].links == [
        (trace_id, publish.span_id),
        (stream.trace_id, stream.span_id),
    ]

    # The job enqueues the webhook delivery, whose run POSTs: the receiver continues this trace.
    enqueue_delivery = the(children(spans, batch_job), f"send {queue}", "worker", "producer")
    assert enqueue_delivery.attributes["messaging.arq.job.function"] == "deliver_webhook"
    delivery_job = the(spans, "process deliver_webhook", "worker", "consumer")
    assert delivery_job.parent_span_id == enqueue_delivery.span_id
    assert delivery_job.attributes[REQUEST_ID] == request_id
    post = the(children(spans, delivery_job), "POST", "worker", "client")
    assert post.attributes["http.response.status_code"] == 200
    version, sent_trace, sent_parent, flags = delivery.headers["traceparent"].split("-")
    assert (version, sent_trace, sent_parent) == ("00", trace_id, post.span_id)
    assert int(flags, 16) & 1, "sampled"

    # Every log line of the story carries the trace's ID and the ID of a span of it: the one
    # recording when it was written; the API's push line, written outside any span, the
    # publish span's.
    story = [
        (process.name, line)
        for process in (ingest, worker, api)
        for line in json_lines(process)
        if line.get("request_id") == request_id
    ]
    events = {(name, line["event"]) for name, line in story}
    assert {
        ("ingest", "request"),
        ("ingest", "job_enqueued"),
        ("worker", "alert_raised"),
        ("worker", "batch_processed"),
        ("worker", "webhook_delivered"),
        ("api", "alert_pushed"),
    } <= events, events
    for name, line in story:
        assert line.get("trace_id") == trace_id, (name, line)
        assert line.get("span_id") in by_id, (name, line)
    span_of = {(name, line["event"]): line["span_id"] for name, line in story}
    assert span_of[("ingest", "request")] == root.span_id
    assert span_of[("worker", "alert_raised")] == batch_job.span_id
    assert span_of[("worker", "batch_processed")] == batch_job.span_id
    assert span_of[("worker", "webhook_delivered")] == delivery_job.span_id
    assert span_of[("api", "alert_pushed")] == publish.span_id


@pytest.fixture(params=["down", "slow"])
def failing_collector(request: pytest.FixtureRequest) -> Iterator[str]:
    """The endpoint of a collector that is down (nothing listens on its port) or slow (it
    answers each export `SLOW_COLLECTOR_SECONDS` late, long after the 1 s export timeout)."""
    if request.param == "down":
        yield f"http://127.0.0.1:{free_port()}"
        return
    slow = DevTraceCollector(delay=SLOW_COLLECTOR_SECONDS)
    slow.start()
    try:
        yield slow.endpoint
    finally:
        slow.stop()


async def dropped_spans(process: Process) -> dict[str, float]:
    """`tripline_<service>_trace_spans_dropped_total` by reason, from the ops port's /metrics."""
    async with httpx.AsyncClient(timeout=5) as client:
        text = (await client.get(f"{process.ops_url}/metrics")).raise_for_status().text
    name = f"tripline_{process.name}_trace_spans_dropped_total"
    return {
        sample.labels["reason"]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    }


@pytest.mark.slow
async def test_a_collector_that_is_down_or_slow_changes_nothing_for_the_upload_and_its_alert(
    processes, process_env, webhook_receiver, failing_collector
) -> None:
    traced = tracing_env(failing_collector)
    ingest = processes.start("ingest", "tripline-ingest", **traced)
    worker = processes.start("worker", "tripline-worker", **FAST_WORKER, **traced)
    seed(process_env)
    await start_demo_trip(process_env["DATABASE_URL"], webhook_receiver.url)
    processes.wait_ready(ingest)
    processes.wait_ready(worker)

    request_id = f"untraced-{uuid.uuid4().hex}"
    response = await upload(ingest, request_id)  # Within its deadline: never held by a span.
    assert response.status_code == 202, response.text
    [delivery] = await wait_for(
        lambda: _async(webhook_receiver.delivered()), WAIT, "the webhook delivery"
    )
    alert = json.loads(delivery.body)["alert"]
    assert (alert["rule"], alert["request_id"]) == ("speeding", request_id)
    # The spans were made (the POST carried one's context), then lost, and counted.
    assert delivery.headers["traceparent"].startswith("00-")

    for process in (ingest, worker):

        async def counted(process: Process = process) -> dict[str, float] | None:
            dropped = await dropped_spans(process)
            return dropped if dropped.get("export_failed", 0) > 0 else None

        dropped = await wait_for(counted, WAIT, f"{process.name}'s failed exports counted")
        assert dropped["queue_full"] == 0, process.name


async def _async(value: Any) -> Any:
    return value
