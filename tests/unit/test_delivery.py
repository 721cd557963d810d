"""Delivery hardening (DESIGN "Reminders", "Reminder sinks"): a webhook's redirect is a failed
attempt, never followed; deliveries run concurrently with a bounded timeout, so a hanging
receiver neither holds up the others nor outlasts the lease; the daemon's stop event is honoured
between pages; a failure about a failed delivery also goes to the log; ``verify_signature``
answers False, never raises, on malformed headers.

Receivers are real HTTP servers (or a socket that never answers) on 127.0.0.1; the clock is
injected (``FixedClock``) and moved by hand: nothing sleeps for time to pass.
"""

from __future__ import annotations

import json
import math
import socket
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from runtime.clock import FixedClock
from runtime.engine import Services
from runtime.engine.reminders import RetryPolicy, deliver_pending, record_failure
from runtime.model import DeliveryStatus, Reminder, ReminderKind
from runtime.notify import DeliveryError, LogSink, WebhookSink, open_sink, sign, verify_signature
from tests.helpers import reminders

SECRET = "s3cret"


class Receiver:
    """A ThreadingHTTPServer on 127.0.0.1 that records every request; a POST to /hook is answered
    ``status`` (with ``Location: /elsewhere`` for a 3xx), anything else 200."""

    def __init__(self, status: int = 200) -> None:
        self.requests: list[tuple[str, str, bytes]] = []
        self.status = status
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.requests.append((self.command, self.path, body))
                status = receiver.status if self.path == "/hook" else 200
                self.send_response(status)
                if 300 <= status < 400:
                    self.send_header("Location", f"{receiver.base}/elsewhere")
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_POST = do_GET = _answer  # noqa: N815

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.url = f"{self.base}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def ids(self) -> list[str]:
        return [json.loads(body)["reminder_id"] for _, _, body in self.requests]

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


