"""A stand-in for a user's webhook endpoint: a real HTTP server on 127.0.0.1 that records what
it receives and answers with scripted statuses."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tripline_devstack.probes import free_port


@dataclass
class ReceivedRequest:
    """One request a `WebhookReceiver` got, and the status it answered."""

    path: str
    headers: dict[str, str]
    body: bytes
    status: int


class WebhookReceiver:
    """A real HTTP server on 127.0.0.1 standing in for a user's webhook endpoint.

    It records every POST and answers with the statuses queued in `script` (then 200), handing
    each to `on_request` too if given. `stop()` and `start()` again reuse the same port, for an
    endpoint that goes away and comes back. `host` is the address it listens on.
    """

    def __init__(
        self,
        port: int | None = None,
        on_request: Callable[[ReceivedRequest], None] | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        self.host = host
        self.port = port or free_port()
        self.on_request = on_request
        self.script: list[int] = []
        self.received: list[ReceivedRequest] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/tripline"

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver._lock:
                    status = receiver.script.pop(0) if receiver.script else 200
                    request = ReceivedRequest(self.path, dict(self.headers.items()), body, status)
                    receiver.received.append(request)
                if receiver.on_request is not None:
                    receiver.on_request(request)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer((self.host, self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def delivered(self) -> list[ReceivedRequest]:
        """The requests answered with a 2xx."""
        with self._lock:
            return [r for r in self.received if 200 <= r.status < 300]
