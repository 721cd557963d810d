"""Channels that reach people: ``smtp://`` (email) and ``chat://`` (a Slack-compatible
incoming webhook per person), and the messages they carry (DESIGN.md "People and routing").

A channel sends one message to one person and says how it failed: :class:`SendError` with
``permanent`` for an answer that will not change on retry (an SMTP 5xx for that recipient, a
chat webhook that is gone), else a failed attempt that the sweep retries. Messages are rendered
from the Jinja2 templates in ``runtime/templates`` (the HTML part autoescaped: a task title
with ``<script>`` arrives as text).
"""

from __future__ import annotations

import os
import smtplib
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlparse

from runtime.errors import InputError
from runtime.model.people import Person
from runtime.notify import (
    DEFAULT_TIMEOUT_S,
    Deadline,
    DeliveryError,
    check_http_target,
    post_json,
    timeout_of,
)

MESSAGE_DOMAIN = "dataops.invalid"
"""The right-hand side of the Message-IDs we make: deterministic per reminder (or digest) and
person, so a mail client shows a message sent twice (a daemon killed between sending and
recording) as one."""


class SendError(DeliveryError):
    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


@dataclass
class Message:
    subject: str
    text: str
    html: str
    key: str
    """What the message is (a reminder or a digest ID): its Message-ID and idempotency key."""
    chat: str = ""
    """The short text a chat post carries."""


@dataclass
class Facts:
    """What a reminder message says; rendered by the templates."""

    reminder_id: str
    kind: str
    headline: str
    subject: str
    summary: str
    reason: str
    bundle_id: str | None = None
    bundle_title: str | None = None
    task_title: str | None = None
    due_date: str | None = None
    assignee: str | None = None
    waiting_for: str | None = None
    missing: list[str] = field(default_factory=list)
    doc_title: str | None = None
    doc_location: str | None = None
    doc_url: str | None = None
    step_title: str | None = None
    link: str | None = None
    fire_at: datetime | None = None


@cache
def _environment() -> Any:
    import jinja2

    return jinja2.Environment(
        loader=jinja2.PackageLoader("runtime", "templates"),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default_for_string=False),
        undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
    )


def render(name: str, **values: Any) -> str:
    return str(_environment().get_template(name).render(**values))


def reminder_message(facts: Facts) -> Message:
    return Message(subject=facts.subject, text=render("reminder.txt", m=facts),
                   html=render("reminder.html", m=facts), key=facts.reminder_id,
                   chat=f"{facts.subject}\n{facts.summary}" + (f"\n{facts.link}" if facts.link else ""))


@dataclass
class DigestGroup:
    title: str
    items: list[Facts]


def digest_message(digest_id: str, local_date: str, groups: list[DigestGroup]) -> Message:
    count = sum(len(g.items) for g in groups)
    d = {"digest_id": digest_id, "local_date": local_date, "count": count, "groups": groups}
    subject = f"Your digest for {local_date}: {count} reminder{'s' if count != 1 else ''}"
    lines = [f"- {m.headline}" for g in groups for m in g.items]
    return Message(subject=subject, text=render("digest.txt", d=d), html=render("digest.html", d=d),
                   key=digest_id, chat="\n".join([subject, *lines]))


class Channel(Protocol):
    url: str
    channel: str
    """The name recorded per recipient: ``email`` or ``chat``."""
    timeout_s: float

    def address(self, person: Person) -> str | None:
        """Where this channel reaches ``person``, or None (they have no address here)."""

    def send(self, person: Person, message: Message) -> None:
        """:raises SendError: not sent (``permanent``: retrying will not help)."""

    def close(self) -> None: ...


def _options(url: str, default_timeout: float, known: set[str], usage: str
             ) -> tuple[dict[str, str], float]:
    """A channel URL's query options and its timeout (the sinks' one ``?timeout=`` rule).

    :raises InputError: an option other than ``known`` and ``timeout``."""
    rest, timeout = timeout_of(url, default_timeout)
    options = dict(parse_qsl(urlparse(rest).query, keep_blank_values=True))
    unknown = sorted(set(options) - known)
    if unknown:
        raise InputError(f"sink {url!r}: unknown option {unknown[0]!r}; {usage}")
    return options, timeout