class Hanging:
    """A socket on 127.0.0.1 that accepts connections and never answers."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0), backlog=128)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/hook"
        self.accepted: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self._lock = threading.Lock()
        self.open_now = 0
        self.most_open = 0
        """The most connections open at once: 1 if deliveries ran one after another."""

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted.append(conn)
            with self._lock:
                self.open_now += 1
                self.most_open = max(self.most_open, self.open_now)
            threading.Thread(target=self._until_closed, args=(conn,), daemon=True).start()

    def _until_closed(self, conn: socket.socket) -> None:
        """Read (and never answer) until the client gives up and closes."""
        try:
            while conn.recv(65536):
                pass
        except OSError:
            pass
        with self._lock:
            self.open_now -= 1

    def __enter__(self) -> Hanging:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.sock.close()
        for conn in self.accepted:
            conn.close()


class Trickling:
    """A socket on 127.0.0.1 that answers one byte of an endless header every ``gap`` seconds,
    well inside any per-read timeout, for at most ``limit`` bytes; records whether the client
    closed the connection before the trickle ran out."""

    def __init__(self, gap: float = 0.02, limit: int = 3000) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/hook"
        self.gap, self.limit = gap, limit
        self.client_closed = threading.Event()
        self.sent = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        conn, _ = self.sock.accept()
        stream = b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * self.limit
        stop = threading.Event()
        try:
            for byte in stream:
                conn.sendall(bytes([byte]))
                self.sent += 1
                if stop.wait(self.gap):
                    break
        except OSError:  # the client closed: a send into a reset connection
            self.client_closed.set()
        finally:
            conn.close()

    def __enter__(self) -> Trickling:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.thread.join(timeout=120)
        self.sock.close()


def pending(svc: Services, n: int) -> list[str]:
    """``n`` pending reminders (automation failures about jobs), their IDs."""
    now = svc.now()
    for i in range(n):
        record_failure(svc, f"job:nightly-{i:02d}", now, f"job {i} failed")
    return [r.reminder_id for r in reminders(svc.store)]


# ---- 1. a redirect is a failed attempt, never followed ------------------------------------------


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_webhook_redirect_is_a_failed_attempt_and_is_not_followed(
        svc: Services, clock: FixedClock, status: int) -> None:
    [rid] = pending(svc, 1)
    with Receiver(status) as receiver:
        report = deliver_pending(svc, [WebhookSink(receiver.url, secret=SECRET)], clock.now())
    assert report.delivered == [] and len(report.retried) == 1
    assert [(m, p) for m, p, _ in receiver.requests] == [("POST", "/hook")]  # nothing followed
    stored = svc.store.get(Reminder, rid)
    assert stored.delivery_status == DeliveryStatus.PENDING and stored.attempts == 1
    assert f"HTTP {status}" in stored.last_error
    assert f"{receiver.base}/elsewhere" in stored.last_error


# ---- 2. concurrent deliveries, bounded timeouts, a lease that fits ------------------------------


def test_a_hanging_receiver_holds_up_neither_the_sweep_nor_the_other_receiver(
        svc: Services, clock: FixedClock) -> None:
    timeout, n = 0.5, 24
    policy = RetryPolicy(workers=8)
    ids = pending(svc, n)
    now = clock.now()
    with Hanging() as hanging, Receiver() as good:
        sinks = [WebhookSink(f"{hanging.url}?timeout={timeout}", secret=SECRET),
                 WebhookSink(good.url, secret=SECRET)]
        report = deliver_pending(svc, sinks, now, policy=policy)
        most_open = hanging.most_open
    # serially one connection would be open at a time (each waits out its timeout before the
    # next starts; a close seen a little late could make it two); concurrently the pool keeps
    # about one per worker open together
    assert most_open >= policy.workers // 2, most_open
    assert sorted(good.ids()) == sorted(ids)  # the other receiver got each one, once
    assert len(report.retried) == n and report.delivered == []
    for r in reminders(svc.store):
        assert r.delivery_status == DeliveryStatus.PENDING and r.attempts == 1
        assert "timed out" in r.last_error, r.last_error
    # retried later, when the receiver answers again: each delivered once, nothing lost
    later = now + policy.backoff(1)
    clock.set(later)
    with Receiver() as recovered:
        report = deliver_pending(svc, [WebhookSink(recovered.url, secret=SECRET)], later,
                                 policy=policy)
    assert sorted(recovered.ids()) == sorted(ids)
    assert len(report.delivered) == n
    assert [r.reminder_id for r in reminders(svc.store)] == ids  # nothing recorded again
    assert all(r.delivery_status == DeliveryStatus.DELIVERED and r.attempts == 2
               for r in reminders(svc.store))


def test_a_trickling_receiver_is_cut_off_at_the_deadline_of_the_whole_delivery() -> None:
    # 3,000 header bytes, one per 20 ms: each read returns well inside a 0.3 s per-read timeout,
    # so only a deadline on the whole delivery ends it; the client must hang up first.
    with Trickling() as slow:
        hook = WebhookSink(f"{slow.url}?timeout=0.3", secret=SECRET)
        with pytest.raises(DeliveryError, match="timed out") as err:
            hook.deliver({"idempotency_key": "rem-1", "reminder_id": "rem-1"})
        slow.thread.join(timeout=120)
    assert slow.client_closed.is_set(), "the receiver trickled out before the client hung up"
    assert slow.sent < slow.limit
    assert "no whole answer within 0.3 s" in str(err.value)


def test_the_page_is_cut_so_its_worst_case_fits_in_the_lease() -> None:
    hook = WebhookSink("http://127.0.0.1:9/hook?timeout=60", secret=SECRET)
    assert hook.timeout_s == 60 and hook.target == "http://127.0.0.1:9/hook"
    default = RetryPolicy()  # 5 min lease, 30 s margin, 10 s timeout, 8 workers
    assert default.page_size([LogSink()], 50) == 50
    # 60 s per delivery: 4 rounds of 8 fit in 270 s, so 32 reminders to one sink, 16 to two
    assert default.page_size([hook], 50) == 32
    assert default.page_size([hook, LogSink()], 50) == 16
    for page, sinks in ((32, 1), (16, 2)):
        rounds = math.ceil(page * sinks / default.workers)
        assert 60 * rounds + default.margin.total_seconds() <= default.lease.total_seconds()
    slow = WebhookSink("http://127.0.0.1:9/hook?timeout=3600", secret=SECRET)
    assert default.page_size([slow], 50) == 1
    with pytest.raises(Exception, match="timeout"):
        WebhookSink("http://127.0.0.1:9/hook?timeout=0", secret=SECRET)
    assert open_sink("file:///tmp/x.jsonl", 5.0).url == "file:///tmp/x.jsonl"


def test_a_cut_page_still_delivers_everything_once(svc: Services, clock: FixedClock) -> None:
    class Recording:
        url = "test://recording"
        timeout_s = 1.0

        def __init__(self) -> None:
            self.ids: list[str] = []

        def deliver(self, payload: dict[str, Any]) -> None:
            self.ids.append(payload["reminder_id"])

        def close(self) -> None:
            pass

    policy = RetryPolicy(lease=timedelta(seconds=3), margin=timedelta(seconds=1),
                         timeout=timedelta(seconds=1), workers=2)
    sink = Recording()
    assert policy.page_size([sink], 50) == 4
    ids = pending(svc, 10)
    report = deliver_pending(svc, [sink], clock.now(), policy=policy)
    assert sorted(sink.ids) == sorted(ids) and len(report.delivered) == 10


def test_stopping_gives_back_the_leases_of_deliveries_not_started(
        svc: Services, clock: FixedClock) -> None:
    """The stop event (SIGTERM) is set during a delivery: what is in flight ends, what has not
    started is not attempted and its lease is given back (due now, the attempt not counted)."""
    stop = threading.Event()
    delivered: list[str] = []

    class Stopping:
        url = "test://stopping"

        def deliver(self, payload: dict[str, Any]) -> None:
            delivered.append(payload["reminder_id"])
            stop.set()  # SIGTERM arrives while the first delivery is in flight

        def close(self) -> None:
            pass

    ids = pending(svc, 6)
    now = clock.now()
    report = deliver_pending(svc, [Stopping()], now, policy=RetryPolicy(workers=1), stop=stop)
    assert len(delivered) == 1 and [r.reminder_id for r in report.delivered] == delivered
    left = [r for r in reminders(svc.store) if r.delivery_status == DeliveryStatus.PENDING]
    assert sorted(r.reminder_id for r in left) == sorted(set(ids) - set(delivered))
    assert all(r.attempts == 0 and r.deliver_after == now for r in left)
    # the next sweep delivers the rest, each once, as their first attempt
    stop.clear()
    first = delivered[:]
    delivered.clear()
    report = deliver_pending(svc, [Stopping()], now, policy=RetryPolicy(workers=8))
    assert sorted(delivered) == sorted(set(ids) - set(first))
    assert all(r.attempts == 1 for r in report.delivered) and len(report.delivered) == 5
    assert all(r.delivery_status == DeliveryStatus.DELIVERED for r in reminders(svc.store))


# ---- 3. a failure about a failed delivery also goes to the log ---------------------------------


class Failing:
    url = "test://broken"

    def deliver(self, payload: dict[str, Any]) -> None:
        raise DeliveryError("broken sink")

    def close(self) -> None:
        pass


def logged(err: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in err.splitlines() if line.startswith("{")]


def test_every_automation_failure_also_goes_to_the_log(
        svc: Services, clock: FixedClock, capsys: pytest.CaptureFixture[str]) -> None:
    """DESIGN.md "People and routing": automation_failure goes to operators and always to the
    log, whether it is about a failed delivery or a failed job; other kinds do not."""
    now = clock.now()
    failure = record_failure(svc, "rem-0123456789abcdef01234567", now,
                             "could not deliver due reminder rem-0123... after 5 attempts",
                             entity_type="reminder")
    job = record_failure(svc, "job:sweep", now, "scheduled job sweep failed")
    assert failure and job
    report = deliver_pending(svc, [Failing()], now)
    lines = logged(capsys.readouterr().err)
    assert sorted((d["event"], d["kind"], d["reminder_id"]) for d in lines) == sorted([
        ("reminder", ReminderKind.AUTOMATION_FAILURE, failure.reminder_id),
        ("reminder", ReminderKind.AUTOMATION_FAILURE, job.reminder_id)])
    # the log line does not make it delivered: the broken sink's attempt is retried
    assert len(report.retried) == 2 and report.delivered == []
    # with log:// among the sinks it is logged once, not twice
    later = now + RetryPolicy().backoff(1)
    deliver_pending(svc, [Failing(), LogSink()], later)
    ids = [d["reminder_id"] for d in logged(capsys.readouterr().err)]
    assert sorted(ids) == sorted([failure.reminder_id, job.reminder_id])


# ---- 4. verify_signature never raises on malformed headers -------------------------------------


def test_verify_signature_is_false_on_malformed_headers() -> None:
    body = b'{"kind": "due"}'
    now = 1_800_000_000
    good = str(now)
    assert verify_signature(SECRET, good, body, sign(SECRET, good, body), now=now)
    for timestamp in ["abc", "", "1.5", "1e9", " ", "0x10"]:
        # even correctly signed: a timestamp that is not a number is not verified
        assert not verify_signature(SECRET, timestamp, body, sign(SECRET, timestamp, body),
                                    now=now), timestamp
    assert not verify_signature(SECRET, None, body, sign(SECRET, good, body), now=now)
    for signature in [None, "", "sha256=", "garbage", "sha256=\u00e9\u00e9", "sha256=\x00"]:
        assert not verify_signature(SECRET, good, body, signature, now=now), signature
