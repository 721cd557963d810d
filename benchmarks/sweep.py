"""Reminder sweep at scale: 10k, 100k and 1M open tasks of which 1k are due, against bare SQL.

Each database holds N open tasks (20 per bundle, 50 definitions of the same shape, one bundle
per definition and anchor day) of which exactly 1,000 (the 50 bundles anchored on the sweep's
day) have their ``due`` reminder at or before the sweep instant; every other task's first
reminder is on a later day. Each due task fires exactly one reminder (no proof requirements,
so no ``missing_evidence``; its ``overdue`` repeats are on later days), so a sweep records and
delivers 1,000 reminders. The rows (schema v2: bundle, tasks and the first audit event of each)
are the ones ``engine.create_bundle`` writes (captured at its commit; checked against it for a
sample of bundles, modulo the random event IDs and the hashes over them) and are bulk-inserted
with plain ``sqlite3`` in a random order, so the due tasks are scattered over the table as if
created at different times.

Per size it times, in the same run:

* the bare indexed SQL the store's finding runs (plain ``sqlite3``, rows fetched, nothing
  decoded: the baseline of finding): ``SELECT bundle_id, doc FROM bundles WHERE
  next_reminder_us <= ? ORDER BY next_reminder_us, bundle_id LIMIT 1001`` and the same on
  ``tasks``;
* a full scan in Python: every task's doc read and its ``next_reminder_at`` compared as text;
* ``SqliteStore.due_for_reminders`` (finding, with JSON parsing into records);
* a whole sweep: ``record_due`` + ``deliver_pending`` into an in-memory sink, each repetition on
  a fresh (fsynced) copy of the database, for ``synchronous=FULL`` (the default) and ``NORMAL``.

    python benchmarks/sweep.py              # 10k, 100k and 1M tasks (several minutes)
    python benchmarks/sweep.py --quick      # 10k and 100k, under a minute
    python benchmarks/sweep.py --profile 100000   # cProfile of one sweep at 100k

Prints tables; never asserts on timings. Goal (from the issue): a whole sweep at 1M tasks within
2x of the same sweep at 10k, and under 50 ms of finding time at 1M.
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import gc
import os
import pstats
import random
import re
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
# Run as a script, this folder is sys.path[0], and benchmarks/transitions.py would shadow the
# `transitions` package the runtime imports: drop the folder, put the repo root in.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from runtime import engine  # noqa: E402
from runtime.clock import FixedClock  # noqa: E402
from runtime.engine import Services  # noqa: E402
from runtime.engine.reminders import SweepReport, deliver_pending, record_due  # noqa: E402
from runtime.model import Task, WorkflowDefinition, format_instant  # noqa: E402
from runtime.rules.reminders import local_instant  # noqa: E402
from runtime.store.base import micros  # noqa: E402
from runtime.store.memory import MemoryStore  # noqa: E402
from runtime.store.sqlite import SCHEMA, SCHEMA_VERSION, SqliteStore  # noqa: E402

TEMPLATES = 50
TASKS = 20
DUE = TEMPLATES * TASKS  # the bundles anchored on the sweep's day: 1,000 tasks
ZONE = "America/Chicago"
AT = dtime(8, 30)
TODAY = date(2026, 1, 5)
NOW = datetime(2026, 1, 5, 18, 0, tzinfo=UTC)  # 12:00 in Chicago: today's 08:30 has passed
CREATED = NOW - timedelta(days=30)
SENTINEL = date(2199, 7, 1)  # anchor of the template docs; appears nowhere else in a doc
BARE_SQL = tuple(  # what SqliteStore.due_for_reminders(at, 1000) runs, without decoding
    f"SELECT {key}, doc FROM {table} WHERE next_reminder_us <= ? "
    f"ORDER BY next_reminder_us, {key} LIMIT 1001"
    for table, key in (("bundles", "bundle_id"), ("tasks", "task_id")))


# ---- the definitions -------------------------------------------------------------------------


def definition(j: int) -> WorkflowDefinition:
    """Definition ``j`` of 50 alike: 20 tasks due on the anchor day, no proof requirements (so
    each task fires one reminder on its day), two overdue repeats (on later days)."""
    phases = [{"phase_id": p, "title": p.title()} for p in ("plan", "build", "review", "ship")]
    tasks = []
    for i in range(TASKS):
        tasks.append({
            "task_ref": f"step-{i:02d}",
            "title": f"Step {i:02d}: do the {i}th thing of the run",
            "phase": phases[i * len(phases) // TASKS]["phase_id"],
            "offset_days": 0,
            "instruction_doc_id": "doc-playbook",
            "instruction_step_id": f"s{i}",
            "systems": ["notion", "google-docs"][: 1 + i % 2],
            "validation": "Checked by a second person; links open; numbers add up",
            "tags": ["bench", f"group-{i % 4}"],
            **({"assignee": "reviewer"} if i % 5 == 0 else {}),
        })
    return WorkflowDefinition.model_validate({
        "template_id": f"sweep-{j:02d}",
        "version": 1,
        "title": f"Sweep benchmark workflow {j:02d}",
        "timezone": ZONE,
        "default_assignee": "editor",
        "source_doc_ids": ["doc-playbook"],
        "references": [{"label": "Archive", "url": "https://example.com/archive"}],
        "reminders": {"at": "08:30", "overdue_repeats": 2},
        "phases": phases,
        "tasks": tasks,
        "tags": ["bench"],
    })


# ---- generating a database -------------------------------------------------------------------

_D, _N, _U = "\x00D\x00", "\x00N\x00", "\x00U\x00"
_HEX = re.compile(r"evt-[0-9a-f]{32}|[0-9a-f]{64}")
Row = tuple[object, ...]


@functools.cache
def _instantiate_bench() -> Any:
    """benchmarks/instantiate.py, loaded by path: the capture of what the store writes."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_instantiate", HERE / "instantiate.py")
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = bench
    spec.loader.exec_module(bench)
    return bench


