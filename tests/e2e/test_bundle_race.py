"""No write skew, with real processes: the last N tasks of a bundle closed at once by N
processes, round after round; the bundle completes every time, with exactly one stage_change
per stage move (DESIGN.md "Concurrency and atomicity")."""

from __future__ import annotations

import multiprocessing
import traceback
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from runtime.model import Bundle, BundleStatus, Reminder, ReminderKind
from runtime.store.sqlite import SqliteStore
from tests.helpers import every, verified

WORKERS = 4
ROUNDS = 20
FIRST = date(2026, 12, 1)

pytestmark = pytest.mark.slow


def definition() -> dict[str, Any]:
    """Two phases of two tasks each: the four closing together move the stage once or twice."""
    return {
        "template_id": "race", "version": 1, "title": "Race", "timezone": "UTC",
        "default_assignee": "ops",
        "phases": [{"phase_id": "first", "title": "First"}, {"phase_id": "second", "title": "Second"}],
        "tasks": [{"task_ref": f"t{i}", "title": f"Task {i}", "phase": "first" if i < 2 else "second",
                   "offset_days": 0} for i in range(WORKERS)],
    }


def anchor(n: int) -> date:
    return FIRST + timedelta(days=n)


def worker(url: str, content: str, index: int, barrier: Any, errors: Any) -> None:
    """One process: per round, wait for the others, then close its task of that round."""
    try:
        import runtime
        from runtime.clock import FixedClock
        from runtime.model.common import utc

        rt = runtime.open(store=url, content=content, actor=f"w{index}",
                          clock=FixedClock(utc(2026, 11, 25, 8)))
        rt.content  # noqa: B018 - loaded before the race, like a warm worker
        for n in range(ROUNDS):
            task_id = f"race/{anchor(n).isoformat()}/t{index}"
            rt.task(task_id)  # loaded before the others write, so the race is real
            barrier.wait(timeout=60)
            rt.complete(task_id)
        rt.close()
    except BaseException:  # noqa: BLE001 - reported to the parent
        barrier.abort()
        errors.put(f"w{index}: {traceback.format_exc()}")


def test_the_last_tasks_closed_at_once_by_processes_complete_the_bundle_every_time(
        tmp_path: Path, content_dir: Path) -> None:
    import runtime

    (content_dir / "workflows" / "race.yaml").write_text(yaml.safe_dump(definition()),
                                                         encoding="utf-8")
    url = f"sqlite:///{tmp_path / 'race.db'}"
    with runtime.open(store=url, content=str(content_dir), actor="setup") as rt:
        for n in range(ROUNDS):
            rt.create_bundle("race", anchor(n))
    ctx = multiprocessing.get_context("spawn")
    barrier, errors = ctx.Barrier(WORKERS), ctx.Queue()
    procs = [ctx.Process(target=worker, args=(url, str(content_dir), i, barrier, errors))
             for i in range(WORKERS)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=240)
    problems = [errors.get() for _ in range(errors.qsize())] if not errors.empty() else []
    assert not problems, problems[0]
    assert all(p.exitcode == 0 for p in procs), [p.exitcode for p in procs]

    store = SqliteStore(url)
    try:
        reminders = every(store, Reminder)
        for n in range(ROUNDS):
            bundle_id = f"race/{anchor(n).isoformat()}"
            bundle = store.get(Bundle, bundle_id)
            assert bundle.status == BundleStatus.COMPLETED, (n, bundle)
            assert bundle.stage is None and all(p.open_tasks == 0 for p in bundle.phases)
            moves = [e for e in store.audit_events(bundle_id)[1:] if e.after and "stage" in e.after]
            changes = [r for r in reminders
                       if r.kind == ReminderKind.STAGE_CHANGE and r.entity_id == bundle_id]
            assert len(changes) == len(moves) >= 1, (n, len(changes), len(moves))
            assert len({r.reminder_id for r in changes}) == len(changes)
            assert moves[-1].after["stage"] is None
        verified(store)
    finally:
        store.close()
