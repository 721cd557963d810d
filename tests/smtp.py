"""A real SMTP server on 127.0.0.1 for the tests (aiosmtpd, in a thread of the test process):
it keeps every message it accepted, and can be told to refuse a recipient for good (550), to
answer 451 (try again later) a number of times, or to be down (its port closed)."""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Mail:
    to: list[str]
    message: EmailMessage

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    def part(self, subtype: str) -> str:
        body = self.message.get_body(preferencelist=(subtype,))
        assert body is not None, f"no text/{subtype} part"
        return str(body.get_content())


@dataclass
class Handler:
    inbox: list[Mail] = field(default_factory=list)
    refuse: set[str] = field(default_factory=set)
    """Recipients refused with 550 (for good)."""
    busy: int = 0
    """How many RCPT commands still get 451 (try again later)."""
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: Any) -> str:
        with self.lock:
            if address in self.refuse:
                return "550 5.1.1 no such mailbox"
            if self.busy > 0:
                self.busy -= 1
                return "451 4.3.0 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        with self.lock:
            self.inbox.append(Mail(list(envelope.rcpt_tos), message))
        return "250 Message accepted"

    def to(self, address: str) -> list[Mail]:
        with self.lock:
            return [m for m in self.inbox if address in m.to]


class SmtpServer:
    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.handler = Handler()
        self.port = free_port()
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}?timeout=5"

    def start(self) -> SmtpServer:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()
