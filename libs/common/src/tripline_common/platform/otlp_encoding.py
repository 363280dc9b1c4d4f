"""Finished spans as an OTLP export request built in place, and the OTLP/HTTP exporter sending it.

The SDK's encoder (`opentelemetry.exporter.otlp.proto.common.trace_encoder.encode_spans`) builds
every nested message on its own and hands it to its parent, and protobuf's upb backend copies a
message handed over like that, at every level. `encode_spans` here adds each message where it
belongs (`spans.add()`, `attributes.add()`) and sets its fields there: the same request, field for
field and in the same order (`libs/common/tests/test_otlp_encoding.py`), for about a third of
the CPU (`scripts/bench_otlp_encoding.py`, docs/performance.md "What tracing costs").
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.exporter.otlp.proto.http._common import (
    RequestPayloadTooLargeError,
    _is_request_too_large,
)
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.semconv.attributes.http_attributes import HTTP_RESPONSE_STATUS_CODE
from opentelemetry.trace import SpanContext, SpanKind, StatusCode

# The exporter's logger: its lines read the same whichever `export` wrote them.
_logger = logging.getLogger("opentelemetry.exporter.otlp.proto.http.trace_exporter")
_encoder_logger = logging.getLogger("opentelemetry.exporter.otlp.proto.common._internal")

# OTLP numbers its span kinds from 1 (0 is "unspecified"), the API from 0.
_KINDS = {kind: kind.value + 1 for kind in SpanKind}
_STATUS_CODES = {code: code.value for code in StatusCode}
_HAS_IS_REMOTE = 0x100  # SpanFlags.SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK
_IS_REMOTE = 0x200  # SpanFlags.SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK


def _set_value(target: AnyValue, value: Any) -> None:
    """`value` into the empty `target`, as the SDK's `_encode_value` encodes it."""
    kind = type(value)
    if kind is str:
        target.string_value = value
    elif kind is bool:
        target.bool_value = value
    elif kind is int:
        target.int_value = value
    elif kind is float:
        target.double_value = value
    else:
        _set_other_value(target, value)


def _set_other_value(target: AnyValue, value: Any) -> None:
    # The SDK's order of checks, so that a subclass (an IntEnum, a str subclass) lands where
    # the SDK puts it.
    if value is None:
        target.SetInParent()
    elif isinstance(value, bool):
        target.bool_value = value
    elif isinstance(value, str):
        target.string_value = value
    elif isinstance(value, int):
        target.int_value = value
    elif isinstance(value, float):
        target.double_value = value
    elif isinstance(value, bytes):
        target.bytes_value = value
    elif isinstance(value, Sequence):
        array = target.array_value
        array.SetInParent()
        add_item = array.values.add
        for item in value:
            _set_value(add_item(), item)
    elif isinstance(value, Mapping):
        kvlist = target.kvlist_value
        kvlist.SetInParent()
        add_pair = kvlist.values.add
        for key, item in value.items():
            added = add_pair()
            added.key = str(key)
            _set_value(added.value, item)
    else:
        raise TypeError(f"Invalid type {type(value)} of value {value}")


def _add_attributes(target: Any, attributes: Mapping[str, Any] | None) -> None:
    """Each attribute as a `KeyValue` added to the repeated field `target`; one that cannot be
    encoded is logged and left out, as the SDK does."""
    if not attributes:
        return
    add = target.add
    # The SDK keeps attributes in a `BoundedAttributes`, whose `items()` is the ABC's, a Python
    # call per key; the dict inside it is read directly (a finished span's no longer changes).
    plain = getattr(attributes, "_dict", attributes)
    for key, value in plain.items():
        added = None
        try:
            added = add()
            added.key = key
            value_of = added.value
            kind = type(value)  # `_set_value`, inlined: this runs for every attribute.
            if kind is str:
                value_of.string_value = value
            elif kind is bool:
                value_of.bool_value = value
            elif kind is int:
                value_of.int_value = value
            elif kind is float:
                value_of.double_value = value
            else:
                _set_other_value(value_of, value)
        except Exception as error:
            if added is not None:
                del target[-1]
            _encoder_logger.exception("Failed to encode key %s: %s", key, error)


def _flags(context: SpanContext | None) -> int:
    if context is not None and context.is_remote:
        return _HAS_IS_REMOTE | _IS_REMOTE
    return _HAS_IS_REMOTE


