"""Typed dependencies every handler uses: settings, DB session (unit of work), Redis, job queue.

The trivial ones are `async def` on purpose: FastAPI runs plain `def` dependencies in its
thread pool, a thread hop per request for a dictionary lookup.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

import asyncpg
from arq.connections import ArqRedis
from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from tripline_common.app import Resources
from tripline_common.db import unit_of_work
from tripline_common.queue import JobQueue
from tripline_common.settings import CommonSettings


async def get_resources(request: Request) -> Resources:
    """The process's resources, created by the lifespan."""
    resources: Resources = request.app.state.resources
    return resources


ResourcesDep = Annotated[Resources, Depends(get_resources)]


async def get_settings(request: Request) -> CommonSettings:
    """The app's settings object (injected, so tests can build apps with their own)."""
    settings: CommonSettings = request.app.state.settings
    return settings


async def get_session(resources: ResourcesDep) -> AsyncIterator[AsyncSession]:
    """A unit of work for one request: commit on success, roll back on error.

    Declared with `scope="function"` below, so the commit (and the enqueue of jobs deferred
    during the request) happens before the response is sent: a failed commit becomes an error
    response instead of a lost write, and the connection is back in the pool before the client
    can send its next request (see docs/performance.md).
    """
    async with unit_of_work(resources.session_factory, resources.queue) as session:
        yield session


async def get_queue(resources: ResourcesDep) -> JobQueue:
    """The job queue (use `enqueue_after_commit` with the request's session)."""
    return resources.queue


async def get_redis(resources: ResourcesDep) -> ArqRedis:
    """The process's Redis client."""
    return resources.redis


async def get_pg(resources: ResourcesDep) -> asyncpg.Pool:
    """The raw asyncpg pool, for hot read paths only (see `tripline_common.pg`)."""
    return resources.pg


SettingsDep = Annotated[CommonSettings, Depends(get_settings)]
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
QueueDep = Annotated[JobQueue, Depends(get_queue)]
RedisDep = Annotated[ArqRedis, Depends(get_redis)]
PgDep = Annotated[asyncpg.Pool, Depends(get_pg)]
