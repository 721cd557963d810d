"""Edges of the core found on review: a write limit smaller than one record's reminders, a due
index whose front cannot be swept, deliveries that never finish, seals rewritten, small
limits for bundle cancel, a scheduled creation resumed, seals in the export."""

from __future__ import annotations

import json
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
from runtime.engine.audit import seal, verify
from runtime.engine.delivery import RetryPolicy, deliver_pending
from runtime.engine.reminders import fire_schedule, record_due
from runtime.errors import AuditChainBroken, InputError
from runtime.export import export_store, import_export
from runtime.model import (
    Bundle,
    BundleStatus,
    DeliveryStatus,
    Reminder,
    ReminderKind,
    Seal,
    Task,
    TaskStatus,
)
from runtime.model.common import utc
from runtime.store.memory import MemoryStore
from tests.helpers import every, reminders

T0 = utc(2026, 11, 25, 8)


def definition(template_id: str = "edge", n: int = 3, **extra: Any) -> dict[str, Any]:
    return {
        "template_id": template_id, "version": 1, "title": "Edge", "timezone": "UTC",
        "default_assignee": "ops", "phases": [{"phase_id": "p", "title": "P"}],
        "tasks": [{"task_ref": f"t{i}", "title": f"T{i}", "phase": "p", "offset_days": 0}
                  for i in range(n)], **extra,
    }


def services(store: Any, content_dir: Path, tmp_path: Path, *defs: dict[str, Any],
             at: datetime = T0) -> Services:
    for d in defs:
        (content_dir / "workflows" / f"{d['template_id']}.yaml").write_text(yaml.safe_dump(d))
    content = load_content(content_dir)
    return Services(store, FixedClock(at), "edge", LocalArtifactStore(tmp_path / "a"),
                    lambda: content)


def test_a_record_with_more_due_reminders_than_one_write_holds_is_swept_in_steps(
        content_dir: Path, tmp_path: Path) -> None:
    store = MemoryStore(max_items=20)
    svc = services(store, content_dir, tmp_path,
                   definition(n=1, reminders={"overdue_repeats": 30}))
    engine.create_bundle(svc, "edge", date(2026, 10, 1))
    now = utc(2026, 11, 25, 12)  # 1 due + 1 missing... + 30 overdue reminders have passed
    for _ in range(5):
        record_due(svc, now)
    task_id = "edge/2026-10-01/t0"
    recorded = [r for r in reminders(store) if r.entity_id == task_id]
    assert len(recorded) == 31 and len({r.reminder_id for r in recorded}) == 31
    assert store.get(Task, task_id).next_reminder_at is None


def test_records_the_sweep_must_skip_do_not_starve_those_behind_them(
        content_dir: Path, tmp_path: Path) -> None:
    store = MemoryStore()
    svc = services(store, content_dir, tmp_path, definition(n=3))
    engine.create_bundle(svc, "edge", date(2026, 11, 1))  # due earlier: the front of the index
    engine.create_bundle(svc, "edge", date(2026, 11, 20))
    store._delete_raw("bundle", "edge/2026-11-01")  # its tasks can no longer be swept
    record_due(svc, T0, limit=2)
    behind = {r.entity_id for r in reminders(store)}
    assert {f"edge/2026-11-20/t{i}" for i in range(3)} <= behind


def test_a_delivery_that_never_finishes_runs_out_of_attempts(
        content_dir: Path, tmp_path: Path) -> None:
    store = MemoryStore()
    svc = services(store, content_dir, tmp_path, definition(n=1))
    engine.create_bundle(svc, "edge", date(2026, 11, 25))
    record_due(svc, T0 + timedelta(hours=2))
    [rem] = reminders(store)
    policy = RetryPolicy(max_attempts=3)
    # as if three daemons each leased it and died in the delivery
    spent = rem.model_copy(update={"attempts": 3, "version": rem.version + 1})
    store._put_raw("reminder", rem.reminder_id, spent.model_dump_json().encode(), spent.version)

    class Never:
        url = "test://never"

        def deliver(self, payload: Any) -> None:
            raise AssertionError("a spent reminder is not delivered again")

        def close(self) -> None:
            pass

    report = deliver_pending(svc, [Never()], T0 + timedelta(hours=2), policy=policy)
    assert [r.reminder_id for r in report.failed] == [rem.reminder_id]
    assert store.get(Reminder, rem.reminder_id).delivery_status == DeliveryStatus.FAILED
    [failure] = [r for r in reminders(store) if r.kind == ReminderKind.AUTOMATION_FAILURE]
    assert rem.reminder_id in failure.summary and "never finished" in failure.summary


