"""A real SMTP server on 127.0.0.1 (aiosmtpd) that keeps the mail it receives: the stand-in for
the mail provider in `make dev` (which prints each message's link) and in the tests."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller

from tripline_devstack.probes import free_port

_URL = re.compile(r"https?://\S+")
_TOKEN = re.compile(r"token: (\S+)")


@dataclass(frozen=True)
class ReceivedMail:
    """One message as the server received it."""

    sender: str
    recipients: list[str]
    message: EmailMessage

    @property
    def subject(self) -> str:
        """The Subject header."""
        return str(self.message["Subject"] or "")

    @property
    def text(self) -> str:
        """The plain-text body."""
        part = self.message.get_body(preferencelist=("plain",))
        return part.get_content() if part is not None else ""

    @property
    def links(self) -> list[str]:
        """Every http(s) URL in the body, in order."""
        return _URL.findall(self.text)

    @property
    def tokens(self) -> list[str]:
        """Tokens quoted as `token: <value>` in the body (password-reset mail)."""
        return _TOKEN.findall(self.text)


class _Handler:
    def __init__(self, mailbox: DevMailServer) -> None:
        self.mailbox = mailbox

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's hook name
        parsed = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        mail = ReceivedMail(envelope.mail_from, list(envelope.rcpt_tos), parsed)
        self.mailbox._receive(mail)
        return "250 Message accepted for delivery"


class DevMailServer:
    """`start()` listens on 127.0.0.1:`port` (a free one by default) in a background thread;
    `stop()` closes it. Received messages are in `messages`, and passed to `on_message`."""

    def __init__(
        self, port: int | None = None, on_message: Callable[[ReceivedMail], None] | None = None
    ) -> None:
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.on_message = on_message
        self._messages: list[ReceivedMail] = []
        self._lock = threading.Lock()
        self._controller = Controller(_Handler(self), hostname=self.host, port=self.port)

    def start(self) -> None:
        """Listen (returns once the server answers)."""
        self._controller.start()

    def stop(self) -> None:
        """Stop listening."""
        self._controller.stop()

    def _receive(self, mail: ReceivedMail) -> None:
        with self._lock:
            self._messages.append(mail)
        if self.on_message is not None:
            self.on_message(mail)

    @property
    def messages(self) -> list[ReceivedMail]:
        """Everything received so far, oldest first."""
        with self._lock:
            return list(self._messages)

    def to(self, address: str) -> list[ReceivedMail]:
        """The messages received for `address` (ignoring case)."""
        return [m for m in self.messages if address.lower() in (r.lower() for r in m.recipients)]

    def wait_for(self, address: str, count: int = 1, timeout: float = 20.0) -> list[ReceivedMail]:
        """Block until `count` messages for `address` arrived; raise TimeoutError after
        `timeout` seconds (a deadline for a failing test, not a measurement)."""
        deadline = time.monotonic() + timeout
        while True:
            received = self.to(address)
            if len(received) >= count:
                return received
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(received)} of {count} messages for {address} arrived")
            time.sleep(0.02)
