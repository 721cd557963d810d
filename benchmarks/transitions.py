"""Task commands through the engine against raw SQLite, and the shared machine against
`transitions`' own ways of holding many tasks.

Part 1, engine on sqlite. A store is seeded with 1k, 10k or 100k tasks (20-task bundles made
by ``create_bundle``) and copied fresh for every run. An engine command loads the task, its
bundle and the bundle's tasks, runs the shared machine (guards, effects), and commits the task
and its audit event (and the bundle, when its stage or status moves: never for these
commands) in one IMMEDIATE transaction. Two workloads run back to back on the same copy:

* lifecycle: ``fire_task`` start on K random tasks, then wait on the same K, then resume
  (the same mix, 1/3 each, at every store size);
* assign: ``assign_task`` on K random tasks.

The baseline replays the same commands with plain ``sqlite3`` on a fresh copy of the same
seeded file, same WAL and ``synchronous``: per command one IMMEDIATE transaction that UPDATEs
the task row (doc, version, index columns; the doc is the task's JSON as the engine wrote it)
and INSERTs the audit row the engine wrote (same doc, hash, sizes). Nothing is read.

Part 2, machines. N plain task objects (a ``task_id`` and a ``state``) are held, and the
task spec's states and transitions (with the spec's guards and effects as conditions and
``after`` callbacks, shared by all) run three ways:

* (a) ours: the one shared ``SpecMachine``; per command ``fire(state, trigger, ctx, id)``
  (which asks the guards, puts the state on the machine's cursor and triggers) and the new
  state is stored on the task;
* (b) one ``transitions.Machine`` per task object;
* (c) one ``Machine`` with every task object attached by ``add_model``.

For each N: setup time (building the machine(s) and attaching the tasks), time per trigger
(wait and resume, alternating over the N tasks in a shuffled order, after an untimed start),
the cost of attaching one more task as a runtime that loads a task per command would (none for
(a); a new Machine for (b); ``add_model`` + ``remove_model`` with N attached for (c)), and the
memory retained per task (tracemalloc, in a separate untimed pass; the task objects
themselves and the fixed cost of a shared machine are not counted).

    python benchmarks/transitions.py            # full run (several minutes, < 8 GB)
    python benchmarks/transitions.py --quick    # under a minute (samples where it says so)
    python benchmarks/transitions.py --profile  # also cProfile one engine run (sqlite, FULL)

Prints tables with ratios against the baselines measured in the same run; never asserts on
timings. Goals (from the issue): engine >= 0.50 x raw SQLite's commands/s at the same
``synchronous`` (FULL, the store's default, and NORMAL); the machine adds < 200 bytes per
loaded task; the cost per command flat from 1k to 100k tasks.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import os
import pstats
import random
import resource
import shutil
import sqlite3
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
# Run as a script, this folder is sys.path[0] and this file would shadow the `transitions`
# package it measures: drop the folder, put the repo root in.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from transitions import Machine  # noqa: E402

from runtime.clock import FixedClock  # noqa: E402
from runtime.content import Content  # noqa: E402
from runtime.engine import Services, assign_task, create_bundle, fire_task  # noqa: E402
from runtime.machines import EFFECTS, GUARDS, Context, SpecMachine, machine  # noqa: E402
from runtime.model import WorkflowDefinition  # noqa: E402
from runtime.store.sqlite import SqliteStore  # noqa: E402

TASKS_PER_BUNDLE = 20
START = date(2000, 1, 3)
NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
FOLLOW_UP = NOW + timedelta(days=7)
WAIT_ARGS = {"waiting_for": "the vendor's answer", "follow_up_at": FOLLOW_UP}
SIZES = (1_000, 10_000, 100_000)
WARM = 20  # untimed engine commands before each timed run (caches, statements, WAL)


# ---- the definition --------------------------------------------------------------------------


def definition() -> WorkflowDefinition:
    """A 20-task definition shaped like the shipped ones: phases, proofs, links, a business
    calendar (half the tasks use business-day offsets)."""
    phases = [{"phase_id": p, "title": p.title()} for p in ("plan", "build", "review", "ship")]
    tasks = []
    for i in range(TASKS_PER_BUNDLE):
        task: dict[str, object] = {
            "task_ref": f"step-{i:02d}",
            "title": f"Step {i:02d}: do the {i}th thing of the run",
            "phase": phases[i * len(phases) // TASKS_PER_BUNDLE]["phase_id"],
            "proof": [
                {"kind": "url", "label": "Evidence link", "pattern": r"^https://docs\.example\.com/"}
                if i % 3 == 0 else {"kind": "comment", "label": "Sign-off"}
            ],
            "instruction_doc_id": "doc-playbook",
            "instruction_step_id": f"s{i}",
            "systems": ["notion", "google-docs"][: 1 + i % 2],
            "validation": "Checked by a second person; links open; numbers add up",
            "tags": ["bench", f"group-{i % 4}"],
        }
        if i % 2:
            task["offset_business_days"] = i - TASKS_PER_BUNDLE
        else:
            task["offset_days"] = i - TASKS_PER_BUNDLE
        if i % 5 == 0:
            task["assignee"] = "reviewer"
        tasks.append(task)
    return WorkflowDefinition.model_validate({
        "template_id": "bench-tx",
        "version": 1,
        "title": "Benchmark workflow with twenty tasks",
        "timezone": "America/Chicago",
        "default_assignee": "editor",
        "source_doc_ids": ["doc-playbook"],
        "references": [{"label": "Archive", "url": "https://example.com/archive"}],
        "required_bundle_links": [{"key": "draft", "label": "Draft document", "required": True}],
        "reminders": {"at": "08:30", "overdue_repeats": 2},
        "business_calendar": {"country": "US"},
        "phases": phases,
        "tasks": tasks,
        "tags": ["bench"],
    })


def services(store: Any, wf: WorkflowDefinition) -> Services:
    content = Content(root=Path("."), workflows={wf.template_id: wf})
    return Services(store=store, clock=FixedClock(NOW), actor="bench",
                    content_loader=lambda: content)


def url(path: Path) -> str:
    return f"sqlite:///{path}"


# ---- part 1: engine commands against raw sqlite3 -----------------------------------------------


def seed(folder: Path, n_tasks: int, wf: WorkflowDefinition) -> tuple[Path, list[str], float]:
    """A closed store file with ``n_tasks`` tasks (and their creation audit events)."""
    path = folder / f"seed-{n_tasks}.db"
    store = SqliteStore(url(path), synchronous="NORMAL")
    svc = services(store, wf)
    t0 = time.perf_counter()
    for i in range(n_tasks // TASKS_PER_BUNDLE):
        create_bundle(svc, wf.template_id, START + timedelta(days=i))
    elapsed = time.perf_counter() - t0
    store.close()
    db = sqlite3.connect(path)
    ids = [r[0] for r in db.execute("SELECT task_id FROM tasks ORDER BY pos")]
    db.close()
    assert len(ids) == n_tasks, (len(ids), n_tasks)
    return path, ids, elapsed


@dataclass
class Workload:
    """The commands of one run: warm-up (untimed), lifecycle and assign (each timed)."""

    warm: list[str]
    lifecycle: list[tuple[str, str]]  # (trigger, task_id)
    assign: list[tuple[str, str]]  # (assignee, task_id)


def workload(ids: list[str], k: int, seed_: int = 7) -> Workload:
    rng = random.Random(seed_)
    picked = rng.sample(ids, k + WARM)
    warm, chosen = picked[:WARM], picked[WARM:]
    lifecycle = [(trig, t) for trig in ("start", "wait", "resume") for t in chosen]
    assign = [(f"user-{i % 7}", t) for i, t in enumerate(rng.choices(ids, k=k))]
    return Workload(warm, lifecycle, assign)


def engine_run(path: Path, sync: str, wl: Workload) -> dict[str, float]:
    store = SqliteStore(url(path), synchronous=sync)
    svc = services(store, definition())
    for t in wl.warm:
        assign_task(svc, t, "warm-up")
    out = {}
    gc.collect()
    t0 = time.perf_counter()
    for trig, t in wl.lifecycle:
        if trig == "wait":
            fire_task(svc, t, trig, **WAIT_ARGS)
        else:
            fire_task(svc, t, trig)
    out["lifecycle"] = time.perf_counter() - t0
    gc.collect()
    t0 = time.perf_counter()
    for who, t in wl.assign:
        assign_task(svc, t, who)
    out["assign"] = time.perf_counter() - t0
    store.close()
    return out


@dataclass
class Replay:
    """What raw sqlite3 writes, taken from the engine's own output: per command the task row
    (doc as the engine last wrote it for that task, with the command's version) and the audit
    row (exactly as the engine wrote it)."""

    warm: list[tuple[tuple[Any, ...], tuple[Any, ...]]] = field(default_factory=list)
    lifecycle: list[tuple[tuple[Any, ...], tuple[Any, ...]]] = field(default_factory=list)
    assign: list[tuple[tuple[Any, ...], tuple[Any, ...]]] = field(default_factory=list)
    task_doc_bytes: float = 0.0
    event_doc_bytes: float = 0.0


def replay_from(seed_path: Path, engine_path: Path, wl: Workload) -> Replay:
    db = sqlite3.connect(seed_path)
    seq0 = db.execute("SELECT coalesce(max(seq), 0) FROM audit_events").fetchone()[0]
    db.close()
    db = sqlite3.connect(engine_path)
    events = db.execute(
        "SELECT seq, event_id, entity_id, hash, doc FROM audit_events WHERE seq > ? ORDER BY seq",
        (seq0,),
    ).fetchall()
    rows = {r[0]: r[1:] for r in db.execute(
        "SELECT task_id, bundle_id, next_reminder_us, doc FROM tasks")}
    db.close()
    n_cmds = len(wl.warm) + len(wl.lifecycle) + len(wl.assign)
    if len(events) != n_cmds or any(e[2] not in rows for e in events):
        raise SystemExit(f"expected one task audit event per command ({n_cmds}), the engine "
                         f"wrote {len(events)}; the raw replay would not match")
    versions: dict[str, int] = {}
    cmds = []
    for seq, event_id, entity, hash_, doc in events:
        bundle_id, next_us, tdoc = rows[entity]
        old = versions.get(entity, 1)
        versions[entity] = old + 1
        cmds.append(((bundle_id, next_us, old + 1, tdoc, entity, old),
                     (seq, event_id, entity, hash_, doc)))
    w, lc = len(wl.warm), len(wl.lifecycle)
    rep = Replay(cmds[:w], cmds[w:w + lc], cmds[w + lc:])
    rep.task_doc_bytes = sum(len(c[0][3]) for c in cmds[w:]) / len(cmds[w:])
    rep.event_doc_bytes = sum(len(c[1][4]) for c in cmds[w:]) / len(cmds[w:])
    return rep


UPDATE_SQL = ("UPDATE tasks SET bundle_id = ?, next_reminder_us = ?, version = ?, doc = ? "
              "WHERE task_id = ? AND version = ?")
INSERT_SQL = "INSERT INTO audit_events (seq, event_id, entity_id, hash, doc) VALUES (?, ?, ?, ?, ?)"


def raw_run(path: Path, sync: str, rep: Replay) -> dict[str, float]:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(f"PRAGMA synchronous={sync}")
    ex = db.execute

    def play(cmds: list[tuple[tuple[Any, ...], tuple[Any, ...]]]) -> float:
        gc.collect()
        t0 = time.perf_counter()
        for upd, ins in cmds:
            ex("BEGIN IMMEDIATE")
            if ex(UPDATE_SQL, upd).rowcount != 1:
                raise SystemExit(f"raw replay: task {upd[4]} is not at version {upd[5]}")
            ex(INSERT_SQL, ins)
            ex("COMMIT")
        return time.perf_counter() - t0

    play(rep.warm)
    out = {"lifecycle": play(rep.lifecycle), "assign": play(rep.assign)}
    db.close()
    return out


@dataclass
class EngineResult:
    n_tasks: int
    sync: str
    k: int
    seed_s: float
    engine: dict[str, list[float]]
    raw: dict[str, list[float]]
    task_doc_bytes: float
    event_doc_bytes: float


def measure_engine(folder: Path, n_tasks: int, k: int, reps: int, syncs: tuple[str, ...],
                   log: Callable[[str], None]) -> list[EngineResult]:
    wf = definition()
    seed_path, ids, seed_s = seed(folder, n_tasks, wf)
    log(f"  seeded {n_tasks:,} tasks in {seed_s:.1f} s")
    wl = workload(ids, k)
    out = []
    for sync in syncs:
        eng: dict[str, list[float]] = {"lifecycle": [], "assign": []}
        raw: dict[str, list[float]] = {"lifecycle": [], "assign": []}
        rep = Replay()
        for r in range(reps):  # interleaved, so drift hits both alike
            e_path = folder / f"engine-{n_tasks}-{sync}-{r}.db"
            shutil.copyfile(seed_path, e_path)
            for key, v in engine_run(e_path, sync, wl).items():
                eng[key].append(v)
            rep = replay_from(seed_path, e_path, wl)
            e_path.unlink()
            r_path = folder / f"raw-{n_tasks}-{sync}-{r}.db"
            shutil.copyfile(seed_path, r_path)
            for key, v in raw_run(r_path, sync, rep).items():
                raw[key].append(v)
            for p in folder.glob(f"raw-{n_tasks}-{sync}-{r}.db*"):
                p.unlink()
        out.append(EngineResult(n_tasks, sync, k, seed_s, eng, raw,
                                rep.task_doc_bytes, rep.event_doc_bytes))
        log(f"  {sync}: done")
    seed_path.unlink()
    return out


def profile_engine(folder: Path, n_tasks: int, k: int, top: int = 15) -> str:
    """cProfile of the lifecycle and assign workloads on sqlite (FULL)."""
    wf = definition()
    seed_path, ids, _ = seed(folder, n_tasks, wf)
    wl = workload(ids, k)
    path = folder / "profile.db"
    shutil.copyfile(seed_path, path)
    prof = cProfile.Profile()
    prof.enable()
    times = engine_run(path, "FULL", wl)
    prof.disable()
    buf = io.StringIO()
    stats = pstats.Stats(prof, stream=buf)
    stats.strip_dirs().sort_stats("cumulative").print_stats(top)
    n = len(wl.lifecycle) + len(wl.assign)
    head = (f"cProfile, engine on sqlite FULL, {n_tasks:,} tasks, {n:,} timed commands "
            f"(+{WARM} warm-up), {(times['lifecycle'] + times['assign']) / n * 1e6:,.0f} us "
            f"per command under the profiler; top {top} by cumulative time:")
    return head + "\n" + buf.getvalue()


# ---- part 2: machines ------------------------------------------------------------------------


class TaskObj:
    """A loaded task as far as a state machine is concerned."""

    def __init__(self, i: int) -> None:
        self.task_id = f"bench-tx/2000-01-03/step-{i:07d}"
        self.state = "todo"


def spec_transitions() -> tuple[list[str], str, list[dict[str, Any]]]:
    """The task spec's states and transitions for a pure ``transitions.Machine``, with the
    spec's guards as conditions and its effects as ``after`` callbacks (one set of callables,
    shared by every machine)."""
    spec = machine("task").spec

    def cond(name: str) -> Callable[[Any], bool]:
        guard = GUARDS[name]
        return lambda event: not guard(event.kwargs["ctx"])

    def eff(name: str) -> Callable[[Any], None]:
        effect = EFFECTS[name]
        return lambda event: effect(event.kwargs["ctx"])

    trs = [{"trigger": t.trigger, "source": list(t.source), "dest": t.dest,
            "conditions": [cond(g) for g in t.guards], "after": [eff(e) for e in t.effects]}
           for t in spec.transitions]
    return spec.state_names, spec.initial, trs


STATES, INITIAL, TRANSITIONS = spec_transitions()


def new_machine(model: Any) -> Machine:
    return Machine(model=model, states=STATES, transitions=TRANSITIONS, initial=INITIAL,
                   auto_transitions=False, send_event=True)


class _IdentityList(list):  # type: ignore[type-arg]
    """A models list whose ``in`` is a set look-up: builds a machine with 100k attached models
    without ``add_model``'s O(n) ``model not in self.models`` scan (used only where a run says
    "extrapolated"; everything else about add_model runs as shipped)."""

    def __init__(self) -> None:
        super().__init__()
        self._ids: set[int] = set()

    def append(self, item: Any) -> None:
        super().append(item)
        self._ids.add(id(item))

    def __contains__(self, item: object) -> bool:
        return id(item) in self._ids


def ctx_for(obj: Any, trigger: str) -> Context:
    return Context(record=obj, now=NOW, actor="bench", args=WAIT_ARGS if trigger == "wait" else {})


class Variant:
    """How one approach attaches N tasks and fires a trigger on one of them."""

    name = ""

    def setup(self, objs: list[TaskObj], fast: bool = False) -> Any: ...

    def fire(self, obj: TaskObj, trigger: str) -> None: ...

    def attach_one(self, state: Any) -> float:
        """Seconds to attach (and detach) one more loaded task with N attached; -1: none."""
        return -1.0


class Shared(Variant):
    name = "(a) ours: one shared SpecMachine"

    def setup(self, objs: list[TaskObj], fast: bool = False) -> Any:
        self.sm = SpecMachine(machine("task").spec)
        return self.sm

    def fire(self, obj: TaskObj, trigger: str) -> None:
        obj.state = self.sm.fire(obj.state, trigger, ctx_for(obj, trigger), obj.task_id)


class PerTask(Variant):
    name = "(b) one transitions.Machine per task"

    def setup(self, objs: list[TaskObj], fast: bool = False) -> Any:
        return [new_machine(o) for o in objs]

    def fire(self, obj: TaskObj, trigger: str) -> None:
        obj.trigger(trigger, ctx=ctx_for(obj, trigger))  # type: ignore[attr-defined]

    def attach_one(self, state: Any) -> float:
        extra = [TaskObj(-i) for i in range(1, 51)]
        t0 = time.perf_counter()
        for o in extra:
            new_machine(o)
        return (time.perf_counter() - t0) / len(extra)


class AddModel(Variant):
    name = "(c) one Machine, add_model per task"

    def setup(self, objs: list[TaskObj], fast: bool = False) -> Any:
        m = new_machine(None)
        if fast:
            m.models = _IdentityList()
        for o in objs:
            m.add_model(o)
        if fast:
            m.models = list(m.models)
        return m

    def fire(self, obj: TaskObj, trigger: str) -> None:
        obj.trigger(trigger, ctx=ctx_for(obj, trigger))  # type: ignore[attr-defined]

    def attach_one(self, state: Any) -> float:
        m: Machine = state
        extra = [TaskObj(-i) for i in range(1, 21)]
        t0 = time.perf_counter()
        for o in extra:  # a runtime loading a task per command attaches and detaches it
            m.add_model(o)
            m.remove_model(o)
        return (time.perf_counter() - t0) / len(extra)


@dataclass
class MachineResult:
    variant: str
    n: int
    setup_s: float
    trigger_us: float
    attach_us: float
    bytes_per_task: float | None
    fixed_kb: float | None
    notes: list[str] = field(default_factory=list)


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def time_triggers(variant: Variant, objs: list[TaskObj], min_triggers: int) -> float:
    """us per trigger: an untimed start on every task, then wait/resume rounds in a fixed
    shuffled order (an even number of rounds, at least two)."""
    order = objs[:]
    random.Random(3).shuffle(order)
    fire = variant.fire
    for o in order:
        fire(o, "start")
    rounds = max(2, -(-min_triggers // len(objs)))
    rounds += rounds % 2
    gc.collect()
    t0 = time.perf_counter()
    for r in range(rounds):
        trig = "wait" if r % 2 == 0 else "resume"
        for o in order:
            fire(o, trig)
    elapsed = time.perf_counter() - t0
    assert all(o.state == "in_progress" for o in objs[:100])
    return elapsed / (rounds * len(objs)) * 1e6


def measure_memory(variant: Variant, n: int, fast: bool) -> tuple[float, float]:
    """(bytes retained per task, fixed KB) by tracemalloc: after building the shared part with
    no task, then after attaching N tasks and running start, wait, resume on each."""
    gc.collect()
    objs = [TaskObj(i) for i in range(n)]
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        if isinstance(variant, Shared):
            state = variant.setup([])  # the shared part; nothing per task
            fixed = tracemalloc.get_traced_memory()[0] - base
            base += fixed
        elif isinstance(variant, AddModel):
            m = new_machine(None)
            fixed = tracemalloc.get_traced_memory()[0] - base
            base += fixed
            if fast:
                m.models = _IdentityList()
            for o in objs:
                m.add_model(o)
            if fast:
                m.models = list(m.models)
            state = m
        else:
            fixed = 0
            state = variant.setup(objs)
        for trig in ("start", "wait", "resume"):
            for o in objs:
                variant.fire(o, trig)
        gc.collect()
        retained = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    del state, objs
    gc.collect()
    return retained / n, fixed / 1024


def measure_machine(variant: Variant, n: int, *, min_triggers: int, memory: bool,
                    fast_setup: bool, log: Callable[[str], None]) -> MachineResult:
    notes = []
    gc.collect()
    objs = [TaskObj(i) for i in range(n)]
    gc.collect()
    rss0 = rss_mb()
    t0 = time.perf_counter()
    state = variant.setup(objs, fast=fast_setup)
    setup_s = time.perf_counter() - t0
    if fast_setup:
        # add_model's cost grows with the models attached (a list scan): setup is estimated as
        # N x (mean of one add at 0 and at N attached), both measured.
        probe = new_machine(None)
        extra = [TaskObj(-i) for i in range(1, 201)]
        t1 = time.perf_counter()
        for o in extra:
            probe.add_model(o)
        at0 = (time.perf_counter() - t1) / len(extra)
        extra = [TaskObj(-i) for i in range(1, 51)]
        t1 = time.perf_counter()
        for o in extra:
            state.add_model(o)
        atn = (time.perf_counter() - t1) / len(extra)
        for o in extra:
            state.remove_model(o)
        setup_s = n * (at0 + atn) / 2
        notes.append(f"setup EXTRAPOLATED: {n:,} x mean(add_model at 0 attached = "
                     f"{at0 * 1e6:,.0f} us, at {n:,} = {atn * 1e6:,.0f} us); the {n:,} models "
                     f"were attached with a set look-up in place of add_model's list scan")
    rss_setup = rss_mb() - rss0
    trigger_us = time_triggers(variant, objs, min_triggers)
    attach = variant.attach_one(state)
    del state, objs
    gc.collect()
    bytes_per_task = fixed_kb = None
    if memory:
        bytes_per_task, fixed_kb = measure_memory(variant, n, fast_setup)
    else:
        notes.append(f"no tracemalloc pass at {n:,} (RSS grew {rss_setup / n * 2**20:,.0f} "
                     f"B/task during setup)")
    log(f"  {variant.name}, {n:,}: setup {setup_s:.1f} s, {trigger_us:.1f} us/trigger, "
        f"peak RSS {peak_rss_mb():,.0f} MB")
    return MachineResult(variant.name, n, setup_s, trigger_us,
                         attach * 1e6 if attach >= 0 else -1.0, bytes_per_task, fixed_kb, notes)


def extrapolate(base: MachineResult, n: int, what: str) -> MachineResult:
    """A row for ``n`` scaled linearly from a measured row (setup x n/base.n; the rest as is)."""
    return MachineResult(
        base.variant, n, base.setup_s * n / base.n, base.trigger_us, base.attach_us,
        base.bytes_per_task, base.fixed_kb,
        [f"EXTRAPOLATED from the {base.n:,}-task run ({what})"],
    )


# ---- reporting -------------------------------------------------------------------------------


def table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = "  ".join("{:<%d}" % w for w in widths)
    print(line.format(*header))
    print(line.format(*("-" * w for w in widths)))
    for row in rows:
        print(line.format(*row))


def report_engine(results: list[EngineResult]) -> None:
    rows = []
    for r in results:
        for wl in ("lifecycle", "assign"):
            n_cmds = 3 * r.k if wl == "lifecycle" else r.k
            raw_best, eng_best = min(r.raw[wl]), min(r.engine[wl])
            raw_cps, eng_cps = n_cmds / raw_best, n_cmds / eng_best
            spread = max(max(ts) / min(ts) - 1 for ts in (r.raw[wl], r.engine[wl]))
            rows.append((f"{r.n_tasks:,}", r.sync, wl, f"{n_cmds:,}", f"{raw_cps:,.0f}",
                         f"{eng_cps:,.0f}", f"{eng_best / n_cmds * 1e6:,.0f}",
                         f"{(eng_best - raw_best) / n_cmds * 1e6:,.0f}",
                         f"{eng_cps / raw_cps:.2f}", f"{spread * 100:.0f}%"))
    table(("tasks", "sync", "workload", "commands", "raw cmd/s", "engine cmd/s", "engine us/cmd",
           "engine - raw us/cmd", "engine/raw", "spread"), rows)
    r0 = results[0]
    print(f"(payload per command: task doc {r0.task_doc_bytes:,.0f} B + audit doc "
          f"{r0.event_doc_bytes:,.0f} B; spread = slowest vs best repetition, worse of the two)")


def verdict_engine(results: list[EngineResult]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteStore(url(Path(tmp) / "d.db"))
        sync_default = store.synchronous
        store.close()
    print(f"goal: the store's default synchronous is FULL: it is {sync_default} -> "
          f"{'met' if sync_default == 'FULL' else 'NOT met'}")
    for r in results:
        for wl in ("lifecycle", "assign"):
            ratio = min(r.raw[wl]) / min(r.engine[wl])
            print(f"goal: engine >= 0.50 x raw, {r.n_tasks:>7,} tasks, {r.sync:<6} {wl:<9}: "
                  f"{ratio:.2f} -> {'met' if ratio >= 0.5 else 'NOT met'}")
    sizes = sorted({r.n_tasks for r in results})
    if len(sizes) > 1:
        for sync in sorted({r.sync for r in results}):
            for wl in ("lifecycle", "assign"):
                per = {r.n_tasks: min(r.engine[wl]) / (3 * r.k if wl == "lifecycle" else r.k)
                       for r in results if r.sync == sync}
                raw = {r.n_tasks: min(r.raw[wl]) / (3 * r.k if wl == "lifecycle" else r.k)
                       for r in results if r.sync == sync}
                lo, hi = sizes[0], sizes[-1]
                g, graw = per[hi] / per[lo], raw[hi] / raw[lo]
                print(f"goal: engine cost per command flat ({sync} {wl}): {hi:,} vs {lo:,} "
                      f"tasks = {g:.2f}x (raw: {graw:.2f}x) -> "
                      f"{'met' if g <= 1.25 else 'NOT met'} (flat = within 1.25x)")


def report_machines(results: list[MachineResult]) -> None:
    ours = {r.n: r for r in results if r.variant.startswith("(a)")}
    rows = []
    for r in results:
        o = ours.get(r.n)
        ratio = f"{r.trigger_us / o.trigger_us:.2f}" if o else "-"
        mem = "-" if r.bytes_per_task is None else f"{r.bytes_per_task:,.0f}"
        fixed = "-" if r.fixed_kb is None else f"{r.fixed_kb:,.0f}"
        attach = "none" if r.attach_us < 0 else f"{r.attach_us:,.0f}"
        mark = " *" if r.notes and any("EXTRAPOLATED" in n for n in r.notes) else ""
        rows.append((r.variant, f"{r.n:,}{mark}", f"{r.setup_s:,.2f}",
                     f"{r.setup_s / r.n * 1e6:,.1f}", f"{r.trigger_us:,.1f}", ratio, attach, mem,
                     fixed))
    table(("variant", "tasks", "setup s", "setup us/task", "us/trigger", "trigger vs (a)",
           "attach 1 more us", "retained B/task", "fixed KB"), rows)
    for r in results:
        for n in r.notes:
            print(f"  * {r.variant}, {r.n:,}: {n}")


def verdict_machines(results: list[MachineResult]) -> None:
    ours = sorted((r for r in results if r.variant.startswith("(a)")), key=lambda r: r.n)
    for r in ours:
        if r.bytes_per_task is not None:
            print(f"goal: machine adds < 200 B per loaded task, {r.n:>7,} tasks: "
                  f"{r.bytes_per_task:,.1f} B -> {'met' if r.bytes_per_task < 200 else 'NOT met'}")
    if len(ours) > 1:
        g = ours[-1].trigger_us / ours[0].trigger_us
        print(f"goal: trigger cost flat, ours {ours[-1].n:,} vs {ours[0].n:,} tasks = {g:.2f}x -> "
              f"{'met' if g <= 1.25 else 'NOT met'} (flat = within 1.25x)")
    for base in ("(b)", "(c)"):
        for r in results:
            if r.variant.startswith(base):
                o = next((x for x in ours if x.n == r.n), None)
                if o is None:
                    continue
                mem = ("" if r.bytes_per_task is None or o.bytes_per_task is None else
                       f", memory {r.bytes_per_task:,.0f} vs {o.bytes_per_task:,.0f} B/task")
                print(f"ours vs {base} at {r.n:>7,}: trigger {o.trigger_us / r.trigger_us:.2f}x "
                      f"its time, setup {o.setup_s / r.setup_s:.5f}x{mem}")


# ---- main ------------------------------------------------------------------------------------


@contextmanager
def section(title: str) -> Iterator[None]:
    print(title)
    print()
    t0 = time.perf_counter()
    yield
    print(f"\n({title.split(':')[0]}: {time.perf_counter() - t0:.1f} s)\n", flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true",
                   help="a run under a minute: smaller samples, extrapolates where it says so")
    p.add_argument("--profile", action="store_true",
                   help="also print a cProfile of engine commands on sqlite (FULL)")
    p.add_argument("--skip-engine", action="store_true", help="machines only")
    p.add_argument("--skip-machines", action="store_true", help="engine only")
    p.add_argument("--dir", help="folder for the database files (default: a new temp folder)")
    args = p.parse_args(argv)
    quick = args.quick
    reps = 1 if quick else 3
    k = 300 if quick else 1000  # lifecycle: 3k commands; assign: k commands
    engine_sizes = (1_000, 10_000) if quick else SIZES
    min_triggers = 20_000 if quick else 100_000

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    t_all = time.perf_counter()
    print(f"python {sys.version.split()[0]}, sqlite {sqlite3.sqlite_version}, transitions "
          f"{sys.modules['transitions'].__version__}, {os.cpu_count()} CPUs"
          f"{', QUICK run' if quick else ''}")
    print()
    with tempfile.TemporaryDirectory(prefix="dataops-bench-tx-", dir=args.dir) as tmp:
        folder = Path(tmp)
        if not args.skip_engine:
            with section(
                f"engine: commands/s on sqlite against raw sqlite3 (same two writes per "
                f"transaction), {TASKS_PER_BUNDLE}-task bundles, WAL, best of {reps}, "
                f"db folder {folder}"
            ):
                results: list[EngineResult] = []
                for n in engine_sizes:
                    log(f"engine at {n:,} tasks")
                    results += measure_engine(folder, n, k, reps, ("FULL", "NORMAL"), log)
                report_engine(results)
                if quick:
                    print("(QUICK: 100k tasks not run; the full run has it)")
                print()
                verdict_engine(results)
        if not args.skip_machines:
            with section("machines: the shared SpecMachine against transitions' own ways, "
                         "plain task objects"):
                mres: list[MachineResult] = []
                for variant in (Shared(), PerTask(), AddModel()):
                    for n in SIZES:
                        log(f"machines: {variant.name} at {n:,}")
                        if isinstance(variant, PerTask) and quick and n == 100_000:
                            mres.append(extrapolate(mres[-1], n, "QUICK: setup x10; trigger, "
                                                    "attach and bytes per task as at 10k"))
                            continue
                        fast = isinstance(variant, AddModel) and n >= (10_000 if quick else 100_000)
                        mres.append(measure_machine(
                            variant, n, min_triggers=min_triggers,
                            memory=not (quick and n == 100_000 and not isinstance(variant, Shared)),
                            fast_setup=fast, log=log))
                report_machines(mres)
                print()
                verdict_machines(mres)
        if args.profile:
            with section("profile: where an engine command's time goes"):
                print(profile_engine(folder, 10_000, 300 if quick else 1000))
    print(f"(total {time.perf_counter() - t_all:.1f} s, peak RSS {peak_rss_mb():,.0f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
