"""Each app's typed state: settings of the service's own type, lifecycle, metrics, resources.

The app factory creates one `ServiceState` (or a service's subclass of it) per app and keeps it
at `app.state.service`; code reaches it through `ServiceState.of(app)` (typed as the subclass it
is called on) or a typed dependency, never through loose `app.state.*` names.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Generic, Self, TypeVar

import asyncpg
from arq.connections import ArqRedis
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response

from tripline_common.data.db import SessionFactory
from tripline_common.messaging.queue import JobQueue
from tripline_common.platform.metrics import ReadinessMetrics, create_registry
from tripline_common.platform.settings import CommonSettings

SettingsT = TypeVar("SettingsT", bound=CommonSettings)

ErrorPage = Callable[[Request], Response | None]
"""An app's own answer to an unexpected error (the admin console's page), None to decline."""


@dataclass
class Lifecycle:
    """Where the process is in its life; flipped by the lifespan and the server's signal handler."""

    started: bool = False
    shutting_down: bool = False
    extra_checks: dict[str, Callable[[], Awaitable[None]]] = field(default_factory=dict)
    on_shutdown_requested: list[Callable[[], None]] = field(default_factory=list)
    """Run once, from the signal handler, when shutdown is requested: before the drain."""

    def request_shutdown(self) -> None:
        """Start shutting down: readiness fails from now on, and each `on_shutdown_requested`
        hook runs (the worker stops taking jobs at once instead of after the drain)."""
        if self.shutting_down:
            return
        self.shutting_down = True
        for hook in self.on_shutdown_requested:
            hook()


@dataclass
class Resources:
    """What the lifespan creates once per process and dependencies hand to handlers."""

    engine: AsyncEngine
    session_factory: SessionFactory
    redis: ArqRedis
    queue: JobQueue
    pg: asyncpg.Pool


class ServiceState(Generic[SettingsT]):
    """The shared part of every app's state; a service subclasses it for its own additions."""

    resources: Resources
    """Created by the lifespan: reading it before start-up raises `AttributeError`."""
    readiness_metrics: ReadinessMetrics
    """The `/readyz` series, registered by the app factory."""

    def __init__(self, settings: SettingsT) -> None:
        self.settings = settings
        # Exists before the lifespan runs, so the server's signal handler can flip it at any time.
        self.lifecycle = Lifecycle()
        self.registry = create_registry()
        self.server_error_page: ErrorPage | None = None

    @classmethod
    def of(cls, app: Starlette) -> Self:
        """The state of `app`, built by the app factory, as the type this is called on."""
        state = getattr(app.state, "service", None)
        if not isinstance(state, cls):
            raise TypeError(f"The app's state is {type(state).__name__}, not {cls.__name__}.")
        return state