def created_rows(wf: WorkflowDefinition, anchor: date) -> dict[str, list[Row]]:
    """The rows ``engine.create_bundle`` writes for ``wf`` at ``anchor`` (clock: CREATED), per
    table, as the SQLite store holds them (captured at the commit of a memory store)."""
    bench = _instantiate_bench()
    store = MemoryStore()
    cap = bench.Capture(store)
    engine.create_bundle(bench.services(store, wf, CREATED), wf.template_id, anchor)
    (changes,) = cap.log
    cmd = bench.raw_command(changes)
    assert not cmd.updates
    return {sql.split()[2]: rows for sql, rows in cmd.inserts}


class Templates:
    """Rows of ``create_bundle(definition(j), SENTINEL)`` with the anchor, the reminder instant
    and the event IDs made placeholders, so a bundle's 41 rows cost a few ``str.replace`` each
    instead of the engine. Every bundle keeps its template's hashes (``audit_hash``, ``hash``,
    ``prev_hash``, ``state_hash``: right sizes, but chains that would not verify; nothing in a
    sweep reads them)."""

    def __init__(self) -> None:
        self.wfs = [definition(j) for j in range(TEMPLATES)]
        at = local_instant(SENTINEL, AT, ZONE)
        nr, us = format_instant(at), micros(at)
        self.rows: list[dict[str, list[Row]]] = []
        for wf in self.wfs:
            rows = created_rows(wf, SENTINEL)
            assert [len(rows[t]) for t in ("bundles", "tasks", "audit_events")] == [1, TASKS, 1 + TASKS]
            assert rows["bundles"][0][3] is None  # no required links: bundles never fire
            assert all(r[4] == us and nr in str(r[7]) for r in rows["tasks"]), \
                "template task has an unexpected next_reminder_at"
            events = {str(r[0]): f"\x00E{i:02d}\x00" for i, r in enumerate(rows["audit_events"])}

            def blank(v: object, events: dict[str, str] = events) -> object:
                if v == us:
                    return _U
                if not isinstance(v, str):
                    return v
                v = v.replace(nr, _N).replace(SENTINEL.isoformat(), _D)
                for eid, mark in events.items():
                    v = v.replace(eid, mark)
                return v

            self.rows.append({t: [tuple(blank(v) for v in r) for r in rs] for t, rs in rows.items()})

    def rows_for(self, j: int, anchor: date, serial: int) -> dict[str, list[Row]]:
        """Bundle ``serial`` (unique in the database: its event IDs derive from it)."""
        d = anchor.isoformat()
        at = local_instant(anchor, AT, ZONE)
        nr, us = format_instant(at), micros(at)
        marks = [(f"\x00E{i:02d}\x00", f"evt-{serial:024x}{i:08x}") for i in range(1 + TASKS)]

        def fill(v: object) -> object:
            if v == _U:
                return us
            if not isinstance(v, str) or "\x00" not in v:
                return v
            v = v.replace(_D, d).replace(_N, nr)
            if "\x00E" in v:
                for mark, eid in marks:
                    v = v.replace(mark, eid)
            return v

        return {t: [tuple(fill(v) for v in r) for r in rs] for t, rs in self.rows[j].items()}

    def check(self, samples: Sequence[tuple[int, date]]) -> None:
        """The generated rows are what create_bundle writes, every column, but for the event
        IDs and the hashes (random IDs; hashes over them)."""

        def norm(rows: dict[str, list[Row]]) -> dict[str, list[Row]]:
            return {t: [tuple(_HEX.sub("#", v) if isinstance(v, str) else v for v in r)
                        for r in rs] for t, rs in rows.items()}

        for j, anchor in samples:
            real, made = norm(created_rows(self.wfs[j], anchor)), norm(self.rows_for(j, anchor, 0))
            for t in real:
                for a, b in zip(real[t], made[t], strict=True):
                    assert a == b, (j, anchor, t, "generated row differs from create_bundle's",
                                    [(x, y) for x, y in zip(a, b, strict=True) if x != y])


