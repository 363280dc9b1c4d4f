"""A small app built with the real factory, for testing the shared library's behaviour."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi import APIRouter, FastAPI
from pydantic import BaseModel, Field
from sqlalchemy import text

from tripline_common.platform import NotFoundError
from tripline_common.web import QueueDep, ServiceState, SessionDep, create_app


class Item(BaseModel):
    name: str = Field(min_length=1, max_length=20)
    quantity: int = Field(ge=0)


def build_router() -> APIRouter:
    router = APIRouter(prefix="/items", tags=["items"])

    @router.post("", status_code=201)
    async def create_item(item: Item) -> Item:
        return item

    @router.get("/missing")
    async def missing() -> None:
        raise NotFoundError("Item not found.")

    @router.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret internal detail: password=hunter2")

    @router.get("/big")
    async def big() -> dict[str, str]:
        return {"text": "x" * 5000}

    @router.post("/jobs/{name}", status_code=202)
    async def defer_job(name: str, session: SessionDep, queue: QueueDep) -> dict[str, str]:
        await session.execute(text("SELECT 1"))
        queue.enqueue_after_commit(session, "noop", name, job_id=f"noop:{name}")
        if name == "fail":
            raise RuntimeError("failed after deferring")
        return {"queued": name}

    @router.post("/uniq/{value}", status_code=201)
    async def insert_unique(value: int, session: SessionDep) -> dict[str, int]:
        await session.execute(text("INSERT INTO uniq VALUES (:v)"), {"v": value})
        await session.flush()
        return {"value": value}

    return router


@pytest.fixture
def build_app(make_settings: Callable[..., Any]) -> Callable[..., FastAPI]:
    """`build_app(**settings_overrides)` -> a factory-built app with the test router."""

    def build(**overrides: Any) -> FastAPI:
        settings = make_settings(service_name="testapp", **overrides)
        return create_app(
            state=ServiceState(settings),
            title="Test app",
            description="For tests.",
            routers=[build_router()],
        )

    return build
