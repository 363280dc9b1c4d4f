"""What a Tripline app holds for its life: the lifecycle flags and the lifespan's resources."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import asyncpg
from arq.connections import ArqRedis
from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import AsyncEngine

from tripline_common.db import SessionFactory
from tripline_common.queue import JobQueue
from tripline_common.settings import CommonSettings


@dataclass
class Lifecycle:
    """Where the process is in its life; flipped by the lifespan and the server's signal handler."""

    started: bool = False
    shutting_down: bool = False
    extra_checks: dict[str, Callable[[], Awaitable[None]]] = field(default_factory=dict)


@dataclass
class Resources:
    """What the lifespan creates once per process and dependencies hand to handlers."""

    settings: CommonSettings
    engine: AsyncEngine
    session_factory: SessionFactory
    redis: ArqRedis
    queue: JobQueue
    pg: asyncpg.Pool
    registry: CollectorRegistry
    lifecycle: Lifecycle