def generate(path: Path, n: int, tpl: Templates) -> float:
    """A database of ``n`` open tasks, 1,000 of them due at NOW. Returns the seconds it took."""
    if n % DUE or n < DUE:
        raise SystemExit(f"size {n}: give a multiple of {DUE}")
    t0 = time.perf_counter()
    per_template = n // DUE  # bundles (anchor days) per definition; day 0 is TODAY: due
    pairs = [(j, d) for j in range(TEMPLATES) for d in range(per_template)]
    random.Random(n).shuffle(pairs)  # creation order unrelated to due order
    tpl.check([(0, TODAY), (7, TODAY + timedelta(days=per_template - 1)),
               (13, date(2026, 3, 8)), (21, date(2026, 11, 1)),
               *[(j, TODAY + timedelta(days=d)) for j, d in random.Random(1).sample(pairs, 5)]])

    statements = [s.strip() for s in SCHEMA.split(";") if s.strip()]
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=OFF")
    db.execute("PRAGMA synchronous=OFF")
    db.execute("PRAGMA cache_size=-262144")  # 256 MB while loading
    db.execute("BEGIN")
    for s in statements:
        if s.startswith("CREATE TABLE"):
            db.execute(s)
    db.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
    sql = {t: f"INSERT INTO {t} VALUES ({', '.join('?' * w)})" if t != "tasks" else
           f"INSERT INTO tasks (task_id, bundle_id, status, assignee, next_reminder_us, position, "
           f"version, doc) VALUES ({', '.join('?' * w)})"
           for t, w in (("bundles", 6), ("tasks", 8), ("audit_events", 6))}

    for start in range(0, len(pairs), 1000):
        chunk: dict[str, list[Row]] = {t: [] for t in sql}
        for serial, (j, d) in enumerate(pairs[start:start + 1000], start):
            for t, rows in tpl.rows_for(j, TODAY + timedelta(days=d), serial).items():
                chunk[t] += rows
        for t, rows in chunk.items():
            db.executemany(sql[t], rows)
    db.execute("COMMIT")
    for s in statements:  # indexes after the rows: a sorted build, much faster than per row
        if s.startswith("CREATE INDEX"):
            db.execute(s)
    due = db.execute("SELECT count(*) FROM tasks WHERE next_reminder_us <= ?", (micros(NOW),)).fetchone()[0]
    total = db.execute("SELECT count(*) FROM tasks").fetchone()[0]
    events = db.execute("SELECT count(*) FROM audit_events").fetchone()[0]
    assert (due, total, events) == (DUE, n, n + n // TASKS), (due, total, events)
    db.execute("PRAGMA journal_mode=WAL")  # what the store uses; persistent in the file
    db.close()
    fsync_file(path)
    return time.perf_counter() - t0


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fresh_copy(src: Path, dst: Path) -> None:
    """A copy of ``src`` on disk (fsynced, so its write-back does not land in a timed fsync)."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{dst}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(src, dst)
    fsync_file(dst)


# ---- what is measured ------------------------------------------------------------------------


class MemorySink:
    """Keeps every payload: the cheapest possible sink."""

    url = "memory://bench"

    def __init__(self) -> None:
        self.payloads: list[dict[str, Any]] = []

    def deliver(self, payload: dict[str, Any]) -> None:
        self.payloads.append(payload)

    def close(self) -> None:
        pass


def bare_query(db: sqlite3.Connection) -> float:
    t = micros(NOW)
    t0 = time.perf_counter()
    rows = [row for sql in BARE_SQL for row in db.execute(sql, (t,)).fetchall()]
    elapsed = time.perf_counter() - t0
    assert len(rows) == DUE, len(rows)
    return elapsed


def full_scan(db: sqlite3.Connection) -> float:
    """Every task's doc, its next_reminder_at compared as text (UTC ISO strings sort by time)."""
    now = NOW.isoformat()
    key = '"next_reminder_at":"'
    t0 = time.perf_counter()
    due = []
    for (doc,) in db.execute("SELECT doc FROM tasks"):
        i = doc.find(key)
        if i >= 0:
            i += len(key)
            if doc[i:doc.index('"', i)] <= now:
                due.append(doc)
    elapsed = time.perf_counter() - t0
    assert len(due) == DUE, len(due)
    return elapsed


def store_find(store: SqliteStore) -> float:
    t0 = time.perf_counter()
    found = store.due_for_reminders(NOW, 1_000).items  # record_due's page size
    elapsed = time.perf_counter() - t0
    assert len(found) == DUE and all(isinstance(r, Task) for r in found), len(found)
    return elapsed


def open_services(url: str, sync: str) -> tuple[SqliteStore, Services, list[float]]:
    """A store with its ``due_for_reminders`` timed (the sweep's finding time)."""
    store = SqliteStore(url, synchronous=sync)
    finds: list[float] = []
    inner = store.due_for_reminders

    def timed(at: datetime, limit: int, cursor: str | None = None) -> Any:
        t0 = time.perf_counter()
        out = inner(at, limit, cursor=cursor)
        finds.append(time.perf_counter() - t0)
        return out

    store.due_for_reminders = timed  # type: ignore[method-assign]
    svc = Services(store=store, clock=FixedClock(NOW), actor="bench")
    return store, svc, finds


def one_sweep(src: Path, work: Path, sync: str,
              profile: cProfile.Profile | None = None) -> dict[str, float]:
    fresh_copy(src, work)
    store, svc, finds = open_services(f"sqlite:///{work}", sync)
    sink = MemorySink()
    report = SweepReport()
    gc.collect()
    if profile is not None:
        profile.enable()
    t0 = time.perf_counter()
    record_due(svc, NOW, report=report)
    t1 = time.perf_counter()
    deliver_pending(svc, [sink], NOW, report=report)
    t2 = time.perf_counter()
    if profile is not None:
        profile.disable()
    assert report.found == DUE and len(report.recorded) == DUE, report.line()
    assert len(report.delivered) == DUE and len(sink.payloads) == DUE, report.line()
    assert not report.failed and not report.retried and not report.skipped, report.line()
    del store.due_for_reminders  # the real method again, untimed
    assert store.due_for_reminders(NOW, 10_000).items == [], "a second sweep would find something"
    store.close()
    return {"find": sum(finds), "pages": len(finds), "record": t1 - t0, "deliver": t2 - t1, "sweep": t2 - t0,
            "recorded": len(report.recorded), "delivered": len(report.delivered)}


# ---- running ---------------------------------------------------------------------------------

Results = dict[str, Any]


def measure(sizes: list[int], srcs: dict[int, Path], folder: Path,
            reps: dict[str, int]) -> list[Results]:
    """Every measurement interleaved over the sizes (and modes), so load drift on a shared
    machine hits them alike."""
    res: dict[int, Results] = {n: {"n": n, "size_mb": srcs[n].stat().st_size / 1e6, "bare": [],
                                   "scan": [], "find": [], "FULL": [], "NORMAL": []} for n in sizes}
    plains, stores = {}, {}
    for n in sizes:  # reads run on their own copy, opened once (warm, like a running daemon)
        reads = folder / f"reads-{n}.db"
        fresh_copy(srcs[n], reads)
        plains[n] = sqlite3.connect(reads)
        res[n]["plan"] = "; ".join(
            " / ".join(r[3] for r in plains[n].execute("EXPLAIN QUERY PLAN " + sql, (0,)))
            for sql in BARE_SQL)
        bare_query(plains[n])
        stores[n] = SqliteStore(f"sqlite:///{reads}")
        store_find(stores[n])
    for what, once in (("bare", lambda n: bare_query(plains[n])),
                       ("scan", lambda n: full_scan(plains[n])),
                       ("find", lambda n: store_find(stores[n]))):
        for _ in range(reps[what]):
            for n in sizes:
                gc.collect()
                res[n][what].append(once(n))
    for n in sizes:
        plains[n].close()
        stores[n].close()
        for f in folder.glob(f"reads-{n}.db*"):
            f.unlink()
    for rep in range(reps["sweep"]):
        for sync in ("FULL", "NORMAL"):
            for n in sizes:
                res[n][sync].append(one_sweep(srcs[n], folder / "work.db", sync))
        print(f"  sweep repetition {rep + 1} of {reps['sweep']} done", flush=True)
    return [res[n] for n in sizes]


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:,.1f}" if seconds < 10 else f"{seconds * 1e3:,.0f}"


