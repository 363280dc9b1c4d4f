"""`Idempotency-Key` for POST endpoints: a retried request replays the first response instead of
doing the work twice.

Semantics (what a client can rely on):

- The key is optional. Without it, the request runs as usual.
- Records are scoped per caller (e.g. `user:<id>`) and per endpoint (method and path): the same
  key from another user, or on another endpoint, is a different key.
- Same key, same body (compared as canonical JSON, so key order and whitespace do not matter):
  the first response is replayed (status, body and the endpoint's own headers such as
  `Location`), marked with `Idempotent-Replayed: true`. Nothing runs again.
- Same key, different body: 409 `idempotency_key_reused`.
- Same key while the first request is still running: 409 `idempotency_key_in_use` with
  `Retry-After: 1`. Answering at once (rather than waiting) keeps a connection and a worker from
  being held by a duplicate.
- Only successful (2xx) responses are recorded. An error rolls the request's transaction back,
  so nothing happened and the key is released: the client may fix the request and retry.
- A record is kept `IDEMPOTENCY_TTL_SECONDS` (24 h) after the first response; after that the key
  is new again. An unfinished request holds its key at most `IDEMPOTENCY_LOCK_SECONDS`.
- Redis unavailable while a key is sent: 503 `idempotency_unavailable` (the request is refused
  rather than run without the protection the client asked for).

How: a dependency authenticates the caller, then reserves the key in Redis (`SET NX` with the
request's fingerprint) or finds the earlier record; the route class `IdempotentRoute` turns a
found record into the replayed response and records a successful response just before it is
sent, which is after the request's transaction has committed (the session dependency commits
before the response starts). Limit: a process that dies between its commit and that write
leaves only the reservation, which expires after the lock time; a retry after that runs again.

Use: `APIRouter(route_class=IdempotentRoute)` and `dependencies=[UserIdempotencyKey]` on the POST.
"""

# No `from __future__ import annotations`: the dependency built inside a function below has
# annotations naming that function's local variables, which FastAPI must evaluate at runtime.
import base64
import hashlib
import uuid
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Annotated, Any

import orjson
import structlog
from fastapi import Depends, Header, Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.types import Receive, Scope, Send

from tripline_common.platform.errors import ConflictError, ServiceUnavailableError
from tripline_common.web.auth_deps import CurrentUser
from tripline_common.web.deps import RedisDep
from tripline_common.web.responses import RaiseSite, documented_error, raises

log = structlog.get_logger("tripline.idempotency")

IDEMPOTENCY_TTL_SECONDS = 24 * 3600
"""How long a completed request's response is kept for replay."""
IDEMPOTENCY_LOCK_SECONDS = 60
"""How long an unfinished request holds its key (longer than any request may take)."""
REPLAYED_HEADER = "Idempotent-Replayed"

_RESERVATION = "tripline.idempotency.reservation"
_ROUTE_MARK = "tripline.idempotency.route"
# Headers of the original response that are not replayed: recomputed for the replay.
_NOT_REPLAYED = frozenset({b"content-length", b"date", b"server"})
_RELEASE_SCRIPT = (
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"
)
# The dependencies made by `idempotency()`, so IdempotentRoute wraps only routes that use one.
_DEPENDENCIES: weakref.WeakSet[Callable[..., Any]] = weakref.WeakSet()


class IdempotentReplay(Exception):  # noqa: N818 - a control-flow signal, not an error
    """Raised by the dependency when an earlier response exists; IdempotentRoute answers it."""

    def __init__(self, record: dict[str, Any]) -> None:
        super().__init__("idempotent replay")
        self.record = record

    def response(self) -> Response:
        """The recorded response, marked as a replay."""
        response = Response(
            content=base64.b64decode(self.record["body"]), status_code=self.record["status"]
        )
        response.raw_headers.extend(
            (name.encode("latin-1"), value.encode("latin-1"))
            for name, value in self.record["headers"]
        )
        response.headers[REPLAYED_HEADER] = "true"
        return response