def encode_spans(spans: Sequence[ReadableSpan]) -> ExportTraceServiceRequest:
    """The OTLP export request of `spans`, equal to the SDK's `encode_spans(spans)`: grouped by
    resource, then by instrumentation scope, each group where its first span put it."""
    request = ExportTraceServiceRequest()
    groups: dict[Resource, tuple[Any, dict[InstrumentationScope | None, Any]]] = {}
    last_resource: Resource | None = None
    last_scope: InstrumentationScope | None = None
    add_span = None
    for sdk_span in spans:
        resource = sdk_span.resource
        scope = sdk_span.instrumentation_scope or None
        # A batch is mostly one resource and a few scopes: the dictionaries (which hash the
        # resource and the scope) are only asked when either changes from the span before.
        if add_span is None or resource is not last_resource or scope is not last_scope:
            add_span = _scope_spans(request, groups, resource, scope).spans.add
            last_resource, last_scope = resource, scope
        span = add_span()
        context = sdk_span.context
        span.trace_id = context.trace_id.to_bytes(16, "big")
        span.span_id = context.span_id.to_bytes(8, "big")
        trace_state = context.trace_state
        if trace_state:
            span.trace_state = ",".join(f"{key}={value}" for key, value in trace_state.items())
        parent = sdk_span.parent
        if parent:
            span.parent_span_id = parent.span_id.to_bytes(8, "big")
        span.name = sdk_span.name
        span.kind = _KINDS[sdk_span.kind]
        span.start_time_unix_nano = sdk_span.start_time or 0
        span.end_time_unix_nano = sdk_span.end_time or 0
        # `attributes` would wrap them in a `MappingProxyType`, hiding the dict in them.
        _add_attributes(span.attributes, sdk_span._attributes)
        for event in sdk_span.events:
            added = span.events.add(
                time_unix_nano=event.timestamp,
                name=event.name,
                dropped_attributes_count=event.dropped_attributes,
            )
            _add_attributes(added.attributes, event.attributes)
        for link in sdk_span.links:
            linked = link.context
            added = span.links.add(
                trace_id=linked.trace_id.to_bytes(16, "big"),
                span_id=linked.span_id.to_bytes(8, "big"),
                dropped_attributes_count=link.dropped_attributes,
                flags=_flags(linked),
            )
            _add_attributes(added.attributes, link.attributes)
        status = sdk_span.status
        if status is not None:
            span_status = span.status  # Present, as the SDK's, once a field is set, even to 0.
            span_status.code = _STATUS_CODES[status.status_code]
            if status.description:
                span_status.message = status.description
        span.dropped_attributes_count = sdk_span.dropped_attributes
        span.dropped_events_count = sdk_span.dropped_events
        span.dropped_links_count = sdk_span.dropped_links
        span.flags = _flags(parent)
    return request


def _scope_spans(
    request: ExportTraceServiceRequest,
    groups: dict[Resource, tuple[Any, dict[InstrumentationScope | None, Any]]],
    resource: Resource,
    scope: InstrumentationScope | None,
) -> Any:
    """The `ScopeSpans` of `resource` and `scope` in `request`, added (with its `ResourceSpans`
    when the resource is new) at its first span."""
    group = groups.get(resource)
    if group is None:
        resource_spans = request.resource_spans.add()
        resource_spans.resource.SetInParent()
        _add_attributes(resource_spans.resource.attributes, resource.attributes)
        if resource.schema_url:
            resource_spans.schema_url = resource.schema_url
        group = groups[resource] = (resource_spans, {})
    resource_spans, scopes = group
    scope_spans = scopes.get(scope)
    if scope_spans is None:
        scope_spans = scopes[scope] = resource_spans.scope_spans.add()
        scope_spans.scope.SetInParent()
        if scope is not None:
            scope_spans.scope.name = scope.name
            if scope.version:
                scope_spans.scope.version = scope.version
            _add_attributes(scope_spans.scope.attributes, scope.attributes)
            if scope.schema_url:
                scope_spans.schema_url = scope.schema_url
    return scope_spans


class InPlaceOTLPSpanExporter(OTLPSpanExporter):
    """The SDK's OTLP/HTTP span exporter (its transport, retries, headers, TLS, compression,
    size limit and metrics), encoding each batch with `encode_spans` above.

    `export` takes the same steps as `OTLPSpanExporter.export` of the pinned SDK
    (opentelemetry-exporter-otlp-proto-http 1.45, uv.lock), which has no seam for its encoder:
    a shut-down exporter refuses the batch; the rest runs inside the exporter metrics'
    `export_operation`, the encoding, the request size check, then `self._client.export`.
    Upgrading the SDK means reading its `export` again:
    `libs/common/tests/test_otlp_encoding.py` sends the same batches through both exporters
    to a real receiver and fails when what arrives, what is returned, logged or counted differs.
    """

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._shutdown:
            _logger.warning("Exporter already shutdown, ignoring batch")
            return SpanExportResult.FAILURE
        with self._metrics.export_operation(len(spans)) as result:
            try:
                body = encode_spans(spans).SerializePartialToString()
            except Exception as error:
                _logger.error("Failed to encode span batch: %s", error)
                result.error = error
                return SpanExportResult.FAILURE
            if _is_request_too_large(body, self._max_request_size):
                _logger.warning(
                    "Dropping span batch: serialized size %d bytes exceeds max_request_size "
                    "%d bytes.",
                    len(body),
                    self._max_request_size,
                )
                result.error = RequestPayloadTooLargeError(
                    f"Serialized span request size {len(body)} bytes exceeds max_request_size "
                    f"{self._max_request_size} bytes."
                )
                return SpanExportResult.FAILURE
            sent = self._client.export(body)
            if not sent.success:
                result.error = sent.error
                result.error_attrs = (
                    {HTTP_RESPONSE_STATUS_CODE: sent.status_code}
                    if sent.status_code is not None
                    else None
                )
                return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS
