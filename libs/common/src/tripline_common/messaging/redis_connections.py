"""Redis connections whose broken transport is a `ConnectionError` on every event loop."""

from __future__ import annotations

from collections.abc import Iterable

from redis.asyncio.connection import (
    AbstractConnection,
    Connection,
    SSLConnection,
    UnixDomainSocketConnection,
)
from redis.exceptions import ConnectionError as RedisConnectionError


class _ClosedTransportAsConnectionLoss(AbstractConnection):
    """uvloop (the apps' loop) raises `RuntimeError` when a command is written to a transport
    the server has just closed, where asyncio's loop gives an `OSError` that redis-py turns into
    `ConnectionError`. Unchanged, it skipped the client's reconnect-and-retry and every
    fail-open path (a rate limit, a cache), and a Redis restart answered uploads with 500
    (seen in the chaos soak, docs/soak.md)."""

    async def send_packed_command(
        self, command: bytes | str | Iterable[bytes], check_health: bool = True
    ) -> None:
        try:
            await super().send_packed_command(command, check_health)
        except RuntimeError as exc:  # The connection is already disconnected by then.
            raise RedisConnectionError(f"Error while writing to socket: {exc}") from exc


class SafeConnection(_ClosedTransportAsConnectionLoss, Connection):
    """`redis://`."""


class SafeSSLConnection(_ClosedTransportAsConnectionLoss, SSLConnection):
    """`rediss://`."""


class SafeUnixDomainSocketConnection(_ClosedTransportAsConnectionLoss, UnixDomainSocketConnection):
    """`unix://`."""


SAFE_CONNECTIONS: dict[type[AbstractConnection], type[AbstractConnection]] = {
    Connection: SafeConnection,
    SSLConnection: SafeSSLConnection,
    UnixDomainSocketConnection: SafeUnixDomainSocketConnection,
}
"""The connection class a Redis URL's scheme picks, and ours in its place."""
