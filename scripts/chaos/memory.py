"""Each process's resident memory over the soak, read from /proc every few seconds: every live
replica by its name, and Redis (a restart starts a new series under a new name)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from pathlib import Path

from chaos.record import MemorySample

SAMPLE_EVERY_SECONDS = 2.0


def rss_bytes(pid: int) -> int | None:
    """The process's resident set size, or None if it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return None


async def sample(
    processes: Callable[[], dict[str, int]], samples: list[MemorySample], stop: asyncio.Event
) -> None:
    """Append a sample of every process `processes()` names (name -> pid) until `stop`."""
    while not stop.is_set():
        now = time.time()
        for name, pid in processes().items():
            rss = rss_bytes(pid)
            if rss is not None:
                samples.append(MemorySample(name, now, rss))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), SAMPLE_EVERY_SECONDS)
