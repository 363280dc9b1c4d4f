"""The baseline of scripts/bench_api.py: a bare FastAPI endpoint doing one raw asyncpg PK SELECT.

Served by the same uvicorn settings as the real API (one worker, no access log), so the ratio
between the two measures what Tripline's stack costs on top of the floor any DB-backed
endpoint is held against. Reads DATABASE_URL.

FastAPI's own OpenTelemetry layer is off here as in every Tripline app (`create_app`): left on,
a bare `FastAPI()` asks the three global OpenTelemetry providers on every request whether one is
configured before doing nothing (8.5 µs per request against 0.3 µs with it off, timed on the
loaded 2-core machine), a cost Tripline's apps do not pay, which flattered the ratio.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from fastapi import FastAPI, HTTPException

from tripline_common.web.app import NO_FASTAPI_TELEMETRY


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    dsn = os.environ["DATABASE_URL"].replace("postgresql+asyncpg://", "postgresql://", 1)
    app.state.pool = await asyncpg.create_pool(dsn, min_size=10, max_size=10)
    yield
    await app.state.pool.close()


app = FastAPI(lifespan=lifespan, telemetry=NO_FASTAPI_TELEMETRY)


@app.get("/trips/{trip_id}")
async def get_trip(trip_id: uuid.UUID) -> dict[str, Any]:
    row = await app.state.pool.fetchrow("SELECT * FROM trips WHERE id = $1", trip_id)
    if row is None:
        raise HTTPException(404)
    return dict(row)
