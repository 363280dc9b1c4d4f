"""Webhook signatures: how Tripline signs each delivery and how a receiver verifies it.

A delivery is a POST whose headers carry a Unix timestamp and an HMAC-SHA256, keyed with the
endpoint's secret, over `f"{timestamp}.{body}"` (the raw body bytes, before any JSON parsing).
Signing the timestamp with the body lets a receiver refuse replays of an old delivery.
The recipe, for receivers in any language, is in docs/operations.md ("Webhooks").
Headers outside the signed message (`traceparent`, added by `webhook_request_span`) leave
signatures unchanged.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Iterator, MutableMapping, Sequence
from contextlib import contextmanager
from urllib.parse import urlsplit

from opentelemetry import propagate
from opentelemetry.trace import INVALID_SPAN, Span, SpanKind

from tripline_common.platform.client_spans import client_tracer

SIGNATURE_HEADER = "X-Tripline-Signature"
"""`v1=<hex HMAC-SHA256>`; several comma-separated values while a secret is being rotated."""
TIMESTAMP_HEADER = "X-Tripline-Timestamp"
"""Unix time (seconds) of the attempt; part of the signed message."""
DELIVERY_HEADER = "X-Tripline-Delivery"
"""The delivery's ID: the same on every retry, so a receiver can ignore duplicates."""
EVENT_HEADER = "X-Tripline-Event"
"""What happened, e.g. `alert.raised`."""
REQUEST_ID_HEADER = "X-Request-ID"
"""The correlation ID of the request that led to the event."""

SIGNATURE_SCHEME = "v1"
DEFAULT_TOLERANCE_SECONDS = 300
"""How far a delivery's timestamp may be from the receiver's clock (replay window)."""


def new_webhook_secret() -> str:
    """A fresh signing secret for an endpoint (shown to its owner once)."""
    return "whsec_" + secrets.token_urlsafe(32)


def compute_signature(secret: str, timestamp: int, body: bytes) -> str:
    """`v1=` and the hex HMAC-SHA256 of `{timestamp}.{body}` keyed with `secret`."""
    message = str(timestamp).encode() + b"." + body
    digest = hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
    return f"{SIGNATURE_SCHEME}={digest}"


def signature_headers(
    secret: str,
    body: bytes,
    *,
    timestamp: int | None = None,
    previous_secrets: Sequence[str] = (),
) -> dict[str, str]:
    """The timestamp and signature headers of one delivery attempt.

    While a secret is being rotated, the signature header carries one `v1=` value per secret,
    the current one first (`v1=<new>,v1=<old>`): a receiver that still knows only the old
    secret, and one that already has the new, both find a value they can verify."""
    ts = int(time.time()) if timestamp is None else timestamp
    values = [compute_signature(secret, ts, body)]
    values += [compute_signature(old, ts, body) for old in previous_secrets if old != secret]
    return {TIMESTAMP_HEADER: str(ts), SIGNATURE_HEADER: ",".join(values)}


def verify_signature(
    secret: str,
    body: bytes,
    timestamp: str | None,
    signature: str | None,
    *,
    tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> bool:
    """True when `signature` (the header's value) signs `body` at `timestamp` with `secret`,
    and `timestamp` is within `tolerance_seconds` of now. Compares in constant time."""
    if not timestamp or not signature or not timestamp.isdigit():
        return False
    ts = int(timestamp)
    current = time.time() if now is None else now
    if abs(current - ts) > tolerance_seconds:
        return False
    expected = compute_signature(secret, ts, body)
    return any(
        hmac.compare_digest(expected, candidate.strip()) for candidate in signature.split(",")
    )


@contextmanager
def webhook_request_span(url: str, headers: MutableMapping[str, str]) -> Iterator[Span]:
    """A client span around one webhook POST to `url`, whose `traceparent` (and `tracestate`)
    go into `headers`, so the receiver can continue the trace. Yields the span, for the
    caller to record the answer's status or the error; the invalid, non-recording span when
    client spans are off (nothing is added to `headers` then).

    The span names the receiver by scheme, host and port only (no `url.full`): a webhook URL's
    path or query often holds the receiver's own secret token."""
    tracer = client_tracer()
    if tracer is None:
        yield INVALID_SPAN
        return
    target = urlsplit(url)
    attributes: dict[str, str | int] = {
        "http.request.method": "POST",
        "url.scheme": target.scheme,
        "server.address": target.hostname or "",
        "server.port": target.port or (443 if target.scheme == "https" else 80),
    }
    with tracer.start_as_current_span(
        "POST", kind=SpanKind.CLIENT, attributes=attributes, record_exception=False
    ) as span:
        propagate.inject(headers)
        yield span
