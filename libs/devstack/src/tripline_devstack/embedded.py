"""What every embedded server shares: a data dir, a port, a child process that never outlives us.

Layout of a server's `data_dir`:

    .lock        an flock held while a process runs the server; a second owner is refused
    server.log   the server's output for the current run (shown when it fails to start)
    pgdata/ or data/
                 the server's own files, owned by the account it runs as (see `os_user`)

How a server is kept from outliving the Python process that started it:

- normal exit and Ctrl-C (KeyboardInterrupt unwinds the program): `stop()`, the context manager,
  and an `atexit` hook that stops whatever is still running;
- SIGTERM: if the program has no SIGTERM handler of its own, the first `start()` installs one
  that stops the servers and then lets the process die of SIGTERM exactly as it would have;
- SIGKILL, or any other death, on Linux: the child asks the kernel to send it its stop signal
  when we die (`PR_SET_PDEATHSIG`). The kernel ties that to the *thread* that started the child,
  so it is only armed when `start()` runs on the main thread;
- anywhere that leaves a server behind (macOS, a start from another thread, a machine that
  lost power), the next `start()` on the same `data_dir` finds it through its pid file, stops
  it and removes the stale file before starting afresh.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import fcntl
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from abc import abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import IO, ClassVar, Self

from tripline_devstack.os_user import OsUser, permission_hint, server_account
from tripline_devstack.probes import free_port, port_is_free
from tripline_devstack.stoppable import Stoppable

logger = logging.getLogger("tripline_devstack")

_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


class EmbeddedServerError(RuntimeError):
    """An embedded server could not be started; the message ends with its log tail."""


class EmbeddedServer(Stoppable):
    """Base of `EmbeddedPostgres` and `EmbeddedRedis`: start, wait until ready, stop, clean up."""

    name: ClassVar[str]
    """Short name used in messages."""
    stop_signal: ClassVar[signal.Signals]
    """The signal that asks the server for a clean, quick shutdown."""
    work_dir_name: ClassVar[str]
    """Directory under data_dir that belongs to the server process."""

    start_timeout: float = 30.0
    stop_timeout: float = 10.0

    def __init__(self, data_dir: Path | None = None, port: int | None = None) -> None:
        """A server under `data_dir` on 127.0.0.1:`port` (None: a free port, picked now).

        Without a `data_dir`, the server works in a throwaway directory under the system's
        temporary directory, created by `start()` and deleted by `stop()`.
        """
        self._throwaway = data_dir is None
        if data_dir is None:
            data_dir = Path(tempfile.gettempdir()) / f"tripline-{self.name}-{uuid.uuid4().hex[:12]}"
        self.data_dir = Path(data_dir).absolute()
        self.port = free_port() if port is None else port
        self._process: subprocess.Popen[bytes] | None = None
        self._lock: IO[str] | None = None
        self._account: OsUser | None = None

    # -- what each server defines ------------------------------------------------------------

    @abstractmethod
    def _prepare(self) -> None:
        """Create or fix the server's files under `work_dir` (owned by `self._account`)."""

    @abstractmethod
    def _command(self) -> list[str]:
        """The command line that runs the server in the foreground."""

    @abstractmethod
    def _pid_file(self) -> Path:
        """Where the running server records its pid (used to find one left by a killed run)."""

    @abstractmethod
    def _is_server_process(self, command_line: str) -> bool:
        """True if a process with this command line is this kind of server for this data dir."""

    @abstractmethod
    def _problem(self) -> str | None:
        """Why a client cannot use the server right now, or None when it can."""

    # -- the shared lifecycle ----------------------------------------------------------------

    @property
    def work_dir(self) -> Path:
        """The server's own directory (cluster files, append-only file, pid file)."""
        return self.data_dir / self.work_dir_name

    @property
    def log_path(self) -> Path:
        """The server's output for the current run."""
        return self.data_dir / "server.log"

    @property
    def pid(self) -> int | None:
        """The server's pid while it runs (also its process group id)."""
        return self._process.pid if self.running and self._process else None

    @property
    def running(self) -> bool:
        """True while the server process we started is alive."""
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Start the server and return once it accepts connections (no-op if already running).

        Raises EmbeddedServerError, with the server's log tail, if it does not come up within
        `start_timeout` seconds; nothing is left running in that case.
        """
        if self.running:
            return
        self.stop()  # after a crash: reap the dead process and release our lock first
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._lock = _lock_data_dir(self.data_dir)
        try:
            self._account = server_account(self.data_dir)
            self._stop_leftover()
            if not port_is_free(self.port):
                raise EmbeddedServerError(f"{self.name}: port {self.port} is already in use")
            self._prepare()
            self._process = _spawn(self._command(), self)
            _track(self)
            self._wait_until_ready()
        except BaseException:
            self.stop()
            raise
        logger.info("%s is running on 127.0.0.1:%d (pid %d)", self.name, self.port, self.pid)

    def stop(self) -> None:
        """Stop the server: its clean shutdown first, SIGKILL after `stop_timeout` seconds.

        When this returns, no process of the server is left. Safe to call more than once.
        """
        process, self._process = self._process, None
        try:
            if process is not None:
                _terminate(process, self.stop_signal, self.stop_timeout, self.name)
        finally:
            _untrack(self)
            if self._lock is not None:
                self._lock.close()  # closing the file releases the flock
                self._lock = None
            if self._throwaway:
                shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> Self:
        """`with server:` starts it, and stops it when the block ends."""
        self.start()
        return self

    def __repr__(self) -> str:
        state = f"running, pid {self.pid}" if self.running else "stopped"
        return f"<{type(self).__name__} 127.0.0.1:{self.port} {self.data_dir} ({state})>"

    def log_tail(self, lines: int = 20) -> str:
        """The last `lines` lines of the server's log, for error messages."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:]) or "(empty log)"

    @property
    def account(self) -> OsUser | None:
        """The account the server runs as, once started (None: the same as this process)."""
        return self._account

    def _wait_until_ready(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + self.start_timeout
        delay = 0.02
        while True:
            code = self._process.poll()
            if code is not None:
                raise self._failure(f"{self.name} exited with code {code} while starting")
            problem = self._problem()
            if problem is None:
                return
            if time.monotonic() > deadline:
                raise self._failure(
                    f"{self.name} did not accept connections on 127.0.0.1:{self.port} within "
                    f"{self.start_timeout:.0f}s (last error: {problem})"
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.25)

    def _failure(self, message: str) -> EmbeddedServerError:
        """An error for `message` ending with the server's log tail."""
        tail = self.log_tail()
        hint = permission_hint(tail, self.data_dir, self.account)
        return EmbeddedServerError(f"{message}; {self.log_path}:\n{tail}{hint}")

    def _stop_leftover(self) -> None:
        """Stop a server a killed run left on this data dir; drop a pid file nobody owns."""
        pid_file = self._pid_file()
        pid = _read_pid(pid_file)
        if pid is None:
            pid_file.unlink(missing_ok=True)
            return
        command_line = _command_line(pid)
        if command_line is not None and self._is_server_process(command_line):
            logger.warning(
                "%s: stopping a server left running on %s by an earlier run (pid %d)",
                self.name,
                self.data_dir,
                pid,
            )
            _stop_foreign_process(pid, self.stop_signal, self.stop_timeout)
        # The pid is dead, or now belongs to an unrelated process (pid reuse after a reboot or
        # in a new container): either way the file is stale and would stop the server starting.
        pid_file.unlink(missing_ok=True)


# -- child processes ---------------------------------------------------------------------------


def _spawn(command: list[str], server: EmbeddedServer) -> subprocess.Popen[bytes]:
    account = server.account
    with open(server.log_path, "wb") as log:
        return subprocess.Popen(  # noqa: S603 - our own binaries, arguments built here
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=server.work_dir,
            env=server_environment(),
            # Its own session: Ctrl-C in the terminal reaches us, not the server, so we decide
            # the order of shutdown (apps first, then their databases).
            start_new_session=True,
            preexec_fn=_die_with_parent(server.stop_signal),
            user=account.uid if account else None,
            group=account.gid if account else None,
            extra_groups=list(account.groups) if account else None,
        )


def server_environment() -> dict[str, str]:
    """Environment for server processes: ours, with the C locale (no locale warnings)."""
    return {**os.environ, "LC_ALL": "C", "LANG": "C"}


def _die_with_parent(stop_signal: signal.Signals) -> Callable[[], None] | None:
    """A pre-exec hook asking Linux to send `stop_signal` to the child when we die.

    Runs in the child after it switched accounts (switching would clear the setting). Only armed
    on the main thread: the kernel fires it when the starting *thread* exits.
    """
    if sys.platform != "linux" or threading.current_thread() is not threading.main_thread():
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent = os.getpid()

    def arm() -> None:
        prctl(_PR_SET_PDEATHSIG, int(stop_signal))
        if os.getppid() != parent:  # we died before the hook ran: do not start an orphan
            os._exit(1)

    return arm


def _terminate(
    process: subprocess.Popen[bytes], stop_signal: signal.Signals, timeout: float, name: str
) -> None:
    if process.poll() is None:
        process.send_signal(stop_signal)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            logger.warning("%s did not stop within %.0fs; killing it", name, timeout)
            _kill_group(process.pid)
            process.wait()
    # The server ran as leader of its own process group: kill anything of it still around
    # (the workers of a server that crashed instead of shutting down cleanly).
    _kill_group(process.pid)


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _stop_foreign_process(pid: int, stop_signal: signal.Signals, timeout: float) -> None:
    """Stop a process that is not our child (we cannot wait for it, only watch it go)."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, stop_signal)
    if _wait_gone(pid, timeout):
        return
    try:
        leads_its_group = os.getpgid(pid) == pid
    except ProcessLookupError:
        return
    if leads_its_group:
        _kill_group(pid)
    else:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    if not _wait_gone(pid, 5.0):
        raise EmbeddedServerError(f"could not stop the leftover server process {pid}")


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while _command_line(pid) is not None:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _read_pid(pid_file: Path) -> int | None:
    try:
        first_line = pid_file.read_text().split("\n", 1)[0].strip()
        return int(first_line)
    except (OSError, ValueError):
        return None


def _command_line(pid: int) -> str | None:
    """The command line of a live process, or None if there is none (zombies count as dead)."""
    proc = Path(f"/proc/{pid}")
    if Path("/proc/self").exists():
        try:
            raw = (proc / "cmdline").read_bytes()
        except OSError:
            return None
        return raw.replace(b"\0", b" ").decode(errors="replace").strip() or None
    result = subprocess.run(  # noqa: S603 - macOS and other systems without /proc
        ["ps", "-o", "stat=,command=", "-p", str(pid)],  # noqa: S607
        capture_output=True,
        text=True,
        check=False,
    )
    state, _, command = result.stdout.strip().partition(" ")
    if result.returncode != 0 or not state or state.startswith("Z"):
        return None
    return command.strip() or None


# -- the data dir lock -------------------------------------------------------------------------


def _lock_data_dir(data_dir: Path) -> IO[str]:
    handle = open(data_dir / ".lock", "a+")  # noqa: SIM115 - held open for the server's lifetime
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        raise EmbeddedServerError(
            f"{data_dir} is in use by another process (pid {holder}); stop it or use another "
            "data dir"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


# -- never outlive the process that started us ---------------------------------------------------

_running: set[EmbeddedServer] = set()
_exit_hooks_installed = False


def _track(server: EmbeddedServer) -> None:
    global _exit_hooks_installed
    if not _exit_hooks_installed:
        atexit.register(stop_all)
        _stop_on_sigterm()
        _exit_hooks_installed = True
    _running.add(server)


def _untrack(server: EmbeddedServer) -> None:
    _running.discard(server)


def stop_all() -> None:
    """Stop every embedded server this process started and has not stopped yet."""
    for server in list(_running):
        try:
            server.stop()
        except Exception:
            logger.exception("could not stop %r", server)


def _stop_on_sigterm() -> None:
    """Make SIGTERM stop our servers first, if the program left SIGTERM at its default."""
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return  # the program handles SIGTERM itself (and normally exits through atexit)

    def stop_then_die(signum: int, frame: object) -> None:
        stop_all()
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop_then_die)
