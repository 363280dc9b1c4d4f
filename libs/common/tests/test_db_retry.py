"""The retry decorator repeats transient connection failures, and nothing else."""

from __future__ import annotations

import pytest

from tripline_common.data import retry_transient


async def test_transient_failures_are_retried_until_success() -> None:
    calls = 0

    @retry_transient(attempts=3, max_wait=0.1)
    async def flaky() -> str:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise ConnectionResetError("connection reset by peer")
        return "done"

    assert await flaky() == "done"
    assert calls == 3


async def test_gives_up_after_the_last_attempt() -> None:
    calls = 0

    @retry_transient(attempts=2, max_wait=0.1)
    async def down() -> None:
        nonlocal calls
        calls += 1
        raise ConnectionRefusedError("refused")

    with pytest.raises(ConnectionRefusedError):
        await down()
    assert calls == 2


async def test_other_errors_are_not_retried() -> None:
    calls = 0

    @retry_transient(attempts=3, max_wait=0.1)
    async def wrong() -> None:
        nonlocal calls
        calls += 1
        raise ValueError("a bug, not an outage")

    with pytest.raises(ValueError, match="a bug"):
        await wrong()
    assert calls == 1
