"""The reminder sweep against a store (DESIGN "Reminders", "Reminders (pure rules; recorded once;
delivered to sinks)", "Reminder sinks", "Time"; seed scenario "Waiting work creates follow-up
state": a waiting task drives a follow-up-due reminder when the follow-up date arrives).

The clock is injected (``FixedClock``) and moved by hand: nothing sleeps. Every test that takes
``svc`` runs on every store (memory and SQLite).

Most tests use definitions written on the fly (:func:`write_lab_content`) in the two zones whose
DST change falls inside the test window:

- ``berlin`` (Europe/Berlin, CEST -> CET on 2026-10-25), anchor 2026-10-24;
- ``newyork`` (America/New_York, EDT -> EST on 2026-11-01), anchor 2026-10-31;

each with a required bundle link, a task ``t-proof`` due on the anchor that needs a comment as
proof, and a task ``t-wait`` due two days later that the test puts in ``waiting`` with a
follow-up inside the hour the zone repeats. Every expectation is an exact UTC instant.
"""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from runtime import engine
from runtime.artifacts import LocalArtifactStore
from runtime.clock import FixedClock
from runtime.content import load_content
from runtime.engine import Services
from runtime.engine.reminders import (
    RetryPolicy,
    deliver_pending,
    fire_schedule,
    fire_schedules,
    preview_due,
    record_due,
    record_failure,
    sweep,
)
from runtime.model import Bundle, DeliveryStatus, Reminder, ReminderKind, Task, TaskStatus
from runtime.model.common import utc
from runtime.notify import DeliveryError, FileSink, payload_of
from runtime.rules.reminders import LATE_AFTER
from runtime.store.sqlite import SqliteStore
from tests.helpers import bundles, log_of, reminders

SECOND = timedelta(seconds=1)
K = ReminderKind
BERLIN = "Europe/Berlin"
NEW_YORK = "America/New_York"
START = utc(2026, 10, 20, 12)  # before every reminder of the lab bundles
FAR = utc(2027, 3, 1)  # after every reminder of the lab bundles

# ---- content -----------------------------------------------------------------------------------


def _lab_workflow(template_id: str, zone: str, **extra: Any) -> dict[str, Any]:
    return {
        "template_id": template_id,
        "version": 1,
        "title": f"Lab {template_id}",
        "timezone": zone,
        "default_assignee": "alice",
        "source_doc_ids": ["doc-lab"],
        "required_bundle_links": [{"key": "folder", "label": "Folder", "required": True},
                                  {"key": "notes", "label": "Notes", "required": False}],
        "reminders": {"at": "09:00", "overdue_repeats": 2},
        "phases": [{"phase_id": "first", "title": "First"},
                   {"phase_id": "second", "title": "Second"}],
        "tasks": [
            {"task_ref": "t-proof", "title": "Needs a comment", "phase": "first", "offset_days": 0,
             "proof": [{"kind": "comment", "label": "Sign-off"}],
             "instruction_doc_id": "doc-lab", "instruction_step_id": "s1"},
            {"task_ref": "t-wait", "title": "Waits on someone", "phase": "second",
             "offset_days": 2, "instruction_doc_id": "doc-lab"},
        ],
        **extra,
    }


def write_lab_content(root: Path, extra_workflows: list[dict[str, Any]] | None = None) -> Path:
    (root / "docs").mkdir(parents=True)
    (root / "workflows").mkdir()
    doc = {"doc_id": "doc-lab", "title": "Lab handbook", "location": "https://wiki.example.com/lab",
           "steps": [{"step_id": "s1", "title": "Step one"}]}
    (root / "docs" / "doc-lab.yaml").write_text(yaml.safe_dump(doc), encoding="utf-8")
    plain = {
        "template_id": "plain", "version": 1, "title": "Plain", "timezone": "UTC",
        "default_assignee": "bob", "reminders": {"at": "09:00", "overdue_repeats": 0},
        "phases": [{"phase_id": "only", "title": "Only"}],
        "tasks": [{"task_ref": "t", "title": "Just do it", "phase": "only", "offset_days": 0}],
    }
    workflows = [_lab_workflow("berlin", BERLIN), _lab_workflow("newyork", NEW_YORK), plain,
                 *(extra_workflows or [])]
    for wf in workflows:
        (root / "workflows" / f"{wf['template_id']}.yaml").write_text(
            yaml.safe_dump(wf, sort_keys=False), encoding="utf-8")
    return root


@dataclass(frozen=True)
class Scenario:
    template: str
    anchor: date
    follow_up: datetime
    expected: tuple[tuple[ReminderKind, str, datetime], ...]
    """(kind, "bundle" or a task_ref, instant) of every reminder the bundle gives."""

    @property
    def bundle_id(self) -> str:
        return f"{self.template}/{self.anchor.isoformat()}"

    def entity(self, ref: str) -> str:
        return self.bundle_id if ref == "bundle" else f"{self.bundle_id}/{ref}"

    def triples(self, *, without: frozenset[tuple[ReminderKind, str]] | set[tuple[ReminderKind, str]]
                = frozenset()) -> set[tuple[Any, ...]]:
        return {(k, self.entity(ref), at) for k, ref, at in self.expected if (k, ref) not in without}

    def instants(self) -> list[datetime]:
        return sorted({at for _, _, at in self.expected})


SCENARIOS = {
    "berlin": Scenario(
        "berlin", date(2026, 10, 24),
        follow_up=utc(2026, 10, 25, 1, 30),  # 02:30 CET, the second 02:30 of that night
        expected=(
            (K.MISSING_EVIDENCE, "bundle", utc(2026, 10, 24, 7)),   # 09:00 CEST
            (K.DUE, "t-proof", utc(2026, 10, 24, 7)),
            (K.MISSING_EVIDENCE, "t-proof", utc(2026, 10, 24, 7)),
            (K.FOLLOW_UP_DUE, "t-wait", utc(2026, 10, 25, 1, 30)),
            (K.OVERDUE, "t-proof", utc(2026, 10, 25, 8)),           # 09:00 CET
            (K.OVERDUE, "t-proof", utc(2026, 10, 26, 8)),
            (K.DUE, "t-wait", utc(2026, 10, 26, 8)),
            (K.OVERDUE, "t-wait", utc(2026, 10, 27, 8)),
            (K.OVERDUE, "t-wait", utc(2026, 10, 28, 8)),
        )),
    "newyork": Scenario(
        "newyork", date(2026, 10, 31),
        follow_up=utc(2026, 11, 1, 6, 30),  # 01:30 EST, the second 01:30 of that night
        expected=(
            (K.MISSING_EVIDENCE, "bundle", utc(2026, 10, 31, 13)),  # 09:00 EDT
            (K.DUE, "t-proof", utc(2026, 10, 31, 13)),
            (K.MISSING_EVIDENCE, "t-proof", utc(2026, 10, 31, 13)),
            (K.FOLLOW_UP_DUE, "t-wait", utc(2026, 11, 1, 6, 30)),
            (K.OVERDUE, "t-proof", utc(2026, 11, 1, 14)),           # 09:00 EST
            (K.OVERDUE, "t-proof", utc(2026, 11, 2, 14)),
            (K.DUE, "t-wait", utc(2026, 11, 2, 14)),
            (K.OVERDUE, "t-wait", utc(2026, 11, 3, 14)),
            (K.OVERDUE, "t-wait", utc(2026, 11, 4, 14)),
        )),
}