def _sealed(content_dir: Path, tmp_path: Path) -> tuple[MemoryStore, Services, str]:
    store = MemoryStore()
    svc = services(store, content_dir, tmp_path, definition(n=2))
    engine.create_bundle(svc, "edge", date(2026, 12, 1))
    task_id = "edge/2026-12-01/t0"
    engine.fire_task(svc, task_id, "start")
    seal(svc)
    assert verify(store).sealed is not None
    return store, svc, task_id


def test_verify_catches_a_sealed_chain_rewritten_consistently(
        content_dir: Path, tmp_path: Path) -> None:
    """Rewrite a task's whole chain so that it links and matches its record: only the seal
    can tell."""
    from runtime.engine.uow import UnitOfWork

    store, svc, task_id = _sealed(content_dir, tmp_path)
    fake = MemoryStore()
    forged = services(fake, content_dir, tmp_path)
    engine.create_bundle(forged, "edge", date(2026, 12, 1))
    uow = UnitOfWork(forged.as_actor("mallory"))
    uow.update(fake.get(Task, task_id), {"assignee": "mallory", "status": TaskStatus.IN_PROGRESS},
               "quietly", action="start")
    uow.commit()
    for event in store.audit_events(task_id):
        store._delete_raw("audit_event", event.event_id)
    for event in fake.audit_events(task_id):
        store._put_raw("audit_event", event.event_id, event.model_dump_json().encode())
        store._chain_places[(event.entity_id, event.seq)] = event.event_id
    forged_task = fake.get(Task, task_id)
    store._put_raw("task", task_id, forged_task.model_dump_json().encode(), forged_task.version)
    with pytest.raises(AuditChainBroken, match="rewritten after the seal"):
        verify(store)


def test_verify_catches_an_edited_seal_and_names_an_unreadable_record_as_such(
        content_dir: Path, tmp_path: Path) -> None:
    store, svc, task_id = _sealed(content_dir, tmp_path)
    made = store.latest_seal()
    assert made is not None
    edited = made.model_copy(update={"heads": made.heads[1:]})
    store._put_raw("seal", made.seal_id, edited.model_dump_json().encode())
    with pytest.raises(AuditChainBroken, match="the seal was edited"):
        verify(store)
    store._put_raw("seal", made.seal_id, made.model_dump_json().encode())
    store._put_raw("task", task_id, b'{"not": "a task"}')
    with pytest.raises(AuditChainBroken) as info:
        verify(store)
    assert f"record {task_id} cannot be read" in str(info.value)
    assert "gone with all its events" not in str(info.value) and "no record" not in str(info.value)


def test_two_seals_at_one_instant_are_two_seals(content_dir: Path, tmp_path: Path) -> None:
    store, svc, _ = _sealed(content_dir, tmp_path)
    engine.create_bundle(svc, "edge", date(2026, 12, 2))
    second = seal(svc)
    assert second.count == 6 and len({s.seal_id for s in every(store, Seal)}) == 2


@pytest.mark.parametrize("limit", [8, 9, 10, 100])
def test_bundle_cancel_works_at_any_limit_a_store_may_declare(
        limit: int, content_dir: Path, tmp_path: Path) -> None:
    store = MemoryStore(max_items=limit)
    svc = services(store, content_dir, tmp_path, definition(n=9))
    engine.create_bundle(svc, "edge", date(2026, 12, 1))
    view = engine.cancel_bundle(svc, "edge/2026-12-01", "no")
    assert view.bundle.status == BundleStatus.CANCELLED
    assert not any(t.status.is_open for t in store.tasks_of("edge/2026-12-01"))


