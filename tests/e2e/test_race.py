"""Lost races (DESIGN "Concurrency and atomicity"): every write is conditional on the version it
read; the loser gets a conflict and nothing of its command is written.

- Library level, deterministic: two SqliteStore connections on one file; the second loads, the
  first commits, the second's commit (expecting the old version) raises ConflictError and
  changes nothing; also through ``fire_task`` itself, with the race forced between its load and
  its commit.
- CLI level, real OS processes: pairs of ``python -m runtime.cli task start`` on one SQLite file,
  released together from a barrier file; in every round exactly one wins (exit 0) and the other
  exits 4 (it lost the commit) or 3 (it loaded after the winner committed and saw in_progress).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from runtime import engine
from runtime.artifacts import LocalArtifactStore
from runtime.clock import FixedClock
from runtime.content import load_content
from runtime.engine import Services
from runtime.errors import ConflictError
from runtime.model import Bundle, Task, TaskStatus
from runtime.model.common import utc
from runtime.store import Changes
from runtime.store.sqlite import SqliteStore

REPO = Path(__file__).resolve().parents[2]
NOW = "2026-11-25T08:00:00+00:00"
TASK = "vat-return/2026-11-02/file-return"


def everything(store: SqliteStore) -> tuple[Any, ...]:
    return (tuple(store.bundles()),
            tuple(t for b in store.bundles() for t in store.tasks_of(b.bundle_id)),
            tuple(store.audit_events()), tuple(store.reminders()))


@pytest.fixture
def two(tmp_path: Path, content_dir: Path) -> Iterator[tuple[Services, Services]]:
    """Two services, each with its own SqliteStore connection to one file, as two processes
    would have; a vat-return bundle exists."""
    url = f"sqlite:///{tmp_path / 'race.db'}"
    content = load_content(content_dir)
    clock = FixedClock(utc(2026, 11, 25, 8))
    a = Services(SqliteStore(url), clock, "a", LocalArtifactStore(tmp_path / "art"), lambda: content)
    b = Services(SqliteStore(url), clock, "b", LocalArtifactStore(tmp_path / "art"), lambda: content)
    engine.create_bundle(a, "vat-return", date(2026, 11, 2))
    yield a, b
    a.store.close()
    b.store.close()


def test_store_level_lost_race(two: tuple[Services, Services]) -> None:
    a, b = two
    seen_a = a.store.get(Task, TASK)
    seen_b = b.store.get(Task, TASK)
    assert seen_a == seen_b and seen_a.version == 1
    now = a.now()
    won = seen_a.model_copy(update={"assignee": "a", "version": 2, "updated_at": now})
    a.store.commit(Changes(updates=[(won, 1)], events=[
        engine.event_for("a", now, "assign", "a takes it", seen_a, won)]))
    before = everything(b.store)  # b's connection sees a's commit
    assert b.store.get(Task, TASK) == won
    lost = seen_b.model_copy(update={"assignee": "b", "version": 2, "updated_at": now})
    with pytest.raises(ConflictError) as info:
        b.store.commit(Changes(updates=[(lost, 1)], events=[
            engine.event_for("b", now, "assign", "b takes it", seen_b, lost)]))
    assert TASK in str(info.value)
    assert everything(b.store) == before
    assert everything(a.store) == before


def test_a_lost_race_in_one_command_writes_none_of_it(two: tuple[Services, Services]) -> None:
    """The loser's command would also have written its bundle and a reminder: none of them is
    written when its task update conflicts (one transaction)."""
    a, b = two
    tasks = b.store.tasks_of("vat-return/2026-11-02")
    bundle = b.store.get(Bundle, "vat-return/2026-11-02")
    engine.fire_task(a, TASK, "start")
    before = everything(b.store)
    now = b.now()
    stale = tasks[3]
    assert stale.task_id == TASK and stale.version == 1
    moved = bundle.model_copy(update={"title": "renamed", "version": bundle.version + 1})
    changes = Changes(
        updates=[(moved, bundle.version),  # would succeed on its own
                 (stale.model_copy(update={"assignee": "b", "version": 2}), 1)],  # lost
        events=[engine.event_for("b", now, "assign", "b", stale, stale)],
    )
    with pytest.raises(ConflictError):
        b.store.commit(changes)
    assert everything(b.store) == before
    assert b.store.get(Bundle, "vat-return/2026-11-02").title == bundle.title


class _RaceAfterLoad:
    """A store proxy that lets another writer commit right after this one loaded the task's
    bundle (the last read before a command writes): a lost race, forced deterministically."""

    def __init__(self, inner: SqliteStore, rival: Any) -> None:
        self._inner, self._rival, self._armed = inner, rival, True

    def get(self, kind: type, record_id: str) -> Any:
        result = self._inner.get(kind, record_id)
        if kind is Bundle and self._armed:
            self._armed = False
            self._rival()
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


@pytest.mark.parametrize("trigger", ["start", "cancel"])
def test_fire_task_loses_the_race_and_changes_nothing(
        two: tuple[Services, Services], trigger: str) -> None:
    a, b = two
    won = {}
    racing = Services(_RaceAfterLoad(b.store, lambda: won.setdefault(  # type: ignore[arg-type]
        "task", engine.fire_task(a, TASK, "start"))), b.clock, "b", b.artifacts,
        b.content_loader)
    args = {"reason": "not needed"} if trigger == "cancel" else {}
    with pytest.raises(ConflictError):
        engine.fire_task(racing, TASK, trigger, **args)
    after = b.store.get(Task, TASK)
    assert after == won["task"]
    assert after.status == TaskStatus.IN_PROGRESS and after.version == 2
    events = b.store.audit_events(entity_id=TASK)
    assert [e.actor for e in events] == ["a", "a"]  # create, a's start; nothing of b's
    assert [e.action for e in events] == ["create", "start"]
    from runtime.audit import verify_chain

    verify_chain(b.store.audit_events())


# ---- real processes --------------------------------------------------------------------------

# Imports everything the command needs, then waits for the barrier file, then runs the CLI's
# entry point exactly as `python -m runtime.cli ARGS...` does (`sys.exit(main())`).
WORKER = r"""
import os, sys, time
barrier, args = sys.argv[1], sys.argv[2:]
import runtime.cli, runtime.engine, runtime.store.sqlite, runtime.content, runtime.artifacts
from runtime.machines import machine
machine("task"); machine("bundle")
open(barrier + "." + str(os.getpid()) + ".ready", "w").close()
while not os.path.exists(barrier):
    time.sleep(0.0005)
