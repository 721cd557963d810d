"""Reminder sinks: where recorded reminders are delivered.

Delivery is at-least-once: a sink may see a reminder again after a crash or a retry, so every
payload carries ``idempotency_key`` (the reminder ID) for the receiver to drop duplicates.
A sink raises :class:`DeliveryError` when a delivery failed; the sweep retries with backoff.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

from runtime.errors import DataopsError, InputError
from runtime.model import Reminder

SIGNATURE_HEADER = "X-Dataops-Signature"
TIMESTAMP_HEADER = "X-Dataops-Timestamp"


class DeliveryError(DataopsError):
    """A sink could not deliver; the sweep retries it later."""


PAYLOAD_EXCLUDE = frozenset({"deliver_after", "version", "last_error", "audit_seq", "audit_hash",
                             "digest_after", "recipients"})


def payload_of(reminder: Reminder) -> dict[str, Any]:
    """What a sink receives: the reminder's export shape without its bookkeeping, with
    ``recipients`` as person IDs (who it is for; each one's delivery state stays in the store)
    and ``idempotency_key``."""
    import orjson

    body: dict[str, Any] = orjson.loads(reminder.model_dump_json(exclude=set(PAYLOAD_EXCLUDE)))
    body["recipients"] = [r.person_id for r in reminder.recipients]
    body["idempotency_key"] = reminder.reminder_id
    return body


class Sink(Protocol):
    url: str

    def deliver(self, payload: dict[str, Any]) -> None:
        """Deliver one reminder payload.

        :raises DeliveryError: it did not arrive; retry later.
        """

    def close(self) -> None: ...


class LogSink:
    """Structured log lines (JSON) on stderr."""

    url = "log://"

    def __init__(self, stream: Any = None) -> None:
        self.stream = stream

    def deliver(self, payload: dict[str, Any]) -> None:
        stream = self.stream or sys.stderr
        stream.write(json.dumps({"event": "reminder", **payload}, ensure_ascii=False) + "\n")
        stream.flush()

    def close(self) -> None:
        pass


class FileSink:
    """Appends one JSON object a line to a file (flushed and fsynced per delivery)."""

    def __init__(self, url: str) -> None:
        self.url = url
        path = urlparse(url).path
        if not path:
            raise InputError(f"sink {url!r}: write a file sink as file:///path/reminders.jsonl")
        self.path = Path(path)
        if not self.path.parent.is_dir():
            raise InputError(f"sink {url!r}: folder {self.path.parent} does not exist")
        self._lock = threading.Lock()

    def deliver(self, payload: dict[str, Any]) -> None:
        line = json.dumps(payload, ensure_ascii=False, sort_keys=True) + "\n"
        try:
            with self._lock, self.path.open("a", encoding="utf-8") as f:
                f.write(line)
                f.flush()
                os.fsync(f.fileno())
        except OSError as e:
            raise DeliveryError(f"{self.url}: {e}") from e

    def close(self) -> None:
        pass


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=`` + hex HMAC-SHA256 of ``TIMESTAMP.BODY``: the receiver recomputes it and
    rejects a timestamp older than its tolerance (replay protection)."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify_signature(secret: str, timestamp: str | None, body: bytes, signature: str | None,
                     *, now: float | None = None, tolerance_s: int = 300) -> bool:
    """What a receiver does: check the HMAC and that the timestamp is recent. A missing or
    non-numeric timestamp and a missing or malformed signature are False, never an error."""
    if not isinstance(timestamp, str) or not isinstance(signature, str):
        return False
    try:
        stamp = int(timestamp)
        expected = sign(secret, timestamp, body).encode("ascii")
        given = signature.encode("ascii")
    except (ValueError, UnicodeError):
        return False
    if not hmac.compare_digest(expected, given):
        return False
    current = time.time() if now is None else now
    return abs(current - stamp) <= tolerance_s


DEFAULT_TIMEOUT_S = 10.0


def timeout_of(url: str, default: float) -> tuple[str, float]:
    """The URL without its ``timeout`` query option, and that timeout (seconds) or ``default``."""
    import math
    from urllib.parse import parse_qsl, urlencode, urlunparse

    parsed = urlparse(url)
    query = parse_qsl(parsed.query, keep_blank_values=True)
    given = [v for k, v in query if k == "timeout"]
    if not given:
        return url, default
    try:
        timeout = float(given[-1])
    except ValueError:
        timeout = -1.0
    if not math.isfinite(timeout) or timeout <= 0:
        raise InputError(f"sink {url!r}: timeout={given[-1]} is not a positive number of seconds")
    rest = urlencode([(k, v) for k, v in query if k != "timeout"])
    return urlunparse(parsed._replace(query=rest)), timeout


class WebhookSink:
    """POSTs the JSON payload, signed with HMAC-SHA256 (secret from DATAOPS_WEBHOOK_SECRET).
    Only a 2xx answer is a delivery; a redirect is never followed (it is a failed attempt).

    ``?timeout=SECONDS`` on the URL overrides ``timeout_s``, which bounds the *whole* delivery
    (connect, send, the answer's status line and headers), not each socket operation: a
    receiver that trickles a byte at a time is cut off at the deadline like one that hangs.
    Built on :mod:`http.client` rather than urllib because urllib's timeout is per socket
    operation and it follows redirects; no environment proxy is used."""

    def __init__(self, url: str, secret: str | None = None, timeout_s: float = DEFAULT_TIMEOUT_S,
                 wall_clock: Callable[[], float] = time.time) -> None:
        self.target, timeout_s = timeout_of(url, timeout_s)
        check_http_target(self.target, "sink")
        secret = secret if secret is not None else os.environ.get("DATAOPS_WEBHOOK_SECRET")
        if not secret:
            raise InputError(f"sink {url!r}: set DATAOPS_WEBHOOK_SECRET to the webhook's signing secret")
        self.url, self.secret, self.timeout_s, self.wall_clock = url, secret, timeout_s, wall_clock

    def deliver(self, payload: dict[str, Any]) -> None:
        body = json.dumps(payload, ensure_ascii=False, sort_keys=True).encode()
        timestamp = str(int(self.wall_clock()))
        headers = {
            "Idempotency-Key": payload["idempotency_key"],
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign(self.secret, timestamp, body),
        }
        status, location = post_json(self.target, body, headers, self.timeout_s, self.url)
        if 300 <= status < 400:
            raise DeliveryError(f"{self.url}: HTTP {status} redirect to {location!r} "
                                "not followed (only a 2xx is a delivery)")
        if not 200 <= status < 300:
            raise DeliveryError(f"{self.url}: HTTP {status}")

    def close(self) -> None:
        pass


class Deadline:
    """A bound on a whole exchange over a socket, not on each operation: when ``seconds``
    pass, the socket ``sock()`` gives is shut down, which wakes whatever read or write is
    blocked on it. ``expired`` tells the caller that an error it got was the cut."""

    def __init__(self, seconds: float, sock: Callable[[], Any]) -> None:
        self.expired = threading.Event()
        self._sock = sock
        self._timer = threading.Timer(seconds, self._cut)
        self._timer.daemon = True

    def _cut(self) -> None:
        import socket

        self.expired.set()
        sock = self._sock()  # once: the delivering thread may close it (None) meanwhile
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> Deadline:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()


def check_http_target(url: str, what: str) -> None:
    """:raises InputError: ``url`` has no host, a port that is not a number, or is plain http
    to a host other than localhost."""
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https"):
        raise InputError(f"{what} {url!r}: write an https:// URL")
    if parsed.scheme == "http" and parsed.hostname not in {"localhost", "127.0.0.1", "::1"}:
        raise InputError(f"{what} {url!r}: plain http is only allowed for localhost; use https://")
    if not parsed.hostname:
        raise InputError(f"{what} {url!r} names no host; write https://host/path")
    try:
        parsed.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        raise InputError(f"{what} {url!r}: the port is not a number") from None


def post_json(target: str, body: bytes, headers: dict[str, str], timeout_s: float,
              label: str) -> tuple[int, str | None]:
    """POST ``body`` (JSON) to ``target`` within ``timeout_s`` for the whole exchange (connect,
    send, the answer's status line and headers); never follows a redirect, uses no proxy.
    Returns the status and the Location header.

    :raises DeliveryError: no whole answer (a transport error or the deadline); ``label``
        names the receiver in the message."""
    import http.client

    parsed = urlparse(target)
    path = (parsed.path or "/") + (f"?{parsed.query}" if parsed.query else "")
    cls = http.client.HTTPSConnection if parsed.scheme == "https" else http.client.HTTPConnection
    conn = cls(parsed.hostname or "", parsed.port, timeout=timeout_s)
    try:
        with Deadline(timeout_s, lambda: conn.sock) as deadline:
            try:
                conn.connect()  # bounded by the socket timeout; the deadline may pass meanwhile
                if deadline.expired.is_set():
                    raise TimeoutError
                conn.request("POST", path, body=body, headers={
                    "Content-Type": "application/json", "User-Agent": "dataops-runtime", **headers})
                response = conn.getresponse()
                if deadline.expired.is_set():  # cut mid-answer: a cut header may look whole
                    raise TimeoutError
                return response.status, response.getheader("Location")
            except (OSError, http.client.HTTPException) as e:
                if deadline.expired.is_set() or isinstance(e, TimeoutError):
                    raise DeliveryError(f"{label}: timed out (no whole answer within "
                                        f"{timeout_s:g} s)") from e
                raise DeliveryError(f"{label}: {e or type(e).__name__}") from e
    finally:
        conn.close()


class AwsSink:
    """``sns://TOPIC_ARN`` (publish) or ``sqs://QUEUE_URL`` (send_message), through boto3."""

    def __init__(self, url: str, client: Any = None) -> None:
        self.url = url
        scheme, _, target = url.partition("://")
        self.kind = scheme
        if not target:
            raise InputError(f"sink {url!r}: name the topic ARN or queue URL after {scheme}://")
        self.target = target if scheme == "sns" else (
            target if target.startswith("http") else "https://" + target)
        if client is None:
            try:
                import boto3
            except ImportError:
                raise InputError(f"sink {url!r} needs boto3: pip install 'dataops-runtime[aws]'") from None
            client = boto3.client(scheme)
        self.client = client

    def deliver(self, payload: dict[str, Any]) -> None:
        body = json.dumps(payload, ensure_ascii=False, sort_keys=True)
        try:
            if self.kind == "sns":
                self.client.publish(TopicArn=self.target, Message=body,
                                    MessageAttributes={"idempotency_key": {
                                        "DataType": "String", "StringValue": payload["idempotency_key"]}})
            else:
                self.client.send_message(QueueUrl=self.target, MessageBody=body)
        except Exception as e:  # botocore raises ClientError / EndpointConnectionError / ...
            raise DeliveryError(f"{self.url}: {e}") from e

    def close(self) -> None:
        pass


def open_sink(url: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> Any:
    """A sink from its URL: log://, file:///path.jsonl, https://..., sns://ARN, sqs://URL, or a
    channel to people (smtp://HOST:PORT, chat://: :mod:`runtime.channels`); ``timeout_s`` is a
    webhook's or channel's timeout unless its URL says ``?timeout=SECONDS``."""
    scheme = url.split(":", 1)[0].lower()
    if scheme in ("smtp", "chat"):
        from runtime.channels import open_channel

        return open_channel(url, timeout_s)
    if scheme == "log":
        return LogSink()
    if scheme == "file":
        return FileSink(url)
    if scheme in ("http", "https"):
        return WebhookSink(url, timeout_s=timeout_s)
    if scheme in ("sns", "sqs"):
        return AwsSink(url)
    raise InputError(f"sink {url!r}: use log://, file:///path.jsonl, https://..., sns://ARN, "
                     "sqs://URL, smtp://HOST:PORT or chat://")


def open_sinks(urls: Sequence[str], timeout_s: float = DEFAULT_TIMEOUT_S) -> list[Any]:
    return [open_sink(u, timeout_s) for u in (urls or ["log://"])]
