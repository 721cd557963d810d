"""The scheduler daemon as real OS processes (DESIGN "Reminders", "Concurrency and atomicity",
"Reminder sinks"): exactly-once recording and delivery when two daemons sweep one SQLite store at
once, nothing lost when a daemon is SIGKILLed between recording and delivery (or in the middle of
a delivery), a signed webhook delivered to a real HTTP server on 127.0.0.1, and a clean stop on
SIGTERM.

The daemons run with ``--now`` (a fixed clock), so no test waits for time to pass in the code
under test; the only waiting is for real processes to start, reach a point, or exit.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from runtime import engine
from runtime.artifacts import LocalArtifactStore
from runtime.clock import FixedClock
from runtime.content import load_content
from runtime.engine import Services
from runtime.engine.reminders import RetryPolicy, preview_due, sweep
from runtime.model import DeliveryStatus, Reminder, ReminderKind
from runtime.model.common import utc
from runtime.notify import SIGNATURE_HEADER, TIMESTAMP_HEADER, WebhookSink, verify_signature
from runtime.store import open_store
from tests.conftest import SHARED_KINDS, need_server
from tests.helpers import bundles, log_of, reminders, verified

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
NOW = utc(2026, 11, 25, 8)
NOW_TEXT = NOW.isoformat()
SETUP = utc(2026, 10, 1, 12)  # bundles are created before any of their reminders

# ~20 bundles of the shipped definitions whose reminders are due (many overdue) at NOW; the
# newsletter's anchor 2026-11-27 is the bundle of the last Monday firing before NOW, so the
# daemons' schedule step creates nothing and the preview predicts the whole sweep.
ANCHORS = {
    "podcast-episode": [date(2026, 11, d) for d in (2, 6, 10, 14, 18, 22, 26)],
    "vat-return": [date(2026, 11, d) for d in (3, 9, 13, 17, 20, 24, 30)],
    "newsletter": [date(2026, 10, 30), *(date(2026, 11, d) for d in (6, 13, 20, 27))],
}


def env() -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith("DATAOPS_")}
    e["PYTHONPATH"] = str(REPO) + os.pathsep + e.get("PYTHONPATH", "")
    return e


def cli_argv(store: str, content: Path, now: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "runtime.cli", "--store", store, "--content", str(content),
            "--now", now, "--actor", "daemon", *args]


def services(url: str, content_dir: Path, tmp_path: Path, at: Any = SETUP) -> Services:
    content = load_content(content_dir)
    return Services(open_store(url), FixedClock(at), "setup",
                    LocalArtifactStore(tmp_path / "artifacts"), lambda: content)


def _populate(url: str, content_dir: Path, tmp_path: Path) -> Services:
    svc = services(url, content_dir, tmp_path)
    for template, anchors in ANCHORS.items():
        for anchor in anchors:
            assert engine.create_bundle(svc, template, anchor).created
    assert len(bundles(svc.store)) == 19
    assert reminders(svc.store) == []
    return svc


@pytest.fixture(params=SHARED_KINDS)
def populated_shared(request: pytest.FixtureRequest, tmp_path: Path,
                     content_dir: Path) -> Iterator[tuple[str, Services]]:
    """A store several processes share (a SQLite file, a PostgreSQL schema) with ~20 bundles,
    none of their reminders recorded yet."""
    from tests.conftest import store_url

    need_server(request, request.param)
    url = store_url(request.param, tmp_path, "daemon")
    svc = _populate(url, content_dir, tmp_path)
    yield url, svc
    svc.store.close()


@pytest.fixture
def populated(tmp_path: Path, content_dir: Path) -> Iterator[tuple[str, Services]]:
    """A SQLite store with ~20 bundles, none of their reminders recorded yet."""
    url = f"sqlite:///{tmp_path / 'daemon.db'}"
    svc = _populate(url, content_dir, tmp_path)
    yield url, svc
    svc.store.close()


def sink_lines(*paths: Path) -> list[dict[str, Any]]:
    out = []
    for path in paths:
        if path.exists():
            out += [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()
                    if line.strip()]
    return out


def fresh_reminders(url: str) -> list[Reminder]:
    store = open_store(url)
    try:
        return reminders(store)
    finally:
        store.close()


def read_line(proc: subprocess.Popen[str], timeout: float) -> str:
    """The child's next stdout line, or fail after ``timeout`` seconds (a real process start)."""
    box: list[str] = []
    reader = threading.Thread(target=lambda: box.append(proc.stdout.readline()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    reader.join(timeout)
    if not box:
        proc.kill()
        raise AssertionError(f"child printed nothing within {timeout}s; stderr: "
                             f"{proc.stderr.read() if proc.stderr else ''}")
    return box[0]


def assert_delivered_exactly_once(url: str, *sinks: Path) -> list[Reminder]:
    reminders = fresh_reminders(url)
    ids = [r.reminder_id for r in reminders]
    assert len(ids) == len(set(ids))
    delivered = Counter(d["reminder_id"] for d in sink_lines(*sinks))
    assert set(delivered) == set(ids), "a reminder was never delivered, or an unknown one was"
    dupes = {k: n for k, n in delivered.items() if n != 1}
    assert dupes == {}, f"delivered more than once: {dupes}"
    for d in sink_lines(*sinks):
        assert d["idempotency_key"] == d["reminder_id"]
    for r in reminders:
        assert r.delivery_status == DeliveryStatus.DELIVERED, r
    return reminders


# ---- (a) two daemons, one store -----------------------------------------------------------------

RUNNER = r"""
import os, sys, time
import runtime.cli, runtime.engine.reminders, runtime.scheduler, runtime.notify, runtime.store.sqlite
import runtime.content, runtime.engine, apscheduler.schedulers.background
barrier = sys.argv[1]
print("ready", flush=True)
while not os.path.exists(barrier):
    time.sleep(0.002)
sys.exit(runtime.cli.main(sys.argv[2:]))  # what `python -m runtime.cli ARGS` runs
"""


def test_two_daemons_record_and_deliver_each_reminder_exactly_once(
        populated_shared: tuple[str, Services], tmp_path: Path, content_dir: Path) -> None:
    url, svc = populated_shared
    predicted = preview_due(svc, NOW)
    assert len(predicted) > 200, len(predicted)  # many due: several batches per daemon
    assert all(f.kind != ReminderKind.RECURRING for f in predicted)
    svc.store.close()
    barrier = tmp_path / "go"
    sinks = [tmp_path / "f1.jsonl", tmp_path / "f2.jsonl"]
    procs = []
    for sink in sinks:
        args = cli_argv(url, content_dir, NOW_TEXT, "scheduler", "run", "--once",
                        "--sink", f"file://{sink}")[3:]  # drop `python -m runtime.cli`
        procs.append(subprocess.Popen([sys.executable, "-c", RUNNER, str(barrier), *args],
                                      cwd=tmp_path, env=env(), text=True,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    for p in procs:
        assert read_line(p, 30).strip() == "ready"
    barrier.touch()  # both are loaded: release them together
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err
        assert "recorded" in out
    reminders = assert_delivered_exactly_once(url, *sinks)
    assert len(reminders) == len(predicted)
    # each daemon reports what it recorded and delivered; together: each reminder once
    reports = [re.search(r"recorded (\d+) .*delivered (\d+)", out) for out, _ in outs]
    assert all(reports), outs
    print("two daemons:", [out.strip() for out, _ in outs])
    assert sum(int(m.group(1)) for m in reports) == len(predicted)  # type: ignore[union-attr]
    assert sum(int(m.group(2)) for m in reports) == len(predicted)  # type: ignore[union-attr]
    assert sorted(r.reminder_id for r in reminders) == sorted(f.reminder_id for f in predicted)
    # every reminder is recorded once in the audit log too, and the chain is intact
    store = open_store(url)
    try:
        all_events = log_of(store)
        verified(store)
        recorded = Counter(e.entity_id for e in all_events
                           if e.action == "record" and e.entity_type == "reminder")
        assert set(recorded) == {r.reminder_id for r in reminders}
        assert set(recorded.values()) == {1}
        delivered = Counter(e.entity_id for e in all_events if e.action == "deliver")
        assert set(delivered.values()) == {1} and len(delivered) == len(reminders)
        assert preview_due(services(url, content_dir, tmp_path, NOW), NOW) == []
    finally:
        store.close()


# ---- (b) SIGKILL between recording and delivery -------------------------------------------------

KILLED_AFTER_RECORDING = r"""
import sys, time
from runtime.clock import FixedClock
from runtime.content import load_content
from runtime.engine import Services
from runtime.model import parse_instant
from runtime.store import open_store
from runtime.engine.reminders import record_due
url, content_dir, now = sys.argv[1:4]
content = load_content(content_dir)
svc = Services(open_store(url), FixedClock(parse_instant(now)), "doomed", None, lambda: content)
report = record_due(svc, svc.now())
print("recorded", len(report.recorded), flush=True)
time.sleep(3600)  # it would deliver next; it is killed first
"""


def test_a_daemon_killed_between_recording_and_delivery_loses_nothing(
        populated: tuple[str, Services], tmp_path: Path, content_dir: Path) -> None:
    url, svc = populated
    svc.store.close()
    child = subprocess.Popen([sys.executable, "-c", KILLED_AFTER_RECORDING, url,
                              str(content_dir), NOW_TEXT], cwd=tmp_path, env=env(), text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    line = read_line(child, 30)
    assert line.startswith("recorded "), line
    count = int(line.split()[1])
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=10)
    assert child.returncode == -signal.SIGKILL
    recorded = fresh_reminders(url)
    assert len(recorded) == count > 0
    assert all(r.delivery_status == DeliveryStatus.PENDING and r.attempts == 0 for r in recorded)
    sink = tmp_path / "after.jsonl"
    run = subprocess.run(cli_argv(url, content_dir, NOW_TEXT, "scheduler", "run", "--once",
                                  "--sink", f"file://{sink}"),
                         cwd=tmp_path, env=env(), text=True, capture_output=True, timeout=60)
    assert run.returncode == 0, run.stderr
    reminders = assert_delivered_exactly_once(url, sink)
    assert {r.reminder_id for r in recorded} <= {r.reminder_id for r in reminders}
    assert len(reminders) == len(recorded)  # nothing new was due: the same reminders
    # a further sweep delivers nothing again
    again = subprocess.run(cli_argv(url, content_dir, NOW_TEXT, "scheduler", "run", "--once",
                                    "--sink", f"file://{sink}"),
                           cwd=tmp_path, env=env(), text=True, capture_output=True, timeout=60)
    assert again.returncode == 0, again.stderr
    assert_delivered_exactly_once(url, sink)


KILLED_WHILE_DELIVERING = r"""
import sys, time
from runtime.clock import FixedClock
from runtime.content import load_content
from runtime.engine import Services
from runtime.model import parse_instant
from runtime.store import open_store
from runtime.engine.reminders import sweep

import threading
said = threading.Lock()  # deliveries run concurrently: one whole line each

class Stuck:
    url = "test://stuck"
    def deliver(self, payload):
        with said:
            sys.stdout.write(f"delivering {payload['reminder_id']}\n")
            sys.stdout.flush()
        time.sleep(3600)  # hangs in the middle of the first delivery
    def close(self):
        pass

url, content_dir, now = sys.argv[1:4]
content = load_content(content_dir)
svc = Services(open_store(url), FixedClock(parse_instant(now)), "doomed", None, lambda: content)
sweep(svc, [Stuck()])
"""


def test_a_daemon_killed_while_delivering_loses_nothing(
        populated: tuple[str, Services], tmp_path: Path, content_dir: Path) -> None:
    """Killed in the middle of delivering the page it claimed: the next daemon delivers all the
    others at once and that page when its lease has run out; each exactly once."""
    url, svc = populated
    svc.store.close()
    child = subprocess.Popen([sys.executable, "-c", KILLED_WHILE_DELIVERING, url,
                              str(content_dir), NOW_TEXT], cwd=tmp_path, env=env(), text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    line = read_line(child, 30)
    assert line.startswith("delivering "), line
    stuck_id = line.split()[1]
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=10)
    sink = tmp_path / "after.jsonl"

    def run_at(now: str) -> None:
        r = subprocess.run(cli_argv(url, content_dir, now, "scheduler", "run", "--once",
                                    "--sink", f"file://{sink}"),
                           cwd=tmp_path, env=env(), text=True, capture_output=True, timeout=60)
        assert r.returncode == 0, r.stderr

    run_at(NOW_TEXT)
    delivered = [d["reminder_id"] for d in sink_lines(sink)]
    assert stuck_id not in delivered  # still leased by the dead daemon
    pending = [r for r in fresh_reminders(url) if r.delivery_status == DeliveryStatus.PENDING]
    # only the dead daemon's claimed page waits for its lease; it holds the stuck reminder
    assert stuck_id in [r.reminder_id for r in pending]
    assert 1 <= len(pending) <= 50
    assert all(r.attempts == 1 for r in pending)
    assert len(delivered) == len(fresh_reminders(url)) - len(pending)
    run_at((NOW + RetryPolicy().lease).isoformat())
    assert_delivered_exactly_once(url, sink)


# ---- (c) a signed webhook to a real HTTP server ------------------------------------------------


class Receiver:
    """A ThreadingHTTPServer on 127.0.0.1 that records every request and answers ``status``."""

    def __init__(self, status: int = 200) -> None:
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.status = status
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.requests.append((self.path, dict(self.headers.items()), body))
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def one_bundle(tmp_path: Path, content_dir: Path) -> Iterator[Services]:
    url = f"sqlite:///{tmp_path / 'hook.db'}"
    svc = services(url, content_dir, tmp_path)
    engine.create_bundle(svc, "vat-return", date(2026, 11, 30))
    svc.clock.set(NOW)  # type: ignore[attr-defined]
    yield svc
    svc.store.close()


def test_webhook_is_delivered_signed_to_a_real_http_server(one_bundle: Services) -> None:
    svc = one_bundle
    secret = "s3cret"
    with Receiver() as receiver:
        report = sweep(svc, [WebhookSink(receiver.url, secret=secret)], now=NOW, schedules=False)
    assert report.recorded and len(report.delivered) == len(report.recorded)
    assert len(receiver.requests) == len(report.recorded)
    seen = []
    for path, headers, body in receiver.requests:
        assert path == "/hook"
        headers = {k.lower(): v for k, v in headers.items()}
        assert headers["content-type"] == "application/json"
        timestamp = headers[TIMESTAMP_HEADER.lower()]
        signature = headers[SIGNATURE_HEADER.lower()]
        assert signature.startswith("sha256=")
        assert abs(time.time() - int(timestamp)) < 120
        assert verify_signature(secret, timestamp, body, signature)
        payload = json.loads(body)
        assert payload["idempotency_key"] == payload["reminder_id"] == headers["idempotency-key"]
        seen.append(payload["idempotency_key"])
        # a receiver rejects anything tampered with, signed with another secret, or replayed
        tampered = body.replace(b'"kind": "', b'"kind": "x', 1)
        assert tampered != body
        assert not verify_signature(secret, timestamp, tampered, signature)
        assert not verify_signature("wrong", timestamp, body, signature)
        assert not verify_signature(secret, str(int(timestamp) + 1), body, signature)
        assert not verify_signature(secret, timestamp, body, signature,
                                    now=int(timestamp) + 3600)
    assert sorted(seen) == sorted(r.reminder_id for r in report.recorded)
    for r in reminders(svc.store):
        assert r.delivery_status == DeliveryStatus.DELIVERED


def test_webhook_answering_500_is_retried(one_bundle: Services) -> None:
    svc = one_bundle
    policy = RetryPolicy()
    with Receiver(status=500) as receiver:
        report = sweep(svc, [WebhookSink(receiver.url, secret="s3cret")], now=NOW,
                       policy=policy, schedules=False)
    assert report.recorded and report.delivered == []
    assert len(receiver.requests) == len(report.recorded)
    for r in reminders(svc.store):
        assert r.delivery_status == DeliveryStatus.PENDING
        assert r.attempts == 1
        assert "500" in (r.last_error or ""), r.last_error
        assert r.deliver_after == NOW + policy.backoff(1)
    # the retry reaches a server that answers again
    with Receiver() as receiver:
        later = NOW + policy.backoff(1)
        report = sweep(svc, [WebhookSink(receiver.url, secret="s3cret")], now=later,
                       policy=policy, schedules=False)
    assert len(receiver.requests) == len(report.delivered) > 0
    for r in reminders(svc.store):
        assert r.delivery_status == DeliveryStatus.DELIVERED and r.attempts == 2


def test_webhook_to_a_closed_port_is_retried(one_bundle: Services) -> None:
    with Receiver() as receiver:
        url = receiver.url
    report = sweep(one_bundle, [WebhookSink(url, secret="s3cret", timeout_s=2)], now=NOW,
                   schedules=False)
    assert report.recorded and len(report.retried) == len(report.recorded)
    assert all(r.last_error for r in reminders(one_bundle.store))


# ---- (d) the long-running daemon stops on SIGTERM ---------------------------------------------


def test_scheduler_run_sweeps_until_sigterm_then_exits_0(
        tmp_path: Path, content_dir: Path) -> None:
    url = f"sqlite:///{tmp_path / 'daemon.db'}"
    svc = services(url, content_dir, tmp_path)
    engine.create_bundle(svc, "podcast-episode", date(2026, 11, 26))
    engine.create_bundle(svc, "newsletter", date(2026, 11, 27))
    svc.store.close()
    sink = tmp_path / "live.jsonl"
    log = tmp_path / "daemon.log"
    with log.open("w") as err:
        proc = subprocess.Popen(cli_argv(url, content_dir, NOW_TEXT, "scheduler", "run",
                                         "--interval", "0.2", "--sink", f"file://{sink}"),
                                cwd=tmp_path, env=env(), text=True,
                                stdout=subprocess.DEVNULL, stderr=err)
        try:
            deadline = time.monotonic() + 20
            # wait until it delivered something and swept a few more times
            while time.monotonic() < deadline:
                if sink_lines(sink) and log.read_text().count("found ") >= 3:
                    break
                assert proc.poll() is None, log.read_text()
                time.sleep(0.05)
            else:
                raise AssertionError(f"no deliveries within 20 s; log: {log.read_text()}")
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert code == 0, log.read_text()
    # repeated sweeps at one instant delivered each reminder once
    assert_delivered_exactly_once(url, sink)
    assert "Traceback" not in log.read_text()


def test_scheduler_run_rejects_a_non_positive_interval(tmp_path: Path, content_dir: Path) -> None:
    r = subprocess.run(cli_argv(f"sqlite:///{tmp_path / 'x.db'}", content_dir, NOW_TEXT,
                                "scheduler", "run", "--interval", "0"),
                       cwd=tmp_path, env=env(), text=True, capture_output=True, timeout=60)
    assert r.returncode == 2 and r.stderr.startswith("error:")


def test_sigterm_stops_a_daemon_delivering_to_a_hanging_webhook_within_seconds(
        populated: tuple[str, Services], tmp_path: Path, content_dir: Path) -> None:
    """Many reminders to a receiver that accepts and never answers: SIGTERM ends the daemon
    within about one delivery timeout (the deliveries in flight end by their timeout, the ones
    not started give their lease back), and nothing is lost or marked failed."""
    import socket

    url, svc = populated
    svc.store.close()
    hanging = socket.create_server(("127.0.0.1", 0), backlog=128)
    accepted: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                accepted.append(hanging.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    hook = f"http://127.0.0.1:{hanging.getsockname()[1]}/hook"
    log = tmp_path / "daemon.log"
    timeout = 2.0
    try:
        with log.open("w") as err:
            proc = subprocess.Popen(
                cli_argv(url, content_dir, NOW_TEXT, "scheduler", "run", "--interval", "60",
                         "--delivery-timeout", str(timeout), "--sink", hook),
                cwd=tmp_path, env={**env(), "DATAOPS_WEBHOOK_SECRET": "s3cret"}, text=True,
                stdout=subprocess.DEVNULL, stderr=err)
            deadline = time.monotonic() + 30
            while not accepted:  # it is delivering to the hanging receiver now
                assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.02)
            sent = time.monotonic()
            at_signal = len(accepted)
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=30)
            took = time.monotonic() - sent
            after = len(accepted)
    finally:
        hanging.close()
        for conn in accepted:
            conn.close()
    print(f"\nSIGTERM to exit with {len(fresh_reminders(url))} reminders to a hanging webhook "
          f"(timeout {timeout} s): {took:.2f} s")
    assert code == 0, log.read_text()
    # it stopped taking new deliveries at the signal: only those already handed to the pool's
    # workers (8) may still have connected; the 500 others waited, so the exit took about one
    # delivery timeout instead of a page's worth of them
    assert after - at_signal <= 8, (at_signal, after)
    stored = fresh_reminders(url)
    assert len(stored) > 50  # more than a page was waiting
    assert all(r.delivery_status == DeliveryStatus.PENDING for r in stored)  # none lost or failed
    assert all(r.attempts <= 1 for r in stored)
    assert "Traceback" not in log.read_text()
