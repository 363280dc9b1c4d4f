"""The baseline of scripts/bench_api.py: a bare FastAPI endpoint doing one raw asyncpg PK SELECT.

Served by the same uvicorn settings as the real API (one worker, no access log), so the ratio
between the two measures what Tripline's stack costs on top of the floor any DB-backed
endpoint is held against. Reads DATABASE_URL.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from fastapi import FastAPI, HTTPException


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    dsn = os.environ["DATABASE_URL"].replace("postgresql+asyncpg://", "postgresql://", 1)
    app.state.pool = await asyncpg.create_pool(dsn, min_size=10, max_size=10)
    yield
    await app.state.pool.close()


app = FastAPI(lifespan=lifespan)


@app.get("/trips/{trip_id}")
async def get_trip(trip_id: uuid.UUID) -> dict[str, Any]:
    row = await app.state.pool.fetchrow("SELECT * FROM trips WHERE id = $1", trip_id)
    if row is None:
        raise HTTPException(404)
    return dict(row)