# ---- fixtures and helpers ----------------------------------------------------------------------


@pytest.fixture
def lab(svc: Services, tmp_path: Path) -> Services:
    """``svc`` (its store and clock) with the lab content instead of the shipped one."""
    content = load_content(write_lab_content(tmp_path / "lab-content"))
    return dataclasses.replace(svc, content_loader=lambda: content, _content=None)


class RecordingSink:
    url = "test://recording"

    def __init__(self) -> None:
        self.payloads: list[dict[str, Any]] = []

    def deliver(self, payload: dict[str, Any]) -> None:
        self.payloads.append(payload)

    def close(self) -> None:
        pass

    def ids(self) -> list[str]:
        return [p["reminder_id"] for p in self.payloads]


class FailingSink:
    url = "test://failing"

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.calls: list[str] = []

    def deliver(self, payload: dict[str, Any]) -> None:
        self.calls.append(payload["reminder_id"])
        raise self.error

    def close(self) -> None:
        pass


def start(svc: Services, clock: FixedClock, sc: Scenario, *, wait: bool = True) -> None:
    """Create the scenario's bundle at START and put t-wait in waiting until its follow-up."""
    clock.set(START)
    view = engine.create_bundle(svc, sc.template, sc.anchor)
    assert view.created
    if wait:
        engine.fire_task(svc, sc.entity("t-wait"), "wait", waiting_for="the guest",
                         follow_up_at=sc.follow_up)
    assert reminders(svc.store) == []


def at(svc: Services, clock: FixedClock, when: datetime) -> Any:
    clock.set(when)
    return record_due(svc, when)


def triples(reminders: list[Reminder]) -> set[tuple[Any, ...]]:
    return {(r.kind, r.entity_id, r.fire_at) for r in reminders}


def assert_unique(reminders: list[Reminder]) -> None:
    ids = [r.reminder_id for r in reminders]
    assert len(ids) == len(set(ids)), "a reminder was recorded twice"
    assert len(triples(reminders)) == len(reminders)


def next_at(svc: Services, entity_id: str) -> datetime | None:
    rec = svc.store.find(Task, entity_id) or svc.store.get(Bundle, entity_id)
    return rec.next_reminder_at


# ---- every kind at its instant, not one second before ------------------------------------------


@pytest.mark.parametrize("name", SCENARIOS)
def test_every_kind_fires_at_its_instant_and_not_one_second_before(
        lab: Services, clock: FixedClock, name: str) -> None:
    sc = SCENARIOS[name]
    start(lab, clock, sc)
    expected = sc.triples()
    entities = {sc.entity(ref) for _, ref, _ in sc.expected}
    for when in sc.instants():
        before = reminders(lab.store)
        # one second early: nothing of it is found, previewed or recorded
        clock.set(when - SECOND)
        assert preview_due(lab, when - SECOND) == []
        report = record_due(lab, when - SECOND)
        assert report.recorded == []
        assert reminders(lab.store) == before
        # at the instant: exactly the reminders of this instant, previewed first
        clock.set(when)
        preview = preview_due(lab, when)
        assert reminders(lab.store) == before, "preview recorded something"
        report = record_due(lab, when)
        assert triples(report.recorded) == {t for t in expected if t[2] == when}
        assert {f.reminder_id for f in preview} == {r.reminder_id for r in report.recorded}
        for r in report.recorded:
            assert r.recorded_at == when and r.late is False
            assert r.delivery_status == DeliveryStatus.PENDING and r.attempts == 0
        # the same sweep again records nothing more
        assert record_due(lab, when).recorded == []
        assert preview_due(lab, when) == []
        # each record's index points at its next reminder (or nothing)
        for entity in entities:
            upcoming = [t for k, e, t in expected if e == entity and t > when]
            assert next_at(lab, entity) == (min(upcoming) if upcoming else None), entity
    stored = reminders(lab.store)
    assert_unique(stored)
    assert triples(stored) == expected
    assert record_due(lab, FAR).recorded == []
    assert len(reminders(lab.store)) == len(expected)


@pytest.mark.parametrize("name", SCENARIOS)
def test_the_index_only_finds_records_with_something_due(
        lab: Services, clock: FixedClock, name: str) -> None:
    sc = SCENARIOS[name]
    start(lab, clock, sc)
    first = sc.instants()[0]
    assert lab.store.due_for_reminders(first - SECOND, 1000).items == []
    found = {r.id for r in lab.store.due_for_reminders(first, 1000).items}
    assert found == {sc.bundle_id, sc.entity("t-proof")}
    at(lab, clock, first)
    assert lab.store.due_for_reminders(first, 1000).items == []


# ---- waiting and follow-up -------------------------------------------------------------------


