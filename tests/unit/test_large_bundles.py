"""No size cap: a 500-task definition instantiates in one write on memory and SQLite, and on a
store with a per-write limit through the resumable protocol, whatever step a crash hits."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from runtime import engine
from runtime.artifacts import LocalArtifactStore
from runtime.clock import FixedClock
from runtime.content import load_content
from runtime.engine import Services
from runtime.engine.reminders import record_due
from runtime.errors import TransitionRejected
from runtime.model import Bundle, BundleStatus, Reminder, Task, TaskStatus
from runtime.model.common import utc
from runtime.store import Changes, Store
from runtime.store.memory import MemoryStore
from tests.conftest import make_store
from tests.helpers import every, log_of, verified

N = 500
ANCHOR = date(2026, 12, 1)
BUNDLE = f"big/{ANCHOR.isoformat()}"


def big_definition(n: int = N) -> dict[str, Any]:
    """``n`` tasks over three phases, so the stage moves as they close."""
    phases = ["one", "two", "three"]
    return {
        "template_id": "big", "version": 1, "title": "Big", "timezone": "Europe/Berlin",
        "default_assignee": "ops", "phases": [{"phase_id": p, "title": p.title()} for p in phases],
        "tasks": [{"task_ref": f"t{i:03d}", "title": f"Task {i}", "phase": phases[i * 3 // n],
                   "offset_days": i % 20} for i in range(n)],
    }


@pytest.fixture
def big_content(content_dir: Path) -> Any:
    (content_dir / "workflows" / "big.yaml").write_text(yaml.safe_dump(big_definition()),
                                                        encoding="utf-8")
    content = load_content(content_dir)
    assert "big" in content.workflows and not content.broken
    return content


class Crash(Exception):
    """A process dying between two writes (raised instead of the write)."""


class Crashing:
    """A store proxy that dies at its ``at``-th commit, and records every commit's size."""

    def __init__(self, inner: Store, at: int | None = None) -> None:
        self.inner, self.at, self.sizes = inner, at, []

    def commit(self, changes: Changes) -> None:
        if self.at is not None and len(self.sizes) + 1 == self.at:
            raise Crash(f"killed before write #{self.at}")
        self.inner.commit(changes)
        self.sizes.append(changes.size())

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def services(store: Any, content: Any, tmp_path: Path) -> Services:
    return Services(store, FixedClock(utc(2026, 11, 25, 8)), "tester",
                    LocalArtifactStore(tmp_path / "art"), lambda: content)


def check_whole(store: Store) -> None:
    bundle = store.get(Bundle, BUNDLE)
    tasks = store.tasks_of(BUNDLE)
    assert bundle.status == BundleStatus.ACTIVE and bundle.stage == "one"
    assert [t.template_task_ref for t in tasks] == [f"t{i:03d}" for i in range(N)]
    assert sum(p.open_tasks for p in bundle.phases) == N
    assert {p.phase_id: p.open_tasks for p in bundle.phases} == {
        p: sum(1 for t in tasks if t.phase == p) for p in ("one", "two", "three")}
    assert verified(store) == len(log_of(store))


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_a_500_task_definition_instantiates_in_one_write(kind: str, big_content: Any,
                                                         tmp_path: Path) -> None:
    store = Crashing(make_store(kind, tmp_path))
    view = engine.create_bundle(services(store, big_content, tmp_path), "big", ANCHOR)
    assert view.created and len(view.tasks) == N
    assert store.sizes == [2 * (N + 1)]  # the bundle, its tasks and one event each
    check_whole(store.inner)
    [created] = store.inner.audit_events(BUNDLE)
    assert created.action == "create"
    store.inner.close()


def test_on_a_store_with_a_write_limit_it_is_created_in_steps(big_content: Any,
                                                              tmp_path: Path) -> None:
    store = Crashing(MemoryStore(max_items=100))
    view = engine.create_bundle(services(store, big_content, tmp_path), "big", ANCHOR)
    assert view.created and view.bundle.status == BundleStatus.ACTIVE
    assert max(store.sizes) <= 100
    assert len(store.sizes) == 1 + N // 50 + 1  # creating; tasks 50 a write; publish
    check_whole(store.inner)
    assert [e.action for e in store.inner.audit_events(BUNDLE)] == ["create", "publish"]
    again = engine.create_bundle(services(store, big_content, tmp_path), "big", ANCHOR)
    assert not again.created and len(store.sizes) == 12  # nothing written the second time


def _readers_never_see_it_active(store: Store) -> None:
    bundle = store.find(Bundle, BUNDLE)
    assert bundle is None or bundle.status == BundleStatus.CREATING
    if bundle is not None:
        assert bundle.stage is None  # no stage, no reminders until it is published
        assert bundle.next_reminder_at == bundle.created_at  # due for completion at once