@dataclass
class Reservation:
    """A key this request holds while it runs."""

    redis: Redis
    key: str
    value: str  # The in-flight record, unique to this request (release deletes only it).
    fingerprint: str
    ttl_seconds: int
    finished: bool = False

    async def record(
        self, status_code: int, raw_headers: list[tuple[bytes, bytes]], body: bytes
    ) -> None:
        """Keep the response for replay (after the request's transaction committed)."""
        self.finished = True
        headers = [
            [name.decode("latin-1"), value.decode("latin-1")]
            for name, value in raw_headers
            if name.lower() not in _NOT_REPLAYED
        ]
        record = {
            "state": "done",
            "fingerprint": self.fingerprint,
            "status": status_code,
            "headers": headers,
            "body": base64.b64encode(body).decode("ascii"),
        }
        try:
            await self.redis.set(self.key, orjson.dumps(record), ex=self.ttl_seconds)
        except RedisError as exc:
            # The work is committed; the reservation expires after the lock time.
            log.warning("idempotency_record_failed", error=str(exc))

    async def release(self) -> None:
        """Give the key back (the request failed, so nothing happened)."""
        if self.finished:
            return
        self.finished = True
        try:
            await self.redis.eval(_RELEASE_SCRIPT, 1, self.key, self.value)  # type: ignore[misc]
        except RedisError as exc:
            log.warning("idempotency_release_failed", error=str(exc))


def request_fingerprint(body: bytes) -> str:
    """SHA-256 of the body as canonical JSON (sorted keys, no whitespace); of the raw bytes
    when the body is not JSON."""
    try:
        canonical = orjson.dumps(orjson.loads(body), option=orjson.OPT_SORT_KEYS)
    except orjson.JSONDecodeError:
        canonical = body
    return hashlib.sha256(canonical).hexdigest()


async def reserve(
    redis: Redis,
    key: str,
    fingerprint: str,
    *,
    ttl_seconds: int = IDEMPOTENCY_TTL_SECONDS,
    lock_seconds: int = IDEMPOTENCY_LOCK_SECONDS,
) -> Reservation:
    """Hold `key` for this request, or raise: `IdempotentReplay` (done, same body), 409 (other
    body, or still running), 503 (Redis unavailable)."""
    value = orjson.dumps(
        {"state": "in_flight", "fingerprint": fingerprint, "token": uuid.uuid4().hex}
    ).decode()
    try:
        for _ in range(3):
            if await redis.set(key, value, nx=True, ex=lock_seconds):
                return Reservation(redis, key, value, fingerprint, ttl_seconds)
            existing = await redis.get(key)
            if existing is None:
                continue  # Expired between the two calls: try to take it again.
            record = orjson.loads(existing)
            if record.get("fingerprint") != fingerprint:
                raise ConflictError(
                    "This Idempotency-Key was already used with a different request body.",
                    code="idempotency_key_reused",
                )
            if record.get("state") == "done":
                raise IdempotentReplay(record)
            break
    except RedisError as exc:
        log.warning("idempotency_unavailable", error=str(exc))
        raise ServiceUnavailableError(
            "Idempotency keys cannot be checked right now; retry later.",
            code="idempotency_unavailable",
            headers={"Retry-After": "1"},
        ) from None
    raise ConflictError(
        "A request with this Idempotency-Key is still being processed; retry shortly.",
        code="idempotency_key_in_use",
        headers={"Retry-After": "1"},
    )


IDEMPOTENCY_RAISE_SITE = RaiseSite(
    {
        **documented_error(
            409,
            "The Idempotency-Key was used with another body (`idempotency_key_reused`) or its "
            "first request is still running (`idempotency_key_in_use`, with `Retry-After`).",
        ),
        **documented_error(
            503, "Idempotency keys cannot be checked now (`idempotency_unavailable`)."
        ),
    }
)
"""What an `Idempotency-Key` route can answer because of the key."""