@pytest.mark.parametrize("name", SCENARIOS)
def test_waiting_fires_follow_up_due_at_follow_up_at(
        lab: Services, clock: FixedClock, name: str) -> None:
    sc = SCENARIOS[name]
    start(lab, clock, sc)
    task_id = sc.entity("t-wait")
    task = lab.store.get(Task, task_id)
    assert task.status == TaskStatus.WAITING and task.follow_up_at == sc.follow_up
    assert task.next_reminder_at == sc.follow_up
    early = at(lab, clock, sc.follow_up - SECOND)  # records the anchor's reminders, if due
    assert all(r.kind != K.FOLLOW_UP_DUE for r in early.recorded)
    assert [r for r in reminders(lab.store) if r.kind == K.FOLLOW_UP_DUE] == []
    assert lab.store.get(Task, task_id).next_reminder_at == sc.follow_up
    report = at(lab, clock, sc.follow_up)
    fu = [r for r in report.recorded if r.kind == K.FOLLOW_UP_DUE]
    assert len(fu) == 1
    assert (fu[0].entity_id, fu[0].task_id, fu[0].bundle_id) == (task_id, task_id, sc.bundle_id)
    assert fu[0].fire_at == sc.follow_up and fu[0].late is False
    assert "the guest" in fu[0].summary
    # the task is still waiting and open: the follow-up reminder does not close it
    assert lab.store.get(Task, task_id).status == TaskStatus.WAITING
    assert at(lab, clock, sc.follow_up).recorded == []


@pytest.mark.parametrize("name", SCENARIOS)
def test_resume_before_follow_up_at_means_no_follow_up_due(
        lab: Services, clock: FixedClock, name: str) -> None:
    sc = SCENARIOS[name]
    start(lab, clock, sc)
    at(lab, clock, sc.instants()[0])  # the anchor's reminders, before the follow-up
    clock.set(sc.follow_up - timedelta(hours=1))
    resumed = engine.fire_task(lab, sc.entity("t-wait"), "resume")
    assert resumed.follow_up_at is None and resumed.next_reminder_at != sc.follow_up
    for when in [sc.follow_up, *sc.instants(), FAR]:
        at(lab, clock, max(when, clock.now()))
    stored = reminders(lab.store)
    assert [r for r in stored if r.kind == K.FOLLOW_UP_DUE] == []
    assert_unique(stored)
    # its due and overdue reminders still fire: it is open
    assert triples(stored) == sc.triples(without={(K.FOLLOW_UP_DUE, "t-wait")})


@pytest.mark.parametrize("name", SCENARIOS)
def test_rescheduling_a_follow_up_fires_only_the_new_one(
        lab: Services, clock: FixedClock, name: str) -> None:
    sc = SCENARIOS[name]
    start(lab, clock, sc)
    later = sc.follow_up + timedelta(hours=5)
    clock.set(sc.follow_up - timedelta(hours=2))
    engine.fire_task(lab, sc.entity("t-wait"), "wait", waiting_for="the guest, again",
                     follow_up_at=later)
    at(lab, clock, sc.follow_up)
    at(lab, clock, later - SECOND)
    assert [r for r in reminders(lab.store) if r.kind == K.FOLLOW_UP_DUE] == []
    at(lab, clock, later)
    fu = [r for r in reminders(lab.store) if r.kind == K.FOLLOW_UP_DUE]
    assert [r.fire_at for r in fu] == [later]


# ---- closing stops future reminders -------------------------------------------------------------


@pytest.mark.parametrize("name", SCENARIOS)
@pytest.mark.parametrize("action", ["complete", "cancel"])
def test_closing_tasks_before_their_due_date_means_no_reminders(
        lab: Services, clock: FixedClock, name: str, action: str) -> None:
    sc = SCENARIOS[name]
    start(lab, clock, sc)
    clock.set(START + timedelta(hours=1))
    proof_task, wait_task = sc.entity("t-proof"), sc.entity("t-wait")
    if action == "complete":
        engine.attach_comment(lab, proof_task, "signed off")
        engine.fire_task(lab, proof_task, "complete")
        engine.fire_task(lab, wait_task, "resume")
        engine.fire_task(lab, wait_task, "complete")
    else:
        engine.fire_task(lab, proof_task, "cancel", reason="not needed")
        engine.fire_task(lab, wait_task, "cancel", reason="not needed")
    for task_id in (proof_task, wait_task):
        assert lab.store.get(Task, task_id).next_reminder_at is None
    for when in [*sc.instants(), FAR]:
        at(lab, clock, when)
    task_kinds = {K.DUE, K.OVERDUE, K.MISSING_EVIDENCE, K.FOLLOW_UP_DUE}
    assert [r for r in reminders(lab.store)
            if r.task_id is not None or (r.kind in task_kinds and r.entity_type == "task")] == []
    # the bundle is still active with an empty required link: its own reminder still fires
    bundle_rem = [r for r in reminders(lab.store) if r.kind == K.MISSING_EVIDENCE]
    assert [(r.entity_id, r.fire_at) for r in bundle_rem] == [(sc.bundle_id, sc.instants()[0])]


@pytest.mark.parametrize("name", SCENARIOS)
def test_closing_a_task_after_it_became_due_stops_its_overdue_reminders(
        lab: Services, clock: FixedClock, name: str) -> None:
    sc = SCENARIOS[name]
    start(lab, clock, sc)
    anchor_at = sc.instants()[0]
    at(lab, clock, anchor_at)  # due + missing_evidence of t-proof recorded
    clock.set(anchor_at + timedelta(hours=2))
    engine.attach_comment(lab, sc.entity("t-proof"), "signed off")
    done = engine.fire_task(lab, sc.entity("t-proof"), "complete")
    assert done.next_reminder_at is None
    engine.fire_task(lab, sc.entity("t-wait"), "cancel", reason="moot")
    for when in [*sc.instants(), FAR]:
        at(lab, clock, max(when, clock.now()))
    task_rem = [(r.kind, r.entity_id) for r in reminders(lab.store) if r.entity_type == "task"]
    assert sorted(task_rem) == sorted([(K.DUE, sc.entity("t-proof")),
                                       (K.MISSING_EVIDENCE, sc.entity("t-proof"))])


@pytest.mark.parametrize("name", SCENARIOS)
def test_cancelling_the_bundle_stops_every_reminder(
        lab: Services, clock: FixedClock, name: str) -> None:
    sc = SCENARIOS[name]
    start(lab, clock, sc)
    clock.set(START + timedelta(hours=1))
    engine.cancel_bundle(lab, sc.bundle_id, "called off")
    before = reminders(lab.store)  # the stage change the cancellation recorded, if any
    assert all(r.kind == K.STAGE_CHANGE for r in before)
    for when in [*sc.instants(), FAR]:
        at(lab, clock, when)
    assert reminders(lab.store) == before


