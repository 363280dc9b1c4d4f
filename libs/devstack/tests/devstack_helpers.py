"""Helpers for the devstack tests: seeing that processes are gone, waiting for conditions."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path


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


def eventually(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Poll `condition` until it holds (True) or `timeout` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True