def spread(ts: Sequence[float]) -> str:
    return f"{(max(ts) - min(ts)) / min(ts) * 100:.0f}%" if len(ts) > 1 else "-"


def print_table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> None:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, tuple("-" * w for w in widths), *rows]:
        cells = [f"{c:<{w}}" if i == 0 else f"{c:>{w}}"
                 for i, (c, w) in enumerate(zip(row, widths, strict=True))]
        print("  ".join(cells).rstrip())


def best(runs: list[dict[str, float]], key: str) -> float:
    return min(r[key] for r in runs)


def report(results: list[Results]) -> None:
    base = results[0]
    n0 = f"{base['n']:,}"

    print("finding 1,000 due tasks (ms, best of reps; ratios against baselines of the same size)")
    rows: list[tuple[str, ...]] = []
    for r in results:
        bare, scan, find = min(r["bare"]), min(r["scan"]), min(r["find"])
        rows.append((f"{r['n']:,}", f"{r['size_mb']:,.0f}", ms(bare), ms(scan), ms(find),
                     f"{find / bare:.1f}x", f"{scan / find:.1f}x",
                     f"{find / min(base['find']):.2f}", spread(r["find"])))
    print_table(("tasks", "db MB", "bare SQL", "full scan", "due_for_reminders",
                 "find/bare", "scan/find", f"find/find({n0})", "find spread"), rows)
    print()

    for sync in ("FULL", "NORMAL"):
        s0 = best(base[sync], "sweep")
        print(f"whole sweep, synchronous={sync} (record_due + deliver_pending of 1,000 reminders "
              f"to a memory sink; ms, best of reps unless median, fresh DB copy each)")
        rows = []
        for r in results:
            runs = r[sync]
            sw = best(runs, "sweep")
            find_in = best(runs, "find")
            med = statistics.median(x["sweep"] for x in runs)
            rows.append((f"{r['n']:,}", ms(find_in), ms(best(runs, "record")),
                         ms(best(runs, "deliver")), ms(sw), ms(med), f"{runs[0]['recorded']:,}",
                         f"{runs[0]['delivered']:,}", f"{sw / s0:.2f}",
                         f"{find_in / min(r['bare']):.1f}x", f"{sw / min(r['scan']):.2f}",
                         spread([x["sweep"] for x in runs])))
        print_table(("tasks", "finding", "record_due", "deliver", "sweep", "sweep median", "recorded",
                     "delivered", f"sweep/sweep({n0})", "finding/bare", "sweep/full scan",
                     "sweep spread"), rows)
        print()

    pages = results[-1]["FULL"][0]["pages"]
    print(f"finding = due_for_reminders inside the sweep (fresh connection; {pages} call(s): "
          f"record_due reads pages of 1,000 until the store says no more are due); record_due "
          f"includes it")
    print(f"query plans of the bare SQL (bundles; tasks): {results[-1]['plan']}")
    print()
    last = results[-1]
    for sync in ("FULL", "NORMAL"):
        ratio = best(last[sync], "sweep") / best(base[sync], "sweep")
        print(f"goal: sweep({last['n']:,}) within 2x of sweep({base['n']:,}), synchronous={sync}: "
              f"{ratio:.2f}x -> {'met' if ratio <= 2 else 'NOT met'}")
    for label, t in (("due_for_reminders", min(last["find"])),
                     ("finding inside the FULL sweep", best(last["FULL"], "find"))):
        print(f"goal: finding under 50 ms at {last['n']:,} ({label}): {ms(t)} ms -> "
              f"{'met' if t < 0.05 else 'NOT met'}")