@pytest.mark.parametrize("name", SCENARIOS)
def test_filling_the_required_link_before_the_anchor_stops_the_bundle_reminder(
        lab: Services, clock: FixedClock, name: str) -> None:
    sc = SCENARIOS[name]
    start(lab, clock, sc)
    clock.set(START + timedelta(hours=1))
    engine.link_bundle(lab, sc.bundle_id, "folder", "https://drive.example.com/f")
    assert lab.store.get(Bundle, sc.bundle_id).next_reminder_at is None
    for when in [*sc.instants(), FAR]:
        at(lab, clock, when)
    assert [r for r in reminders(lab.store) if r.entity_type == "bundle"] == []
    assert triples(reminders(lab.store)) == sc.triples(without={(K.MISSING_EVIDENCE, "bundle")})


def test_proof_attached_before_the_due_date_means_no_missing_evidence(
        lab: Services, clock: FixedClock) -> None:
    sc = SCENARIOS["berlin"]
    start(lab, clock, sc)
    clock.set(START + timedelta(hours=1))
    engine.attach_comment(lab, sc.entity("t-proof"), "signed off")
    at(lab, clock, sc.instants()[0])
    kinds = sorted((r.kind, r.entity_id) for r in reminders(lab.store))
    assert kinds == sorted([(K.MISSING_EVIDENCE, sc.bundle_id), (K.DUE, sc.entity("t-proof"))])


# ---- stage change ------------------------------------------------------------------------------


def test_stage_change_is_recorded_by_the_command_and_delivered_by_the_next_sweep(
        lab: Services, clock: FixedClock) -> None:
    sc = SCENARIOS["berlin"]
    start(lab, clock, sc, wait=False)
    now = utc(2026, 10, 22, 10)
    clock.set(now)
    engine.attach_comment(lab, sc.entity("t-proof"), "signed off")
    assert reminders(lab.store) == []  # proof alone moves no stage
    engine.fire_task(lab, sc.entity("t-proof"), "complete")
    [change] = reminders(lab.store)
    assert change.kind == K.STAGE_CHANGE
    assert (change.entity_type, change.entity_id, change.bundle_id) == ("bundle", sc.bundle_id,
                                                                       sc.bundle_id)
    assert change.fire_at == now and change.recorded_at == now
    assert change.delivery_status == DeliveryStatus.PENDING and change.attempts == 0
    assert "first" in change.summary and "second" in change.summary
    assert lab.store.get(Bundle, sc.bundle_id).stage == "second"
    sink = RecordingSink()
    report = sweep(lab, [sink], now=now)
    assert sink.ids() == [change.reminder_id]
    assert [r.reminder_id for r in report.delivered] == [change.reminder_id]
    assert lab.store.get(Reminder, change.reminder_id).delivery_status == DeliveryStatus.DELIVERED
    sweep(lab, [sink], now=now)
    sweep(lab, [sink], now=now + timedelta(hours=1))
    assert sink.ids() == [change.reminder_id]


def test_each_stage_change_is_its_own_reminder(lab: Services, clock: FixedClock) -> None:
    sc = SCENARIOS["berlin"]
    start(lab, clock, sc, wait=False)
    clock.set(utc(2026, 10, 22, 10))
    engine.fire_task(lab, sc.entity("t-proof"), "cancel", reason="skip")   # first -> second
    engine.fire_task(lab, sc.entity("t-proof"), "reopen", reason="oops")  # second -> first
    engine.fire_task(lab, sc.entity("t-proof"), "cancel", reason="skip")   # first -> second
    changes = [r for r in reminders(lab.store) if r.kind == K.STAGE_CHANGE]
    assert len(changes) == 3 and len({r.reminder_id for r in changes}) == 3


# ---- late sweeps -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", SCENARIOS)
def test_a_late_sweep_records_every_passed_reminder_once_marked_late(
        lab: Services, clock: FixedClock, name: str) -> None:
    sc = SCENARIOS[name]
    start(lab, clock, sc)
    instants = sc.instants()
    at(lab, clock, instants[0] - timedelta(hours=1))  # the last sweep before the daemon went down
    assert reminders(lab.store) == []
    back = instants[0] + timedelta(days=3)  # three days later it comes back
    sink = RecordingSink()
    clock.set(back)
    preview = preview_due(lab, back)
    report = sweep(lab, [sink], now=back)
    passed = {t for t in sc.triples() if t[2] <= back}
    assert triples(report.recorded) == passed
    assert {f.reminder_id for f in preview} == {r.reminder_id for r in report.recorded}
    assert all(r.late for r in report.recorded), [r for r in report.recorded if not r.late]
    assert sorted(sink.ids()) == sorted(r.reminder_id for r in report.recorded)
    assert all(p["late"] is True for p in sink.payloads)
    # once: the next sweeps record none of them again; the ones still to come are on time
    assert record_due(lab, back).recorded == []
    for when in [t for t in instants if t > back]:
        report = at(lab, clock, when)
        assert report.recorded and not any(r.late for r in report.recorded)
    assert_unique(reminders(lab.store))
    assert triples(reminders(lab.store)) == sc.triples()


def test_late_means_more_than_late_after_after_the_instant(lab: Services, clock: FixedClock) -> None:
    clock.set(utc(2026, 11, 1))
    engine.create_bundle(lab, "plain", date(2026, 11, 2))
    engine.create_bundle(lab, "plain", date(2026, 11, 3))
    [on_time] = at(lab, clock, utc(2026, 11, 2, 9) + LATE_AFTER).recorded
    [late] = at(lab, clock, utc(2026, 11, 3, 9) + LATE_AFTER + SECOND).recorded
    assert on_time.late is False and on_time.fire_at == utc(2026, 11, 2, 9)
    assert late.late is True and late.fire_at == utc(2026, 11, 3, 9)


# ---- preview -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", SCENARIOS)
def test_preview_lists_exactly_what_a_sweep_records_and_records_nothing(
        lab: Services, clock: FixedClock, name: str) -> None:
    sc = SCENARIOS[name]
    start(lab, clock, sc)
    events_before = log_of(lab.store)
    # preview at several times, each against an untouched store
    for when in [sc.instants()[0] - SECOND, *sc.instants(), FAR]:
        preview = preview_due(lab, when)
        assert {(f.kind, f.entity_id, f.fire_at) for f in preview} == {
            t for t in sc.triples() if t[2] <= when}
        assert reminders(lab.store) == []
        assert log_of(lab.store) == events_before
    # then the sweep at one of those times records exactly the preview
    when = sc.instants()[3]
    preview = preview_due(lab, when)
    report = record_due(lab, when)
    assert sorted(f.reminder_id for f in preview) == sorted(r.reminder_id for r in report.recorded)
    assert preview_due(lab, when) == []


