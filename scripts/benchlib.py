"""What the benchmark scripts share: a scratch database on the Postgres and Redis that `make dev`
would use (found, or started embedded), and the check for `wrk`."""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from tripline_common.data import asyncpg_dsn
from tripline_common.migrations.runner import upgrade
from tripline_devstack import drop_database, ensure_database, ensure_stack
from tripline_devstack.stack import Stack

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


@dataclass
class ScratchDatabase:
    """A migrated database of the benchmark's own; `drop()` removes it and stops whatever
    `create` had to start."""

    url: str
    redis_url: str
    server_url: str
    name: str
    stack: Stack

    @property
    def dsn(self) -> str:
        """The URL as asyncpg takes it."""
        return asyncpg_dsn(self.url)

    @classmethod
    def create(cls, benchmark: str) -> ScratchDatabase:
        stack = ensure_stack(
            os.environ.get("DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"),
            os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
            ROOT / ".local" / "bench",
        )
        server_url = stack.postgres_url.rsplit("/", 1)[0]
        name = f"tripline_bench_{benchmark}_{os.getpid()}"
        ensure_database(server_url, name)
        database = cls(f"{server_url}/{name}", stack.redis_url, server_url, name, stack)
        try:
            upgrade(database.url)
        except BaseException:
            database.drop()
            raise
        return database

    def drop(self) -> None:
        drop_database(self.server_url, self.name)
        self.stack.stop()


def have_wrk() -> bool:
    """True when `wrk` is installed; else says how to get it."""
    if shutil.which("wrk") is None:
        print("bench: needs wrk (apt-get install wrk)", file=sys.stderr)
        return False
    return True