sys.argv = ["runtime.cli", *args]
sys.exit(runtime.cli.main(args))
"""


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATAOPS_")}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _spawn(barrier: Path, argv: list[str], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", WORKER, str(barrier), *argv], cwd=cwd,
                            env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _wait_ready(barrier: Path, procs: list[subprocess.Popen[str]], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while len(list(barrier.parent.glob(barrier.name + ".*.ready"))) < len(procs):
        for p in procs:
            if p.poll() is not None:
                raise AssertionError(f"worker died early: {p.communicate()}")
        assert time.monotonic() < deadline, "workers did not get ready"
        time.sleep(0.01)


def _race_argv(tmp_path: Path, content_dir: Path, actor: str, task_id: str) -> list[str]:
    return ["--store", f"sqlite:///{tmp_path / 'cli.db'}", "--content", str(content_dir),
            "--now", NOW, "--actor", actor, "task", "start", task_id, "--json"]


def test_python_m_runtime_cli_runs(tmp_path: Path, content_dir: Path) -> None:
    """The worker really is `python -m runtime.cli`: the plain module run works the same."""
    r = subprocess.run([sys.executable, "-m", "runtime.cli", "--store",
                        f"sqlite:///{tmp_path / 'x.db'}", "--content", str(content_dir),
                        "--now", NOW, "validate"], cwd=tmp_path, env=_env(),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("ok:")


def test_two_processes_race_task_start(cli: Any, tmp_path: Path, content_dir: Path) -> None:
    assert cli("bundle", "create", "vat-return", "--anchor", "2026-11-02").code == 0
    barrier = tmp_path / "go"
    procs = [_spawn(barrier, _race_argv(tmp_path, content_dir, f"p{i}", TASK), tmp_path)
             for i in range(2)]
    _wait_ready(barrier, procs)
    barrier.touch()
    results = [(p.wait(timeout=60), *p.communicate()) for p in procs]
    codes = sorted(code for code, _, _ in results)
    assert codes[0] == 0 and codes[1] in (3, 4), results
    winner = next(r for r in results if r[0] == 0)
    loser = next(r for r in results if r[0] != 0)
    assert loser[1] == ""
    lines = loser[2].strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), loser[2]
    assert TASK in lines[0]
    won = json.loads(winner[1])
    stored = cli("task", "show", TASK, "--json").json()
    assert stored == won and stored["version"] == 2 and stored["status"] == "in_progress"
    events = cli("audit", "log", "--entity", TASK, "--json").json()
    assert [e["action"] for e in events] == ["create", "start"]
    assert events[-1]["actor"] == f"p{results.index(winner)}"
    assert cli("audit", "verify").code == 0


ROUNDS = 10


def test_many_rounds_of_racing_processes(cli: Any, tmp_path: Path, content_dir: Path) -> None:
    """ROUNDS pairs, all started (and imported) up front, each pair released by its own barrier
    file one round after another: every round has exactly one winner."""
    task_ids = []
    for i in range(ROUNDS):
        anchor = date(2026, 12, 1 + i).isoformat()
        assert cli("bundle", "create", "vat-return", "--anchor", anchor).code == 0
        task_ids.append(f"vat-return/{anchor}/file-return")
    pairs = []
    for i, task_id in enumerate(task_ids):
        barrier = tmp_path / f"go-{i}"
        pairs.append((barrier, [_spawn(barrier, _race_argv(tmp_path, content_dir, f"r{i}p{j}",
                                                           task_id), tmp_path)
                                for j in range(2)]))
    try:
        for barrier, procs in pairs:
            _wait_ready(barrier, procs)
        outcomes = []
        for barrier, procs in pairs:
            barrier.touch()
            outcomes.append([(p.wait(timeout=60), *p.communicate()) for p in procs])
    finally:
        for _, procs in pairs:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait()
    wins = 0
    for i, results in enumerate(outcomes):
        codes = sorted(code for code, _, _ in results)
        assert codes[0] == 0 and codes[1] in (3, 4), (i, results)
        wins += codes.count(0)
        loser = next(r for r in results if r[0] != 0)
        assert loser[2].startswith("error: ") and len(loser[2].strip().splitlines()) == 1
    assert wins == ROUNDS
    for task_id in task_ids:
        t = cli("task", "show", task_id, "--json").json()
        assert t["status"] == "in_progress" and t["version"] == 2
        actions = [e["action"] for e in cli("audit", "log", "--entity", task_id, "--json").json()]
        assert actions == ["create", "start"]
    assert cli("audit", "verify").code == 0
