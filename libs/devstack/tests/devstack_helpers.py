"""Helpers for the devstack tests: seeing that processes are gone, a server run that must leave
nothing behind, waiting for conditions."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from tripline_devstack import port_is_free
from tripline_devstack.embedded import EmbeddedServer


def process_group_is_gone(pgid: int) -> bool:
    """True if no process is left in group `pgid` (servers lead their own group)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


def process_is_gone(pid: int) -> bool:
    """True if `pid` is not a live process (a zombie counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] == "Z"


@contextlib.contextmanager
def run_leaving_nothing_behind(
    server: EmbeddedServer, answers: Callable[..., bool]
) -> Iterator[None]:
    """Start `server` for the block, stop it after; then assert that stopping left no process,
    nothing answering on its URL (`answers`, e.g. `postgres_answers`) and a closed port."""
    server.start()
    try:
        pid = server.pid
        assert pid is not None
        yield
    finally:
        server.stop()

    assert not server.running
    assert process_group_is_gone(pid)
    assert not answers(server.url(), timeout=1)
    assert port_is_free(server.port)


def eventually(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Poll `condition` until it holds (True) or `timeout` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True
