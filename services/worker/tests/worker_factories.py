"""Helpers for the worker's tests: the demo route, fixes along it, and jobs as the worker
registers them. (Fixtures live in conftest.py; a module of its own keeps imports unambiguous.)"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from tripline_worker.context import ArqContext, context
from tripline_worker.runner import cron_jobs, worker_functions
from tripline_worker.settings import WorkerServiceSettings

# A route from Berlin to Potsdam through Wannsee (the demo trip's).
ORIGIN = (52.5200, 13.4050)
WANNSEE = (52.4560, 13.2900)
DESTINATION = (52.3906, 13.0645)


def job(name: str, settings: WorkerServiceSettings | None = None) -> Callable[..., Any]:
    """A job or cron function exactly as the worker registers it."""
    settings = settings or WorkerServiceSettings(_env_file=None)  # type: ignore[call-arg]
    functions: dict[str, Any] = {f.name: f for f in worker_functions(settings)}
    functions.update({c.name: c for c in cron_jobs(settings)})
    return functions[name].coroutine


def with_resources(ctx: ArqContext, **changes: Any) -> ArqContext:
    """`ctx` with some of the worker's resources replaced (other settings, another client)."""
    return {**ctx, **dataclasses.replace(context(ctx), **changes).arq_context()}


@dataclass
class Owner:
    user_id: uuid.UUID
    device_id: uuid.UUID


def window_aligned(window_seconds: int = 300) -> datetime:
    """A moment 5 to 10 minutes ago, within the test trips: fixes from there on, for less than
    `window_seconds`, raise at most one alert per rule (so a test raises exactly the alerts it
    means to)."""
    now = int(datetime.now(UTC).timestamp())
    return datetime.fromtimestamp(now - now % window_seconds - window_seconds + 1, UTC)


def along_route(
    n: int, *, start: datetime, every_s: float = 10, speed_kmh: float = 50, fraction: float = 0.5
) -> list[dict[str, Any]]:
    """`n` fixes on the first leg of the route, from its start to `fraction` of it."""
    fixes = []
    for i in range(n):
        t = fraction * i / max(1, n - 1)
        fixes.append(
            {
                "recorded_at": start + timedelta(seconds=i * every_s),
                "lat": ORIGIN[0] + (WANNSEE[0] - ORIGIN[0]) * t,
                "lon": ORIGIN[1] + (WANNSEE[1] - ORIGIN[1]) * t,
                "speed_kmh": speed_kmh,
                "accuracy_m": 5.0,
            }
        )
    return fixes
