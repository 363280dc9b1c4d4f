"""The traces of `make dev`: where the processes send their spans, and which finished trace
becomes a line of the runner's log (scripts/dev.py runs the stand-in collector)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from tripline_common.messaging import JOBS
from tripline_common.messaging.job_tracing import JOB_ENQUEUED, JOB_FUNCTION
from tripline_common.platform import tracing_config
from tripline_devstack import TraceSummary, redact_url

PERIODIC_JOBS = frozenset(spec.name for spec in JOBS.values() if spec.periodic)

# Dev only, and only with the runner's own collector: every trace that starts here is kept
# (the default sampler keeps one in ten: docs/operations.md, "Tracing"), and each process sends
# its finished spans every 250 ms instead of every 5 s, so a request's line shows up a moment
# after it. Either one set in the environment wins.
STAND_IN_SETTINGS = {
    "OTEL_TRACES_SAMPLER": "parentbased_always_on",
    "OTEL_BSP_SCHEDULE_DELAY": "250",
}


@dataclass(frozen=True)
class TraceSettings:
    """What the environment's `OTEL_*` variables say, read as the processes read them."""

    off: bool
    """OTEL_SDK_DISABLED is true: no process traces, and the runner runs no collector."""
    endpoint: str
    """The URL the processes post spans to; "" when no endpoint is named: the runner's own."""

    @classmethod
    def read(cls, environ: Mapping[str, str]) -> TraceSettings:
        """From `environ` (not `.env`: the processes read the environment only); raises
        `TracingConfigError` for what the processes would refuse to start with."""
        config = tracing_config(environ, "dev", endpoint_required=False)
        return cls(off=config is None, endpoint="" if config is None else config.endpoint)

    @property
    def runs_collector(self) -> bool:
        """True when the runner starts its stand-in collector and points the processes at it."""
        return not self.off and not self.endpoint

    def describe(self, collector_endpoint: str | None) -> str:
        """Where traces go, for the banner."""
        if self.off:
            return "off  (OTEL_SDK_DISABLED)"
        if collector_endpoint is None:
            return f"{redact_url(self.endpoint)}  (configured; nothing is printed here)"
        return (
            f"{collector_endpoint}  (stand-in, every trace kept; finished traces are printed here)"
        )


def stand_in_environment(endpoint: str, environ: Mapping[str, str]) -> dict[str, str]:
    """The variables that point a process at the runner's collector at `endpoint`."""
    settings = {
        name: value
        for name, value in STAND_IN_SETTINGS.items()
        if not environ.get(name, "").strip()
    }
    return {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, **settings}


def is_shown(summary: TraceSummary) -> bool:
    """Whether a finished trace gets a line: every one, except a periodic job's run that handed
    nothing on (no job enqueued, no alert published).

    The crons run every few seconds; a sweep that finds nothing still reads Postgres, so its
    trace has spans, and a line for each would bury the requests (its worker log writes none
    either). A run that did hand work on has a `send` or `publish` span and is shown; a job
    a sweeper enqueued again runs in a trace of its own, shown like every job's.
    """
    root = summary.root
    if root.kind != "consumer" or root.attributes.get(JOB_FUNCTION) not in PERIODIC_JOBS:
        return True
    return any(
        span.kind == "producer" and span.attributes.get(JOB_ENQUEUED) is not False
        for span in summary.spans
    )
