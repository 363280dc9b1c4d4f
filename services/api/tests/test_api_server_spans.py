"""The API's hot authenticated read, traced: one SERVER span named by its route template, with
the HTTP attributes and the correlation ID, continuing the caller's trace (`spans` fixture)."""

from __future__ import annotations

from opentelemetry.trace import SpanKind, StatusCode
from trip_factories import trip_body

CALLER_TRACE = "0af7651916cd43dd8448eb211c80319c"
CALLER_SPAN = "b7ad6b7169203331"


async def test_an_authenticated_trip_read_makes_one_server_span_in_the_callers_trace(
    spans, client, headers
) -> None:
    created = await client.post("/v1/trips", json=trip_body(), headers=headers)
    assert created.status_code == 201, created.text
    trip_id = created.json()["id"]
    spans.clear()

    response = await client.get(
        f"/v1/trips/{trip_id}",
        headers={
            **headers,
            "X-Request-ID": "rid-trip-read",
            "traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-01",
        },
    )
    assert response.status_code == 200, response.text

    [span] = [s for s in spans.finished() if s.kind is SpanKind.SERVER]
    assert span.name == "GET /v1/trips/{trip_id}"
    attributes = dict(span.attributes or {})
    assert attributes["http.route"] == "/v1/trips/{trip_id}"
    assert attributes["url.path"] == f"/v1/trips/{trip_id}"
    assert attributes["http.request.method"] == "GET"
    assert attributes["http.response.status_code"] == 200
    assert attributes["tripline.request_id"] == "rid-trip-read"
    assert span.status.status_code is StatusCode.UNSET
    assert format(span.context.trace_id, "032x") == CALLER_TRACE
    assert span.parent is not None and format(span.parent.span_id, "016x") == CALLER_SPAN


async def test_the_app_shows_the_reads_sql_as_one_span_per_statement_under_its_server_span(
    spans, client, headers
) -> None:
    # `create_app` turned the client spans on, since tracing is on (`spans`).
    created = await client.post("/v1/trips", json=trip_body(), headers=headers)
    trip_id = created.json()["id"]
    spans.clear()

    response = await client.get(f"/v1/trips/{trip_id}", headers=headers)
    assert response.status_code == 200, response.text

    finished = spans.finished()
    [server] = [s for s in finished if s.kind is SpanKind.SERVER]
    sql = [s for s in finished if (s.attributes or {}).get("db.system.name") == "postgresql"]
    # The hot read is one statement: the trip and the session check in one query.
    assert len(sql) == 1, [s.name for s in sql]
    assert sql[0].kind is SpanKind.CLIENT
    assert sql[0].parent is not None and sql[0].parent.span_id == server.context.span_id
