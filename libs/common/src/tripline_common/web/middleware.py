"""The middleware every app shares: one pure-ASGI edge layer, then CORS and GZip.

`EdgeMiddleware` does, around every request, what used to be six stacked layers (correlation
ID, access log, security headers, error envelope, trusted hosts, body size limit) plus the
Prometheus instrumentator's own middleware. Each layer wrapped `send` and re-read the headers,
and on the hot read the stack cost more CPU than FastAPI and the query together
(docs/performance.md); one layer with one `send` wrapper does the same work once.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Mapping
from contextvars import Token
from http import HTTPStatus

import orjson
import sentry_sdk
import structlog
from fastapi import FastAPI, Request, Response
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.trace import StatusCode
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.gzip import GZipMiddleware as StarletteGZipMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tripline_common.platform.correlation import (
    bind_request_id,
    clean_request_id,
    get_request_id,
    new_request_id,
    unbind_request_id,
)
from tripline_common.platform.errors import ErrorResponse, code_for_status, error_response
from tripline_common.platform.metrics import HttpMetrics
from tripline_common.platform.settings import CommonSettings
from tripline_common.platform.tracing import start_server_span, tracing_enabled
from tripline_common.security.ratelimit import Quota, report_quotas, stop_reporting_quotas
from tripline_common.security.secret_fields import holds_secret
from tripline_common.web.docs import DOCS_URL, OPENAPI_URL, REDOC_URL
from tripline_common.web.responses import RaiseSite, takes_body
from tripline_common.web.state import ServiceState

access_log = structlog.get_logger("tripline.access")
error_log = structlog.get_logger("tripline.errors")

# Probes and scrapes would drown the access log and the request metrics, and the kubelet and
# Prometheus address a pod by its IP (their Host header would be refused): they skip all three.
# They are also the only paths of the operations port (OPS_PORT), and absent from PORT.
QUIET_PATHS = frozenset({"/livez", "/readyz", "/startupz", "/metrics"})

# Nor do they, nor the API documents and their assets, make server spans: nobody follows them
# across processes, and a scrape every 15 s would fill the sampled traces.
UNTRACED_PATHS = QUIET_PATHS | {DOCS_URL, REDOC_URL, OPENAPI_URL, "/asyncapi.json"}
UNTRACED_PREFIX = DOCS_URL + "/"  # Swagger UI's assets and OAuth2 redirect.
_PROPAGATION_HEADERS = frozenset({b"traceparent", b"tracestate", b"baggage"})
_NO_CONTEXT = Context()
_KNOWN_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE"}
)

# A JSON API never needs to run scripts, be framed, or load anything.
API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

_Headers = tuple[tuple[bytes, bytes], ...]

EDGE_RAISE_SITES = (
    RaiseSite(
        {
            400: {
                "model": ErrorResponse,
                "description": "The request could not be parsed (a Host header not in "
                "`TRUSTED_HOSTS`, a malformed `Content-Length`).",
            },
            500: {"model": ErrorResponse, "description": "Unexpected error; quote `request_id`."},
        }
    ),
    RaiseSite(
        {
            413: {
                "model": ErrorResponse,
                "description": "`payload_too_large`: the body is larger than `MAX_BODY_BYTES`.",
            }
        },
        applies=takes_body,
    ),
)
"""What `EdgeMiddleware` answers itself, documented on the operations it applies to."""


def _security_headers(csp: str, *, hsts: bool) -> _Headers:
    headers = [
        (b"x-content-type-options", b"nosniff"),
        (b"x-frame-options", b"DENY"),
        (b"referrer-policy", b"no-referrer"),
        (b"cross-origin-opener-policy", b"same-origin"),
        (b"permissions-policy", b"geolocation=(), camera=(), microphone=()"),
        (b"content-security-policy", csp.encode("latin-1")),
    ]
    if hsts:
        headers.append((b"strict-transport-security", b"max-age=63072000; includeSubDomains"))
    return tuple(headers)


class _BodyTooLargeError(Exception):
    pass


class EdgeMiddleware:
    """Outermost layer of every app. For each HTTP request, in order:

    1. **Correlation ID**: keep a well-formed `X-Request-ID`, else make one (a malformed one is
       logged, truncated, and replaced, so a client can never inject log lines); bind it to
       logs, Sentry and jobs; return it on the response.
    2. **Ports**: probes and `/metrics` answer only on `OPS_PORT`, which serves nothing else;
       on `PORT` (the one the Service and Ingress reach) they are a 404. A connection on
       neither port (an in-process test transport) sees every path.
       **Trusted hosts**: a Host header not in `TRUSTED_HOSTS` is a 400 (probes and `/metrics`
       are exempt). Patterns: exact names, `*.example.com`, or `*`.
    3. **Body size**: a declared `Content-Length` over `MAX_BODY_BYTES` is a 413 at once; a
       streamed body is counted and cut off at the limit (the app's answer is replaced by 413).
    4. **Security headers** on every response (errors included), with a Content-Security-
       Policy per path prefix (API docs, console) and the strict API policy elsewhere; headers
       the app set itself are kept. A route whose response model holds a secret field
       (`secret_fields.SecretValue`) answers `Cache-Control: no-store`, whatever it set.
    5. **Error envelope**: an unhandled exception is logged with its stack, reported to Sentry
       once, and answered 500 in the shared shape; plain-text errors from Starlette's own
       middleware (a refused CORS preflight) are rewritten into the shared shape.
    6. **Access log** (one line per request) and **RED metrics** labelled by route template.
    7. **Server span**, while tracing is on (`tracing.init_tracing`): continues the caller's
       W3C `traceparent`/`tracestate`/`baggage`, named by the route template
       (`GET /v1/trips/{trip_id}`) with the HTTP semantic-convention attributes and the
       correlation ID (`tripline.request_id`); an error status on 5xx only. Probes,
       `/metrics` and the API documents make none.

    WebSockets get the correlation ID and the host check (refused before the handshake).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        settings: CommonSettings,
        metrics: HttpMetrics | None = None,
        csp_by_prefix: Mapping[str, str] | None = None,
        default_csp: str = API_CSP,
    ) -> None:
        self.app = app
        self.metrics = metrics
        # Bound once: structlog's lazy module-level proxy would assemble a logger per call.
        self.access_log = access_log.bind() if settings.access_log else None
        self.max_bytes = settings.max_body_bytes
        self.public_port = settings.port
        self.ops_port = settings.ops_port
        hosts = list(settings.trusted_hosts)
        self.any_host = "*" in hosts
        self.exact_hosts = frozenset(h for h in hosts if not h.startswith("*"))
        self.host_suffixes = tuple(h[1:] for h in hosts if h.startswith("*."))
        hsts = settings.is_production_like
        self.default_headers = _security_headers(default_csp, hsts=hsts)
        # Longest prefix first, so `/docs/oauth2-redirect` can differ from `/docs`.
        # id(route) -> whether its responses carry a secret; routes live as long as the app.
        self.secret_routes: dict[int, bool] = {}
        self.headers_by_prefix = [
            (prefix, prefix.rstrip("/") + "/", _security_headers(policy, hsts=hsts))
            for prefix, policy in sorted(
                (csp_by_prefix or {}).items(), key=lambda item: -len(item[0])
            )
        ]

    def _headers_for(self, path: str) -> _Headers:
        for prefix, prefix_slash, headers in self.headers_by_prefix:
            if path == prefix or path.startswith(prefix_slash):
                return headers
        return self.default_headers

    def _carries_secret(self, scope: Scope) -> bool:
        route = scope.get("route")
        if route is None:
            return False
        known = self.secret_routes.get(id(route))
        if known is None:
            models = [getattr(route, "response_model", None)]
            models += [r.get("model") for r in (getattr(route, "responses", None) or {}).values()]
            known = self.secret_routes[id(route)] = any(holds_secret(m) for m in models)
        return known

    def _host_allowed(self, host: str) -> bool:
        if self.any_host:
            return True
        name = host.split(":", 1)[0]
        return name in self.exact_hosts or (
            bool(self.host_suffixes) and name.endswith(self.host_suffixes)
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "websocket":
            await self._websocket(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    def _correlate(self, scope: Scope) -> tuple[str, str | None, bytes | None]:
        """The request ID, and the raw Host and Content-Length headers (one pass over them)."""
        incoming = host = length = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                incoming = value.decode("latin-1")
            elif name == b"host":
                host = value.decode("latin-1")
            elif name == b"content-length":
                length = value
        request_id = clean_request_id(incoming) or new_request_id()
        bind_request_id(request_id)  # Cleared again when the request ends (unbind_request_id).
        scope.setdefault("state", {})["request_id"] = request_id
        if incoming is not None and incoming != request_id:
            structlog.get_logger("tripline.correlation").warning(
                "request_id_rejected", received=incoming[:64]
            )
        return request_id, host, length

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        _, host, _ = self._correlate(scope)
        server = scope.get("server")
        try:
            if server is not None and server[1] == self.ops_port:
                await send({"type": "websocket.close", "code": 1008, "reason": "Not served here"})
                return
            if not self._host_allowed(host or ""):
                await send({"type": "websocket.close", "code": 1008, "reason": "Invalid host"})
                return
            await self.app(scope, receive, send)
        finally:
            unbind_request_id()

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        start = time.perf_counter()
        path: str = scope["path"]
        quiet = path in QUIET_PATHS
        # An ops path on the public port, or any other path on the ops port: one tuple index
        # and one int comparison per request. Those requests are logged and counted.
        server = scope.get("server")
        wrong_port = server is not None and server[1] == (
            self.public_port if quiet else self.ops_port
        )
        quiet = quiet and not wrong_port
        request_id, host, length = self._correlate(scope)
        extra_headers = ((b"x-request-id", request_id.encode("latin-1")), *self._headers_for(path))
        span: trace.Span | None = None
        if (
            tracing_enabled()  # One attribute read while tracing is off.
            and path not in UNTRACED_PATHS
            and not path.startswith(UNTRACED_PREFIX)
        ):
            span, span_token = _start_server_span(scope, host, request_id)
        error_type: str | None = None
        quotas, quotas_token = report_quotas()

        status = 500  # What the client sees if the app fails before answering.
        started = False
        too_large = False
        rewrite: Message | None = None
        chunks: list[bytes] = []

        async def edge_send(message: Message) -> None:
            nonlocal status, started, rewrite
            kind = message["type"]
            if too_large:
                return  # The app's answer to a cut-off body (FastAPI makes it a 400) is replaced.
            if kind == "http.response.start":
                started = True
                status = message["status"]
                headers = list(message.get("headers", ()))
                if self._carries_secret(scope):
                    headers = [h for h in headers if h[0].lower() != b"cache-control"]
                    headers.append((b"cache-control", b"no-store"))
                present = {name.lower() for name, _ in headers}
                headers.extend(h for h in extra_headers if h[0] not in present)
                if quotas:
                    headers.extend(_rate_limit_headers(quotas.values()))
                message["headers"] = headers
                if status >= 400 and _is_plain_text(headers):
                    rewrite = message
                    return
            elif kind == "http.response.body" and rewrite is not None:
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    await _send_rewritten(send, rewrite, b"".join(chunks))
                return
            await send(message)

        app_receive = receive
        if length is None:  # A streamed (chunked) body: count it as it arrives.
            received = 0

            async def app_receive() -> Message:
                nonlocal received, too_large
                message = await receive()
                if message["type"] == "http.request":
                    received += len(message.get("body", b""))
                    if received > self.max_bytes:
                        too_large = True
                        raise _BodyTooLargeError
                return message

        try:
            if wrong_port:
                await error_response(404, "not_found", "No route matches this path.")(
                    scope, receive, edge_send
                )
            elif not quiet and not self._host_allowed(host or ""):
                await error_response(400, "bad_request", "Invalid host header")(
                    scope, receive, edge_send
                )
            elif length is not None and not length.isdigit():
                await error_response(400, "bad_request", "Invalid Content-Length header.")(
                    scope, receive, edge_send
                )
            elif length is not None and int(length) > self.max_bytes:
                await self._too_large(scope, receive, edge_send)
            else:
                with contextlib.suppress(_BodyTooLargeError):
                    await self.app(scope, app_receive, edge_send)
                if too_large:
                    status, started = 413, True
                    await self._too_large(scope, receive, send, extra_headers)
        except Exception as exc:
            error_type = type(exc).__qualname__
            if span is not None:
                span.record_exception(exc)
            error_log.exception(
                "unhandled_exception",
                method=scope["method"],
                path=path,
                error_type=type(exc).__name__,
            )
            sentry_sdk.capture_exception(exc)
            if started:
                raise  # Too late for a clean answer: let the server close the connection.
            response = _error_page(scope) or error_response(
                500, "internal_error", "An unexpected error occurred."
            )
            await response(scope, receive, edge_send)
        finally:
            if span is not None:
                _finish_server_span(span, scope, status, error_type)
            if not quiet:
                duration = time.perf_counter() - start
                if self.metrics is not None:
                    # Unmatched paths count as "none": raw paths would blow up cardinality.
                    template = route_template(scope) or "none"
                    self.metrics.record(template, scope["method"], status, duration)
                if self.access_log is not None:
                    client = scope.get("client")
                    self.access_log.info(
                        "request",
                        method=scope["method"],
                        path=path,
                        status=status,
                        duration_ms=round(duration * 1000, 2),
                        client=client[0] if client else None,
                    )
            stop_reporting_quotas(quotas_token)
            unbind_request_id()
            if span is not None:
                otel_context.detach(span_token)
                span.end()

    async def _too_large(
        self, scope: Scope, receive: Receive, send: Send, extra: _Headers = ()
    ) -> None:
        response = error_response(
            413,
            "payload_too_large",
            f"The request body is larger than {self.max_bytes} bytes.",
            headers={"Connection": "close"},
        )
        response.raw_headers.extend(extra)
        await response(scope, receive, send)


def _start_server_span(
    scope: Scope, host: str | None, request_id: str
) -> tuple[trace.Span, Token[Context]]:
    """Start the request's SERVER span, as a child of the caller's `traceparent` if it sent
    one, and make it current. Named by the method until the route is known.

    Most spans are not sampled (the default keeps one trace in ten) and record nothing, so the
    attributes are built only for a span that records, after the sampler has decided (ours
    decide from the trace ID alone), and a request without propagation headers skips the
    propagator, whose answer for it is the empty context, and starts a new trace
    (`tracing.start_server_span`)."""
    carrier: dict[str, str] | None = None
    user_agent = None
    for name, value in scope["headers"]:
        if name in _PROPAGATION_HEADERS:
            if carrier is None:
                carrier = {}
            carrier[name.decode("latin-1")] = value.decode("latin-1")
        elif name == b"user-agent":
            user_agent = value
    parent = propagate.extract(carrier) if carrier is not None else None
    span = start_server_span(scope["method"], parent)
    if span.is_recording():
        span.set_attributes(_server_span_attributes(scope, host, request_id, user_agent))
    return span, otel_context.attach(
        trace.set_span_in_context(span, _NO_CONTEXT if parent is None else parent)
    )


def _server_span_attributes(
    scope: Scope, host: str | None, request_id: str, user_agent: bytes | None
) -> dict[str, str | int]:
    """The HTTP semantic-convention attributes of a request known when it starts."""
    method = scope["method"]
    attributes: dict[str, str | int] = {
        "http.request.method": method if method in _KNOWN_METHODS else "_OTHER",
        "url.path": scope["path"],
        "url.scheme": scope.get("scheme", "http"),
        "tripline.request_id": request_id,
    }
    if host:
        # `name:port`, `[v6::address]:port`, or either without the port.
        has_port = host.rfind(":") > host.rfind("]")
        name, _, port = host.rpartition(":") if has_port else (host, "", "")
        attributes["server.address"] = name
        if port.isdigit():
            attributes["server.port"] = int(port)
    client = scope.get("client")
    if client:
        attributes["client.address"] = client[0]
    if user_agent is not None:
        attributes["user_agent.original"] = user_agent.decode("latin-1")
    return attributes


def _finish_server_span(
    span: trace.Span, scope: Scope, status: int, error_type: str | None
) -> None:
    if not span.is_recording():
        return  # Not sampled: nothing set on it would be kept.
    attributes: dict[str, str | int] = {"http.response.status_code": status}
    template = route_template(scope)
    if template is not None:
        span.update_name(f"{scope['method']} {template}")
        attributes["http.route"] = template
    if status >= 500:  # A 4xx is the client's error, not the server's (semantic conventions).
        attributes["error.type"] = error_type or str(status)
        span.set_status(StatusCode.ERROR)
    span.set_attributes(attributes)


def _rate_limit_headers(quotas: Iterable[Quota]) -> _Headers:
    """The IETF `RateLimit-Policy` and `RateLimit` fields of the limits a request met."""
    listed = list(quotas)
    return (
        (b"ratelimit-policy", ", ".join(q.policy_item() for q in listed).encode("latin-1")),
        (b"ratelimit", ", ".join(q.limit_item() for q in listed).encode("latin-1")),
    )


def _error_page(scope: Scope) -> Response | None:
    """The app's own answer to an unexpected error, where it has one.

    An app may set its `ServiceState.server_error_page` (the admin console renders a page for
    its paths); everything else, or a page that fails itself, gets the shared JSON 500.
    """
    app = scope.get("app")
    state = getattr(getattr(app, "state", None), "service", None)
    page = state.server_error_page if isinstance(state, ServiceState) else None
    if page is None:
        return None
    try:
        response: Response | None = page(Request(scope))
    except Exception:
        error_log.exception("error_page_failed", path=scope["path"])
        return None
    return response


def route_template(scope: Scope) -> str | None:
    """The path template of the route that answered (`/v1/trips/{trip_id}`), None if none did.

    FastAPI keeps the matched route's effective context (its path with every `include_router`
    prefix) in the scope; the route object alone lacks the prefixes it was included under.
    (prometheus-fastapi-instrumentator reads the same contexts, by matching every route again.)
    """
    context = scope.get("fastapi", {}).get("effective_route_context")
    if context is not None:
        return str(context.path_format)
    route = scope.get("route")
    return getattr(route, "path_format", None) if route is not None else None


def _is_plain_text(headers: list[tuple[bytes, bytes]]) -> bool:
    for name, value in headers:
        if name.lower() == b"content-type":
            return value.startswith(b"text/plain")
    return False


async def _send_rewritten(send: Send, start: Message, body: bytes) -> None:
    """A plain-text error from Starlette's own middleware, in the shared shape."""
    status = start["status"]
    text = body.decode("utf-8", "replace").strip() or HTTPStatus(status).phrase
    payload = ErrorResponse(
        code=code_for_status(status),
        message=text,
        request_id=get_request_id(),
    ).model_dump(mode="json")
    encoded = orjson.dumps(payload)
    headers = [
        (k, v) for k, v in start["headers"] if k.lower() not in (b"content-type", b"content-length")
    ]
    headers += [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(encoded))]
    await send({**start, "headers": headers})
    await send({"type": "http.response.body", "body": encoded, "more_body": False})


class GZipMiddleware(StarletteGZipMiddleware):
    """Starlette's GZip, skipped outright for clients that do not accept gzip.

    Starlette wraps those responses too, only to add `Vary: Accept-Encoding` to the larger
    ones; an uncompressed answer is acceptable to every client, so a cache that reuses it
    does no harm, and the wrapper cost ~2% of the hot read's CPU (docs/performance.md).
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            for name, value in scope["headers"]:
                if name == b"accept-encoding" and b"gzip" in value:
                    await super().__call__(scope, receive, send)
                    return
        await self.app(scope, receive, send)


def install_middleware(
    app: FastAPI,
    settings: CommonSettings,
    *,
    metrics: HttpMetrics | None = None,
    csp_by_prefix: Mapping[str, str] | None = None,
) -> None:
    """Install the shared stack. Listed innermost first: Starlette wraps in reverse order.

    Request path, outermost to innermost: the edge layer (correlation ID, hosts, body size,
    security headers, error envelope, access log, metrics) → CORS (when origins are set) →
    GZip → the app.
    """
    app.add_middleware(GZipMiddleware, minimum_size=1024)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_credentials=True,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
            # X-Requested-With: Swagger UI sends it on the token request of the admin docs.
            allow_headers=[
                "Authorization",
                "Content-Type",
                "Idempotency-Key",
                "X-Request-ID",
                "X-Requested-With",
            ],
            expose_headers=[
                "X-Request-ID",
                "Link",
                "Retry-After",
                "Deprecation",
                "Sunset",
                "RateLimit-Policy",
                "RateLimit",
            ],
            max_age=600,
        )
    app.add_middleware(
        EdgeMiddleware, settings=settings, metrics=metrics, csp_by_prefix=csp_by_prefix
    )
