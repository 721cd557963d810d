"""Property tests of the task machine through the engine: random command sequences.

Whatever an operator throws at a task (start, wait with good or bad arguments, resume, complete,
cancel/reopen with or without a reason, proof of every kind, right or wrong, and time passing):

- it never reaches ``done`` while a proof requirement is unmet;
- it is ``waiting`` exactly when it has both waiting fields;
- an open task never carries ``completed_at``/``completed_by``; a done one always does;
- every accepted command bumps the task's version by one and appends exactly one audit event
  for it, every rejected one changes nothing at all;
- the outcome of every command is the one the rules in DESIGN "Task lifecycle" predict;
- the audit chain verifies at the end.

Two variants: one where the clock only moves when the sequence says so (a fixed ``--now``, a
backfill), one where it ticks before every command (a real clock).
"""

from __future__ import annotations

import tempfile
from datetime import date, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from runtime import engine
from runtime.artifacts import LocalArtifactStore
from runtime.clock import FixedClock
from runtime.content import Content, load_content
from runtime.engine import Services
from runtime.errors import ConflictError, DataopsError, InputError, TransitionRejected
from runtime.model import Bundle, Task, TaskStatus
from runtime.model.common import utc
from runtime.rules.proof import missing_proof
from runtime.store import open_store
from tests.helpers import log_of, reminders, verified

ANCHOR = date(2026, 12, 1)
BUNDLE = "prop/2026-12-01"
TASK = f"{BUNDLE}/main"
OTHER = f"{BUNDLE}/later"
START = utc(2026, 11, 25, 8, 0)
OK_URL = "https://ok.example.com/confirmation/1"


@cache
def content() -> tuple[Content, Path]:
    """A definition whose main task needs all four proof kinds; written once per process."""
    root = Path(tempfile.mkdtemp(prefix="dataops-prop-"))
    (root / "docs").mkdir()
    (root / "workflows").mkdir()
    wf = {
        "template_id": "prop",
        "version": 1,
        "title": "Property",
        "timezone": "UTC",
        "default_assignee": "alice",
        "phases": [{"phase_id": "one", "title": "One"}, {"phase_id": "two", "title": "Two"}],
        "tasks": [
            {"task_ref": "main", "title": "Main", "phase": "one", "offset_days": 0, "proof": [
                {"kind": "url", "label": "Confirmation", "pattern": r"^https://ok\.example\.com/"},
                {"kind": "artifact", "label": "Report", "content_types": ["application/pdf"]},
                {"kind": "comment", "label": "Sign-off"},
                {"kind": "external_status", "system": "portal", "expected": "accepted"},
            ]},
            {"task_ref": "later", "title": "Later", "phase": "two", "offset_days": 3},
        ],
    }
    (root / "workflows" / "prop.yaml").write_text(yaml.safe_dump(wf, sort_keys=False))
    return load_content(root), root


# ---- commands --------------------------------------------------------------------------------

REASONS = st.sampled_from([None, "", "   ", "because"])
FOLLOW_UPS = st.sampled_from([None, "naive", -86400, -1, 0, 1, 3600, 7 * 86400])

commands = st.one_of(
    st.just(("start",)),
    st.tuples(st.just("wait"), st.sampled_from([None, "", "  ", "the guest"]), FOLLOW_UPS),
    st.just(("resume",)),
    st.just(("complete",)),
    st.tuples(st.just("cancel"), REASONS),
    st.tuples(st.just("reopen"), REASONS),
    st.tuples(st.just("attach_url"), st.sampled_from(
        [OK_URL, "https://other.example.com/", "http://ok.example.com/x", "not a url"])),
    st.tuples(st.just("attach_file"), st.sampled_from(["application/pdf", "text/plain"])),
    st.tuples(st.just("attach_comment"), st.sampled_from(["signed", "", "  "])),
    st.tuples(st.just("attach_status"), st.sampled_from(["portal", "other"]),
              st.sampled_from(["accepted", "pending"])),
    st.tuples(st.just("assign"), st.sampled_from(["bob", " "])),
    st.tuples(st.just("comment"), st.sampled_from(["note", ""])),
    st.tuples(st.just("advance"), st.integers(min_value=0, max_value=3 * 86400)),
)

OPEN = {"todo", "in_progress", "waiting"}


def expected_outcome(cmd: tuple[Any, ...], task: Task, now: datetime) -> bool:
    """Whether DESIGN's rules accept ``cmd`` on ``task`` at ``now``."""
    name, state = cmd[0], str(task.status)
    if name == "start":
        return state == "todo"
    if name == "wait":
        waiting_for, follow = cmd[1], cmd[2]
        return (state in OPEN and bool((waiting_for or "").strip())
                and isinstance(follow, int) and follow > 0)
    if name == "resume":
        return state == "waiting"
    if name == "complete":
        return state in {"todo", "in_progress"} and missing_proof(task) == []
    if name == "cancel":
        return state in OPEN and bool((cmd[1] or "").strip())
    if name == "reopen":
        return state in {"done", "cancelled"} and bool((cmd[1] or "").strip())
    if name.startswith("attach") and state not in OPEN:
        return False  # proof goes to an open task only
    if name == "attach_url":
        return cmd[1].startswith(("https://", "http://"))
    if name == "attach_comment":
        return bool(cmd[1].strip())
    if name == "assign":
        return bool(cmd[1].strip())
    if name == "comment":
        return bool(cmd[1].strip())
    return True  # attach_file, attach_status on an open task


