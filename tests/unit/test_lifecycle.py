"""The task and bundle lifecycles through the engine (DESIGN "Task lifecycle", "Proof",
"Concurrency and atomicity"; seed scenarios "Completion requires proof" and "Waiting work
creates follow-up state without closing the task").

Every accepted command bumps the record's version by exactly 1 and appends exactly one audit
event for it; every rejected one changes nothing (record, audit log, reminders) and never sets
``completed_at``/``completed_by``. Runs on every store (the ``store`` fixture is parametrized).

Most tests use a small definition written on the fly (:func:`write_lab_content`) whose tasks
cover the four proof kinds one by one; the exact-message test uses the shipped vat-return.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml

import runtime
from runtime import engine
from runtime.artifacts import LocalArtifactStore
from runtime.clock import FixedClock
from runtime.content import load_content
from runtime.engine import Services
from runtime.errors import InputError, NotFoundError, TransitionRejected
from runtime.model import Artifact, Bundle, ReminderKind, Task, TaskStatus
from runtime.model.common import utc
from runtime.rules.proof import missing_proof
from runtime.store import Store
from tests.helpers import bundles, every, log_of, reminders, verified

ANCHOR = date(2026, 12, 1)
BUNDLE = "lab/2026-12-01"
T_URL = f"{BUNDLE}/t-url"  # phase first: url with a pattern
T_ART = f"{BUNDLE}/t-art"  # phase first: artifact with content_types
T_COM = f"{BUNDLE}/t-com"  # phase second: comment
T_EXT = f"{BUNDLE}/t-ext"  # phase second: external_status
T_ALL = f"{BUNDLE}/t-all"  # phase second: all four kinds
T_FREE = f"{BUNDLE}/t-free"  # phase second: no proof at all
FIRST_PHASE = [T_URL, T_ART]
ALL_TASKS = [T_URL, T_ART, T_COM, T_EXT, T_ALL, T_FREE]

URL_REQ = {"kind": "url", "label": "Confirmation", "pattern": r"^https://ok\.example\.com/"}
ART_REQ = {"kind": "artifact", "label": "Report", "content_types": ["application/pdf"]}
COM_REQ = {"kind": "comment", "label": "Sign-off"}
EXT_REQ = {"kind": "external_status", "system": "portal", "expected": "accepted"}

PDF = b"%PDF-1.7 a report\n"


def write_lab_content(root: Path) -> Path:
    """A content dir with one document and the ``lab`` workflow: six tasks, two phases, one
    required and one optional bundle link."""
    (root / "docs").mkdir(parents=True)
    (root / "workflows").mkdir()
    doc = {"doc_id": "doc-lab", "title": "Lab handbook", "location": "https://wiki.example.com/lab",
           "steps": [{"step_id": "s1", "title": "Step one"}]}
    (root / "docs" / "doc-lab.yaml").write_text(yaml.safe_dump(doc), encoding="utf-8")

    def task(ref: str, phase: str, proof: list[dict[str, Any]], offset: int = 0) -> dict[str, Any]:
        return {"task_ref": ref, "title": f"Task {ref}", "phase": phase, "offset_days": offset,
                "proof": proof, "instruction_doc_id": "doc-lab", "instruction_step_id": "s1"}

    wf = {
        "template_id": "lab",
        "version": 1,
        "title": "Lab",
        "timezone": "UTC",
        "default_assignee": "alice",
        "source_doc_ids": ["doc-lab"],
        "required_bundle_links": [
            {"key": "folder", "label": "Folder", "required": True},
            {"key": "notes", "label": "Notes", "required": False},
        ],
        "phases": [{"phase_id": "first", "title": "First"},
                   {"phase_id": "second", "title": "Second"}],
        "tasks": [
            task("t-url", "first", [URL_REQ], -2),
            task("t-art", "first", [ART_REQ], -1),
            task("t-com", "second", [COM_REQ]),
            task("t-ext", "second", [EXT_REQ]),
            task("t-all", "second", [URL_REQ, ART_REQ, COM_REQ, EXT_REQ], 2),
            task("t-free", "second", [], 3),
        ],
    }
    (root / "workflows" / "lab.yaml").write_text(yaml.safe_dump(wf, sort_keys=False),
                                                 encoding="utf-8")
    return root


@pytest.fixture
def lab(store: Store, clock: FixedClock, tmp_path: Path) -> Services:
    """Services on the parametrized store with the lab content and a bundle at ANCHOR."""
    content = load_content(write_lab_content(tmp_path / "lab-content"))
    svc = Services(store=store, clock=clock, actor="tester",
                   artifacts=LocalArtifactStore(tmp_path / "artifacts"),
                   content_loader=lambda: content)
    view = engine.create_bundle(svc, "lab", ANCHOR)
    assert view.created and [t.task_id for t in view.tasks] == ALL_TASKS
    return svc


# ---- helpers ---------------------------------------------------------------------------------


def snapshot(svc: Services) -> tuple[Any, ...]:
    """Everything a command could change: every task, the bundles, the whole audit log, the
    reminders and the artifact metadata."""
    st = svc.store
    tasks = tuple(t for b in bundles(st) for t in st.tasks_of(b.bundle_id))
    return (tasks, tuple(bundles(st)), tuple(log_of(st)), tuple(reminders(st)),
            tuple(sorted(every(st, Artifact), key=lambda a: a.artifact_id)))


def accepted(svc: Services, record_id: str, command: Callable[[], Any], *,
             kind: type[Task] | type[Bundle] = Task, action: str | None = None) -> Any:
    """Run ``command``; the record moved on by exactly one version and one audit event."""
    before = svc.store.get(kind, record_id)
    events_before = log_of(svc.store, entity_id=record_id)
    total_before = len(log_of(svc.store))
    command()
    after = svc.store.get(kind, record_id)
    events = log_of(svc.store, entity_id=record_id)
    assert after.version == before.version + 1
    assert len(events) == len(events_before) + 1, [e.summary for e in events]
    assert events[:-1] == events_before
    last = events[-1]
    assert last.actor == svc.actor
    assert last.entity_id == record_id
    assert last.at == svc.now()
    if action is not None:
        assert last.action == action
    assert len(log_of(svc.store)) > total_before
    assert after.updated_at == svc.now()
    return after


def rejected(svc: Services, command: Callable[[], Any],
             error: type[Exception] = TransitionRejected) -> Any:
    """Run ``command``; it raises ``error`` and nothing at all changed."""
    before = snapshot(svc)
    with pytest.raises(error) as info:
        command()
    assert snapshot(svc) == before
    for task in before[0]:
        if task.status != TaskStatus.DONE:
            assert task.completed_at is None and task.completed_by is None
    return info.value


def task(svc: Services, task_id: str) -> Task:
    return svc.store.get(Task, task_id)


def bundle(svc: Services) -> Bundle:
    return svc.store.get(Bundle, BUNDLE)


def later(svc: Services, **delta: float) -> datetime:
    return svc.now() + timedelta(**delta)


def to_state(svc: Services, task_id: str, state: str) -> Task:
    """Drive a proof-free task (T_FREE) to ``state``."""
    if state == "todo":
        return task(svc, task_id)
    if state == "in_progress":
        return engine.fire_task(svc, task_id, "start")
    if state == "waiting":
        return engine.fire_task(svc, task_id, "wait", waiting_for="bob",
                                follow_up_at=later(svc, days=2))
    if state == "done":
        return engine.fire_task(svc, task_id, "complete")
    if state == "cancelled":
        return engine.fire_task(svc, task_id, "cancel", reason="not needed")
    raise AssertionError(state)


# ---- every trigger, accepted -----------------------------------------------------------------


def test_start(lab: Services) -> None:
    t = accepted(lab, T_FREE, lambda: engine.fire_task(lab, T_FREE, "start"), action="start")
    assert t.status == TaskStatus.IN_PROGRESS
    assert t.completed_at is None and t.completed_by is None


@pytest.mark.parametrize("source", ["todo", "in_progress", "waiting"])
def test_wait_from_every_open_state(lab: Services, source: str) -> None:
    to_state(lab, T_FREE, source)
    due = task(lab, T_FREE).due_date
    follow = later(lab, days=5)
    t = accepted(lab, T_FREE, lambda: engine.fire_task(
        lab, T_FREE, "wait", waiting_for="  the accountant  ", follow_up_at=follow), action="wait")
    assert t.status == TaskStatus.WAITING
    assert t.status.is_open
    assert t.waiting_for == "the accountant"
    assert t.follow_up_at == follow
    assert t.due_date == due
    assert t.completed_at is None and t.completed_by is None


def test_resume_clears_waiting_fields_and_the_audit_keeps_them(lab: Services) -> None:
    follow = later(lab, days=2)
    engine.fire_task(lab, T_FREE, "wait", waiting_for="bob", follow_up_at=follow)
    t = accepted(lab, T_FREE, lambda: engine.fire_task(lab, T_FREE, "resume"), action="resume")
    assert t.status == TaskStatus.IN_PROGRESS
    assert t.waiting_for is None and t.follow_up_at is None
    event = log_of(lab.store, entity_id=T_FREE)[-1]
    assert event.before is not None and event.after is not None
    assert event.before["waiting_for"] == "bob"
    assert event.before["follow_up_at"] == follow.isoformat()
    assert event.after["waiting_for"] is None and event.after["follow_up_at"] is None


@pytest.mark.parametrize("source", ["todo", "in_progress"])
def test_complete_sets_completion(lab: Services, source: str) -> None:
    to_state(lab, T_FREE, source)
    t = accepted(lab, T_FREE, lambda: engine.fire_task(lab, T_FREE, "complete"),
                 action="complete")
    assert t.status == TaskStatus.DONE
    assert t.completed_at == lab.now()
    assert t.completed_by == "tester"


@pytest.mark.parametrize("source", ["todo", "in_progress", "waiting"])
def test_cancel_from_every_open_state(lab: Services, source: str) -> None:
    to_state(lab, T_FREE, source)
    t = accepted(lab, T_FREE, lambda: engine.fire_task(lab, T_FREE, "cancel", reason="dropped"),
                 action="cancel")
    assert t.status == TaskStatus.CANCELLED
    assert t.waiting_for is None and t.follow_up_at is None
    assert t.completed_at is None and t.completed_by is None
    assert "dropped" in log_of(lab.store, entity_id=T_FREE)[-1].summary


@pytest.mark.parametrize("source", ["done", "cancelled"])
def test_reopen_clears_completion(lab: Services, clock: FixedClock, source: str) -> None:
    to_state(lab, T_FREE, source)
    clock.advance(timedelta(minutes=1))
    t = accepted(lab, T_FREE, lambda: engine.fire_task(lab, T_FREE, "reopen", reason="redo"),
                 action="reopen")
    assert t.status == TaskStatus.IN_PROGRESS
    assert t.completed_at is None and t.completed_by is None


def test_assign_and_comment(lab: Services) -> None:
    t = accepted(lab, T_FREE, lambda: engine.assign_task(lab, T_FREE, " carol "),
                 action="assign")
    assert t.assignee == "carol"
    t = accepted(lab, T_FREE, lambda: engine.comment_task(lab, T_FREE, "looks good"),
                 action="comment")
    assert [(c.author, c.body) for c in t.comments] == [("tester", "looks good")]
    assert t.proof == []  # a plain comment is not proof


def test_attach_every_kind(lab: Services) -> None:
    t = accepted(lab, T_ALL, lambda: engine.attach_url(lab, T_ALL, "https://ok.example.com/1"),
                 action="attach")
    assert [(p.kind, p.value) for p in t.proof] == [("url", "https://ok.example.com/1")]
    result: dict[str, Any] = {}

    def attach_file() -> None:
        result["t"], result["a"] = engine.attach_file(lab, T_ALL, PDF, "r.pdf", "application/pdf")

    t = accepted(lab, T_ALL, attach_file, action="attach")
    assert t.proof[-1].kind == "artifact" and t.proof[-1].artifact_id == result["a"].artifact_id
    t = accepted(lab, T_ALL, lambda: engine.attach_comment(lab, T_ALL, "signed off"),
                 action="attach")
    assert (t.proof[-1].kind, t.proof[-1].value) == ("comment", "signed off")
    t = accepted(lab, T_ALL, lambda: engine.attach_external_status(lab, T_ALL, "portal", "accepted"),
                 action="attach")
    assert (t.proof[-1].kind, t.proof[-1].system, t.proof[-1].value) == (
        "external_status", "portal", "accepted")
    assert all(p.by == "tester" and p.at == lab.now() for p in t.proof)
    assert missing_proof(t) == []
    # still todo: attaching proof is not completing
    assert t.status == TaskStatus.TODO and t.completed_at is None


def test_bundle_link(lab: Services) -> None:
    b = accepted(lab, BUNDLE, lambda: engine.link_bundle(lab, BUNDLE, "folder",
                                                         "https://drive.example.com/f"),
                 kind=Bundle, action="link")
    assert [(link.key, link.url) for link in b.required_bundle_links] == [
        ("folder", "https://drive.example.com/f"), ("notes", None)]


def test_bundle_cancel_cancels_open_tasks(lab: Services) -> None:
    engine.fire_task(lab, T_FREE, "complete")
    engine.fire_task(lab, T_COM, "wait", waiting_for="bob", follow_up_at=later(lab, days=1))
    engine.fire_task(lab, T_EXT, "start")
    before = {t.task_id: t for t in lab.store.tasks_of(BUNDLE)}
    events_before = {tid: len(log_of(lab.store, entity_id=tid)) for tid in ALL_TASKS}
    b = accepted(lab, BUNDLE, lambda: engine.cancel_bundle(lab, BUNDLE, "client left"),
                 kind=Bundle, action="cancel")
    assert b.status == "cancelled"
    for t in lab.store.tasks_of(BUNDLE):
        old = before[t.task_id]
        events = log_of(lab.store, entity_id=t.task_id)
        if t.task_id == T_FREE:  # closed already: untouched
            assert t == old
            assert len(events) == events_before[t.task_id]
            continue
        assert t.status == TaskStatus.CANCELLED
        assert t.version == old.version + 1
        assert len(events) == events_before[t.task_id] + 1
        assert "client left" in events[-1].summary
        assert t.waiting_for is None and t.follow_up_at is None
        assert t.completed_at is None
    verified(lab.store)


# ---- rejected: nothing changes ---------------------------------------------------------------


NOT_FROM = {
    # trigger -> states it is not allowed from (other than a refused_from message)
    "start": ["in_progress", "waiting", "done", "cancelled"],
    "wait": ["done", "cancelled"],
    "resume": ["todo", "in_progress", "done", "cancelled"],
    "complete": ["done", "cancelled"],
    "cancel": ["done", "cancelled"],
    "reopen": ["todo", "in_progress", "waiting"],
}
GOOD_ARGS: dict[str, dict[str, Any]] = {
    "wait": {"waiting_for": "x"}, "cancel": {"reason": "r"}, "reopen": {"reason": "r"},
}


@pytest.mark.parametrize(
    ("trigger", "state"), [(t, s) for t, states in NOT_FROM.items() for s in states]
)
def test_trigger_not_allowed_from_state(lab: Services, trigger: str, state: str) -> None:
    to_state(lab, T_FREE, state)
    args = dict(GOOD_ARGS.get(trigger, {}))
    if trigger == "wait":
        args["follow_up_at"] = later(lab, days=1)
    e = rejected(lab, lambda: engine.fire_task(lab, T_FREE, trigger, **args))
    assert e.entity_id == T_FREE and e.trigger == trigger and e.state == state
    assert len(e.missing) == 1
    assert f"not allowed from state {state}" in e.missing[0]
    assert "allowed now" in e.missing[0]
    assert T_FREE in str(e)


def test_complete_from_waiting_says_resume_it_first(lab: Services) -> None:
    to_state(lab, T_FREE, "waiting")
    e = rejected(lab, lambda: engine.fire_task(lab, T_FREE, "complete"))
    assert len(e.missing) == 1
    assert "resume it first" in e.missing[0]
    assert "resume it first" in str(e)
    assert task(lab, T_FREE).completed_at is None


@pytest.mark.parametrize(
    ("waiting_for", "follow_up", "expected"),
    [
        (None, {"days": 1}, ["waiting_for"]),
        ("", {"days": 1}, ["waiting_for"]),
        ("   ", {"days": 1}, ["waiting_for"]),
        ("bob", None, ["follow_up_at"]),
        (None, None, ["waiting_for", "follow_up_at"]),
        ("bob", {"seconds": 0}, ["not later than now"]),
        ("bob", {"seconds": -1}, ["not later than now"]),
        ("bob", {"days": -30}, ["not later than now"]),
        ("", {"seconds": 0}, ["waiting_for", "not later than now"]),
    ],
)
@pytest.mark.parametrize("source", ["todo", "in_progress", "waiting"])
def test_wait_rejected_without_valid_waiting_fields(
    lab: Services, source: str, waiting_for: str | None, follow_up: dict[str, int] | None,
    expected: list[str],
) -> None:
    to_state(lab, T_FREE, source)
    follow = None if follow_up is None else later(lab, **follow_up)
    e = rejected(lab, lambda: engine.fire_task(lab, T_FREE, "wait", waiting_for=waiting_for,
                                               follow_up_at=follow))
    assert len(e.missing) == len(expected)
    for text, want in zip(e.missing, expected, strict=True):
        assert want in text


def test_wait_rejects_a_naive_follow_up(lab: Services) -> None:
    naive = datetime(2026, 12, 24, 9, 0)
    e = rejected(lab, lambda: engine.fire_task(lab, T_FREE, "wait", waiting_for="bob",
                                               follow_up_at=naive), InputError)
    assert "follow_up_at" in str(e) and "time zone" in str(e)  # the command's type, not a guard


@pytest.mark.parametrize("reason", [None, "", "  \t"])
@pytest.mark.parametrize(("trigger", "state"), [("cancel", "todo"), ("cancel", "in_progress"),
                                                ("cancel", "waiting"), ("reopen", "done"),
                                                ("reopen", "cancelled")])
def test_cancel_and_reopen_need_a_reason(lab: Services, trigger: str, state: str,
                                         reason: str | None) -> None:
    to_state(lab, T_FREE, state)
    e = rejected(lab, lambda: engine.fire_task(lab, T_FREE, trigger, reason=reason))
    assert len(e.missing) == 1 and "reason" in e.missing[0]


def test_unknown_trigger_and_unknown_task(lab: Services) -> None:
    e = rejected(lab, lambda: engine.fire_task(lab, T_FREE, "explode"), InputError)
    assert "unknown trigger" in str(e)
    e = rejected(lab, lambda: engine.fire_task(lab, f"{BUNDLE}/nope", "start"), NotFoundError)
    assert f"{BUNDLE}/nope" in str(e)
    rejected(lab, lambda: engine.attach_url(lab, f"{BUNDLE}/nope", "https://ok.example.com/"),
             NotFoundError)
    rejected(lab, lambda: engine.attach_file(lab, f"{BUNDLE}/nope", PDF, "a.pdf",
                                             "application/pdf"), NotFoundError)
    rejected(lab, lambda: engine.link_bundle(lab, "lab/1999-01-01", "folder",
                                             "https://x.example.com/"), NotFoundError)


@pytest.mark.parametrize(
    "command",
    [
        lambda s: engine.assign_task(s, T_FREE, "  "),
        lambda s: engine.comment_task(s, T_FREE, ""),
        lambda s: engine.attach_url(s, T_URL, "ftp://ok.example.com/x"),
        lambda s: engine.attach_url(s, T_URL, "not a url"),
        lambda s: engine.attach_comment(s, T_COM, "   "),
        lambda s: engine.attach_external_status(s, T_EXT, "", "accepted"),
        lambda s: engine.attach_external_status(s, T_EXT, "portal", " "),
        lambda s: engine.link_bundle(s, BUNDLE, "no-such-key", "https://x.example.com/"),
        lambda s: engine.link_bundle(s, BUNDLE, "folder", "drive/folder"),
    ],
    ids=["assign-empty", "comment-empty", "url-ftp", "url-garbage", "proof-comment-empty",
         "status-no-system", "status-no-value", "link-unknown-key", "link-not-a-url"],
)
def test_bad_input_changes_nothing(lab: Services, command: Callable[[Services], Any]) -> None:
    rejected(lab, lambda: command(lab), InputError)


def test_bundle_cancel_rejected_changes_nothing(lab: Services, clock: FixedClock) -> None:
    for reason in (None, "", "  "):
        e = rejected(lab, lambda r=reason: engine.cancel_bundle(lab, BUNDLE, r))
        assert "reason" in e.missing[0]
    engine.cancel_bundle(lab, BUNDLE, "stop")
    clock.advance(timedelta(minutes=1))
    e = rejected(lab, lambda: engine.cancel_bundle(lab, BUNDLE, "again"))
    assert "not allowed from state cancelled" in e.missing[0]
    # a cancelled bundle: no links, no reopening its tasks
    rejected(lab, lambda: engine.link_bundle(lab, BUNDLE, "folder", "https://x.example.com/"))
    e = rejected(lab, lambda: engine.fire_task(lab, T_FREE, "reopen", reason="back"))
    assert "cancelled" in e.missing[0]


# ---- proof, kind by kind ---------------------------------------------------------------------


def test_exact_missing_proof_message(svc: Services) -> None:
    """The seed scenario on the shipped vat-return: every missing proof named, nothing set."""
    engine.create_bundle(svc, "vat-return", date(2026, 11, 2))
    tid = "vat-return/2026-11-02/file-return"
    engine.fire_task(svc, tid, "start")
    e = rejected(svc, lambda: engine.fire_task(svc, tid, "complete"))
    assert str(e) == (
        "task vat-return/2026-11-02/file-return cannot be done: missing proof url "
        "'Filing confirmation' (pattern ^https://); missing proof external_status "
        "tax_portal=accepted (reported: nothing)"
    )
    assert e.missing == [
        "missing proof url 'Filing confirmation' (pattern ^https://)",
        "missing proof external_status tax_portal=accepted (reported: nothing)",
    ]
    t = svc.store.get(Task, tid)
    assert t.status == TaskStatus.IN_PROGRESS
    assert t.completed_at is None and t.completed_by is None


def test_url_proof_must_match_the_pattern(lab: Services) -> None:
    e = rejected(lab, lambda: engine.fire_task(lab, T_URL, "complete"))
    assert e.missing == [r"missing proof url 'Confirmation' (pattern ^https://ok\.example\.com/)"]
    engine.attach_url(lab, T_URL, "https://evil.example.com/ok.example.com/")
    engine.attach_url(lab, T_URL, "http://ok.example.com/1")  # http, pattern wants https
    e = rejected(lab, lambda: engine.fire_task(lab, T_URL, "complete"))
    assert e.missing == [r"missing proof url 'Confirmation' (pattern ^https://ok\.example\.com/)"]
    engine.attach_url(lab, T_URL, "https://ok.example.com/confirmation/7")
    t = accepted(lab, T_URL, lambda: engine.fire_task(lab, T_URL, "complete"))
    assert t.status == TaskStatus.DONE and t.completed_by == "tester"


def test_artifact_proof_must_have_an_allowed_content_type(lab: Services) -> None:
    e = rejected(lab, lambda: engine.fire_task(lab, T_ART, "complete"))
    assert e.missing == ["missing proof artifact 'Report' (application/pdf)"]
    engine.attach_file(lab, T_ART, b"plain", "report.txt", "text/plain")
    e = rejected(lab, lambda: engine.fire_task(lab, T_ART, "complete"))
    assert e.missing == ["missing proof artifact 'Report' (application/pdf) (attached: text/plain)"]
    # a URL or a comment is not a file
    engine.attach_url(lab, T_ART, "https://ok.example.com/report.pdf")
    engine.attach_comment(lab, T_ART, "the report is on the drive")
    rejected(lab, lambda: engine.fire_task(lab, T_ART, "complete"))
    engine.attach_file(lab, T_ART, PDF, "report.pdf", "application/pdf")
    t = accepted(lab, T_ART, lambda: engine.fire_task(lab, T_ART, "complete"))
    assert t.status == TaskStatus.DONE


def test_comment_proof_needs_an_attached_comment(lab: Services) -> None:
    e = rejected(lab, lambda: engine.fire_task(lab, T_COM, "complete"))
    assert e.missing == ["missing proof comment 'Sign-off'"]
    engine.comment_task(lab, T_COM, "I did it")  # a discussion comment is not proof
    rejected(lab, lambda: engine.fire_task(lab, T_COM, "complete"))
    engine.attach_comment(lab, T_COM, "signed off by the reviewer")
    t = accepted(lab, T_COM, lambda: engine.fire_task(lab, T_COM, "complete"))
    assert t.status == TaskStatus.DONE


def test_external_status_proof_needs_the_expected_value(lab: Services) -> None:
    e = rejected(lab, lambda: engine.fire_task(lab, T_EXT, "complete"))
    assert e.missing == ["missing proof external_status portal=accepted (reported: nothing)"]
    engine.attach_external_status(lab, T_EXT, "portal", "pending")
    engine.attach_external_status(lab, T_EXT, "other", "accepted")  # another system
    e = rejected(lab, lambda: engine.fire_task(lab, T_EXT, "complete"))
    assert e.missing == ["missing proof external_status portal=accepted (reported: pending)"]
    assert "(reported: pending)" in str(e)
    engine.attach_external_status(lab, T_EXT, "portal", "accepted")
    t = accepted(lab, T_EXT, lambda: engine.fire_task(lab, T_EXT, "complete"))
    assert t.status == TaskStatus.DONE


def test_external_status_counts_by_its_latest_report(lab: Services) -> None:
    engine.attach_external_status(lab, T_EXT, "portal", "accepted")
    engine.attach_external_status(lab, T_EXT, "portal", "rejected")
    e = rejected(lab, lambda: engine.fire_task(lab, T_EXT, "complete"))
    assert e.missing == ["missing proof external_status portal=accepted (reported: rejected)"]


def test_every_missing_requirement_is_named(lab: Services) -> None:
    engine.fire_task(lab, T_ALL, "start")
    e = rejected(lab, lambda: engine.fire_task(lab, T_ALL, "complete"))
    assert e.missing == [
        r"missing proof url 'Confirmation' (pattern ^https://ok\.example\.com/)",
        "missing proof artifact 'Report' (application/pdf)",
        "missing proof comment 'Sign-off'",
        "missing proof external_status portal=accepted (reported: nothing)",
    ]
    assert str(e) == f"task {T_ALL} cannot be done: " + "; ".join(e.missing)
    # satisfy them one at a time: each step removes exactly its own line
    steps: list[Callable[[], Any]] = [
        lambda: engine.attach_url(lab, T_ALL, "https://ok.example.com/x"),
        lambda: engine.attach_file(lab, T_ALL, PDF, "r.pdf", "application/pdf"),
        lambda: engine.attach_comment(lab, T_ALL, "ok"),
        lambda: engine.attach_external_status(lab, T_ALL, "portal", "accepted"),
    ]
    for i, step in enumerate(steps):
        step()
        if i < 3:
            e = rejected(lab, lambda: engine.fire_task(lab, T_ALL, "complete"))
            assert len(e.missing) == 3 - i
    assert engine.check_task(lab, T_ALL, "complete") == []
    t = accepted(lab, T_ALL, lambda: engine.fire_task(lab, T_ALL, "complete"))
    assert t.status == TaskStatus.DONE and t.completed_at == lab.now()


def test_two_url_requirements_need_two_urls(tmp_path: Path, store: Store,
                                            clock: FixedClock) -> None:
    root = write_lab_content(tmp_path / "c")
    wf = yaml.safe_load((root / "workflows" / "lab.yaml").read_text())
    wf["tasks"] = [{"task_ref": "two", "title": "Two", "phase": "first", "offset_days": 0,
                    "proof": [{"kind": "url", "label": "A"}, {"kind": "url", "label": "B"}]}]
    (root / "workflows" / "lab.yaml").write_text(yaml.safe_dump(wf))
    content = load_content(root)
    svc = Services(store, clock, "tester", LocalArtifactStore(tmp_path / "a"), lambda: content)
    engine.create_bundle(svc, "lab", ANCHOR)
    tid = f"{BUNDLE}/two"
    engine.attach_url(svc, tid, "https://one.example.com/")
    e = rejected(svc, lambda: engine.fire_task(svc, tid, "complete"))
    assert e.missing == ["missing proof url 'B'"]
    engine.attach_url(svc, tid, "https://two.example.com/")
    assert engine.fire_task(svc, tid, "complete").status == TaskStatus.DONE


# ---- waiting ---------------------------------------------------------------------------------


def test_waiting_task_stays_open_and_exports_its_waiting_fields(lab: Services) -> None:
    engine.fire_task(lab, T_EXT, "start")
    before = task(lab, T_EXT)
    follow = datetime(2026, 12, 3, 9, 0, tzinfo=timezone(timedelta(hours=1)))
    t = engine.fire_task(lab, T_EXT, "wait", waiting_for="portal support", follow_up_at=follow)
    assert t == task(lab, T_EXT)
    assert t.status == "waiting" and t.status.is_open
    assert t.due_date == before.due_date
    assert t.completed_at is None and t.completed_by is None
    assert t.follow_up_at == follow and t.follow_up_at.tzinfo is not None
    data = t.to_json()
    assert data["status"] == "waiting"
    assert data["waiting_for"] == "portal support"
    assert data["follow_up_at"] == "2026-12-03T08:00:00+00:00"
    assert data["due_date"] == before.due_date.isoformat()
    assert data["completed_at"] is None and data["completed_by"] is None
    # listed as waiting; the bundle stays active and open
    assert [x.task_id for x in engine.list_tasks(lab, status="waiting").items] == [T_EXT]
    assert bundle(lab).status == "active"


def test_wait_from_waiting_reschedules(lab: Services, clock: FixedClock) -> None:
    engine.fire_task(lab, T_FREE, "wait", waiting_for="bob", follow_up_at=later(lab, days=1))
    clock.advance(timedelta(hours=3))
    new_follow = later(lab, days=4)
    t = accepted(lab, T_FREE, lambda: engine.fire_task(
        lab, T_FREE, "wait", waiting_for="bob's lawyer", follow_up_at=new_follow), action="wait")
    assert t.status == "waiting"
    assert t.follow_up_at == new_follow and t.waiting_for == "bob's lawyer"
    event = log_of(lab.store, entity_id=T_FREE)[-1]
    assert event.before is not None and event.before["waiting_for"] == "bob"


def test_wait_with_the_follow_up_due_passed_cannot_reschedule_into_the_past(
        lab: Services, clock: FixedClock) -> None:
    engine.fire_task(lab, T_FREE, "wait", waiting_for="bob", follow_up_at=later(lab, hours=1))
    clock.advance(timedelta(hours=2))
    rejected(lab, lambda: engine.fire_task(lab, T_FREE, "wait", waiting_for="bob",
                                           follow_up_at=later(lab, hours=-1)))
    assert task(lab, T_FREE).status == "waiting"  # still waiting: overdue follow-up


# ---- the bundle machine ----------------------------------------------------------------------


def stage_reminders(svc: Services) -> list[Any]:
    return [r for r in reminders(svc.store, entity_id=BUNDLE)
            if r.kind == ReminderKind.STAGE_CHANGE]


def test_stage_moves_on_when_the_first_phase_closes(lab: Services, clock: FixedClock) -> None:
    assert bundle(lab).stage == "first"
    engine.attach_url(lab, T_URL, "https://ok.example.com/1")
    engine.fire_task(lab, T_URL, "complete")
    assert bundle(lab).stage == "first"
    assert stage_reminders(lab) == []
    clock.advance(timedelta(hours=1))
    seq_before = len(log_of(lab.store))
    b_before = bundle(lab)
    engine.fire_task(lab, T_ART, "cancel", reason="no report this time")
    b = bundle(lab)
    assert b.stage == "second" and b.status == "active"
    assert b.version == b_before.version + 1
    reminders = stage_reminders(lab)
    assert len(reminders) == 1
    r = reminders[0]
    assert r.entity_type == "bundle" and r.bundle_id == BUNDLE
    assert r.fire_at == clock.now() and r.recorded_at == clock.now()
    assert "first" in r.summary and "second" in r.summary
    # one command, one commit: the task's event, the reminder's and the bundle's, each the
    # next event of its own entity's chain
    new = log_of(lab.store)[seq_before:]
    assert {e.entity_id for e in new} == {T_ART, r.reminder_id, BUNDLE} and len(new) == 3
    for e in new:
        assert e.seq == len(lab.store.audit_events(e.entity_id)) and e.at == clock.now()
    assert [e.entity_id for e in new].count(T_ART) == 1
    assert [e.entity_id for e in new].count(BUNDLE) == 1
    # reopening a first-phase task moves the stage back, with another reminder
    clock.advance(timedelta(hours=1))
    engine.fire_task(lab, T_ART, "reopen", reason="the report arrived")
    assert bundle(lab).stage == "first"
    assert len(stage_reminders(lab)) == 2
    verified(lab.store)


def test_stage_can_change_twice_at_the_same_instant(lab: Services) -> None:
    """Closing the last task of a phase and reopening it at the same instant (a fixed --now,
    a batch script) are two stage changes: both commands must succeed, each recorded."""
    engine.fire_task(lab, T_URL, "cancel", reason="a")
    engine.fire_task(lab, T_ART, "cancel", reason="b")
    assert bundle(lab).stage == "second"
    engine.fire_task(lab, T_ART, "reopen", reason="back")  # same clock instant
    assert bundle(lab).stage == "first"
    assert len(stage_reminders(lab)) == 2


def close_all(svc: Services, clock: FixedClock) -> None:
    for tid in ALL_TASKS:
        if task(svc, tid).status.is_open:
            clock.advance(timedelta(seconds=1))
            engine.fire_task(svc, tid, "cancel", reason="wrap up")


def test_bundle_completes_when_every_task_closed_and_required_links_filled(
        lab: Services, clock: FixedClock) -> None:
    engine.fire_task(lab, T_FREE, "complete")
    clock.advance(timedelta(minutes=1))
    close_all(lab, clock)
    b = bundle(lab)
    assert b.stage is None
    assert b.status == "active"  # the required link "folder" is still empty
    clock.advance(timedelta(minutes=1))
    b = accepted(lab, BUNDLE, lambda: engine.link_bundle(lab, BUNDLE, "folder",
                                                         "https://drive.example.com/f"),
                 kind=Bundle)
    assert b.status == "completed"  # the optional "notes" link may stay empty
    # reopening a task makes it active again
    clock.advance(timedelta(minutes=1))
    b_before = bundle(lab)
    engine.fire_task(lab, T_FREE, "reopen", reason="one more thing")
    b = bundle(lab)
    assert b.status == "active" and b.stage == "second"
    assert b.version == b_before.version + 1
    # and completing it again completes the bundle again
    clock.advance(timedelta(minutes=1))
    engine.fire_task(lab, T_FREE, "complete")
    assert bundle(lab).status == "completed"


def test_bundle_completes_from_the_last_task_command(lab: Services, clock: FixedClock) -> None:
    engine.link_bundle(lab, BUNDLE, "folder", "https://drive.example.com/f")
    assert bundle(lab).status == "active"  # tasks still open
    for tid in ALL_TASKS[:-1]:
        engine.fire_task(lab, tid, "cancel", reason="skip")
        assert bundle(lab).status == "active"
    clock.advance(timedelta(minutes=1))
    engine.fire_task(lab, T_FREE, "complete")
    assert bundle(lab).status == "completed"
    e = rejected(lab, lambda: engine.cancel_bundle(lab, BUNDLE, "too late"))
    assert "not allowed from state completed" in e.missing[0]


def test_bundle_cancel_records_its_stage_change(lab: Services) -> None:
    """Cancelling the bundle closes every open task: its stage moves to none, and the command
    that changed the stage records the stage_change reminder (DESIGN "Reminders")."""
    assert bundle(lab).stage == "first"
    engine.cancel_bundle(lab, BUNDLE, "client left")
    assert bundle(lab).stage is None
    assert len(stage_reminders(lab)) == 1


# ---- artifacts -------------------------------------------------------------------------------


def test_artifact_binary_is_content_addressed_and_metadata_stored(
        lab: Services, tmp_path: Path) -> None:
    data = b"%PDF-1.4\n" + bytes(range(256)) * 10
    digest = hashlib.sha256(data).hexdigest()
    t, art = engine.attach_file(lab, T_ART, data, "../../etc/passwd", "application/pdf")
    root = (tmp_path / "artifacts").resolve()
    location = Path(art.location)
    assert location.name == digest
    assert art.location.endswith(digest)
    assert root in location.resolve().parents
    assert location.read_bytes() == data
    stored = lab.store.get(Artifact, art.artifact_id)
    assert stored == art
    assert (stored.task_id, stored.bundle_id) == (T_ART, BUNDLE)
    assert stored.size_bytes == len(data) and stored.sha256 == digest
    assert stored.content_type == "application/pdf"
    assert stored.filename == "../../etc/passwd"  # metadata only
    assert stored.created_by == "tester" and stored.created_at == lab.now()
    assert t.proof[-1].artifact_id == art.artifact_id
    # the filename never became a path anywhere
    assert not any(p.name == "passwd" for p in tmp_path.rglob("*"))
    assert not (tmp_path / "etc").exists() and not (tmp_path.parent / "etc").exists()
    # the artifact's audit event is in the same commit as the task's
    [created] = lab.store.audit_events(art.artifact_id)
    attached = lab.store.audit_events(T_ART)[-1]
    assert created.action == "create" and attached.action == "attach"
    assert created.at == attached.at == lab.now()
    # the same bytes again: one binary, two metadata records
    _, again = engine.attach_file(lab, T_ALL, data, "copy.pdf", "application/pdf")
    assert again.location == art.location and again.artifact_id != art.artifact_id
    assert len(list(root.rglob(digest))) == 1
    assert lab.artifacts is not None and lab.artifacts.get(art.location) == data


# ---- the library facade ----------------------------------------------------------------------


def test_runtime_open_facade(tmp_path: Path, clock: FixedClock) -> None:
    content_dir = write_lab_content(tmp_path / "content")
    rt = runtime.open(store="memory://", content=str(content_dir), clock=clock, actor="worker")
    with rt:
        view = rt.create_bundle("lab", "2026-12-01")
        assert isinstance(view, runtime.BundleView) and view.created
        assert rt.store.url == "memory://"
        assert rt.start(T_FREE).status == "in_progress"
        with pytest.raises(runtime.TransitionRejected) as info:
            rt.complete(T_ALL)
        assert len(info.value.missing) == 4
        assert rt.check(T_FREE, "complete") == []
        assert "complete" in rt.allowed(T_FREE)
        done = rt.done(T_FREE)
        assert done.completed_by == "worker" and done.completed_at == clock.now()
        assert rt.as_actor("bob").assign(T_ALL, "bob").assignee == "bob"
        assert rt.audit_log(T_ALL)[-1].actor == "bob"
        assert rt.verify_audit() == len(rt.audit_log())
        with pytest.raises(runtime.NotFoundError):
            rt.task(f"{BUNDLE}/nope")
    # an already-loaded Content works too, and so does a SQLite file
    rt2 = runtime.open(store=f"sqlite:///{tmp_path / 'rt.db'}", content=load_content(content_dir),
                       clock=FixedClock(utc(2026, 11, 25, 8)))
    with rt2:
        rt2.create_bundle("lab", date(2026, 12, 1))
        _, art = rt2.attach_file(T_ART, data=PDF, filename="r.pdf", content_type="application/pdf")
        assert Path(art.location).exists()
        assert rt2.complete(T_ART).status == "done"


def test_runtime_all_matches_public_names() -> None:
    import importlib
    import inspect

    assert len(runtime.__all__) == len(set(runtime.__all__))
    for name in runtime.__all__:
        assert getattr(runtime, name) is not None, name
        assert not inspect.ismodule(getattr(runtime, name)), name
    # every public class or function the package exposes is in __all__
    for name in dir(runtime):
        if name.startswith("_"):
            continue
        value = getattr(runtime, name)
        if inspect.ismodule(value):
            continue
        if getattr(value, "__module__", "").startswith("runtime"):
            assert name in runtime.__all__, f"runtime.{name} is public but not in __all__"
    # `from runtime import *` gives exactly __all__
    ns: dict[str, Any] = {}
    exec("from runtime import *", ns)
    assert sorted(k for k in ns if k != "__builtins__") == sorted(runtime.__all__)
    assert importlib.import_module("runtime").open is runtime.open
    with pytest.raises(AttributeError):
        _ = runtime.no_such_name  # type: ignore[attr-defined]


def test_audit_events_built_by_the_engine_are_what_validation_gives(svc) -> None:
    """event_for skips re-validation for speed; every stored event must still round-trip."""
    from runtime.model import AuditEvent
    from runtime.rules.audit import event_hash

    view = engine.create_bundle(svc, "vat-return", date(2026, 11, 2))
    engine.fire_task(svc, view.tasks[0].task_id, "start")
    events = log_of(svc.store)
    assert events
    for event in events:
        assert AuditEvent.model_validate(event.to_json()) == event
        assert event_hash(event) == event.hash
