"""`tracing.start_server_span`: a new trace under a ratio sampler is kept or dropped exactly as
the SDK's sampler would decide on its trace ID, at the configured ratio; a propagated parent's
decision is followed; other samplers decide through the SDK."""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import Decision, TraceIdRatioBased
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from tripline_common.platform import Tracing, init_tracing
from tripline_common.platform.tracing import start_server_span

ROOTS = 2_000


@contextmanager
def tracing(
    sampler: str, ratio: str | None = None
) -> Iterator[tuple[Tracing, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    environ = {"OTEL_TRACES_SAMPLER": sampler}
    if ratio is not None:
        environ["OTEL_TRACES_SAMPLER_ARG"] = ratio
    installed = init_tracing("test", environ=environ, exporter=exporter)
    assert installed is not None
    try:
        yield installed, exporter
    finally:
        installed.shutdown()


def new_roots(count: int) -> list[tuple[trace.Span, bool]]:
    """`count` new traces' server spans, ended, each with whether it recorded (an ended span
    no longer says)."""
    made = []
    for _ in range(count):
        span = start_server_span("GET", None)
        made.append((span, span.is_recording()))
        span.end()
    return made


@pytest.mark.parametrize("sampler", ["parentbased_traceidratio", "traceidratio"])
def test_a_new_trace_is_kept_exactly_when_the_sdks_sampler_keeps_its_trace_id(
    sampler: str,
) -> None:
    oracle = TraceIdRatioBased(0.5)
    with tracing(sampler, "0.5") as (installed, exporter):
        made = new_roots(400)
        installed.flush()
        exported = {span.context.trace_id for span in exporter.get_finished_spans()}
    kept = {span.get_span_context().trace_id for span, recorded in made if recorded}
    assert 0 < len(kept) < len(made)
    for span, recorded in made:
        context = span.get_span_context()
        assert context.is_valid and not context.is_remote
        decision = oracle.should_sample(None, context.trace_id, "GET").decision
        assert recorded is (decision is Decision.RECORD_AND_SAMPLE)
        assert context.trace_flags.sampled is recorded
    assert exported == kept


@pytest.mark.parametrize("ratio", [0.1, 0.5])
def test_new_traces_are_kept_at_the_configured_ratio(ratio: float) -> None:
    # Had the SDK drawn a second trace ID for a trace kept on the first, its sampler would keep
    # ratio² of them. Seeded: the IDs come from `random`, as the SDK's own do.
    random.seed(13)
    with tracing("parentbased_traceidratio", str(ratio)):
        kept = sum(recorded for _, recorded in new_roots(ROOTS))
    spread = 4 * (ROOTS * ratio * (1 - ratio)) ** 0.5  # Four standard deviations.
    assert abs(kept - ROOTS * ratio) < spread


@pytest.mark.parametrize("sampled", [True, False])
def test_a_propagated_parent_decides_for_its_child(sampled: bool) -> None:
    parent_context = SpanContext(
        0x4BF92F3577B34DA6A3CE929D0E0E4736,
        0x00F067AA0BA902B7,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT),
    )
    parent = trace.set_span_in_context(NonRecordingSpan(parent_context))
    with tracing("parentbased_traceidratio", "0"):
        span = start_server_span("GET", parent)
        assert span.is_recording() is sampled
        span.end()
    assert span.get_span_context().trace_id == parent_context.trace_id


@pytest.mark.parametrize(
    ("sampler", "recorded"),
    [("always_on", ROOTS), ("parentbased_always_on", ROOTS), ("always_off", 0)],
)
def test_the_other_samplers_decide_through_the_sdk(sampler: str, recorded: int) -> None:
    with tracing(sampler) as (installed, exporter):
        made = new_roots(ROOTS)
        installed.flush()
        assert len(exporter.get_finished_spans()) == recorded
    assert sum(was_recording for _, was_recording in made) == recorded