def test_a_crash_between_any_two_steps_is_completed_by_the_next_create(
        big_content: Any, tmp_path: Path) -> None:
    steps = 1 + N // 50 + 1
    for crash_at in range(1, steps + 1):
        inner = MemoryStore(max_items=100)
        store = Crashing(inner, at=crash_at)
        with pytest.raises(Crash):
            engine.create_bundle(services(store, big_content, tmp_path), "big", ANCHOR)
        _readers_never_see_it_active(inner)
        if crash_at > 1:  # tasks written so far are refused any command until it is whole
            tasks = inner.tasks_of(BUNDLE)
            if tasks:
                with pytest.raises(TransitionRejected, match="still being created"):
                    engine.fire_task(services(inner, big_content, tmp_path), tasks[0].task_id,
                                     "start")
        view = engine.create_bundle(services(inner, big_content, tmp_path), "big", ANCHOR)
        assert view.bundle.status == BundleStatus.ACTIVE, crash_at
        check_whole(inner)


def test_the_sweep_completes_a_creation_a_crash_left(big_content: Any, tmp_path: Path) -> None:
    inner = MemoryStore(max_items=100)
    with pytest.raises(Crash):
        engine.create_bundle(services(Crashing(inner, at=3), big_content, tmp_path), "big", ANCHOR)
    assert inner.get(Bundle, BUNDLE).status == BundleStatus.CREATING
    svc = services(inner, big_content, tmp_path)
    record_due(svc, svc.now())
    check_whole(inner)


def test_closing_every_task_of_a_500_task_bundle_completes_it(big_content: Any,
                                                              tmp_path: Path) -> None:
    store = MemoryStore(max_items=100)
    svc = services(store, big_content, tmp_path)
    engine.create_bundle(svc, "big", ANCHOR)
    stages = []
    for task in store.tasks_of(BUNDLE):
        engine.fire_task(svc, task.task_id, "complete")
        stages.append(store.get(Bundle, BUNDLE).stage)
    bundle = store.get(Bundle, BUNDLE)
    assert bundle.status == BundleStatus.COMPLETED and bundle.stage is None
    assert [s for i, s in enumerate(stages) if i == 0 or s != stages[i - 1]] == \
        ["one", "two", "three", None]
    changes = [r for r in every(store, Reminder) if r.kind == "stage_change"]
    assert len(changes) == 3


def test_cancelling_a_500_task_bundle_on_a_limited_store_goes_in_chunks(
        big_content: Any, tmp_path: Path) -> None:
    store = Crashing(MemoryStore(max_items=100))
    svc = services(store, big_content, tmp_path)
    engine.create_bundle(svc, "big", ANCHOR)
    before = len(store.sizes)
    view = engine.cancel_bundle(svc, BUNDLE, "not this year")
    assert view.bundle.status == BundleStatus.CANCELLED
    assert all(t.status == TaskStatus.CANCELLED for t in store.inner.tasks_of(BUNDLE))
    assert max(store.sizes[before:]) <= 100 and len(store.sizes) - before > 1
    assert sum(p.open_tasks for p in store.inner.get(Bundle, BUNDLE).phases) == 0
    verified(store.inner)


def test_a_cancel_a_crash_interrupted_is_completed_by_running_it_again(
        big_content: Any, tmp_path: Path) -> None:
    inner = MemoryStore(max_items=100)
    engine.create_bundle(services(inner, big_content, tmp_path), "big", ANCHOR)
    with pytest.raises(Crash):
        engine.cancel_bundle(services(Crashing(inner, at=3), big_content, tmp_path), BUNDLE, "no")
    bundle = inner.get(Bundle, BUNDLE)
    assert bundle.status == BundleStatus.ACTIVE  # some tasks cancelled: a state a user can make
    open_now = sum(1 for t in inner.tasks_of(BUNDLE) if t.status.is_open)
    assert 0 < open_now < N and sum(p.open_tasks for p in bundle.phases) == open_now
    view = engine.cancel_bundle(services(inner, big_content, tmp_path), BUNDLE, "no")
    assert view.bundle.status == BundleStatus.CANCELLED
    assert not any(t.status.is_open for t in inner.tasks_of(BUNDLE))
    verified(inner)


def test_due_dates_of_a_big_bundle(big_content: Any, tmp_path: Path) -> None:
    store = MemoryStore(max_items=100)
    engine.create_bundle(services(store, big_content, tmp_path), "big", ANCHOR)
    tasks = {t.template_task_ref: t for t in store.tasks_of(BUNDLE)}
    assert tasks["t019"].due_date == ANCHOR + timedelta(days=19)
    assert all(isinstance(t, Task) for t in tasks.values())