def test_a_store_limit_below_one_task_command_is_refused() -> None:
    with pytest.raises(InputError, match="at least 8"):
        MemoryStore("memory://?max_items=7")
    with pytest.raises(InputError, match="at least 8"):
        MemoryStore(max_items=5)


def test_a_scheduled_creation_a_crash_interrupted_keeps_its_recurring_reminder(
        content_dir: Path, tmp_path: Path) -> None:
    from tests.unit.test_large_bundles import Crash, Crashing

    weekly = definition("weekly", n=60, trigger={"type": "schedule", "cron": "0 9 * * MON"})
    inner = MemoryStore(max_items=100)
    monday = utc(2026, 11, 23, 9)
    with pytest.raises(Crash):
        fire_schedule(services(Crashing(inner, at=2), content_dir, tmp_path, weekly),
                      "weekly", monday)
    assert inner.get(Bundle, "weekly/2026-11-23").status == BundleStatus.CREATING
    svc = services(inner, content_dir, tmp_path, at=monday + timedelta(minutes=1))
    from runtime.engine.reminders import fire_schedules

    fire_schedules(svc, svc.now())
    assert inner.get(Bundle, "weekly/2026-11-23").status == BundleStatus.ACTIVE
    [recurring] = [r for r in reminders(inner) if r.kind == ReminderKind.RECURRING
                   and r.entity_id.startswith("weekly/")]
    assert recurring.entity_id == "weekly/2026-11-23"


def test_seals_are_exported_and_imported(content_dir: Path, tmp_path: Path) -> None:
    store, svc, _ = _sealed(content_dir, tmp_path)
    export_store(store, tmp_path / "out", T0)
    lines = (tmp_path / "out" / "seals.jsonl").read_text().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["root"] == store.latest_seal().root  # type: ignore[union-attr]
    copy = MemoryStore()
    import_export(copy, tmp_path / "out")
    assert copy.latest_seal() == store.latest_seal()
    assert verify(copy).sealed is not None


def test_the_json_the_unit_of_work_hands_the_store_is_the_records_own(
        content_dir: Path, tmp_path: Path) -> None:
    """The unit of work serialises each record once and the store keeps that JSON: it must be
    what pydantic gives for the record, field for field."""

    from runtime.model import KIND_BY_NAME

    store = MemoryStore()
    svc = services(store, content_dir, tmp_path, definition(n=3))
    view = engine.create_bundle(svc, "edge", date(2026, 11, 20))
    first = view.tasks[0].task_id
    engine.fire_task(svc, first, "start")
    engine.fire_task(svc, first, "wait", waiting_for="x", follow_up_at="2026-12-01T10:00:00+01:00")
    engine.fire_task(svc, view.tasks[1].task_id, "cancel", reason="no")
    engine.attach_file(svc, view.tasks[2].task_id, b"data", "a.txt", "text/plain")
    checked = 0
    for kind, rows in store._tables.items():
        for rid, (_, doc) in rows.items():
            rec = KIND_BY_NAME[kind].model_validate_json(doc)
            assert doc == rec.model_dump_json().encode(), (kind, rid)  # byte for byte
            checked += 1
    assert checked >= 15  # a bundle, its tasks, an artifact, reminders: all as written


def test_a_trusted_event_is_what_validation_gives() -> None:
    from runtime.model import AuditEvent

    values = {"event_id": "evt-1", "seq": 3, "actor": "a", "entity_type": "task",
              "entity_id": "b/2026-01-01/t", "action": "start", "before": {"status": "todo"},
              "after": {"status": "in_progress"}, "summary": "s", "at": T0,
              "prev_hash": "0" * 64, "hash": "1" * 64, "state_hash": "2" * 64}
    trusted = AuditEvent.trusted(**values)
    validated = AuditEvent.model_validate(values)
    assert trusted == validated
    assert trusted.model_dump_json() == validated.model_dump_json()
    assert trusted.model_fields_set == validated.model_fields_set
    with pytest.raises(ValueError, match="exactly the fields"):
        AuditEvent.trusted(**{k: v for k, v in values.items() if k != "hash"})


