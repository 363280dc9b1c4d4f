"""A stand-in for Sentry: a real HTTP server on 127.0.0.1 that takes the SDK's envelopes,
decompresses and parses them, and keeps them for a test to read."""

from __future__ import annotations

import gzip
import json
import threading
import zlib
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class SentryEnvelope:
    """One envelope a `FakeSentry` received: decompressed, its header and its items."""

    raw: bytes
    headers: dict[str, Any]
    items: list[tuple[dict[str, Any], bytes]]

    def payloads(self, item_type: str) -> list[dict[str, Any]]:
        """The JSON payloads of the items of `item_type` ("event", "transaction", ...)."""
        return [json.loads(body) for header, body in self.items if header.get("type") == item_type]


def decompress_sentry_body(body: bytes, encoding: str) -> bytes:
    """A request body as the Sentry SDK compressed it (`Content-Encoding`), decompressed."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "deflate":
        return zlib.decompress(body)
    if encoding == "br":
        try:
            import brotli  # type: ignore[import-not-found]  # only if the SDK chose it
        except ImportError:
            raise ValueError("brotli-compressed envelope, but brotli is not installed") from None
        return bytes(brotli.decompress(body))
    raise ValueError(f"unexpected Content-Encoding {encoding!r}")


def parse_sentry_envelope(raw: bytes) -> SentryEnvelope:
    """An envelope: a JSON header line, then per item a JSON header line and its payload."""
    header_line, _, rest = raw.partition(b"\n")
    items: list[tuple[dict[str, Any], bytes]] = []
    while rest.strip():
        item_line, _, rest = rest.partition(b"\n")
        item_header = json.loads(item_line)
        if "length" in item_header:
            length = int(item_header["length"])
            payload, rest = rest[:length], rest[length:]
            rest = rest.removeprefix(b"\n")
        else:
            payload, _, rest = rest.partition(b"\n")
        items.append((item_header, payload))
    return SentryEnvelope(raw=raw, headers=json.loads(header_line), items=items)


class FakeSentry:
    """A real HTTP server on 127.0.0.1 standing in for Sentry; `dsn` points an SDK at it.

    It accepts envelopes POSTed to `/api/<project>/envelope/` (gzip, deflate or br bodies),
    decompresses and parses them, and records them in `envelopes`; anything it cannot take is
    answered 400 and described in `errors` (a test asserts that list stays empty).
    """

    def __init__(self) -> None:
        self.port = 0
        self.envelopes: list[SentryEnvelope] = []
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def dsn(self) -> str:
        return f"http://public@127.0.0.1:{self.port}/1"

    def start(self) -> None:
        sentry = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                try:
                    parts = self.path.split("?", 1)[0].strip("/").split("/")
                    if len(parts) != 3 or parts[0] != "api" or parts[2] != "envelope":
                        raise ValueError(f"unexpected path {self.path}")
                    body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                    raw = decompress_sentry_body(body, self.headers.get("Content-Encoding", ""))
                    envelope = parse_sentry_envelope(raw)
                except Exception as exc:
                    with sentry._lock:
                        sentry.errors.append(f"{type(exc).__name__}: {exc}")
                    self.send_response(HTTPStatus.BAD_REQUEST)
                else:
                    with sentry._lock:
                        sentry.envelopes.append(envelope)
                    self.send_response(HTTPStatus.OK)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}
        )
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            assert not self._thread.is_alive()
            self._thread = None

    def received(self) -> list[SentryEnvelope]:
        """The envelopes received so far, in order."""
        with self._lock:
            return list(self.envelopes)

    def raw(self) -> bytes:
        """Every envelope received, decompressed, one after the other."""
        return b"\n".join(envelope.raw for envelope in self.received())

    def events(self, service: str | None = None) -> list[dict[str, Any]]:
        """The error events received, in order; with `service`, only those tagged with it."""
        events = [event for envelope in self.received() for event in envelope.payloads("event")]
        return [e for e in events if service in (None, e.get("tags", {}).get("service"))]
