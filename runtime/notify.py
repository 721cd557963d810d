"""Reminder sinks: where recorded reminders are delivered.

Delivery is at-least-once: a sink may see a reminder again after a crash or a retry, so every
payload carries ``idempotency_key`` (the reminder ID) for the receiver to drop duplicates.
A sink raises :class:`DeliveryError` when a delivery failed; the sweep retries with backoff.
"""

from __future__ import annotations

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


def payload_of(reminder: Reminder) -> dict[str, Any]:
    body = reminder.to_json()
    for internal in ("deliver_after", "version", "last_error", "audit_seq", "audit_hash"):
        body.pop(internal, None)
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


def _timeout_of(url: str, default: float) -> tuple[str, float]:
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


def _no_redirects() -> Any:
    """A urllib opener that never follows a redirect: a 3xx comes back as an HTTPError."""
    import urllib.request

    class Refuse(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    return urllib.request.build_opener(Refuse)


class WebhookSink:
    """POSTs the JSON payload, signed with HMAC-SHA256 (secret from DATAOPS_WEBHOOK_SECRET).
    Only a 2xx answer is a delivery; a redirect is never followed (it is a failed attempt).
    ``?timeout=SECONDS`` on the URL overrides ``timeout_s`` (per connect and per read)."""

    def __init__(self, url: str, secret: str | None = None, timeout_s: float = DEFAULT_TIMEOUT_S,
                 wall_clock: Callable[[], float] = time.time) -> None:
        self.target, timeout_s = _timeout_of(url, timeout_s)
        parsed = urlparse(self.target)
        if parsed.scheme == "http" and parsed.hostname not in {"localhost", "127.0.0.1", "::1"}:
            raise InputError(f"sink {url!r}: plain http is only allowed for localhost; use https://")
        secret = secret if secret is not None else os.environ.get("DATAOPS_WEBHOOK_SECRET")
        if not secret:
            raise InputError(f"sink {url!r}: set DATAOPS_WEBHOOK_SECRET to the webhook's signing secret")
        self.url, self.secret, self.timeout_s, self.wall_clock = url, secret, timeout_s, wall_clock
        self._opener = _no_redirects()

    def deliver(self, payload: dict[str, Any]) -> None:
        import urllib.error
        import urllib.request

        body = json.dumps(payload, ensure_ascii=False, sort_keys=True).encode()
        timestamp = str(int(self.wall_clock()))
        request = urllib.request.Request(self.target, data=body, method="POST", headers={
            "Content-Type": "application/json",
            "Idempotency-Key": payload["idempotency_key"],
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign(self.secret, timestamp, body),
            "User-Agent": "dataops-runtime",
        })
        try:
            with self._opener.open(request, timeout=self.timeout_s) as response:
                if not 200 <= response.status < 300:
                    raise DeliveryError(f"{self.url}: HTTP {response.status}")
        except urllib.error.HTTPError as e:
            if 300 <= e.code < 400:
                location = e.headers.get("Location") if e.headers else None
                raise DeliveryError(f"{self.url}: HTTP {e.code} redirect to {location!r} "
                                    "not followed (only a 2xx is a delivery)") from e
            raise DeliveryError(f"{self.url}: HTTP {e.code}") from e
        except (urllib.error.URLError, OSError) as e:
            raise DeliveryError(f"{self.url}: {getattr(e, 'reason', e)}") from e

    def close(self) -> None:
        pass


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


def open_sink(url: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> Sink:
    """A sink from its URL: log://, file:///path.jsonl, https://..., sns://ARN, sqs://URL;
    ``timeout_s`` is a webhook's timeout unless its URL says ``?timeout=SECONDS``."""
    scheme = url.split(":", 1)[0].lower()
    if scheme == "log":
        return LogSink()
    if scheme == "file":
        return FileSink(url)
    if scheme in ("http", "https"):
        return WebhookSink(url, timeout_s=timeout_s)
    if scheme in ("sns", "sqs"):
        return AwsSink(url)
    raise InputError(f"sink {url!r}: use log://, file:///path.jsonl, https://..., sns://ARN or sqs://URL")


def open_sinks(urls: Sequence[str], timeout_s: float = DEFAULT_TIMEOUT_S) -> list[Sink]:
    return [open_sink(u, timeout_s) for u in (urls or ["log://"])]
