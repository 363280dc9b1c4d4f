"""A TCP proxy on 127.0.0.1 that the soak puts between a client and a server, to break the link
on command: added latency (a slow network), or no listener at all (a server that is down). With
an upstream that is picked per connection it is also the soak's load balancer: a Service's
clients reach whichever replica is ready, as kube-proxy sends each new connection to one."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from tripline_devstack import free_port

CHUNK = 65536

Upstream = Callable[[], tuple[str, int]]
"""Where the next connection goes; LookupError when there is nowhere (the connection closes)."""


class TcpProxy:
    """Forwards every connection on its port to an upstream, delaying each chunk by `latency`
    seconds in both directions while it is set."""

    def __init__(self, name: str, upstream: Upstream, port: int | None = None) -> None:
        self.name = name
        self.upstream = upstream
        self.port = port or free_port()
        self.latency = 0.0
        self._server: asyncio.Server | None = None
        self._links: set[asyncio.Task[None]] = set()

    @property
    def url_host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def listening(self) -> bool:
        return self._server is not None

    async def up(self) -> None:
        """Listen (again) on the proxy's port."""
        if self._server is None:
            self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)

    async def down(self) -> None:
        """Stop listening and cut every open connection: the server looks gone (connections
        are refused) until `up()`."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for link in list(self._links):
            link.cancel()
        await asyncio.gather(*self._links, return_exceptions=True)
        if server is not None:
            # After the links: a server waits for its open connections to close.
            await server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        if self._server is None:  # accepted just before `down()`: cut as the others were
            writer.close()
            return
        self._links.add(task)
        try:
            host, port = self.upstream()
            up_reader, up_writer = await asyncio.open_connection(host, port)
        except (LookupError, OSError):
            writer.close()
            self._links.discard(task)
            return
        try:
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        except (OSError, asyncio.IncompleteReadError, asyncio.CancelledError):
            # Cancelled: `down()` cuts the link. The task ends here, quietly: asyncio's stream
            # server would log a cancelled connection task as an error.
            pass
        finally:
            for end in (writer, up_writer):
                end.close()
            self._links.discard(task)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while chunk := await reader.read(CHUNK):
                if self.latency:
                    await asyncio.sleep(self.latency)
                writer.write(chunk)
                await writer.drain()
        finally:
            # Half-close: the other side learns this one is done, as on a plain connection.
            with contextlib.suppress(OSError, RuntimeError):
                writer.write_eof()


def fixed(host: str, port: int) -> Upstream:
    """An upstream that is always the same server."""
    return lambda: (host, port)
