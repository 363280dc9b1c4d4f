"""A real PostgreSQL server, run from the binaries the `pgserver` wheel ships, on a TCP port."""

from __future__ import annotations

import importlib.util
import shutil
import signal
import subprocess
from pathlib import Path

from tripline_devstack.embedded import EmbeddedServer, EmbeddedServerError, server_environment
from tripline_devstack.os_user import give_to, make_reachable, permission_hint
from tripline_devstack.probes import postgres_problem

SUPERUSER = "postgres"

# A development or test cluster is rebuilt in seconds and never holds anything precious, so it
# trades crash safety of the *machine* for speed. A killed server still recovers: the OS keeps
# the writes even without fsync.
_SERVER_SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "unix_socket_directories": "",  # TCP only: no socket files in /tmp to collide or go stale
    "max_connections": "200",  # four apps' pools plus parallel test workers
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
}


def postgres_bin_dir() -> Path:
    """The `bin` directory of the PostgreSQL build inside the installed `pgserver` package."""
    # find_spec locates the package without importing it (its import has side effects).
    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedServerError("the pgserver package is not installed")
    bin_dir = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    if not (bin_dir / "postgres").exists():
        raise EmbeddedServerError(f"no PostgreSQL binaries in {bin_dir}")
    return bin_dir


class EmbeddedPostgres(EmbeddedServer):
    """A real PostgreSQL server with its cluster in `data_dir/pgdata`, on 127.0.0.1:`port`.

    The cluster is created by `initdb` on first start only, so later starts take a fraction of
    a second. It accepts the superuser `postgres` without a password, over TCP on 127.0.0.1 only.
    When this process is root the server runs as an unprivileged account (see `os_user`).
    Use as a context manager, or call `start()` and `stop()`.
    """

    name = "postgres"
    stop_signal = signal.SIGINT  # "fast shutdown": roll back open transactions, checkpoint, exit
    work_dir_name = "pgdata"

    def url(self, database: str = "postgres") -> str:
        """The SQLAlchemy URL of `database` on this server."""
        return f"postgresql+asyncpg://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def _prepare(self) -> None:
        bin_dir = postgres_bin_dir()
        if self.account is not None:
            make_reachable(bin_dir / "postgres", self.account)
        if (self.work_dir / "PG_VERSION").exists():
            give_to(self.work_dir, self.account)  # PostgreSQL insists on owner and mode 0700
            return
        if self.work_dir.exists() and any(self.work_dir.iterdir()):
            raise EmbeddedServerError(
                f"{self.work_dir} is not empty but holds no PostgreSQL cluster; remove it"
            )
        # initdb into a sibling directory, then rename it into place: a run interrupted during
        # initdb never leaves a half-made cluster that later starts would trip over.
        staging = self.data_dir / "pgdata.initdb"
        shutil.rmtree(staging, ignore_errors=True)
        give_to(staging, self.account)
        self._initdb(bin_dir, staging)
        if self.work_dir.exists():
            self.work_dir.rmdir()  # empty, as checked above
        staging.rename(self.work_dir)

    def _initdb(self, bin_dir: Path, pgdata: Path) -> None:
        account = self.account
        result = subprocess.run(  # noqa: S603 - our own binary, arguments built here
            [
                str(bin_dir / "initdb"),
                f"--pgdata={pgdata}",
                f"--username={SUPERUSER}",
                "--auth=trust",
                "--encoding=UTF8",
                "--no-locale",
                "--no-sync",
                "--no-instructions",
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
            cwd=pgdata,
            env=server_environment(),
            user=account.uid if account else None,
            group=account.gid if account else None,
            extra_groups=list(account.groups) if account else None,
        )
        if result.returncode != 0:
            output = (result.stdout + result.stderr).strip()
            hint = permission_hint(output, pgdata, account)
            raise EmbeddedServerError(f"initdb failed for {pgdata}:\n{output}{hint}")

    def _command(self) -> list[str]:
        command = [str(postgres_bin_dir() / "postgres"), "-D", str(self.work_dir)]
        command += ["-p", str(self.port)]
        for name, value in _SERVER_SETTINGS.items():
            command += ["-c", f"{name}={value}"]
        return command

    def _pid_file(self) -> Path:
        return self.work_dir / "postmaster.pid"

    def _is_server_process(self, command_line: str) -> bool:
        return "postgres" in command_line and str(self.work_dir) in command_line

    def _problem(self) -> str | None:
        return postgres_problem(self.url(), timeout=1.0)
