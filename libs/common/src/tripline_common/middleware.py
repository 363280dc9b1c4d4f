"""The middleware stack every app shares: request logging, security headers, limits, hosts, CORS."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping

import structlog
from fastapi import FastAPI
from starlette.datastructures import MutableHeaders
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tripline_common.correlation import CorrelationIdMiddleware
from tripline_common.errors import ErrorEnvelopeMiddleware, error_response
from tripline_common.settings import CommonSettings

access_log = structlog.get_logger("tripline.access")

# Probes and scrapes would drown the access log; they are counted in metrics instead.
_QUIET_PATHS = frozenset({"/livez", "/readyz", "/startupz", "/metrics"})

# A JSON API never needs to run scripts, be framed, or load anything.
API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"


class RequestLoggingMiddleware:
    """One log line per request: method, path, status, duration and client address."""

    def __init__(self, app: ASGIApp, *, enabled: bool = True) -> None:
        self.app = app
        self.enabled = enabled

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.enabled or scope["path"] in _QUIET_PATHS:
            await self.app(scope, receive, send)
            return

        start = time.perf_counter()
        status_code = 500  # What the client sees if the app fails before answering.

        async def send_and_record(message: Message) -> None:
            nonlocal status_code
            if message["type"] == "http.response.start":
                status_code = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        finally:
            access_log.info(
                "request",
                method=scope["method"],
                path=scope["path"],
                status=status_code,
                duration_ms=round((time.perf_counter() - start) * 1000, 2),
                client=scope["client"][0] if scope.get("client") else None,
            )


class ProbeAwareTrustedHostMiddleware(TrustedHostMiddleware):
    """Starlette's Host-header check, except for probes and scrapes.

    The kubelet and Prometheus address a pod by its IP, so their Host header is that IP: they
    would be refused. Those paths reveal nothing a host-header attack could exploit.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] in _QUIET_PATHS:
            await self.app(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


class SecurityHeadersMiddleware:
    """Adds security headers to every response (errors included).

    `csp_by_prefix` lets a path prefix (the API docs, the admin console) carry its own
    Content-Security-Policy; everything else gets the strict `API_CSP`.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        hsts: bool,
        csp_by_prefix: Mapping[str, str] | None = None,
        default_csp: str = API_CSP,
    ) -> None:
        self.app = app
        self.hsts = hsts
        self.default_csp = default_csp
        # Longest prefix first, so `/docs/oauth2-redirect` can differ from `/docs`.
        self.csp_by_prefix = sorted((csp_by_prefix or {}).items(), key=lambda kv: -len(kv[0]))

    def _csp_for(self, path: str) -> str:
        for prefix, policy in self.csp_by_prefix:
            if path == prefix or path.startswith(prefix.rstrip("/") + "/"):
                return policy
        return self.default_csp

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        csp = self._csp_for(scope["path"])

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("X-Content-Type-Options", "nosniff")
                headers.setdefault("X-Frame-Options", "DENY")
                headers.setdefault("Referrer-Policy", "no-referrer")
                headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
                headers.setdefault("Permissions-Policy", "geolocation=(), camera=(), microphone=()")
                headers.setdefault("Content-Security-Policy", csp)
                if self.hsts:
                    headers.setdefault(
                        "Strict-Transport-Security", "max-age=63072000; includeSubDomains"
                    )
            await send(message)

        await self.app(scope, receive, send_with_headers)


class _BodyTooLargeError(Exception):
    pass


class BodySizeLimitMiddleware:
    """Answers 413 to request bodies over `max_bytes`, whether announced or streamed.

    (Starlette's own limiter answers in plain text and signals its parent with private
    exceptions; this one keeps the shared error shape and stays small.)
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        for name, value in scope["headers"]:
            if name == b"content-length":
                declared = int(value) if value.isdigit() else -1
                if declared < 0:
                    response = error_response(400, "bad_request", "Invalid Content-Length header.")
                    await response(scope, receive, send)
                    return
                if declared > self.max_bytes:
                    await self._too_large(scope, receive, send)
                    return

        received = 0
        exceeded = False
        response_started = False

        async def counting_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    exceeded = True
                    raise _BodyTooLargeError
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal response_started
            if exceeded:
                return  # The app's answer to a broken read (FastAPI makes it a 400) is replaced.
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        with contextlib.suppress(_BodyTooLargeError):
            await self.app(scope, counting_receive, guarded_send)
        if exceeded and not response_started:
            await self._too_large(scope, receive, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(
            413,
            "payload_too_large",
            f"The request body is larger than {self.max_bytes} bytes.",
            headers={"Connection": "close"},
        )
        await response(scope, receive, send)


def install_middleware(
    app: FastAPI,
    settings: CommonSettings,
    *,
    csp_by_prefix: Mapping[str, str] | None = None,
) -> None:
    """Install the shared stack. Listed innermost first: Starlette wraps in reverse order.

    Request path, outermost to innermost: correlation ID → request log → security headers →
    error envelope → trusted hosts → CORS → body size limit → GZip → the app.
    """
    app.add_middleware(GZipMiddleware, minimum_size=1024)
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_credentials=True,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "X-Request-ID"],
            expose_headers=["X-Request-ID", "Link", "Retry-After", "Deprecation", "Sunset"],
            max_age=600,
        )
    app.add_middleware(ProbeAwareTrustedHostMiddleware, allowed_hosts=settings.trusted_hosts)
    app.add_middleware(ErrorEnvelopeMiddleware)
    app.add_middleware(
        SecurityHeadersMiddleware, hsts=settings.is_production_like, csp_by_prefix=csp_by_prefix
    )
    app.add_middleware(RequestLoggingMiddleware, enabled=settings.access_log)
    app.add_middleware(CorrelationIdMiddleware)
