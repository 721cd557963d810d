"""Reminders that reach people (DESIGN.md "People and routing"), against a real SMTP server on
127.0.0.1 (aiosmtpd, tests/smtp.py) and a real HTTP server for chat webhooks, on every store:

- each kind of reminder reaches exactly its recipients (a person, a group's members, the
  owner, operators) and no one else, once;
- escalation from the Nth overdue reminder to the assignee's manager;
- an unknown assignee goes to operators, saying so;
- a 5xx for one recipient fails only that recipient (reported to operators and the log); a 4xx
  is retried; a server that is down is retried and then reported to the log and operators;
- HTML is escaped (a task title with ``<script>`` arrives as text);
- a digest gathers a person's reminders into one message a local day at their time, across a
  DST change, once even when two sweeps gather at the same instant.

The clock is injected; nothing sleeps.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from runtime import engine
from runtime.artifacts import LocalArtifactStore
from runtime.channels import ChatChannel, Message, SendError, SmtpChannel, reminder_message
from runtime.clock import FixedClock
from runtime.content import load_content
from runtime.engine import Services
from runtime.engine.messages import Reads, facts_for
from runtime.engine.reminders import RetryPolicy, fire_schedule, record_failure, sweep
from runtime.model import (
    DeliveryStatus,
    Digest,
    RecipientStatus,
    ReminderKind,
    TaskStatus,
)
from runtime.model.common import utc
from runtime.store import Store
from tests.helpers import every, reminders, verified
from tests.smtp import SmtpServer, free_port

K = ReminderKind
SETUP = utc(2026, 10, 1, 12)
ANCHOR = date(2026, 11, 2)
DUE = utc(2026, 11, 2, 9)  # the lab's reminders: 09:00 UTC
TITLE = "Export <script>alert('x')</script> & ledger"


def write_lab(root: Path, chat_url: str = "http://127.0.0.1:9/hooks/erin") -> Path:
    for folder in ("docs", "workflows", "people"):
        (root / folder).mkdir(parents=True)
    doc = {"doc_id": "doc-lab", "title": "Lab handbook", "location": "https://wiki.example.com/lab",
           "steps": [{"step_id": "s1", "title": "Step one"}]}
    people = {
        "people": [
            {"person_id": "ada", "name": "Ada", "email": "ada@example.com", "manager": "grace"},
            {"person_id": "bob", "name": "Bob", "email": "bob@example.com", "manager": "carmen"},
            {"person_id": "carmen", "name": "Carmen", "email": "carmen@example.com"},
            {"person_id": "grace", "name": "Grace", "email": "grace@example.com"},
            {"person_id": "dana", "name": "Dana", "email": "dana@example.com",
             "timezone": "Europe/London", "delivery": {"digest": "08:30"}},
            {"person_id": "erin", "name": "Erin", "chat": chat_url},
            {"person_id": "fay", "name": "Fay", "email": "fay@example.com",
             "timezone": "Europe/London", "delivery": {"digest": "08:30"}},
        ],
        "groups": [{"group_id": "bookkeeper", "members": ["ada", "bob"]},
                   {"group_id": "digesters", "members": ["dana", "fay"]},
                   {"group_id": "operators", "members": ["grace"]}],
    }
    lab = {
        "template_id": "lab", "version": 1, "title": "Lab", "timezone": "UTC",
        "default_assignee": "bookkeeper", "owner": "carmen",
        "required_bundle_links": [{"key": "folder", "label": "Folder", "required": True}],
        "reminders": {"at": "09:00", "overdue_repeats": 3, "escalate_after_overdue": 2},
        "phases": [{"phase_id": "one", "title": "One"}, {"phase_id": "two", "title": "Two"}],
        "tasks": [
            {"task_ref": "t-ada", "title": TITLE, "phase": "one", "offset_days": 0,
             "assignee": "ada", "proof": [{"kind": "comment", "label": "Sign-off"}],
             "instruction_doc_id": "doc-lab", "instruction_step_id": "s1"},
            {"task_ref": "t-group", "title": "Group work", "phase": "two", "offset_days": 0},
            {"task_ref": "t-ghost", "title": "Nobody's", "phase": "one", "offset_days": 0,
             "assignee": "ghost"},
        ],
    }
    weekly = {
        "template_id": "weekly", "version": 1, "title": "Weekly", "timezone": "UTC",
        "default_assignee": "ada", "owner": "carmen",
        "trigger": {"type": "schedule", "cron": "0 9 * * MON", "anchor_offset_days": 4},
        "reminders": {"at": "09:00", "overdue_repeats": 0},
        "phases": [{"phase_id": "only", "title": "Only"}],
        "tasks": [{"task_ref": "w", "title": "Weekly thing", "phase": "only", "offset_days": 0}],
    }
    digest = {
        "template_id": "dig", "version": 1, "title": "Digest lab", "timezone": "Europe/London",
        "default_assignee": "dana", "reminders": {"at": "09:00", "overdue_repeats": 1},
        "phases": [{"phase_id": "only", "title": "Only"}],
        "tasks": [{"task_ref": f"d{i}", "title": f"Digest task {i}", "phase": "only",
                   "offset_days": i} for i in range(3)],
    }
    (root / "docs" / "doc-lab.yaml").write_text(yaml.safe_dump(doc), encoding="utf-8")
    (root / "people" / "team.yaml").write_text(yaml.safe_dump(people, sort_keys=False), encoding="utf-8")
    for wf in (lab, weekly, digest):
        (root / "workflows" / f"{wf['template_id']}.yaml").write_text(
            yaml.safe_dump(wf, sort_keys=False), encoding="utf-8")
    return root


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer().start()
    yield server
    server.stop()


@pytest.fixture
def lab(store: Store, tmp_path: Path) -> Services:
    content = load_content(write_lab(tmp_path / "lab"))
    assert content.problems() == [], content.problems()
    return Services(store, FixedClock(SETUP), "tester", LocalArtifactStore(tmp_path / "a"),
                    lambda: content)


def at(svc: Services, when: datetime) -> None:
    svc.clock.set(when)  # type: ignore[attr-defined]


def inbox(server: SmtpServer) -> Counter[tuple[str, str]]:
    return Counter((m.to[0], m.subject) for m in server.handler.inbox)


def run(svc: Services, when: datetime, sinks: list[Any], **policy: Any) -> Any:
    at(svc, when)
    return sweep(svc, sinks, now=when, schedules=False, policy=RetryPolicy(**policy))


def test_each_kind_reaches_exactly_its_recipients_once(lab: Services, smtp: SmtpServer) -> None:
    svc = lab
    engine.create_bundle(svc, "lab", ANCHOR)
    channel = SmtpChannel(smtp.url)
    run(svc, DUE, [channel])
    b = "(Lab 2026-11-02)"
    assert inbox(smtp) == Counter({
        ("ada@example.com", f"Due today: {TITLE} {b}"): 1,
        ("ada@example.com", f"Proof missing: {TITLE} {b}"): 1,
        ("ada@example.com", f"Due today: Group work {b}"): 1,   # a group's members
        ("bob@example.com", f"Due today: Group work {b}"): 1,
        ("grace@example.com", f"Due today: Nobody's {b}"): 1,   # resolves to nobody: operators
        ("carmen@example.com", "Required links missing: Lab 2026-11-02"): 1,  # the owner
    })
    ghost = next(r for r in reminders(svc.store) if r.entity_id.endswith("t-ghost"))
    assert [(r.person_id, r.reason) for r in ghost.recipients] == [
        ("grace", "operators: the assignee 'ghost' resolves to nobody")]
    assert all(r.status == RecipientStatus.SENT and r.channels == ["email"]
               for rem in reminders(svc.store) for r in rem.recipients)
    # the same sweep again sends nothing: each recipient gets each reminder once
    run(svc, DUE, [channel])
    assert sum(inbox(smtp).values()) == 6

    smtp.handler.inbox.clear()
    run(svc, DUE + timedelta(days=1), [channel])  # overdue 1: no escalation yet
    assert inbox(smtp) == Counter({
        ("ada@example.com", f"Overdue by 1 day: {TITLE} {b}"): 1,
        ("ada@example.com", f"Overdue by 1 day: Group work {b}"): 1,
        ("bob@example.com", f"Overdue by 1 day: Group work {b}"): 1,
        ("grace@example.com", f"Overdue by 1 day: Nobody's {b}"): 1,
    })
    smtp.handler.inbox.clear()
    run(svc, DUE + timedelta(days=2), [channel])  # overdue 2: escalates to the managers
    assert inbox(smtp) == Counter({
        ("ada@example.com", f"Overdue by 2 days: {TITLE} {b}"): 1,
        ("grace@example.com", f"Escalation: Overdue by 2 days: {TITLE} {b}"): 1,
        ("ada@example.com", f"Overdue by 2 days: Group work {b}"): 1,
        ("bob@example.com", f"Overdue by 2 days: Group work {b}"): 1,
        ("grace@example.com", f"Escalation: Overdue by 2 days: Group work {b}"): 1,   # ada's
        ("carmen@example.com", f"Escalation: Overdue by 2 days: Group work {b}"): 1,  # bob's
        ("grace@example.com", f"Overdue by 2 days: Nobody's {b}"): 1,
    })

    smtp.handler.inbox.clear()
    later = DUE + timedelta(days=2, hours=1)
    at(svc, later)
    task_id = "lab/2026-11-02/t-group"
    engine.fire_task(svc, task_id, "wait", waiting_for="the bank",
                     follow_up_at=later + timedelta(hours=1))
    engine.fire_task(svc, "lab/2026-11-02/t-ghost", "cancel", reason="not ours")
    engine.fire_task(svc, "lab/2026-11-02/t-ada", "cancel", reason="done elsewhere")  # stage two
    record_failure(svc, "job:sweep", later, "scheduled job sweep failed")
    fire_schedule(svc, "weekly", utc(2026, 11, 2, 9))
    run(svc, later + timedelta(hours=1), [channel])
    got = inbox(smtp)
    assert got[("ada@example.com", f"Follow up now: Group work {b}")] == 1
    assert got[("bob@example.com", f"Follow up now: Group work {b}")] == 1
    assert got[("carmen@example.com", "Stage changed: Lab 2026-11-02")] == 1  # the owner
    assert got[("carmen@example.com", "New bundle: Weekly 2026-11-06")] == 1  # recurring: owner
    assert got[("grace@example.com", "Automation failure: scheduled job sweep failed")] == 1
    assert all(n == 1 for n in got.values()), got
    verified(svc.store)


def test_the_message_names_task_due_proof_instructions_and_link_and_escapes_html(
        lab: Services, smtp: SmtpServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATAOPS_BASE_URL", "https://ops.example.com/")
    svc = lab
    engine.create_bundle(svc, "lab", ANCHOR)
    run(svc, DUE, [SmtpChannel(smtp.url)])
    [mail] = [m for m in smtp.handler.to("ada@example.com") if m.subject.startswith("Proof missing")]
    text, html = mail.part("plain"), mail.part("html")
    assert TITLE in text and TITLE in mail.subject  # plain text and subject: as written
    assert "<script>" not in html and "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; ledger" in html
    for part in (text, html):
        assert "2026-11-02" in part                      # the due date
        assert "comment 'Sign-off'" in part or "comment &#39;Sign-off&#39;" in part  # what is missing
        assert "Lab handbook" in part and "https://wiki.example.com/lab" in part
        assert "Step one" in part
        assert "https://ops.example.com/v1/tasks/lab%2F2026-11-02%2Ft-ada" in part
    assert mail.message["Message-ID"].endswith(".ada@dataops.invalid>")


def test_a_5xx_for_one_recipient_fails_only_that_recipient(
        lab: Services, smtp: SmtpServer, capsys: pytest.CaptureFixture[str]) -> None:
    svc = lab
    engine.create_bundle(svc, "lab", ANCHOR)
    smtp.handler.refuse = {"bob@example.com"}
    run(svc, DUE, [SmtpChannel(smtp.url)])
    group = next(r for r in reminders(svc.store)
                 if r.entity_id.endswith("t-group") and r.kind == K.DUE)
    assert group.delivery_status == DeliveryStatus.DELIVERED  # ada got hers
    by = {r.person_id: r for r in group.recipients}
    assert by["ada"].status == RecipientStatus.SENT
    assert by["bob"].status == RecipientStatus.FAILED and "550" in (by["bob"].error or "")
    assert smtp.handler.to("bob@example.com") == []
    failures = [r for r in reminders(svc.store) if r.kind == K.AUTOMATION_FAILURE]
    assert [f.summary for f in failures] == [
        f"could not send due reminder {group.reminder_id} to bob: {by['bob'].error}"]
    assert [r.person_id for r in failures[0].recipients] == ["grace"]
    # reported to operators and to the log
    assert any(m.subject.startswith("Automation failure: could not send due reminder")
               for m in smtp.handler.to("grace@example.com"))
    assert failures[0].reminder_id in capsys.readouterr().err
    run(svc, DUE + timedelta(hours=1), [SmtpChannel(smtp.url)])
    assert smtp.handler.to("bob@example.com") == []  # not retried: refused for good


def test_a_4xx_is_retried_and_then_sent_once(lab: Services, smtp: SmtpServer) -> None:
    svc = lab
    engine.create_bundle(svc, "lab", ANCHOR)
    smtp.handler.busy = 2  # the first two RCPT commands get 451
    report = run(svc, DUE, [SmtpChannel(smtp.url)])
    assert len(report.retried) >= 1
    retried = {r.reminder_id for r in report.retried}
    for rem in reminders(svc.store):
        if rem.reminder_id in retried:
            assert rem.delivery_status == DeliveryStatus.PENDING and "451" in (rem.last_error or "")
    run(svc, DUE + RetryPolicy().backoff(1), [SmtpChannel(smtp.url)])
    assert all(r.delivery_status == DeliveryStatus.DELIVERED for r in reminders(svc.store))
    assert set(inbox(smtp).values()) == {1}  # the retry sent only to whom it had not reached
    assert sum(inbox(smtp).values()) == 6


def test_a_server_that_is_down_is_retried_then_reported_to_the_log_and_operators(
        lab: Services, capsys: pytest.CaptureFixture[str]) -> None:
    svc = lab
    engine.create_bundle(svc, "lab", ANCHOR)
    down = SmtpChannel(f"smtp://127.0.0.1:{free_port()}?timeout=2")
    policy = {"max_attempts": 2}
    run(svc, DUE, [down], **policy)
    assert all(r.delivery_status == DeliveryStatus.PENDING for r in reminders(svc.store))
    capsys.readouterr()
    report = run(svc, DUE + RetryPolicy().backoff(1), [down], **policy)
    failed = {r.reminder_id for r in report.failed}
    assert len(failed) == 5  # every reminder the lab gave ran out of attempts
    failures = [r for r in reminders(svc.store) if r.kind == K.AUTOMATION_FAILURE]
    assert {f.entity_id for f in failures} == failed
    assert all([x.person_id for x in f.recipients] == ["grace"] for f in failures)
    logged = [json.loads(line) for line in capsys.readouterr().err.splitlines()
              if line.startswith("{")]
    assert {d["entity_id"] for d in logged if d["kind"] == "automation_failure"} == failed
    assert all(d["recipients"] == ["grace"] for d in logged)


class _Hooks(BaseHTTPRequestHandler):
    posts: list[tuple[str, dict[str, Any]]] = []
    gone: set[str] = set()

    def do_POST(self) -> None:  # noqa: N802 - the http.server API
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).posts.append((self.path, body))
        self.send_response(404 if self.path in self.gone else 200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_chat_posts_text_to_each_recipients_own_webhook(store: Store, tmp_path: Path) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hooks)
    _Hooks.posts, _Hooks.gone = [], set()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        hook = f"http://127.0.0.1:{server.server_address[1]}/hooks/erin"
        content = load_content(write_lab(tmp_path / "lab", chat_url=hook))
        svc = Services(store, FixedClock(SETUP), "tester", None, lambda: content)
        engine.create_bundle(svc, "lab", ANCHOR)
        engine.assign_task(svc, "lab/2026-11-02/t-group", "erin")
        engine.assign_task(svc, "lab/2026-11-02/t-ada", "erin")
        run(svc, DUE, [ChatChannel("chat://?timeout=5")])
        assert sorted((p, b["text"].splitlines()[0]) for p, b in _Hooks.posts) == [
            ("/hooks/erin", "Due today: Export &lt;script&gt;alert('x')&lt;/script&gt; &amp; "
                            "ledger (Lab 2026-11-02)"),  # as text, never markup or a mention
            ("/hooks/erin", "Due today: Group work (Lab 2026-11-02)"),
            ("/hooks/erin", "Proof missing: Export &lt;script&gt;alert('x')&lt;/script&gt; &amp; "
                            "ledger (Lab 2026-11-02)")]
        # people without a chat webhook are skipped on this channel, saying why
        ghost = next(r for r in reminders(svc.store) if r.entity_id.endswith("t-ghost"))
        assert [(r.person_id, r.status, r.error) for r in ghost.recipients] == [
            ("grace", RecipientStatus.SKIPPED, "no address for chat")]
        # a hook that is gone (404) fails only that recipient, for good
        _Hooks.gone = {"/hooks/erin"}
        run(svc, DUE + timedelta(days=1), [ChatChannel("chat://?timeout=5")])
        overdue = next(r for r in reminders(svc.store)
                       if r.entity_id.endswith("t-group") and r.kind == K.OVERDUE)
        assert overdue.recipients[0].status == RecipientStatus.FAILED
        assert "HTTP 404" in (overdue.recipients[0].error or "")
    finally:
        server.shutdown()
        server.server_close()


def test_a_digest_gathers_a_local_day_into_one_message_across_dst(
        lab: Services, smtp: SmtpServer) -> None:
    """Dana (Europe/London, digest 08:30): British Summer Time ends on 2026-10-25 at 02:00,
    so her digest is at 07:30 UTC on the 24th and at 08:30 UTC on the 25th."""
    svc = lab
    engine.create_bundle(svc, "dig", date(2026, 10, 23))  # d0 due 23rd, d1 24th, d2 25th
    channel = SmtpChannel(smtp.url)
    run(svc, utc(2026, 10, 23, 8), [channel])  # 09:00 BST: d0's due reminder, for her digest
    [due] = [r for r in reminders(svc.store) if r.kind == K.DUE]
    assert due.recipients[0].delivery == "digest"
    assert due.recipients[0].digest_at == utc(2026, 10, 24, 7, 30)  # 08:30 BST the next day
    assert smtp.handler.inbox == []  # nothing immediately
    run(svc, utc(2026, 10, 24, 7, 29), [channel])
    assert smtp.handler.inbox == []  # not before her time
    run(svc, utc(2026, 10, 24, 7, 30), [channel])
    run(svc, utc(2026, 10, 24, 7, 30), [channel])  # a second sweep at the same instant: nothing more
    [first] = smtp.handler.inbox
    assert first.to == ["dana@example.com"]
    assert first.subject == "Your digest for 2026-10-24: 1 reminder"
    assert "Digest lab 2026-10-23 (dig/2026-10-23)" in first.part("plain")
    assert "Due today: Digest task 0" in first.part("plain")

    run(svc, utc(2026, 10, 24, 8), [channel])  # 09:00 BST: d1 due, d0 overdue
    run(svc, utc(2026, 10, 25, 8, 29), [channel])  # 08:29 GMT: not yet
    assert len(smtp.handler.inbox) == 1
    run(svc, utc(2026, 10, 25, 8, 30), [channel])  # 08:30 GMT, after the change
    second = smtp.handler.inbox[1]
    assert second.subject == "Your digest for 2026-10-25: 2 reminders"
    body = second.part("plain")
    assert "Due today: Digest task 1" in body and "Overdue by 1 day: Digest task 0" in body
    digests = every(svc.store, Digest)
    assert [(d.local_date.isoformat(), d.digest_at, len(d.reminder_ids), d.delivery_status)
            for d in sorted(digests, key=lambda d: d.local_date)] == [
        ("2026-10-24", utc(2026, 10, 24, 7, 30), 1, DeliveryStatus.DELIVERED),
        ("2026-10-25", utc(2026, 10, 25, 8, 30), 2, DeliveryStatus.DELIVERED)]
    for rem in reminders(svc.store):
        assert [(r.status, r.digest_id is not None) for r in rem.recipients] == [
            (RecipientStatus.DIGESTED, True)]
        assert rem.digest_after is None
    verified(svc.store)


def test_a_daemon_down_for_days_sends_one_digest_of_everything_since_the_last(
        lab: Services, smtp: SmtpServer) -> None:
    svc = lab
    engine.create_bundle(svc, "dig", date(2026, 10, 23))
    channel = SmtpChannel(smtp.url)
    run(svc, utc(2026, 10, 23, 8), [channel])
    # down until the 27th: everything recorded late, then gathered into one digest
    run(svc, utc(2026, 10, 27, 12), [channel])
    run(svc, utc(2026, 10, 28, 8, 30), [channel])
    subjects = [m.subject for m in smtp.handler.inbox]
    assert subjects == ["Your digest for 2026-10-24: 1 reminder",  # sent late, on the 27th
                        "Your digest for 2026-10-28: 5 reminders"], subjects
    assert all(t.status == TaskStatus.TODO for t in svc.store.tasks_of("dig/2026-10-23"))


def test_starttls_and_login_when_configured(lab: Services, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """A server that requires STARTTLS (its certificate checked against the trust store:
    ``SSL_CERT_FILE`` here) and a login (``DATAOPS_SMTP_USER``/``DATAOPS_SMTP_PASSWORD``)."""
    from tests.smtp import self_signed

    cert, key = self_signed(tmp_path)
    server = SmtpServer(tls=(cert, key), login=("dataops", "s3cret")).start()
    try:
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))
        url = f"smtp://127.0.0.1:{server.port}?starttls=true&timeout=5"
        svc = lab
        engine.create_bundle(svc, "lab", ANCHOR)
        # without the login the server refuses the mail: a failed attempt, retried
        run(svc, DUE, [SmtpChannel(url, env={})])
        assert server.handler.inbox == []
        assert all(r.delivery_status == DeliveryStatus.PENDING for r in reminders(svc.store))
        login = {"DATAOPS_SMTP_USER": "dataops", "DATAOPS_SMTP_PASSWORD": "s3cret",
                 "DATAOPS_SMTP_FROM": "ops@example.com"}
        run(svc, DUE + RetryPolicy().backoff(1), [SmtpChannel(url, env=login)])
        assert sum(inbox(server).values()) == 6 and server.logins[-1] == ("dataops", True)
        assert {str(m.message["From"]) for m in server.handler.inbox} == {"ops@example.com"}
        # plain text to a server that requires STARTTLS is refused, never sent in the clear
        plain = SmtpChannel(f"smtp://127.0.0.1:{server.port}?timeout=5", env=login)
        with pytest.raises(SendError):
            plain.send(svc.content.directory.people["ada"],
                       reminder_message(facts_for(svc, reminders(svc.store)[0], None, Reads(svc))))
    finally:
        server.stop()


def test_a_server_that_never_answers_is_cut_off_at_the_timeout() -> None:
    import socket
    import time

    from runtime.model.people import Person

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)  # accepts connections (the kernel's backlog) and never says a word
    try:
        channel = SmtpChannel(f"smtp://127.0.0.1:{listener.getsockname()[1]}?timeout=1")
        person = Person(person_id="ada", name="Ada", email="ada@example.com")
        started = time.monotonic()
        with pytest.raises(SendError, match="timed out"):
            channel.send(person, Message("s", "t", "<p>h</p>", "rem-x"))
        assert time.monotonic() - started < 5
    finally:
        listener.close()


def test_a_title_or_name_over_several_lines_makes_one_header_line() -> None:
    from runtime.model.people import Person

    channel = SmtpChannel("smtp://127.0.0.1:25", env={})
    person = Person(person_id="ada", name="Ada\nBcc: eve@example.com", email="ada@example.com")
    mail = channel.email(person, Message("Due today: line one\nBcc: eve@example.com", "t", "<p>h</p>",
                                         "rem-1"))
    assert mail["Subject"] == "Due today: line one Bcc: eve@example.com"
    assert "\n" not in str(mail["To"]) and mail["Bcc"] is None
    assert b"\nBcc:" not in mail.as_bytes()


def test_a_reminder_for_two_digest_people_is_in_each_ones_digest_in_one_sweep(
        lab: Services, smtp: SmtpServer) -> None:
    svc = lab
    engine.create_bundle(svc, "dig", date(2026, 10, 23))
    at(svc, utc(2026, 10, 22, 12))
    engine.assign_task(svc, "dig/2026-10-23/d0", "digesters")
    run(svc, utc(2026, 10, 23, 8), [SmtpChannel(smtp.url)])
    run(svc, utc(2026, 10, 24, 7, 30), [SmtpChannel(smtp.url)])
    assert sorted((m.to[0], m.subject) for m in smtp.handler.inbox) == [
        ("dana@example.com", "Your digest for 2026-10-24: 1 reminder"),
        ("fay@example.com", "Your digest for 2026-10-24: 1 reminder")]
    [due] = [r for r in reminders(svc.store) if r.kind == K.DUE and r.entity_id.endswith("d0")]
    assert [(r.person_id, r.status) for r in due.recipients] == [
        ("dana", RecipientStatus.DIGESTED), ("fay", RecipientStatus.DIGESTED)]
    assert due.digest_after is None


def test_a_digest_whose_attempts_never_finish_fails_once_with_a_failure_to_operators(
        lab: Services, smtp: SmtpServer) -> None:
    """A daemon that died while sending it, every time: the leases counted the attempts, so the
    digest fails instead of being leased forever (like a reminder's delivery)."""
    from runtime.store import Changes

    svc = lab
    engine.create_bundle(svc, "dig", date(2026, 10, 23))
    run(svc, utc(2026, 10, 23, 8), [SmtpChannel(smtp.url)])
    at(svc, utc(2026, 10, 24, 7, 30))
    from runtime.engine.digests import gather_digests

    [digest] = gather_digests(svc, utc(2026, 10, 24, 7, 30))
    stored = svc.store.get(Digest, digest.digest_id)
    spent = stored.model_copy(update={"attempts": RetryPolicy().max_attempts,
                                      "version": stored.version + 1})
    svc.store.commit(Changes(updates=[(spent, stored.version)]))
    run(svc, utc(2026, 10, 24, 7, 30), [SmtpChannel(smtp.url)])
    failed = svc.store.get(Digest, digest.digest_id)
    assert failed.delivery_status == DeliveryStatus.FAILED and "never finished" in (failed.last_error or "")
    assert smtp.handler.to("dana@example.com") == []
    [failure] = [r for r in reminders(svc.store) if r.kind == K.AUTOMATION_FAILURE]
    assert failure.entity_id == digest.digest_id and failure.recipients[0].person_id == "grace"
