"""A real SMTP server on 127.0.0.1 for the tests (aiosmtpd, in a thread of the test process):
it keeps every message it accepted, and can be told to refuse a recipient for good (550), to
answer 451 (try again later) a number of times, or to be down (its port closed)."""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
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


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 (its own CA) and its key, as PEM files in ``folder``."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(
                ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = folder / "smtp-cert.pem", folder / "smtp-key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


class SmtpServer:
    """``tls``: (cert, key) files; the server then requires STARTTLS. ``login``: (user,
    password) the server then requires (over TLS)."""

    def __init__(self, tls: tuple[Path, Path] | None = None,
                 login: tuple[str, str] | None = None) -> None:
        import ssl

        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult

        self.handler = Handler()
        self.port = free_port()
        self.logins: list[tuple[str, bool]] = []
        options: dict[str, Any] = {}
        if tls is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(str(tls[0]), str(tls[1]))
            options |= {"tls_context": context, "require_starttls": True}
        if login is not None:
            def authenticate(server: Any, session: Any, envelope: Any, mechanism: str,
                             data: Any) -> Any:
                user, password = data.login.decode(), data.password.decode()
                ok = (user, password) == login
                self.logins.append((user, ok))
                return AuthResult(success=ok)

            options |= {"authenticator": authenticate, "auth_required": True}
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port,
                                     **options)

    @property
    def url(self) -> str:
        # a generous deadline: this server answers at once, but on a loaded two-core CI machine
        # a daemon's exchange once took over 5 s (the timeouts are tested with hanging servers)
        return f"smtp://127.0.0.1:{self.port}?timeout=30"

    def start(self) -> SmtpServer:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()