class SmtpChannel:
    """``smtp://HOST:PORT[?starttls=true][&timeout=S]``: one email per recipient, with a text
    and an HTML part, from ``DATAOPS_SMTP_FROM``; STARTTLS when asked, and a login when
    ``DATAOPS_SMTP_USER`` is set (with ``DATAOPS_SMTP_PASSWORD``). The timeout bounds each
    whole exchange. A 4xx answer is a failed attempt (retried); a 5xx refusing the recipient
    fails only that recipient; any other failure is retried."""

    channel = "email"

    def __init__(self, url: str, timeout_s: float = DEFAULT_TIMEOUT_S,
                 env: dict[str, str] | None = None) -> None:
        env = dict(os.environ) if env is None else env
        parsed = urlparse(url)
        query, self.timeout_s = _options(url, timeout_s, {"starttls"},
                                         "smtp:// takes starttls=true and timeout=SECONDS")
        if not parsed.hostname:
            raise InputError(f"sink {url!r} names no host; write smtp://HOST:PORT")
        try:
            self.port = parsed.port or 25
        except ValueError:
            raise InputError(f"sink {url!r}: the port is not a number") from None
        starttls = query.get("starttls", "false").lower()
        if starttls not in ("true", "false"):
            raise InputError(f"sink {url!r}: starttls={query['starttls']} must be true or false")
        self.url, self.host, self.starttls = url, parsed.hostname, starttls == "true"
        self.sender = env.get("DATAOPS_SMTP_FROM") or "dataops@localhost"
        self.user = env.get("DATAOPS_SMTP_USER") or None
        self.password = env.get("DATAOPS_SMTP_PASSWORD") or None
        if self.user and self.password is None:
            raise InputError(f"sink {url!r}: DATAOPS_SMTP_USER is set; set DATAOPS_SMTP_PASSWORD too")

    def address(self, person: Person) -> str | None:
        return person.email

    def email(self, person: Person, message: Message) -> Any:
        from email import policy
        from email.message import EmailMessage
        from email.utils import formataddr, formatdate

        # header lines up to RFC 5322's 998: Python folds a long subject whole onto a second
        # line, which some readers show with a leading space
        mail = EmailMessage(policy=policy.SMTP.clone(max_line_length=998))
        mail["From"] = self.sender
        # one line each: a title or name that spans lines must not break (or forge) a header
        mail["To"] = formataddr((" ".join(person.name.split()), person.email or ""))
        mail["Subject"] = " ".join(message.subject.split())
        mail["Date"] = formatdate(localtime=False)
        mail["Message-ID"] = f"<{message.key}.{person.person_id}@{MESSAGE_DOMAIN}>"
        mail["X-Dataops-Key"] = message.key
        mail.set_content(message.text)
        mail.add_alternative(message.html, subtype="html")
        return mail

    def send(self, person: Person, message: Message) -> None:
        import ssl

        to = person.email
        if not to:
            raise SendError(f"{person.person_id} has no email", permanent=True)
        mail = self.email(person, message)
        client = _SMTP(timeout=self.timeout_s)
        with Deadline(self.timeout_s, lambda: getattr(client, "sock", None)) as deadline:
            try:  # the deadline covers the whole exchange, QUIT included
                try:
                    client.connect(self.host, self.port)
                    client.ehlo_or_helo_if_needed()  # HELO for a server that refuses EHLO
                    if self.starttls:
                        client.starttls(context=ssl.create_default_context())
                        client.ehlo()
                    if self.user:
                        client.login(self.user, self.password or "")
                    client.send_message(mail, from_addr=self.sender, to_addrs=[to])
                except smtplib.SMTPRecipientsRefused as e:
                    code, text = next(iter(e.recipients.values()), (0, b""))
                    raise SendError(f"{self.url}: {to} refused: {code} {_text(text)}",
                                    permanent=500 <= code < 600) from e
                except smtplib.SMTPResponseException as e:
                    raise SendError(f"{self.url}: {e.smtp_code} {_text(e.smtp_error)}") from e
                except (OSError, smtplib.SMTPException) as e:
                    if deadline.expired.is_set() or isinstance(e, TimeoutError):
                        raise SendError(f"{self.url}: timed out (no whole exchange within "
                                        f"{self.timeout_s:g} s)") from e
                    raise SendError(f"{self.url}: {type(e).__name__}: {e}") from e
            finally:
                try:
                    client.quit()
                except (OSError, smtplib.SMTPException):
                    client.close()

    def close(self) -> None:
        pass


class _SMTP(smtplib.SMTP):
    """smtplib's client, connected after construction (so that the deadline covers the
    connect and the greeting) yet knowing the host name STARTTLS checks the certificate
    against: ``SMTP.connect`` does not record it, only the constructor does."""

    def connect(self, host: str = "localhost", port: int = 0,
                source_address: Any = None) -> Any:
        self._host = host
        return super().connect(host, port, source_address)


def _text(raw: bytes | str) -> str:
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)


def slack_escape(text: str) -> str:
    """``&``, ``<`` and ``>`` as Slack-compatible hooks want them in ``text``: a task title such
    as ``<!channel>`` or ``<script>`` then shows as written, never as a mention or a link."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class ChatChannel:
    """``chat://[?timeout=S]``: posts ``{"text": ...}`` to each recipient's own ``chat``
    webhook (Slack-compatible). A 2xx is a delivery; a redirect or 408, 429 or 5xx a failed
    attempt; any other 4xx (the hook is gone or refuses us) fails only that recipient."""

    channel = "chat"

    def __init__(self, url: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        _, self.timeout_s = _options(url, timeout_s, set(), "chat:// takes timeout=SECONDS")
        self.url = url

    def address(self, person: Person) -> str | None:
        return person.chat

    def send(self, person: Person, message: Message) -> None:
        import json

        hook = person.chat
        if not hook:
            raise SendError(f"{person.person_id} has no chat webhook", permanent=True)
        try:
            check_http_target(hook, f"chat webhook of {person.person_id}")
        except InputError as e:
            raise SendError(str(e), permanent=True) from None
        body = json.dumps({"text": slack_escape(message.chat)}, ensure_ascii=False).encode()
        label = f"chat webhook of {person.person_id}"
        status, _ = post_json(hook, body, {"Idempotency-Key": f"{message.key}.{person.person_id}"},
                              self.timeout_s, label)
        if 200 <= status < 300:
            return
        permanent = 400 <= status < 500 and status not in (408, 429)
        raise SendError(f"{label}: HTTP {status}", permanent=permanent)

    def close(self) -> None:
        pass


def open_channel(url: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> Channel | None:
    """The channel ``url`` names (smtp://, chat://), or None for a sink of another kind."""
    scheme = url.split(":", 1)[0].lower()
    if scheme == "smtp":
        return SmtpChannel(url, timeout_s)
    if scheme == "chat":
        return ChatChannel(url, timeout_s)
    return None