def idempotency(
    scope: Callable[..., Awaitable[str]],
    *,
    ttl_seconds: int = IDEMPOTENCY_TTL_SECONDS,
    lock_seconds: int = IDEMPOTENCY_LOCK_SECONDS,
) -> Callable[..., AsyncIterator[None]]:
    """A dependency honouring `Idempotency-Key`; `scope` is a dependency naming the caller
    (e.g. `user_scope`), which also means the caller is authenticated before any replay."""

    async def idempotency_key(
        request: Request,
        redis: RedisDep,
        caller: Annotated[str, Depends(scope)],
        idempotency_key: Annotated[
            str | None,
            Header(
                alias="Idempotency-Key",
                min_length=1,
                max_length=255,
                pattern=r"^[\x21-\x7e]+$",
                description="Optional. A unique value per operation (a UUID is ideal). Resending "
                "the same key with the same body replays the first response "
                f"(`{REPLAYED_HEADER}: true`) instead of running it again; with another body "
                f"it is a 409. Kept {ttl_seconds // 3600} h.",
                examples=["3f0c1d6e-8a47-4b8e-9a55-2f1b7d0c9e21"],
            ),
        ] = None,
    ) -> AsyncIterator[None]:
        if idempotency_key is None:
            yield
            return
        if not request.scope.get(_ROUTE_MARK):
            raise RuntimeError("an Idempotency-Key route needs route_class=IdempotentRoute")
        digest = hashlib.sha256(idempotency_key.encode()).hexdigest()
        key = f"idempotency:{caller}:{request.method}:{request.url.path}:{digest}"
        fingerprint = request_fingerprint(await request.body())
        reservation = await reserve(
            redis, key, fingerprint, ttl_seconds=ttl_seconds, lock_seconds=lock_seconds
        )
        request.scope[_RESERVATION] = reservation
        try:
            yield
        finally:
            # Runs after the response is sent; only a request whose commit failed (so it never
            # reached `record`) still holds its key here.
            await reservation.release()

    _DEPENDENCIES.add(idempotency_key)
    return raises(IDEMPOTENCY_RAISE_SITE, idempotency_key)


async def user_scope(user: CurrentUser) -> str:
    """Idempotency keys are per authenticated user."""
    return f"user:{user.id}"


UserIdempotencyKey = Depends(idempotency(user_scope))
"""Put in a POST route's `dependencies=[...]` (the router needs `route_class=IdempotentRoute`)."""


def _uses_idempotency(dependant: Dependant) -> bool:
    return any(
        dep.call in _DEPENDENCIES or _uses_idempotency(dep) for dep in dependant.dependencies
    )


class _RecordingResponse(Response):
    """Wraps a successful response: records it for replay, then sends it. It is called after
    the request's dependencies of function scope (the DB session) have exited, i.e. after the
    commit, and before the client sees anything."""

    def __init__(self, inner: Response, reservation: Reservation) -> None:
        self.inner = inner
        self.reservation = reservation
        self.status_code = inner.status_code
        self.body = inner.body
        self.raw_headers = inner.raw_headers
        self.background = inner.background

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.reservation.record(self.status_code, self.raw_headers, bytes(self.body))
        await self.inner(scope, receive, send)


class IdempotentRoute(APIRoute):
    """Route class for routers with `Idempotency-Key` endpoints: replays recorded responses and
    records new successful ones. Routes without the dependency are left untouched."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        if not _uses_idempotency(self.dependant):
            return handler

        async def idempotent_handler(request: Request) -> Response:
            request.scope[_ROUTE_MARK] = True
            try:
                response = await handler(request)
            except IdempotentReplay as replay:
                return replay.response()
            except BaseException:
                reservation = request.scope.get(_RESERVATION)
                if reservation is not None:
                    await reservation.release()
                raise
            reservation = request.scope.get(_RESERVATION)
            if reservation is None:
                return response
            if 200 <= response.status_code < 300 and hasattr(response, "body"):
                return _RecordingResponse(response, reservation)
            await reservation.release()
            return response

        return idempotent_handler