def test_firings_at_one_instant_are_recorded_together_at_the_smallest_limit(
        content_dir: Path, tmp_path: Path) -> None:
    """Due, missing evidence and a follow-up at the very same instant, on a store that takes
    only 8 items a write: all three are recorded, none skipped by the cursor."""
    store = MemoryStore(max_items=8)
    proof = [{"kind": "comment"}]
    d = definition(n=1)
    d["tasks"][0]["proof"] = proof
    svc = services(store, content_dir, tmp_path, d)
    engine.create_bundle(svc, "edge", date(2026, 11, 26))
    task_id = "edge/2026-11-26/t0"
    due_at = utc(2026, 11, 26, 9)  # 09:00 in UTC, the default reminder time
    engine.fire_task(svc, task_id, "wait", waiting_for="x", follow_up_at=due_at)
    for _ in range(3):  # each sweep records what fits; the rest go in the next
        record_due(svc, due_at + timedelta(days=2, hours=1))
    kinds = sorted(r.kind for r in reminders(store) if r.entity_id == task_id)
    assert kinds == sorted([ReminderKind.DUE, ReminderKind.MISSING_EVIDENCE,
                            ReminderKind.FOLLOW_UP_DUE, ReminderKind.OVERDUE,
                            ReminderKind.OVERDUE])


def test_a_schedule_that_cannot_fire_is_reported_once_and_stops_no_other(
        content_dir: Path, tmp_path: Path) -> None:
    from runtime.engine.reminders import fire_schedules
    from tests.unit.test_large_bundles import Crash, Crashing

    weekly = definition("weekly", n=60, trigger={"type": "schedule", "cron": "0 9 * * MON"})
    inner = MemoryStore(max_items=100)
    monday = utc(2026, 11, 23, 9)
    with pytest.raises(Crash):
        fire_schedule(services(Crashing(inner, at=3), content_dir, tmp_path, weekly),
                      "weekly", monday)
    [damaged] = inner.tasks_of("weekly/2026-11-23")[:1]
    inner._put_raw("task", damaged.task_id, b'{"damaged": true}')
    svc = services(inner, content_dir, tmp_path, at=monday + timedelta(minutes=1))
    for _ in range(2):
        fire_schedules(svc, svc.now())
    assert [b.template_id for b in every(inner, Bundle)].count("newsletter") == 1  # it fired
    failed = [r for r in reminders(inner) if r.kind == ReminderKind.AUTOMATION_FAILURE]
    assert len(failed) == 1 and "weekly" in failed[0].summary


def test_verify_names_an_unreadable_audit_event(content_dir: Path, tmp_path: Path) -> None:
    store, svc, task_id = _sealed(content_dir, tmp_path)
    event = store.audit_events(task_id)[0]
    store._put_raw("audit_event", event.event_id, b'{"broken": 1}')
    with pytest.raises(AuditChainBroken) as info:
        verify(store)
    assert f"audit event {event.event_id} cannot be read" in str(info.value)


def test_free_form_objects_come_back_with_sorted_keys_at_every_depth() -> None:
    from runtime.model.common import sorted_keys

    ordered = {"a": 1, "b": {"c": [{"d": 1, "e": 2}], "f": None}}
    assert sorted_keys(ordered) is ordered  # already sorted: the value itself
    mixed = {"b": {"f": None, "c": [{"e": 2, "d": 1}]}, "a": 1}
    assert list(sorted_keys(mixed)) == ["a", "b"]
    assert sorted_keys(mixed) == ordered
    assert list(sorted_keys(mixed)["b"]["c"][0]) == ["d", "e"]
    # not plain JSON for orjson (a number past 64 bits): the Python walk decides
    big = {"z": 1 << 70, "a": {"y": 1, "x": 2}}
    assert list(sorted_keys(big)) == ["a", "z"] and list(sorted_keys(big)["a"]) == ["x", "y"]
    assert sorted_keys({"a": 1 << 70}) == {"a": 1 << 70}
