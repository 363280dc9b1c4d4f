"""The sockets `serve` listens on (`tripline_common.web.server.listen`)."""

from __future__ import annotations

import pytest

from tripline_common.web.server import listen


def test_a_port_another_process_took_is_refused_rather_than_shared() -> None:
    """Two processes handed the same free port: the second fails to start. (Bound but not yet
    listening, SO_REUSEADDR let both bind it, and connections were split between them.)"""
    first = listen("127.0.0.1", 0)
    try:
        with pytest.raises(OSError):
            listen("127.0.0.1", first.getsockname()[1]).close()
    finally:
        first.close()


def test_a_freed_port_can_be_listened_on_again_at_once() -> None:
    """A restart reuses its port without waiting for TIME_WAIT (SO_REUSEADDR)."""
    first = listen("127.0.0.1", 0)
    port = first.getsockname()[1]
    first.close()
    listen("127.0.0.1", port).close()