def run(svc: Services, clock: FixedClock, cmd: tuple[Any, ...]) -> None:
    name = cmd[0]
    if name == "start":
        engine.fire_task(svc, TASK, "start")
    elif name == "wait":
        follow: Any = cmd[2]
        if follow == "naive":
            follow = (clock.now() + timedelta(days=1)).replace(tzinfo=None)
        elif follow is not None:
            follow = clock.now() + timedelta(seconds=follow)
        engine.fire_task(svc, TASK, "wait", waiting_for=cmd[1], follow_up_at=follow)
    elif name == "resume":
        engine.fire_task(svc, TASK, "resume")
    elif name == "complete":
        engine.fire_task(svc, TASK, "complete")
    elif name in ("cancel", "reopen"):
        engine.fire_task(svc, TASK, name, reason=cmd[1])
    elif name == "attach_url":
        engine.attach_url(svc, TASK, cmd[1])
    elif name == "attach_file":
        ext = "pdf" if cmd[1] == "application/pdf" else "txt"
        engine.attach_file(svc, TASK, b"report " + cmd[1].encode(), f"report.{ext}", cmd[1])
    elif name == "attach_comment":
        engine.attach_comment(svc, TASK, cmd[1])
    elif name == "attach_status":
        engine.attach_external_status(svc, TASK, cmd[1], cmd[2])
    elif name == "assign":
        engine.assign_task(svc, TASK, cmd[1])
    elif name == "comment":
        engine.comment_task(svc, TASK, cmd[1])
    else:  # pragma: no cover
        raise AssertionError(cmd)


def state_of(svc: Services) -> tuple[Any, ...]:
    st_ = svc.store
    return (tuple(st_.tasks_of(BUNDLE)), st_.get(Bundle, BUNDLE), tuple(log_of(st_)),
            tuple(reminders(st_)))


def check_invariants(task: Task) -> None:
    if task.status == TaskStatus.DONE:
        assert task.completed_at is not None and task.completed_by is not None
    else:
        assert task.completed_at is None and task.completed_by is None, task
    if task.status == TaskStatus.WAITING:
        assert task.waiting_for and task.waiting_for.strip()
        assert task.follow_up_at is not None and task.follow_up_at.tzinfo is not None
    else:
        assert task.waiting_for is None and task.follow_up_at is None, task


def play(cmds: list[tuple[Any, ...]], tick: bool) -> None:
    loaded, root = content()
    clock = FixedClock(START)
    svc = Services(store=open_store("memory://"), clock=clock, actor="prop",
                   artifacts=LocalArtifactStore(root / "artifacts"),
                   content_loader=lambda: loaded)
    engine.create_bundle(svc, "prop", ANCHOR)
    for cmd in cmds:
        if tick:
            clock.advance(timedelta(seconds=1))
        if cmd[0] == "advance":
            clock.advance(timedelta(seconds=cmd[1]))
            continue
        before = state_of(svc)
        task = svc.store.get(Task, TASK)
        events = log_of(svc.store, entity_id=TASK)
        want = expected_outcome(cmd, task, clock.now())
        try:
            run(svc, clock, cmd)
        except ConflictError as e:  # nobody else writes: a conflict is a bug
            raise AssertionError(f"{cmd}: conflict without a concurrent writer: {e}") from e
        except (TransitionRejected, InputError) as e:
            assert not want, f"{cmd} from {task.status} was rejected: {e}"
            assert state_of(svc) == before, f"rejected {cmd} changed something"
            check_invariants(svc.store.get(Task, TASK))
            continue
        except DataopsError as e:  # pragma: no cover
            raise AssertionError(f"{cmd}: unexpected {type(e).__name__}: {e}") from e
        assert want, f"{cmd} from {task.status} was accepted"
        after = svc.store.get(Task, TASK)
        assert after.version == task.version + 1, cmd
        new_events = log_of(svc.store, entity_id=TASK)
        assert len(new_events) == len(events) + 1, cmd
        assert new_events[-1].actor == "prop" and new_events[-1].at == clock.now()
        assert svc.store.get(Task, OTHER) == before[0][1]  # the other task is never touched
        if after.status == TaskStatus.DONE and task.status != TaskStatus.DONE:
            assert missing_proof(after) == [], f"reached done missing {missing_proof(after)}"
            assert after.completed_at == clock.now() and after.completed_by == "prop"
        check_invariants(after)
    all_events = log_of(svc.store)
    assert verified(svc.store) == len(all_events)


@settings(max_examples=150, deadline=None)
@given(st.lists(commands, max_size=30))
def test_random_commands_keep_the_invariants(cmds: list[tuple[Any, ...]]) -> None:
    """The clock moves only when the sequence advances it (a fixed --now, a backfill)."""
    play(cmds, tick=False)


@settings(max_examples=150, deadline=None)
@given(st.lists(commands, max_size=30))
def test_random_commands_keep_the_invariants_with_a_ticking_clock(
        cmds: list[tuple[Any, ...]]) -> None:
    play(cmds, tick=True)
