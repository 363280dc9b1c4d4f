"""Shutdown of the ARQ loop: it ends even when a cancel is absorbed on the way."""

from __future__ import annotations

import asyncio
import contextlib
from types import SimpleNamespace

from tripline_worker.runner import ArqRunner


async def test_the_main_loop_is_cancelled_until_it_ends_even_if_a_cancel_is_absorbed() -> None:
    picked_after_the_first_cancel = 0

    async def loop_that_absorbs_one_cancel() -> None:
        nonlocal picked_after_the_first_cancel
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(3600)  # Absorbed, as a library awaiting Redis then may do.
        while True:  # The loop goes on, as ARQ's did after SIGTERM.
            picked_after_the_first_cancel += 1
            await asyncio.sleep(0.01)

    main = asyncio.create_task(loop_that_absorbs_one_cancel())
    await asyncio.sleep(0)
    worker = SimpleNamespace(main_task=main)

    await ArqRunner._main_loop_ended(worker)  # type: ignore[arg-type]

    assert main.cancelled()
    assert picked_after_the_first_cancel > 0  # The first cancel really was absorbed.


async def test_an_ended_or_missing_main_loop_needs_nothing() -> None:
    await ArqRunner._main_loop_ended(SimpleNamespace(main_task=None))  # type: ignore[arg-type]
    done = asyncio.create_task(asyncio.sleep(0))
    await done
    await ArqRunner._main_loop_ended(SimpleNamespace(main_task=done))  # type: ignore[arg-type]
    assert done.done() and not done.cancelled()
