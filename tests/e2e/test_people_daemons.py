"""Reminders reach people once across real daemon processes (DESIGN.md "People and routing"):
two `dataops scheduler run --once --sink smtp://...` processes released together on one store
(SQLite and PostgreSQL) send each recipient each reminder exactly once, and a person's digest
exactly once; a daemon SIGKILLed between recording and sending loses no one's email and the
next daemon sends each once. The SMTP server is real (aiosmtpd on 127.0.0.1, tests/smtp.py);
the daemons run with ``--now`` (nothing waits for time to pass)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from runtime.model import Digest, RecipientStatus
from runtime.store import open_store
from tests.e2e.test_daemon import (
    KILLED_AFTER_RECORDING,
    NOW_TEXT,
    RUNNER,
    cli_argv,
    env,
    fresh_reminders,
    populated,
    populated_shared,
    read_line,
)
from tests.helpers import every, verified
from tests.smtp import SmtpServer

pytestmark = pytest.mark.slow
__all__ = ["populated", "populated_shared"]  # fixtures used here

DIGEST_TIME = "2026-11-25T13:30:00+00:00"  # 08:30 in New York: bob's digest (content/people)


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer().start()
    yield server
    server.stop()


def message_ids(server: SmtpServer) -> Counter[str]:
    return Counter(str(m.message["Message-ID"]) for m in server.handler.inbox)


def expected_ids(url: str) -> set[str]:
    """The Message-ID of every immediate email the store says it sent: one per reminder and
    recipient."""
    out = set()
    for rem in fresh_reminders(url):
        for r in rem.recipients:
            if r.delivery == "immediate":
                assert r.status == RecipientStatus.SENT, (rem.reminder_id, r)
                out.add(f"<{rem.reminder_id}.{r.person_id}@dataops.invalid>")
    return out


def two_daemons(url: str, content_dir: Path, tmp_path: Path, now: str, sink: str) -> list[str]:
    barrier = tmp_path / f"go-{now[:13]}"
    procs = []
    for _ in range(2):
        args = cli_argv(url, content_dir, now, "scheduler", "run", "--once", "--sink", sink)[3:]
        procs.append(subprocess.Popen([sys.executable, "-c", RUNNER, str(barrier), *args],
                                      cwd=tmp_path, env=env(), text=True,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    for p in procs:
        assert read_line(p, 30).strip() == "ready"
    barrier.touch()  # both are loaded: release them together
    outs = [p.communicate(timeout=120) for p in procs]
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err
    return [out for out, _ in outs]


def test_two_daemons_send_each_recipient_each_reminder_and_each_digest_once(
        populated_shared: tuple[str, object], tmp_path: Path, content_dir: Path,
        smtp: SmtpServer) -> None:
    url, svc = populated_shared
    svc.store.close()  # type: ignore[attr-defined]
    two_daemons(url, content_dir, tmp_path, NOW_TEXT, smtp.url)
    sent = message_ids(smtp)
    assert len(sent) > 100, len(sent)
    assert {k: n for k, n in sent.items() if n != 1} == {}  # nobody got anything twice
    assert set(sent) == expected_ids(url)
    people = {m.to[0] for m in smtp.handler.inbox}
    assert "bob@example.com" not in people  # bob takes a digest
    assert {"ada@example.com", "carmen@example.com", "dev@example.com"} <= people

    smtp.handler.inbox.clear()
    two_daemons(url, content_dir, tmp_path, DIGEST_TIME, smtp.url)
    digests = [m for m in smtp.handler.inbox if m.subject.startswith("Your digest")]
    assert [(m.to, m.subject.split(":")[0]) for m in digests] == [
        (["bob@example.com"], "Your digest for 2026-11-25")]
    immediate = message_ids(smtp) - Counter({str(digests[0].message["Message-ID"]): 1})
    assert {k: n for k, n in immediate.items() if n != 1} == {}
    store = open_store(url)
    try:
        [digest] = every(store, Digest)
        assert digest.person_id == "bob" and digest.channels == ["email"]
        gathered = set(digest.reminder_ids)
        for rem in fresh_reminders(url):
            for r in rem.recipients:
                if r.person_id == "bob" and rem.reminder_id in gathered:
                    assert r.status == RecipientStatus.DIGESTED and r.digest_id == digest.digest_id
        assert f"{len(gathered)} reminders" in digests[0].subject
        verified(store)
    finally:
        store.close()


def test_a_daemon_killed_between_recording_and_sending_loses_no_email(
        populated: tuple[str, object], tmp_path: Path, content_dir: Path,
        smtp: SmtpServer) -> None:
    url, svc = populated
    svc.store.close()  # type: ignore[attr-defined]
    child = subprocess.Popen([sys.executable, "-c", KILLED_AFTER_RECORDING, url,
                              str(content_dir), NOW_TEXT], cwd=tmp_path, env=env(), text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    line = read_line(child, 30)
    assert line.startswith("recorded "), line
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=10)
    recorded = fresh_reminders(url)
    assert recorded and all(r.recipients for r in recorded)  # routed when recorded
    assert all(r.status == RecipientStatus.PENDING for rem in recorded for r in rem.recipients)
    assert smtp.handler.inbox == []
    for _ in range(2):  # the next daemon sends them; one more sends nothing again
        run = subprocess.run(cli_argv(url, content_dir, NOW_TEXT, "scheduler", "run", "--once",
                                      "--sink", smtp.url),
                             cwd=tmp_path, env=env(), text=True, capture_output=True, timeout=120)
        assert run.returncode == 0, run.stderr
    sent = message_ids(smtp)
    assert {k: n for k, n in sent.items() if n != 1} == {}
    assert set(sent) == expected_ids(url)