def test_cli_reminders_due_lists_what_scheduler_run_records(cli: Any, tmp_path: Path) -> None:
    content = str(write_lab_content(tmp_path / "cli-lab"))
    sc = SCENARIOS["newyork"]
    before = "2026-10-20T12:00:00+00:00"
    assert cli("bundle", "create", "newyork", "--anchor", "2026-10-31", "--json",
               now=before, content=content).code == 0
    r = cli("task", "wait", sc.entity("t-wait"), "--waiting-for", "the bank",
            "--follow-up-at", sc.follow_up.isoformat(), now=before, content=content)
    assert r.code == 0, r.err
    # one second before the first instant: nothing
    early = cli("reminders", "due", "--at", "2026-10-31T12:59:59+00:00", "--json",
                content=content, now=before)
    assert early.code == 0 and early.json() == []
    when = "2026-11-01T06:30:00+00:00"  # the follow-up
    due = cli("reminders", "due", "--at", when, "--json", content=content, now=before)
    assert due.code == 0, due.err
    listed = due.json()
    assert {(d["kind"], d["entity_id"], d["fire_at"]) for d in listed} == {
        (str(k), e, t.isoformat()) for k, e, t in sc.triples() if t <= utc(2026, 11, 1, 6, 30)}
    assert cli("reminders", "list", "--json", content=content).json() == []  # recorded nothing
    sink = tmp_path / "out.jsonl"
    run = cli("scheduler", "run", "--once", "--sink", f"file://{sink}", now=when, content=content)
    assert run.code == 0, run.err
    recorded = cli("reminders", "list", "--json", content=content).json()
    assert sorted(d["reminder_id"] for d in listed) == sorted(r["reminder_id"] for r in recorded)
    late = {d["reminder_id"]: d["late"] for d in listed}
    assert all(late[r["reminder_id"]] == r["late"] for r in recorded)
    assert cli("reminders", "due", "--at", when, "--json", content=content, now=when).json() == []


# ---- delivery ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", SCENARIOS)
def test_every_reminder_is_delivered_once_with_its_id_as_idempotency_key(
        lab: Services, clock: FixedClock, name: str) -> None:
    sc = SCENARIOS[name]
    start(lab, clock, sc)
    sink, other = RecordingSink(), RecordingSink()
    times = sorted({t + d for t in sc.instants() for d in (-SECOND, timedelta(0), SECOND)})
    for when in [*times, FAR, FAR + timedelta(days=1)]:
        clock.set(when)
        sweep(lab, [sink, other], now=when)
    stored = reminders(lab.store)
    assert len(stored) == len(sc.expected)
    for s in (sink, other):
        assert sorted(s.ids()) == sorted(r.reminder_id for r in stored)
        assert len(s.ids()) == len(set(s.ids()))
    for payload in sink.payloads:
        assert payload["idempotency_key"] == payload["reminder_id"]
        for field in ("kind", "entity_type", "entity_id", "bundle_id", "task_id", "fire_at",
                      "recorded_at", "delivery_status", "attempts", "summary", "late"):
            assert field in payload
        for internal in ("deliver_after", "version", "last_error"):
            assert internal not in payload
    for r in stored:
        assert r.delivery_status == DeliveryStatus.DELIVERED and r.attempts == 1
        assert r.deliver_after is None
    assert lab.store.pending_deliveries(FAR + timedelta(days=400), 1000) == []


def test_payload_of_is_the_export_shape_plus_the_idempotency_key(
        lab: Services, clock: FixedClock) -> None:
    clock.set(utc(2026, 11, 1))
    engine.create_bundle(lab, "plain", date(2026, 11, 2))
    [rem] = at(lab, clock, utc(2026, 11, 2, 9)).recorded
    payload = payload_of(rem)
    assert payload["idempotency_key"] == rem.reminder_id
    assert payload["fire_at"] == "2026-11-02T09:00:00+00:00"
    assert payload["kind"] == "due" and payload["task_id"] == "plain/2026-11-02/t"


@pytest.mark.parametrize("error", [DeliveryError("endpoint down"), RuntimeError("sink bug")],
                         ids=["delivery_error", "unexpected_exception"])
def test_a_failing_sink_retries_with_backoff_then_records_one_automation_failure(
        lab: Services, clock: FixedClock, error: Exception) -> None:
    policy = RetryPolicy()
    clock.set(utc(2026, 11, 1))
    engine.create_bundle(lab, "plain", date(2026, 11, 2))
    sink = FailingSink(error)
    now = utc(2026, 11, 2, 9)
    clock.set(now)
    report = sweep(lab, [sink], now=now, policy=policy)  # records and tries once
    [rem] = report.recorded
    rid = rem.reminder_id
    for attempt in range(1, policy.max_attempts):
        stored = lab.store.get(Reminder, rid)
        assert stored.attempts == attempt
        assert stored.delivery_status == DeliveryStatus.PENDING
        assert stored.deliver_after == now + policy.backoff(attempt)
        assert str(error) in (stored.last_error or "")
        # not one second before the backoff has passed
        clock.set(stored.deliver_after - SECOND)
        sweep(lab, [sink], now=clock.now(), policy=policy)
        assert lab.store.get(Reminder, rid).attempts == attempt
        now = stored.deliver_after
        clock.set(now)
        sweep(lab, [sink], now=now, policy=policy)
    failed = lab.store.get(Reminder, rid)
    assert failed.attempts == policy.max_attempts
    assert failed.delivery_status == DeliveryStatus.FAILED
    assert failed.deliver_after is None
    assert sink.calls.count(rid) == policy.max_attempts
    failures = [r for r in reminders(lab.store) if r.kind == K.AUTOMATION_FAILURE]
    assert len(failures) == 1
    [failure] = failures
    assert (failure.entity_type, failure.entity_id) == ("reminder", rid)
    assert (failure.bundle_id, failure.task_id) == (rem.bundle_id, rem.task_id)
    assert failure.fire_at == now and failure.delivery_status == DeliveryStatus.PENDING
    assert str(error) in failure.summary
    # no crash loop: the failure's own delivery fails too, is retried and ends failed, and
    # nothing new is recorded however long the daemon keeps sweeping
    for _ in range(30):
        now = now + policy.cap + SECOND
        clock.set(now)
        sweep(lab, [sink], now=now, policy=policy)
    assert lab.store.get(Reminder, failure.reminder_id).delivery_status == DeliveryStatus.FAILED
    assert sink.calls.count(failure.reminder_id) == policy.max_attempts
    kinds = sorted(r.kind for r in reminders(lab.store))
    assert kinds == sorted([K.DUE, K.AUTOMATION_FAILURE])
    assert lab.store.pending_deliveries(now + timedelta(days=365), 100) == []
    actions = [e.action for e in log_of(lab.store, entity_id=rid)]
    assert actions.count("retry") == policy.max_attempts - 1
    assert actions.count("fail") == 1


