"""The one switch of the client spans: SQL, Redis, the alert channel and outgoing webhooks.

`instrument_clients(provider)` is called once per process by the tracing set-up, after it has
installed a tracer provider; until then nothing is wrapped and the explicit spans are skipped.
It lives on the data floor because it reaches down into messaging (Redis, pub/sub) and up to
nothing: the worker's webhook POST reads the same switch (`platform.client_spans`).
"""

from __future__ import annotations

from opentelemetry.trace import TracerProvider

from tripline_common.data.sql_spans import instrument_postgres, uninstrument_postgres
from tripline_common.messaging.redis_spans import instrument_redis, uninstrument_redis
from tripline_common.platform.client_spans import disable_client_spans, enable_client_spans


def instrument_clients(tracer_provider: TracerProvider) -> None:
    """Make client spans with `tracer_provider`: one per SQL statement (ORM and raw pool), per
    Redis command or pipeline, per alert publish and stream delivery, per webhook POST."""
    instrument_postgres(tracer_provider)
    instrument_redis(tracer_provider)
    enable_client_spans(tracer_provider)


def uninstrument_clients() -> None:
    """Undo `instrument_clients`: the originals back, no client spans."""
    disable_client_spans()
    uninstrument_redis()
    uninstrument_postgres()
