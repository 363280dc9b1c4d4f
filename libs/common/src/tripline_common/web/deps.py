"""Typed dependencies every handler uses: settings, DB session (unit of work), Redis, job queue.

The trivial ones are `async def` on purpose: FastAPI runs plain `def` dependencies in its
thread pool, a thread hop per request for a dictionary lookup. And each takes the `Request`
itself and reads the app's `ServiceState` rather than depending on a state dependency: FastAPI
resolves every node of the dependency graph on every request, so a graph one level deep is
measurably cheaper on hot reads than a chain. A service's own settings type comes from its own
alias (`ApiSettingsDep`, ...), built the same way.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

import asyncpg
from arq.connections import ArqRedis
from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from tripline_common.data.db import unit_of_work
from tripline_common.messaging.queue import JobQueue
from tripline_common.platform.settings import CommonSettings
from tripline_common.web.error_handlers import CONFLICT_RAISE_SITE, DATABASE_RAISE_SITE
from tripline_common.web.responses import raises
from tripline_common.web.state import ServiceState

# `request.app.state.service` is read directly below, without `ServiceState.of`'s type check:
# the app factory put it there, and these run on every request.


async def get_settings(request: Request) -> CommonSettings:
    """The app's settings object (injected, so tests can build apps with their own)."""
    state: ServiceState[CommonSettings] = request.app.state.service
    return state.settings


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """A unit of work for one request: commit on success, roll back on error.

    Declared with `scope="function"` below, so the commit (and the enqueue of jobs deferred
    during the request) happens before the response is sent: a failed commit becomes an error
    response instead of a lost write, and the connection is back in the pool before the client
    can send its next request (see docs/performance.md).
    """
    state: ServiceState[CommonSettings] = request.app.state.service
    resources = state.resources
    async with unit_of_work(resources.session_factory, resources.queue) as session:
        yield session


async def get_queue(request: Request) -> JobQueue:
    """The job queue (use `enqueue_after_commit` with the request's session)."""
    state: ServiceState[CommonSettings] = request.app.state.service
    return state.resources.queue


async def get_redis(request: Request) -> ArqRedis:
    """The process's Redis client."""
    state: ServiceState[CommonSettings] = request.app.state.service
    return state.resources.redis


async def get_pg(request: Request) -> asyncpg.Pool:
    """The raw asyncpg pool, for hot read paths only (see `tripline_common.data.pg`)."""
    state: ServiceState[CommonSettings] = request.app.state.service
    return state.resources.pg


def pg_pool(request: Request) -> asyncpg.Pool:
    """`PgDep` minus its dependency node, for the hot reads only (docs/performance.md)."""
    state: ServiceState[CommonSettings] = request.app.state.service
    return state.resources.pg


raises(DATABASE_RAISE_SITE, get_session)
raises(CONFLICT_RAISE_SITE, get_session)
raises(DATABASE_RAISE_SITE, get_pg)

SettingsDep = Annotated[CommonSettings, Depends(get_settings)]
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
QueueDep = Annotated[JobQueue, Depends(get_queue)]
RedisDep = Annotated[ArqRedis, Depends(get_redis)]
PgDep = Annotated[asyncpg.Pool, Depends(get_pg)]


def client_address(request: Request) -> str:
    """The client's address as uvicorn resolved it: the peer, or the rightmost address that no
    proxy in FORWARDED_ALLOW_IPS owns ("unknown" without one). The key of per-client limits."""
    return request.client.host if request.client else "unknown"