def test_a_failing_sink_does_not_stop_the_other_reminders(
        lab: Services, clock: FixedClock) -> None:
    """One reminder's failing delivery is settled and the sweep goes on with the rest."""
    sc = SCENARIOS["berlin"]
    start(lab, clock, sc)

    class Picky(RecordingSink):
        def deliver(self, payload: dict[str, Any]) -> None:
            if payload["entity_type"] == "bundle":
                raise DeliveryError("no bundles today")
            super().deliver(payload)

    sink = Picky()
    when = sc.instants()[0]
    clock.set(when)
    report = sweep(lab, [sink], now=when)
    assert len(report.recorded) == 3
    assert len(report.delivered) == 2 and len(report.retried) == 1
    assert sorted(sink.ids()) == sorted(r.reminder_id for r in report.recorded
                                        if r.entity_type == "task")


def test_a_retry_succeeds_after_the_sink_recovers(lab: Services, clock: FixedClock) -> None:
    clock.set(utc(2026, 11, 1))
    engine.create_bundle(lab, "plain", date(2026, 11, 2))
    now = utc(2026, 11, 2, 9)
    sweep(lab, [FailingSink(DeliveryError("503"))], now=now)
    [rem] = reminders(lab.store)
    assert rem.attempts == 1 and rem.last_error
    sink = RecordingSink()
    now = rem.deliver_after
    sweep(lab, [sink], now=now)
    done = lab.store.get(Reminder, rem.reminder_id)
    assert done.delivery_status == DeliveryStatus.DELIVERED and done.attempts == 2
    assert done.last_error is None and sink.ids() == [rem.reminder_id]
    assert [r for r in reminders(lab.store) if r.kind == K.AUTOMATION_FAILURE] == []


def test_a_claimed_reminder_is_delivered_again_only_after_its_lease(
        lab: Services, clock: FixedClock) -> None:
    """A daemon that claimed a reminder and died: the next sweep delivers it once the lease ran
    out, not before."""
    policy = RetryPolicy()
    clock.set(utc(2026, 11, 1))
    engine.create_bundle(lab, "plain", date(2026, 11, 2))
    now = utc(2026, 11, 2, 9)
    record_due(lab, now)
    [rem] = reminders(lab.store)
    from runtime.store import Changes

    claimed = rem.model_copy(update={"attempts": 1, "deliver_after": now + policy.lease,
                                     "version": rem.version + 1})
    lab.store.commit(Changes(updates=[(claimed, rem.version)]))  # ... and the daemon dies
    sink = RecordingSink()
    deliver_pending(lab, [sink], now + policy.lease - SECOND, policy=policy)
    assert sink.ids() == []
    deliver_pending(lab, [sink], now + policy.lease, policy=policy)
    assert sink.ids() == [rem.reminder_id]
    assert lab.store.get(Reminder, rem.reminder_id).delivery_status == DeliveryStatus.DELIVERED


def test_a_file_sink_appends_one_line_per_delivery(lab: Services, clock: FixedClock,
                                                   tmp_path: Path) -> None:
    import json

    sc = SCENARIOS["berlin"]
    start(lab, clock, sc)
    path = tmp_path / "reminders.jsonl"
    sink = FileSink(f"file://{path}")
    for when in [*sc.instants(), FAR]:
        clock.set(when)
        sweep(lab, [sink], now=when)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert sorted(d["idempotency_key"] for d in lines) == sorted(
        r.reminder_id for r in reminders(lab.store))


# ---- recurring ---------------------------------------------------------------------------------

NEWSLETTER_FIRE = utc(2026, 11, 23, 15)  # Monday 09:00 in Chicago (CST, -06:00)
NEWSLETTER_BUNDLE = "newsletter/2026-11-27"  # the anchor: four days later, the Friday


def recurring(svc: Services) -> list[Reminder]:
    return [r for r in reminders(svc.store) if r.kind == K.RECURRING]


def test_fire_schedule_creates_one_bundle_for_its_anchor(svc: Services, clock: FixedClock) -> None:
    clock.set(NEWSLETTER_FIRE)
    first = fire_schedule(svc, "newsletter", NEWSLETTER_FIRE).bundle
    second = fire_schedule(svc, "newsletter", NEWSLETTER_FIRE).bundle
    assert first.bundle_id == second.bundle_id == NEWSLETTER_BUNDLE
    assert first.anchor_date == date(2026, 11, 27)
    assert [b.bundle_id for b in bundles(svc.store)] == [NEWSLETTER_BUNDLE]
    [rem] = recurring(svc)
    assert (rem.entity_type, rem.entity_id, rem.bundle_id) == ("bundle", NEWSLETTER_BUNDLE,
                                                               NEWSLETTER_BUNDLE)
    assert rem.fire_at == NEWSLETTER_FIRE
    # the sweep's schedule step finds the same firing: nothing new
    report = fire_schedules(svc, NEWSLETTER_FIRE)
    assert report.bundles_created == []
    report = sweep(svc, [], now=NEWSLETTER_FIRE + timedelta(hours=1))
    assert report.bundles_created == []
    assert [b.bundle_id for b in bundles(svc.store)] == [NEWSLETTER_BUNDLE]
    assert len(recurring(svc)) == 1


def test_fire_schedules_not_one_second_before_the_cron_instant(svc: Services,
                                                               clock: FixedClock) -> None:
    clock.set(NEWSLETTER_FIRE - SECOND)
    report = fire_schedules(svc, NEWSLETTER_FIRE - SECOND)
    # the catch-up finds last Monday's firing only
    assert report.bundles_created == ["newsletter/2026-11-20"]
    assert svc.store.find(Bundle, NEWSLETTER_BUNDLE) is None
    clock.set(NEWSLETTER_FIRE)
    report = fire_schedules(svc, NEWSLETTER_FIRE)
    assert report.bundles_created == [NEWSLETTER_BUNDLE]
    assert fire_schedules(svc, NEWSLETTER_FIRE).bundles_created == []
    assert sorted((r.entity_id, r.fire_at) for r in recurring(svc)) == [
        ("newsletter/2026-11-20", utc(2026, 11, 16, 15)), (NEWSLETTER_BUNDLE, NEWSLETTER_FIRE)]