def load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


def mount_of(path: Path) -> str:
    try:
        found, kind = "", "?"
        real = str(path.resolve())
        with open("/proc/mounts") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3 and real.startswith(parts[1]) and len(parts[1]) > len(found):
                    found, kind = parts[1], parts[2]
        return kind
    except OSError:
        return "?"


def build_db(folder: Path, n: int, tpl: Templates) -> Path:
    path = folder / f"tasks-{n}.db"
    took = generate(path, n, tpl)
    print(f"  generated {n:,} tasks in {took:.1f} s ({path.stat().st_size / 1e6:,.0f} MB)",
          flush=True)
    return path


def profile_sweep(n: int, folder: Path, sync: str, top: int) -> None:
    tpl = Templates()
    src = build_db(folder, n, tpl)
    one_sweep(src, folder / "warm.db", sync)  # imports, caches
    prof = cProfile.Profile()
    res = one_sweep(src, folder / "prof.db", sync, profile=prof)
    print(f"\none sweep at {n:,} tasks, synchronous={sync}, under cProfile: "
          f"{ms(res['sweep'])} ms (finding {ms(res['find'])} ms)\n")
    stats = pstats.Stats(prof, stream=sys.stdout)
    stats.sort_stats("cumulative").print_stats(top)
    stats.sort_stats("tottime").print_stats(top)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="10k and 100k tasks, fewer repetitions")
    p.add_argument("--sizes", help="comma-separated task counts, multiples of 1000 "
                   "(default 10000,100000,1000000; quick 10000,100000); the first is the baseline")
    p.add_argument("--reps", type=int, help="sweep repetitions per size and mode (default 5; quick 1)")
    p.add_argument("--dir", help="folder for the database files (default: a new temp folder)")
    p.add_argument("--profile", type=int, metavar="N",
                   help="instead: cProfile one sweep at N tasks (top functions, cumulative and own time)")
    p.add_argument("--sync", default="FULL", choices=("FULL", "NORMAL"), help="for --profile")
    p.add_argument("--top", type=int, default=15, help="rows of the --profile listing")
    args = p.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="dataops-sweep-", dir=args.dir) as tmp:
        folder = Path(tmp)
        if args.profile:
            profile_sweep(args.profile, folder, args.sync, args.top)
            return 0
        sizes = ([int(s.replace("_", "")) for s in args.sizes.split(",")] if args.sizes
                 else [10_000, 100_000] if args.quick else [10_000, 100_000, 1_000_000])
        sweeps = args.reps or (1 if args.quick else 5)
        reps = {"bare": 20, "scan": 2 if args.quick else 3, "find": 5 if args.quick else 10,
                "sweep": sweeps}
        print(f"sweep: {', '.join(f'{n:,}' for n in sizes)} open tasks, {DUE:,} due at "
              f"{NOW.isoformat()}; {TASKS} tasks per bundle, {TEMPLATES} definitions")
        print(f"python {sys.version.split()[0]}, sqlite {sqlite3.sqlite_version}, db folder "
              f"{folder} ({mount_of(folder)}), {os.cpu_count()} CPUs; reps: bare {reps['bare']}, "
              f"scan {reps['scan']}, find {reps['find']}, sweep {reps['sweep']} per mode")
        print(f"load average before {load()}", flush=True)
        t0 = time.perf_counter()
        tpl = Templates()
        srcs = {n: build_db(folder, n, tpl) for n in sizes}  # cached for the whole run
        results = measure(sizes, srcs, folder, reps)
        print()
        report(results)
        print(f"\n(total {time.perf_counter() - t0:.1f} s; load average after {load()}; "
              f"spread = slowest vs best repetition)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
