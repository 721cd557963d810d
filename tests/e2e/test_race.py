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
from runtime.engine.uow import UnitOfWork
from runtime.errors import ConflictError, TransitionRejected
from runtime.model import Bundle, Task, TaskStatus
from runtime.model.common import utc
from runtime.store.sqlite import SqliteStore
from tests.conftest import SHARED_KINDS, need_server
from tests.helpers import bundles, log_of, reminders, verified

REPO = Path(__file__).resolve().parents[2]
NOW = "2026-11-25T08:00:00+00:00"
TASK = "vat-return/2026-11-02/file-return"


def everything(store: SqliteStore) -> tuple[Any, ...]:
    return (tuple(bundles(store)),
            tuple(t for b in bundles(store) for t in store.tasks_of(b.bundle_id)),
            tuple(log_of(store)), tuple(reminders(store)))


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
    uow = UnitOfWork(a)
    won = uow.update(seen_a, {"assignee": "a"}, "a takes it", action="assign")
    uow.commit()
    before = everything(b.store)  # b's connection sees a's commit
    assert b.store.get(Task, TASK) == won
    lost = UnitOfWork(b)
    lost.update(seen_b, {"assignee": "b"}, "b takes it", action="assign")
    with pytest.raises(ConflictError) as info:
        lost.commit()
    assert TASK in str(info.value)
    assert everything(b.store) == before
    assert everything(a.store) == before


def test_a_lost_race_in_one_command_writes_none_of_it(two: tuple[Services, Services]) -> None:
    """The loser's command would also have written its bundle and a reminder: none of them is
    written when its task update conflicts (one transaction)."""
    a, b = two
    stale = b.store.get(Task, TASK)
    bundle = b.store.get(Bundle, "vat-return/2026-11-02")
    engine.fire_task(a, TASK, "start")
    before = everything(b.store)
    uow = UnitOfWork(b)
    uow.update(bundle, {"title": "renamed"}, "renamed", action="rename")  # would succeed alone
    uow.update(stale, {"assignee": "b"}, "b", action="assign")  # lost
    with pytest.raises(ConflictError):
        uow.commit()
    assert everything(b.store) == before
    assert b.store.get(Bundle, "vat-return/2026-11-02").title == bundle.title


class _RaceAfterLoad:
    """A store proxy that lets another writer commit right after this one loaded the task's
    bundle (the last read before a command writes): a lost race, forced deterministically,
    ``times`` times in a row."""

    def __init__(self, inner: SqliteStore, rival: Any, times: int = 1) -> None:
        self._inner, self._rival, self._left = inner, rival, times

    def get(self, kind: type, record_id: str) -> Any:
        result = self._inner.get(kind, record_id)
        if kind is Bundle and self._left:
            self._left -= 1
            self._rival()
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def _racing(b: Services, rival: Any, times: int = 1) -> Services:
    return Services(_RaceAfterLoad(b.store, rival, times), b.clock, "b",  # type: ignore[arg-type]
                    b.artifacts, b.content_loader)


def test_a_lost_race_is_rerun_and_the_guards_judge_the_fresh_record(
        two: tuple[Services, Services]) -> None:
    """b loads the task, a starts it first: b's start is re-run on the fresh record, which the
    machine refuses (it is in progress already); nothing of b's is written."""
    a, b = two
    racing = _racing(b, lambda: engine.fire_task(a, TASK, "start"))
    with pytest.raises(TransitionRejected) as info:
        engine.fire_task(racing, TASK, "start")
    assert "in_progress" in str(info.value)
    log = log_of(b.store, entity_id=TASK)
    assert [(e.actor, e.action) for e in log] == [("a", "create"), ("a", "start")]
    verified(b.store)


def test_a_lost_race_that_still_applies_succeeds_on_the_rerun(
        two: tuple[Services, Services]) -> None:
    a, b = two
    racing = _racing(b, lambda: engine.fire_task(a, TASK, "start"))
    done = engine.fire_task(racing, TASK, "cancel", reason="not needed")
    assert done.status == TaskStatus.CANCELLED and done.version == 3
    log = log_of(b.store, entity_id=TASK)
    assert [(e.actor, e.action) for e in log] == [("a", "create"), ("a", "start"), ("b", "cancel")]
    bundle = b.store.get(Bundle, "vat-return/2026-11-02")
    assert sum(p.open_tasks for p in bundle.phases) == len(b.store.tasks_of(bundle.bundle_id)) - 1
    verified(b.store)


def test_a_race_lost_on_every_retry_is_a_conflict_and_changes_nothing(
        two: tuple[Services, Services]) -> None:
    from runtime.engine.uow import RETRIES

    a, b = two
    n = iter(range(100))
    racing = _racing(b, lambda: engine.assign_task(a, TASK, f"rival-{next(n)}"), times=RETRIES)
    with pytest.raises(ConflictError):
        engine.fire_task(racing, TASK, "start")
    after = b.store.get(Task, TASK)
    assert after.status == TaskStatus.TODO and after.assignee == f"rival-{RETRIES - 1}"
    assert {e.actor for e in log_of(b.store, entity_id=TASK)} == {"a"}
    verified(b.store)


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


def _race_argv(url: str, content_dir: Path, actor: str, task_id: str) -> list[str]:
    return ["--store", url, "--content", str(content_dir),
            "--now", NOW, "--actor", actor, "task", "start", task_id, "--json"]


@pytest.fixture(params=SHARED_KINDS)
def shared(request: pytest.FixtureRequest, cli: Any, tmp_path: Path) -> Any:
    """``cli`` bound to a store several processes can share (a SQLite file, a PostgreSQL
    schema); ``.url`` is its URL."""
    from tests.conftest import store_url

    need_server(request, request.param)
    url = store_url(request.param, tmp_path, "cli")

    def run(*argv: str, **kw: Any) -> Any:
        return cli(*argv, store=url, **kw)

    run.url = url  # type: ignore[attr-defined]
    return run


def test_python_m_runtime_cli_runs(tmp_path: Path, content_dir: Path) -> None:
    """The worker really is `python -m runtime.cli`: the plain module run works the same."""
    r = subprocess.run([sys.executable, "-m", "runtime.cli", "--store",
                        f"sqlite:///{tmp_path / 'x.db'}", "--content", str(content_dir),
                        "--now", NOW, "validate"], cwd=tmp_path, env=_env(),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("ok:")


def test_two_processes_race_task_start(shared: Any, tmp_path: Path, content_dir: Path) -> None:
    cli = shared
    assert cli("bundle", "create", "vat-return", "--anchor", "2026-11-02").code == 0
    barrier = tmp_path / "go"
    procs = [_spawn(barrier, _race_argv(cli.url, content_dir, f"p{i}", TASK), tmp_path)
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


def test_many_rounds_of_racing_processes(shared: Any, tmp_path: Path, content_dir: Path) -> None:
    """ROUNDS pairs, all started (and imported) up front, each pair released by its own barrier
    file one round after another: every round has exactly one winner."""
    cli = shared
    task_ids = []
    for i in range(ROUNDS):
        anchor = date(2026, 12, 1 + i).isoformat()
        assert cli("bundle", "create", "vat-return", "--anchor", anchor).code == 0
        task_ids.append(f"vat-return/{anchor}/file-return")
    pairs = []
    for i, task_id in enumerate(task_ids):
        barrier = tmp_path / f"go-{i}"
        pairs.append((barrier, [_spawn(barrier, _race_argv(cli.url, content_dir, f"r{i}p{j}",
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