def test_fire_schedules_across_the_chicago_dst_change(svc: Services, clock: FixedClock) -> None:
    # Chicago leaves daylight time on 2026-11-01: Monday 09:00 is 14:00Z on 10-26, 15:00Z on 11-02
    clock.set(utc(2026, 10, 26, 14))
    assert fire_schedules(svc, utc(2026, 10, 26, 14)).bundles_created == ["newsletter/2026-10-30"]
    fire = utc(2026, 11, 2, 15)
    clock.set(fire - SECOND)
    assert fire_schedules(svc, fire - SECOND).bundles_created == []
    clock.set(fire)
    assert fire_schedules(svc, fire).bundles_created == ["newsletter/2026-11-06"]
    assert sorted(r.fire_at for r in recurring(svc)) == [utc(2026, 10, 26, 14), fire]


def test_schedule_from_two_services_on_one_sqlite_file_creates_one_bundle(
        tmp_path: Path, content_dir: Path) -> None:
    content = load_content(content_dir)
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    clock = FixedClock(NEWSLETTER_FIRE)
    a = Services(SqliteStore(url), clock, "daemon-a", LocalArtifactStore(tmp_path / "a"),
                 lambda: content)
    b = Services(SqliteStore(url), clock, "daemon-b", LocalArtifactStore(tmp_path / "b"),
                 lambda: content)
    try:
        barrier = threading.Barrier(4)
        errors: list[BaseException] = []

        def run(fn: Any) -> None:
            try:
                barrier.wait(timeout=10)
                fn()
            except BaseException as e:  # noqa: BLE001
                errors.append(e)

        threads = [threading.Thread(target=run, args=(f,)) for f in (
            lambda: fire_schedule(a, "newsletter", NEWSLETTER_FIRE),
            lambda: fire_schedule(b, "newsletter", NEWSLETTER_FIRE),
            lambda: fire_schedules(a, NEWSLETTER_FIRE),
            lambda: fire_schedules(b, NEWSLETTER_FIRE),
        )]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert errors == []
        fire_schedule(a, "newsletter", NEWSLETTER_FIRE)
        fire_schedule(b, "newsletter", NEWSLETTER_FIRE)
        for svc in (a, b):
            assert [x.bundle_id for x in bundles(svc.store)] == [NEWSLETTER_BUNDLE]
            [rem] = recurring(svc)
            assert rem.entity_id == NEWSLETTER_BUNDLE
        assert len(a.store.tasks_of(NEWSLETTER_BUNDLE)) == 6
    finally:
        a.store.close()
        b.store.close()


def test_the_recurring_reminder_is_delivered_by_the_sweep(svc: Services, clock: FixedClock) -> None:
    clock.set(NEWSLETTER_FIRE)
    sink = RecordingSink()
    sweep(svc, [sink], now=NEWSLETTER_FIRE)
    [rem] = recurring(svc)
    assert rem.reminder_id in sink.ids()
    assert svc.store.get(Reminder, rem.reminder_id).delivery_status == DeliveryStatus.DELIVERED


def test_preview_at_a_schedule_firing_lists_what_the_sweep_records(
        svc: Services, clock: FixedClock) -> None:
    """DESIGN: ``reminders due --at T`` lists every reminder whose instant is at or before T and
    that is not yet recorded. At the newsletter's Monday firing the sweep creates the bundle and,
    in the same sweep, records the reminders of its tasks that are already due (pick-topics is
    due that Monday at 08:30 Chicago); the preview must list those too."""
    clock.set(NEWSLETTER_FIRE)
    preview = preview_due(svc, NEWSLETTER_FIRE)
    assert reminders(svc.store) == [] and bundles(svc.store) == []
    report = sweep(svc, [], now=NEWSLETTER_FIRE)
    recorded = {r.reminder_id: (r.kind, r.entity_id) for r in reminders(svc.store)}
    assert report.bundles_created == [NEWSLETTER_BUNDLE]
    assert sorted(recorded.values()) == sorted([
        (K.RECURRING, NEWSLETTER_BUNDLE),
        (K.DUE, f"{NEWSLETTER_BUNDLE}/pick-topics"),
        (K.MISSING_EVIDENCE, f"{NEWSLETTER_BUNDLE}/pick-topics"),
    ])
    assert sorted(f.reminder_id for f in preview) == sorted(recorded), (
        "preview_due misses the reminders of the bundle the schedule trigger creates: "
        f"previewed {[(f.kind, f.entity_id) for f in preview]}, recorded {sorted(recorded.values())}")


def test_a_late_schedule_firing_records_its_recurring_reminder_as_late(
        svc: Services, clock: FixedClock) -> None:
    """DESIGN: a sweep that runs late records every reminder whose instant has passed, each once,
    marked late. The daemon was down over the Monday firing and comes back three days later."""
    back = NEWSLETTER_FIRE + timedelta(days=3)
    clock.set(back)
    sweep(svc, [], now=back)
    [rem] = recurring(svc)
    assert rem.fire_at == NEWSLETTER_FIRE
    assert rem.late is True, "the recurring reminder of a firing 3 days ago is not marked late"


# ---- automation failures and the daemon ---------------------------------------------------------


def test_record_failure_records_once(svc: Services) -> None:
    when = utc(2026, 11, 25, 8)
    first = record_failure(svc, "job:x", when, "job x failed")
    assert first is not None and first.kind == K.AUTOMATION_FAILURE
    assert record_failure(svc, "job:x", when, "job x failed") is None
    assert [r.reminder_id for r in reminders(svc.store)] == [first.reminder_id]


