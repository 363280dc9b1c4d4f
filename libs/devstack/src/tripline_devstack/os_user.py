"""Picks the unprivileged account embedded servers run as when we are root; lets it reach its files.

PostgreSQL refuses to run as root ("root execution of the PostgreSQL server is not permitted"),
and a Redis running as root with no password is a classic way to write files anywhere on the
machine. So when this process is root (containers, CI), both servers run as an ordinary account:

1. the account named by `TRIPLINE_DEVSTACK_USER`, if set;
2. otherwise the owner of an existing data directory (a re-used cluster keeps its owner);
3. otherwise `postgres`, if the machine has that account (a PostgreSQL package created it);
4. otherwise a system account `tripline-devstack`, which we create with `useradd`
   (or BusyBox `adduser`) without a home directory or a login shell.

The switch happens in the child between fork and exec: `subprocess.Popen(user=, group=,
extra_groups=)`, which is implemented in C, needs no `runuser`/`setpriv` binary and no
`preexec_fn` for it. The account must be able to reach the binaries and the data directory, so
`make_reachable()` adds the search bit (`o+x`: enter, not list) to any parent directory that
blocks it (a repository under /root, a 0700 temporary directory) and logs each change.

One place cannot be fixed that way: pytest resets its base directory (/tmp/pytest-of-root) to
0700 whenever any pytest session starts on the machine, so a server whose data lives under
`tmp_path` breaks as soon as a second session starts. Test suites run as root should keep
embedded data elsewhere (a directory from `tempfile.mkdtemp()`, or one under the repository).
"""

from __future__ import annotations

import logging
import os
import pwd
import shutil
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger("tripline_devstack")

USER_ENV_VAR = "TRIPLINE_DEVSTACK_USER"
CREATED_ACCOUNT = "tripline-devstack"


@dataclass(frozen=True)
class OsUser:
    """An operating-system account a server process runs as."""

    name: str
    uid: int
    gid: int
    groups: tuple[int, ...]

    @classmethod
    def from_name(cls, name: str) -> OsUser:
        """Look the account up by name (KeyError if it does not exist)."""
        entry = pwd.getpwnam(name)
        return cls(name, entry.pw_uid, entry.pw_gid, tuple(os.getgrouplist(name, entry.pw_gid)))

    def can_search(self, directory: Path) -> bool:
        """True if this account may enter `directory` (judged by its permission bits)."""
        info = directory.stat()
        if info.st_uid == self.uid:
            return bool(info.st_mode & stat.S_IXUSR)
        if info.st_gid in self.groups:
            return bool(info.st_mode & stat.S_IXGRP)
        return bool(info.st_mode & stat.S_IXOTH)


def running_as_root() -> bool:
    """True if this process has uid 0 (where servers must drop to another account)."""
    return hasattr(os, "geteuid") and os.geteuid() == 0


def server_account(data_dir: Path) -> OsUser | None:
    """The account servers under `data_dir` run as; None means "as this process" (not root)."""
    if not running_as_root():
        return None
    configured = os.environ.get(USER_ENV_VAR)
    if configured:
        try:
            return OsUser.from_name(configured)
        except KeyError:
            raise RuntimeError(f"{USER_ENV_VAR}={configured}: no such account") from None
    existing_owner = _owner_of(data_dir)
    if existing_owner is not None:
        return existing_owner
    for name in ("postgres", CREATED_ACCOUNT):
        try:
            return OsUser.from_name(name)
        except KeyError:
            continue
    _create_system_account(CREATED_ACCOUNT)
    return OsUser.from_name(CREATED_ACCOUNT)


def make_reachable(path: Path, account: OsUser) -> None:
    """Give `account` search permission on every directory above `path` that blocks it."""
    for directory in reversed(path.resolve().parents):
        if account.can_search(directory):
            continue
        mode = directory.stat().st_mode
        os.chmod(directory, stat.S_IMODE(mode) | stat.S_IXOTH)
        logger.warning(
            "granted search permission (o+x) on %s so the embedded servers, running as %r, "
            "can reach %s",
            directory,
            account.name,
            path,
        )


def permission_hint(output: str, path: Path, account: OsUser | None) -> str:
    """An explanation to append to a server's failure output when it was refused access."""
    if account is None or "permission denied" not in output.lower():
        return ""
    return (
        f"\n(the server runs as {account.name!r}, which needs search permission on every "
        f"directory above {path}; something took it away after we granted it - pytest, for "
        "one, resets /tmp/pytest-of-<user> to 0700 whenever a session starts, so keep data "
        "dirs of servers run as root out of pytest's tmp_path)"
    )


def give_to(directory: Path, account: OsUser | None) -> None:
    """Create `directory` (mode 0700) owned by `account`, or fix the owner of an existing one."""
    directory.mkdir(parents=True, exist_ok=True)
    if account is not None:
        make_reachable(directory, account)
        if directory.stat().st_uid != account.uid:
            for path in [directory, *directory.rglob("*")]:
                os.chown(path, account.uid, account.gid, follow_symlinks=False)
    directory.chmod(0o700)


def _owner_of(data_dir: Path) -> OsUser | None:
    """The non-root account owning the first server directory that exists under `data_dir`."""
    for candidate in (data_dir / "pgdata", data_dir / "data"):
        if candidate.is_dir():
            uid = candidate.stat().st_uid
            if uid == 0:
                return None
            try:
                return OsUser.from_name(pwd.getpwuid(uid).pw_name)
            except KeyError:
                return None
    return None


def _create_system_account(name: str) -> None:
    nologin = next((s for s in ("/usr/sbin/nologin", "/sbin/nologin") if Path(s).exists()), None)
    if shutil.which("useradd"):
        command = ["useradd", "--system", "--user-group", "--no-create-home"]
        command += ["--shell", nologin] if nologin else []
        command.append(name)
    elif shutil.which("adduser"):  # BusyBox (Alpine): -S system, -D no password, -H no home
        command = ["adduser", "-S", "-D", "-H", name]
    else:
        raise RuntimeError(
            f"running as root, PostgreSQL needs an unprivileged account and none was found: "
            f"create one (e.g. `useradd --system {name}`) or set {USER_ENV_VAR}"
        )
    logger.warning("creating system account %r for the embedded servers", name)
    result = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
    if result.returncode != 0:
        raise RuntimeError(f"could not create account {name!r}: {result.stderr.strip()}")
