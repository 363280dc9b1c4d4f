"""Client spans of SQL, Redis and the alert channel, on real Postgres and Redis.

A span budget: one span per statement whichever path runs it (the ORM on asyncpg, the raw
pool, COPY), one per Redis command, one per publish; none outside a trace, and nothing wrapped
while the client spans are off.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags
from redis.asyncio import Redis
from sqlalchemy import func, select
from sqlmodel import col

from tests.support.alerts import alert_event
from tests.support.tracing import SpanRecorder, recording_spans
from tripline_common.data import create_engine, create_pg_pool, create_session_factory
from tripline_common.data.models import User
from tripline_common.data.sql_spans import describe_statement
from tripline_common.messaging import (
    AlertEvent,
    listen_alerts,
    publish_alert,
    published_trace_ids,
)
from tripline_common.messaging.pubsub import alert_channel
from tripline_common.platform.client_spans import client_tracer

SECRET_EMAIL = "Secret.Person@example.com"


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url, socket_timeout=0.5)
    yield client
    await client.aclose()


def sql_spans(spans: SpanRecorder) -> list[ReadableSpan]:
    return [
        span
        for span in spans.finished()
        if (span.attributes or {}).get("db.system.name") == "postgresql"
    ]


def child_of(span: ReadableSpan, parent: ReadableSpan) -> bool:
    return span.parent is not None and span.parent.span_id == parent.context.span_id


async def test_an_orm_query_in_a_trace_makes_exactly_one_sql_span(
    make_settings: Callable[..., Any], spans: SpanRecorder
) -> None:
    # The real engine: the pool's pre-ping (BEGIN; ";"; ROLLBACK) runs at every checkout.
    engine = create_engine(make_settings())
    factory = create_session_factory(engine)
    try:
        async with factory() as session:  # Connect outside the trace: the dialect's set-up.
            await session.scalar(select(func.count()).select_from(User))
        spans.clear()
        with spans.tracer.start_as_current_span("request"):
            async with factory() as session:
                await session.scalar(
                    select(User).where(func.lower(col(User.email)) == SECRET_EMAIL.lower())
                )
    finally:
        await engine.dispose()

    [request] = spans.named("request")
    [statement] = sql_spans(spans)
    assert child_of(statement, request) and statement.kind is SpanKind.CLIENT
    attributes = statement.attributes or {}
    database = make_settings().database_url.rsplit("/", 1)[1]
    assert statement.name == f"SELECT {database}"
    assert attributes["db.system"] == "postgresql"
    assert attributes["db.namespace"] == database
    assert attributes["db.operation.name"] == "SELECT"
    assert "FROM users" in str(attributes["db.query.text"])
    assert "$1" in str(attributes["db.query.text"])
    assert SECRET_EMAIL.lower() not in str(attributes)
    assert len(spans.finished()) == 2  # The request and its one statement.


async def test_a_raw_pool_query_in_a_trace_makes_exactly_one_sql_span_without_its_literals(
    make_settings: Callable[..., Any], spans: SpanRecorder
) -> None:
    pool = await create_pg_pool(make_settings())
    try:
        with spans.tracer.start_as_current_span("request"):
            value = await pool.fetchval("SELECT $1::text || 'literal-secret' || 42", "param")
    finally:
        await pool.close()

    assert value == "paramliteral-secret42"
    [request] = spans.named("request")
    [statement] = sql_spans(spans)
    assert child_of(statement, request)
    assert statement.attributes is not None
    assert statement.attributes["db.operation.name"] == "SELECT"
    assert statement.attributes["db.query.text"] == "SELECT $1::text || ? || ?"
    assert "param" not in str(statement.attributes)
    assert len(spans.finished()) == 2


async def test_a_copy_makes_one_span_naming_its_table(
    raw_connection: Any, spans: SpanRecorder
) -> None:
    await raw_connection.execute("CREATE TEMP TABLE copied (n int, label text)")
    with spans.tracer.start_as_current_span("upload"):
        await raw_connection.copy_records_to_table(
            "copied", records=[(1, "one"), (2, "two")], columns=["n", "label"]
        )
    [copy] = sql_spans(spans)
    assert copy.name == "COPY copied"
    assert copy.attributes is not None
    assert copy.attributes["db.operation.name"] == "COPY"
    assert copy.attributes["db.collection.name"] == "copied"
    assert "one" not in str(copy.attributes)


async def test_a_failed_statement_marks_its_span_with_the_error_type_only(
    raw_connection: Any, spans: SpanRecorder
) -> None:
    with (
        spans.tracer.start_as_current_span("request"),
        pytest.raises(asyncpg.UndefinedTableError),
    ):
        await raw_connection.fetchval("SELECT n FROM no_such_table WHERE n = $1", 1)
    [statement] = sql_spans(spans)
    assert statement.attributes is not None
    assert statement.attributes["error.type"] == "UndefinedTableError"
    assert not statement.status.is_ok
    assert statement.events == ()  # The message, which can quote values, is not recorded.


async def test_statements_outside_a_trace_make_no_span(
    raw_connection: Any, spans: SpanRecorder
) -> None:
    await raw_connection.fetchval("SELECT 1")
    assert spans.finished() == []


def test_the_statement_text_keeps_parameters_and_names_and_replaces_literals() -> None:
    assert describe_statement(
        "/* hint */ select t1.a FROM t1 WHERE b = 'it''s' AND c > 3.5e2 AND d = $12 LIMIT 10"
    ) == ("SELECT", "/* hint */ select t1.a FROM t1 WHERE b = ? AND c > ? AND d = $12 LIMIT ?")
    assert describe_statement("BEGIN ISOLATION LEVEL READ COMMITTED;")[0] == "BEGIN"
    assert describe_statement(";")[0] == ""


async def test_a_redis_command_and_a_pipeline_in_a_trace_make_one_span_each(
    redis: Redis, spans: SpanRecorder
) -> None:
    key = f"spans:{uuid.uuid4()}"
    with spans.tracer.start_as_current_span("request"):
        await redis.set(key, "secret-value", ex=60)
        async with redis.pipeline(transaction=True) as pipe:
            await pipe.incr(key + ":n").expire(key + ":n", 60).execute()
    await redis.get(key)  # Outside the trace: no span.

    [request] = spans.named("request")
    commands = [span for span in spans.finished() if span is not request]
    assert [span.name for span in commands] == ["SET", "INCRBY EXPIRE"]
    assert all(child_of(span, request) for span in commands)
    set_span = commands[0]
    assert set_span.attributes is not None
    assert set_span.attributes["db.system"] == "redis"
    assert set_span.attributes["db.operation.name"] == "SET"
    assert "secret-value" not in str(set_span.attributes)


async def next_received(redis: Redis, owner_id: uuid.UUID) -> asyncio.Future[AlertEvent]:
    listener = listen_alerts(redis, owner_id=owner_id)
    first: asyncio.Future[AlertEvent] = asyncio.ensure_future(anext(listener))
    first.add_done_callback(lambda _: asyncio.ensure_future(listener.aclose()))
    channel = alert_channel(owner_id)
    for _ in range(100):
        if dict(await redis.pubsub_numsub(channel)).get(channel.encode()):
            return first
        await asyncio.sleep(0.02)
    raise AssertionError("the listener never subscribed")


async def test_a_publish_makes_one_producer_span_whose_context_travels_beside_the_event(
    redis: Redis, spans: SpanRecorder
) -> None:
    owner_id = uuid.uuid4()
    event = alert_event(owner_id)
    received = await next_received(redis, owner_id)
    with spans.tracer.start_as_current_span("job"):
        # At least ours: another test's or process's pattern listener on this Redis counts too.
        assert await publish_alert(redis, event) >= 1
    message = await asyncio.wait_for(received, 5)

    [job] = spans.named("job")
    [publish] = spans.starting("publish")
    assert publish.name == "publish tripline:alerts:{owner_id}"
    assert publish.kind is SpanKind.PRODUCER and child_of(publish, job)
    assert publish.attributes is not None
    assert publish.attributes["messaging.destination.name"] == alert_channel(owner_id)
    assert publish.attributes["messaging.message.id"] == str(event.alert.id)
    assert len(spans.finished()) == 2  # No PUBLISH command span under the publish span.
    assert message.trace_context is not None
    _, trace_id, parent_id, _ = message.trace_context["traceparent"].split("-")
    assert (trace_id, parent_id) == (
        f"{publish.context.trace_id:032x}",
        f"{publish.context.span_id:016x}",
    )
    # A log line about the received event (the API's `alert_pushed`) shows in that trace.
    assert published_trace_ids(message) == {"trace_id": trace_id, "span_id": parent_id}
    # What clients are sent is the event's own bytes; an older listener reads the same event.
    assert message.to_json() == event.to_json()


async def test_an_event_published_without_tracing_reads_the_same_with_no_trace_context(
    redis: Redis,
) -> None:
    owner_id = uuid.uuid4()
    event = alert_event(owner_id)
    received = await next_received(redis, owner_id)
    assert client_tracer() is None
    await publish_alert(redis, event)
    message = await asyncio.wait_for(received, 5)
    assert message.trace_context is None
    assert published_trace_ids(message) == {}
    assert message.to_json() == event.to_json()


async def test_a_listener_of_the_previous_version_reads_a_traced_message_as_the_event(
    redis: Redis, spans: SpanRecorder
) -> None:
    owner_id = uuid.uuid4()
    event = alert_event(owner_id)
    pubsub = redis.pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe(alert_channel(owner_id))
    try:
        with spans.tracer.start_as_current_span("job"):
            await publish_alert(redis, event)
        message = None
        for _ in range(50):
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.1)
            if message is not None:
                break
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call]
    assert message is not None
    assert b'"trace_context":{"traceparent":' in message["data"]
    # What the previous listener did with it: `AlertEvent.model_validate_json`.
    assert AlertEvent.model_validate_json(message["data"]).to_json() == event.to_json()


async def test_without_instrument_clients_nothing_is_wrapped_and_no_span_is_made(
    raw_connection: Any, redis: Redis
) -> None:
    for method in (
        asyncpg.Connection.execute,
        asyncpg.Connection.fetchrow,
        asyncpg.Connection.copy_records_to_table,
        asyncpg.prepared_stmt.PreparedStatement.fetch,
    ):
        assert "/asyncpg/" in method.__code__.co_filename, method  # asyncpg's own code.
    assert not hasattr(Redis.execute_command, "__wrapped__")
    assert client_tracer() is None
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with provider.get_tracer("tests").start_as_current_span("request"):
        await raw_connection.fetchval("SELECT 1")
        await redis.get("spans:nothing")
    assert [span.name for span in exporter.get_finished_spans()] == ["request"]


def test_turning_the_client_spans_off_puts_the_originals_back() -> None:
    original = asyncpg.Connection.__dict__["fetchrow"]
    with recording_spans():
        assert asyncpg.Connection.__dict__["fetchrow"] is not original
        assert "/asyncpg/" not in asyncpg.Connection.fetchrow.__code__.co_filename
        assert hasattr(Redis.execute_command, "__wrapped__")
    assert asyncpg.Connection.__dict__["fetchrow"] is original
    assert not hasattr(Redis.execute_command, "__wrapped__")


async def test_statements_and_commands_under_an_unsampled_span_make_no_span(
    raw_connection: Any, redis: Redis
) -> None:
    # A sampler that would record them (not parent-based): only the client spans' own rule
    # keeps them out.
    with recording_spans(sampler="always_on") as spans:
        unsampled = NonRecordingSpan(
            SpanContext(trace_id=0x1234, span_id=0x5678, is_remote=True, trace_flags=TraceFlags(0))
        )
        with trace.use_span(unsampled):
            await raw_connection.fetchval("SELECT 1")
            await redis.get("spans:unsampled")
        with spans.tracer.start_as_current_span("sampled"):
            await raw_connection.fetchval("SELECT 1")
    assert [span.name.split()[0] for span in spans.finished()] == ["SELECT", "sampled"]