def test_the_scheduler_listener_records_a_failed_job_as_one_automation_failure(
        svc: Services, clock: FixedClock) -> None:
    from apscheduler.events import EVENT_JOB_ERROR, JobExecutionEvent

    from runtime.scheduler import Daemon

    daemon = Daemon(svc, [RecordingSink()])
    scheduled = utc(2026, 11, 25, 7, 59)
    event = JobExecutionEvent(EVENT_JOB_ERROR, "sweep", "default", scheduled,
                              exception=RuntimeError("store unreachable"),
                              traceback="Traceback ...")
    daemon._job_failed(event)
    [rem] = reminders(svc.store)
    assert rem.kind == K.AUTOMATION_FAILURE
    assert (rem.entity_type, rem.entity_id) == ("job", "job:sweep")
    assert rem.fire_at == scheduled
    assert "RuntimeError" in rem.summary and "store unreachable" in rem.summary
    assert rem.delivery_status == DeliveryStatus.PENDING
    # the same failed run reported again is the same reminder
    daemon._job_failed(event)
    assert len(reminders(svc.store)) == 1
    # and the next sweep delivers it
    sink = RecordingSink()
    sweep(svc, [sink], now=clock.now(), schedules=False)
    assert rem.reminder_id in sink.ids()


def _effective(scheduler: Any, job: Any, key: str) -> Any:
    """A job option as the scheduler will apply it: set on the job, else the scheduler's
    job_defaults (APScheduler fills those in when it starts)."""
    return getattr(job, key) if hasattr(job, key) else scheduler._job_defaults[key]


def test_daemon_build_wires_the_sweep_and_one_cron_job_per_schedule(
        svc: Services, tmp_path: Path) -> None:
    from apscheduler.triggers.cron import CronTrigger
    from apscheduler.triggers.interval import IntervalTrigger

    from runtime.scheduler import SWEEP_JOB, Daemon

    extra = [_lab_workflow("weekly-berlin", BERLIN,
                           trigger={"type": "schedule", "cron": "30 7 * * FRI",
                                    "anchor_offset_days": 0}),
             _lab_workflow("monthly-ny", NEW_YORK,
                           trigger={"type": "schedule", "cron": "0 6 1 * *",
                                    "anchor_offset_days": 14})]
    content = load_content(write_lab_content(tmp_path / "sched-content", extra))
    lab = dataclasses.replace(svc, content_loader=lambda: content, _content=None)
    daemon = Daemon(lab, [RecordingSink()], interval_s=15)
    scheduler = daemon.build()
    assert scheduler.state == 0  # STATE_STOPPED: built, not started
    jobs = {j.id: j for j in scheduler.get_jobs()}
    assert set(jobs) == {SWEEP_JOB, "schedule:weekly-berlin", "schedule:monthly-ny"}
    sweep_job = jobs[SWEEP_JOB]
    assert isinstance(sweep_job.trigger, IntervalTrigger)
    assert sweep_job.trigger.interval == timedelta(seconds=15)
    assert _effective(scheduler, sweep_job, "coalesce") is True
    assert _effective(scheduler, sweep_job, "max_instances") == 1
    assert _effective(scheduler, sweep_job, "misfire_grace_time") is None
    assert str(scheduler.timezone) == "UTC"
    berlin = jobs["schedule:weekly-berlin"]
    assert isinstance(berlin.trigger, CronTrigger) and berlin.args == ("weekly-berlin",)
    assert str(berlin.trigger.timezone) == BERLIN
    # Friday 07:30 local: 05:30Z on 10-23 (CEST), 06:30Z on 10-30 (CET)
    assert berlin.trigger.get_next_fire_time(None, utc(2026, 10, 22)) == utc(2026, 10, 23, 5, 30)
    assert berlin.trigger.get_next_fire_time(None, utc(2026, 10, 24)) == utc(2026, 10, 30, 6, 30)
    ny = jobs["schedule:monthly-ny"]
    assert str(ny.trigger.timezone) == NEW_YORK
    assert ny.trigger.get_next_fire_time(None, utc(2026, 10, 2)) == utc(2026, 11, 1, 11)
    for job in (berlin, ny):
        assert _effective(scheduler, job, "coalesce") is True
        assert _effective(scheduler, job, "max_instances") == 1
    from apscheduler.events import EVENT_JOB_ERROR

    assert any(cb == daemon._job_failed and mask & EVENT_JOB_ERROR
               for cb, mask in scheduler._listeners)


def test_daemon_build_with_the_shipped_content(svc: Services) -> None:
    from runtime.scheduler import SWEEP_JOB, Daemon

    scheduler = Daemon(svc, []).build()
    jobs = {j.id: j for j in scheduler.get_jobs()}
    assert set(jobs) == {SWEEP_JOB, "schedule:newsletter"}
    cron = jobs["schedule:newsletter"].trigger
    assert cron.get_next_fire_time(None, utc(2026, 11, 17)) == NEWSLETTER_FIRE
    assert cron.get_next_fire_time(None, utc(2026, 10, 20)) == utc(2026, 10, 26, 14)


def test_daemon_run_schedule_creates_the_bundle_once(svc: Services, clock: FixedClock) -> None:
    from runtime.scheduler import Daemon

    clock.set(NEWSLETTER_FIRE + timedelta(milliseconds=250))  # APScheduler runs it a bit late
    daemon = Daemon(svc, [])
    daemon.run_schedule("newsletter")
    daemon.run_schedule("newsletter")
    assert [b.bundle_id for b in bundles(svc.store)] == [NEWSLETTER_BUNDLE]
    assert len(recurring(svc)) == 1
    # a sweep at the same time on another daemon adds no second bundle nor recurring reminder
    sweep(svc, [], now=clock.now())
    assert [b.bundle_id for b in bundles(svc.store)] == [NEWSLETTER_BUNDLE]
    assert len(recurring(svc)) == 1


def test_a_late_cron_tick_keys_the_bundle_by_the_cron_instant(tmp_path: Path) -> None:
    """The daemon's cron job, run 90 minutes late, creates the bundle of the firing it stands
    for and records its recurring reminder at the cron instant, like the sweep's catch-up."""
    from runtime.scheduler import Daemon
    from tests.conftest import SHIPPED_CONTENT

    content = load_content(SHIPPED_CONTENT)
    clock = FixedClock(NEWSLETTER_FIRE + timedelta(minutes=90))
    svc = Services(store=SqliteStore(f"sqlite:///{tmp_path / 's.db'}"), clock=clock, actor="d",
                   content_loader=lambda: content)
    Daemon(svc, []).run_schedule("newsletter")
    [reminder] = [r for r in reminders(svc.store) if r.kind == ReminderKind.RECURRING]
    assert reminder.fire_at == NEWSLETTER_FIRE
    assert reminder.late is True
    assert preview_due(svc, clock.now()) == [f for f in preview_due(svc, clock.now())
                                             if f.kind != ReminderKind.RECURRING]
