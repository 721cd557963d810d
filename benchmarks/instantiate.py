"""Instantiation throughput: bundles per second for a 20-task definition, against raw SQLite.

Each ``engine.create_bundle`` writes 21 records (the bundle and its 20 tasks) and 21 audit
events (the first event of each record's own chain) in one transaction: 42 rows. The baseline
inserts exactly those rows with plain ``sqlite3`` into the real schema
(``runtime.store.sqlite.SCHEMA``, v2): the rows are what ``create_bundle`` wrote for the same
anchors on a memory store (captured at its commit, serialised before timing), one IMMEDIATE
transaction per bundle with one ``executemany`` per table as the store does, same WAL and
``synchronous`` setting, in the same run. After the first repetition the raw database is
checked against the engine's (same rows per table, same indexed columns, same doc bytes).

    python benchmarks/instantiate.py           # full run (a few minutes at most)
    python benchmarks/instantiate.py --quick   # under a minute
    python benchmarks/instantiate.py --profile # cProfile of create_bundle on sqlite FULL

Prints a table; never asserts on timings. Goal (from the issue): dataops on sqlite at least
half as fast as the raw inserts of the same rows (ratio >= 0.50).
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import os
import pstats
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
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
from runtime.content import Content  # noqa: E402
from runtime.engine import Services, build_bundle  # noqa: E402
from runtime.model import AuditEvent, Bundle, Record, Reminder, Task, WorkflowDefinition  # noqa: E402
from runtime.store.base import Changes, micros  # noqa: E402
from runtime.store.memory import MemoryStore  # noqa: E402
from runtime.store.sqlite import SCHEMA, SqliteStore  # noqa: E402

TASKS = 20
ROWS_PER_BUNDLE = 2 * (1 + TASKS)  # bundle + tasks, and one audit event each
START = date(2020, 1, 6)
NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


# ---- the definition --------------------------------------------------------------------------


def definition(template_id: str = "bench-20") -> WorkflowDefinition:
    """A 20-task definition shaped like the shipped ones: phases, proofs, links, a business
    calendar (half the tasks use business-day offsets). Shared by the other benchmarks."""
    phases = [{"phase_id": p, "title": p.title()} for p in ("plan", "build", "review", "ship")]
    tasks = []
    for i in range(TASKS):
        task: dict[str, object] = {
            "task_ref": f"step-{i:02d}",
            "title": f"Step {i:02d}: do the {i}th thing of the run",
            "phase": phases[i * len(phases) // TASKS]["phase_id"],
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
            task["offset_business_days"] = i - TASKS
        else:
            task["offset_days"] = i - TASKS
        if i % 5 == 0:
            task["assignee"] = "reviewer"
        tasks.append(task)
    return WorkflowDefinition.model_validate({
        "template_id": template_id,
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


def anchors(n: int, offset: int = 0) -> list[date]:
    return [START + timedelta(days=offset + i) for i in range(n)]


# ---- dataops ---------------------------------------------------------------------------------


def services(store: Any, wf: WorkflowDefinition, now: datetime = NOW) -> Services:
    """Services on ``store`` serving only ``wf``, with a fixed clock (shared by the benchmarks)."""
    content = Content(root=Path("."), workflows={wf.template_id: wf})
    return Services(store=store, clock=FixedClock(now), actor="bench",
                    content_loader=lambda: content)


def run_dataops(store: object, wf: WorkflowDefinition, days: list[date]) -> float:
    svc = services(store, wf)
    engine.create_bundle(svc, wf.template_id, days[0] - timedelta(days=1))  # warm caches, tx path
    t0 = time.perf_counter()
    for day in days:
        view = engine.create_bundle(svc, wf.template_id, day)
        assert view.created
    return time.perf_counter() - t0


def sqlite_url(folder: Path, name: str) -> str:
    return f"sqlite:///{folder / name}"


# ---- what the store writes, as plain sqlite3 statements (shared with transitions.py) ----------


class Capture:
    """Keeps every ``Changes`` a store commits (a reference only, no copying or serialising), so
    a raw baseline can write exactly the same rows afterwards."""

    def __init__(self, store: Any) -> None:
        self.log: list[Changes] = []
        inner = store.commit

        def commit(changes: Changes) -> None:
            inner(changes)
            self.log.append(changes)

        store.commit = commit


def row_of(rec: Record) -> tuple[str, str, dict[str, object]]:
    """(table, key column, columns) of ``rec`` as schema v2 (``runtime.store.sqlite.SCHEMA``)
    holds it: the ID, the indexed columns, ``version`` and the record's JSON ``doc``."""
    match rec:
        case Bundle():
            cols: dict[str, object] = {
                "bundle_id": rec.bundle_id, "template_id": rec.template_id,
                "status": str(rec.status), "next_reminder_us": micros(rec.next_reminder_at)}
            table, key = "bundles", "bundle_id"
        case Task():
            cols = {"task_id": rec.task_id, "bundle_id": rec.bundle_id, "status": str(rec.status),
                    "assignee": rec.assignee, "next_reminder_us": micros(rec.next_reminder_at),
                    "position": rec.position}  # tasks.position: schema change of f8733dc
            table, key = "tasks", "task_id"
        case Reminder():
            cols = {"reminder_id": rec.reminder_id, "entity_id": rec.entity_id,
                    "fire_at_us": micros(rec.fire_at), "deliver_after_us": micros(rec.deliver_after)}
            table, key = "reminders", "reminder_id"
        case AuditEvent():
            cols = {"event_id": rec.event_id, "entity_id": rec.entity_id, "seq": rec.seq,
                    "at_us": micros(rec.at)}
            table, key = "audit_events", "event_id"
        case _:
            raise SystemExit(f"raw baseline: no row shape for a {type(rec).__name__}")
    cols["version"] = getattr(rec, "version", 1)
    cols["doc"] = rec.model_dump_json()
    return table, key, cols


Row = tuple[object, ...]


class RawCommand:
    """One engine write as plain statements: a version-conditional UPDATE per updated record
    (``rowcount`` checked), then one ``executemany`` INSERT per table, as the store does.
    (A plain class: other benchmarks load this file by path, where a dataclass would not.)"""

    __slots__ = ("inserts", "updates")

    def __init__(self, updates: list[tuple[str, Row]], inserts: list[tuple[str, list[Row]]]) -> None:
        self.updates, self.inserts = updates, inserts

    def rows(self) -> int:
        return len(self.updates) + sum(len(rows) for _, rows in self.inserts)

    def tables(self) -> dict[str, int]:
        """Rows per table ("UPDATE tasks": 1, "INSERT audit_events": 2, ...)."""
        out: dict[str, int] = {}
        for sql, _ in self.updates:
            k = " ".join(sql.split()[:2])
            out[k] = out.get(k, 0) + 1
        for sql, rows in self.inserts:
            k = "INSERT " + sql.split()[2]
            out[k] = out.get(k, 0) + len(rows)
        return out


def raw_command(changes: Changes) -> RawCommand:
    updates: list[tuple[str, Row]] = []
    for rec, expected in changes.updates:
        table, key, cols = row_of(rec)
        cols["doc"] = changes.doc(rec)  # the JSON the store keeps (042a762: Changes.docs)
        rid = cols.pop(key)
        sets = ", ".join(f"{c} = ?" for c in cols)
        updates.append((f"UPDATE {table} SET {sets} WHERE {key} = ? AND version = ?",
                        (*cols.values(), rid, expected)))
    groups: dict[tuple[str, tuple[str, ...]], list[Row]] = {}
    for rec in [*changes.creates, *changes.events]:
        table, _, cols = row_of(rec)
        cols["doc"] = changes.doc(rec)  # the JSON the store keeps (042a762: Changes.docs)
        groups.setdefault((table, tuple(cols)), []).append(tuple(cols.values()))
    inserts = [(f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
                rows) for (table, names), rows in groups.items()]
    return RawCommand(updates, inserts)


def raw_connect(path: Path, sync: str, schema: bool = False) -> sqlite3.Connection:
    """A plain connection as the store opens it: WAL, ``synchronous``; the v2 schema if asked."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(f"PRAGMA synchronous={sync}")
    if schema:
        for statement in SCHEMA.split(";"):
            if statement.strip():
                db.execute(statement)
    return db


def raw_play(db: sqlite3.Connection, cmds: Sequence[RawCommand]) -> None:
    """Each command in its own IMMEDIATE transaction; nothing is read."""
    ex, exm = db.execute, db.executemany
    for cmd in cmds:
        ex("BEGIN IMMEDIATE")
        for sql, params in cmd.updates:
            if ex(sql, params).rowcount != 1:
                ex("ROLLBACK")
                raise SystemExit(f"raw replay: {params[-2]} is not at version {params[-1]}")
        for sql, rows in cmd.inserts:
            exm(sql, rows)
        ex("COMMIT")


TABLES = {"bundles": "bundle_id", "tasks": "task_id", "reminders": "reminder_id",
          "audit_events": "event_id"}


def same_rows(a: Path, b: Path) -> list[str]:
    """Differences between two databases' tables, every column compared (empty: identical)."""
    db = sqlite3.connect(a)
    db.execute("ATTACH DATABASE ? AS other", (str(b),))
    problems = []
    for table in TABLES:
        for x, y in (("main", "other"), ("other", "main")):
            n = db.execute(f"SELECT count(*) FROM (SELECT * FROM {x}.{table} "
                           f"EXCEPT SELECT * FROM {y}.{table})").fetchone()[0]
            if n:
                problems.append(f"{table}: {n} rows of {x} not in {y}")
    db.close()
    return problems


def same_shape(a: Path, b: Path) -> list[str]:
    """Like :func:`same_rows`, but where random event IDs (and the hashes over them) differ:
    the same rows per table, the same indexed columns (IDs of records, chain places, times,
    versions) and the same doc bytes."""
    db = sqlite3.connect(a)
    db.execute("ATTACH DATABASE ? AS other", (str(b),))
    problems = []
    for table, key in TABLES.items():
        cols = [r[1] for r in db.execute(f"PRAGMA table_info({table})")
                if r[1] not in ("doc", "pos") and not (table == "audit_events" and r[1] == key)]
        q = (f"SELECT count(*), coalesce(sum(length(doc)), 0) FROM {{}}.{table}")
        shape = [db.execute(q.format(s)).fetchone() for s in ("main", "other")]
        if shape[0] != shape[1]:
            problems.append(f"{table}: (rows, doc bytes) {shape[0]} against {shape[1]}")
        sel = ", ".join(cols)
        n = db.execute(f"SELECT count(*) FROM (SELECT {sel} FROM main.{table} "
                       f"EXCEPT SELECT {sel} FROM other.{table})").fetchone()[0]
        if n:
            problems.append(f"{table}: {n} rows differ in ({sel})")
    db.close()
    return problems


# ---- raw sqlite3 baseline --------------------------------------------------------------------


def raw_plan(wf: WorkflowDefinition, days: list[date]) -> list[RawCommand]:
    """The writes ``create_bundle`` makes for the warm-up anchor and ``days``, taken from its
    commits on a memory store and serialised before timing: 1 bundle + 20 tasks + 21 events."""
    store = MemoryStore()
    cap = Capture(store)
    svc = services(store, wf)
    for day in [days[0] - timedelta(days=1), *days]:
        engine.create_bundle(svc, wf.template_id, day)
    cmds = [raw_command(c) for c in cap.log]
    want = {"INSERT bundles": 1, "INSERT tasks": TASKS, "INSERT audit_events": 1 + TASKS}
    if len(cmds) != len(days) + 1 or any(c.tables() != want for c in cmds):
        raise SystemExit(f"create_bundle no longer writes {want} in one commit per bundle: "
                         f"{cmds[0].tables() if cmds else 'nothing'}; update this benchmark")
    return cmds


def run_raw(path: Path, sync: str, cmds: list[RawCommand]) -> float:
    db = raw_connect(path, sync, schema=True)
    raw_play(db, cmds[:1])  # the warm-up bundle, as run_dataops makes one
    t0 = time.perf_counter()
    raw_play(db, cmds[1:])
    elapsed = time.perf_counter() - t0
    db.close()
    return elapsed


# ---- measuring -------------------------------------------------------------------------------


def measure(n: int, reps: int, folder: Path) -> tuple[list[tuple[str, str, int, list[float]]], list[str]]:
    """Every measurement once per repetition, in turn, so drift on a shared machine hits each
    alike; a new database file for each sqlite run. Also returns what the check of the raw
    writes against the engine's found (empty: none)."""
    wf = definition()
    days = anchors(n)
    cmds = raw_plan(wf, days)
    kept: dict[str, Path] = {}

    def ops(sync: str, r: int) -> float:
        path = folder / f"ops-{sync}-{r}.db"
        store = SqliteStore(sqlite_url(folder, path.name), synchronous=sync)
        try:
            return run_dataops(store, wf, days)
        finally:
            store.close()
            _keep(kept, f"ops-{sync}", path, r)

    def raw(sync: str, r: int) -> float:
        path = folder / f"raw-{sync}-{r}.db"
        try:
            return run_raw(path, sync, cmds)
        finally:
            _keep(kept, f"raw-{sync}", path, r)

    plan: list[tuple[str, str, Callable[[int], float]]] = [
        ("raw sqlite3", "FULL", lambda r: raw("FULL", r)),
        ("dataops sqlite", "FULL", lambda r: ops("FULL", r)),
        ("raw sqlite3", "NORMAL", lambda r: raw("NORMAL", r)),
        ("dataops sqlite", "NORMAL", lambda r: ops("NORMAL", r)),
        ("dataops memory", "-", lambda r: run_dataops(MemoryStore(), wf, days)),
        ("build_bundle only", "-", lambda r: _time_build(wf, days)),
    ]
    times: list[list[float]] = [[] for _ in plan]
    for r in range(reps):
        for i, (_, _, once) in enumerate(plan):
            gc.collect()
            times[i].append(once(r))
    problems = [f"{sync}: {p}" for sync in ("FULL", "NORMAL")
                for p in same_shape(kept[f"ops-{sync}"], kept[f"raw-{sync}"])]
    for f in folder.glob("*.db*"):
        f.unlink()
    return [(name, sync, n, ts) for (name, sync, _), ts in zip(plan, times, strict=True)], problems


def _keep(kept: dict[str, Path], what: str, path: Path, r: int) -> None:
    """Keep the first repetition's file (for the check), delete the others (disk space)."""
    if r == 0:
        kept[what] = path
        return
    for f in path.parent.glob(path.name + "*"):
        f.unlink()


def _time_build(wf: WorkflowDefinition, days: list[date]) -> float:
    build_bundle(wf, days[0] - timedelta(days=1), NOW)
    t0 = time.perf_counter()
    for day in days:
        build_bundle(wf, day, NOW)
    return time.perf_counter() - t0


def load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


def fsync_ms(folder: Path, n: int = 50) -> float:
    """Median cost of writing 4 KiB and fsyncing it in ``folder``: what FULL pays per commit."""
    path = folder / "fsync.probe"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    try:
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            os.write(fd, b"x" * 4096)
            os.fsync(fd)
            times.append(time.perf_counter() - t0)
    finally:
        os.close(fd)
        path.unlink()
    times.sort()
    return times[len(times) // 2] * 1000


def mount_of(path: Path) -> str:
    """The file system type of ``path`` (fsync cost depends on it), best effort."""
    try:
        best, kind = "", "?"
        real = str(path.resolve())
        with open("/proc/mounts") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3 and real.startswith(parts[1]) and len(parts[1]) > len(best):
                    best, kind = parts[1], parts[2]
        return kind
    except OSError:
        return "?"


def print_table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> None:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, tuple("-" * w for w in widths), *rows]:
        print("  ".join(f"{c:<{w}}" for c, w in zip(row, widths, strict=True)).rstrip())


def report(results: list[tuple[str, str, int, list[float]]]) -> None:
    raw = {sync: min(ts) for name, sync, _, ts in results if name == "raw sqlite3"}
    header = ("what", "synchronous", "bundles", "bundles/s", "rows/s", "ratio to raw", "spread")
    table = []
    for name, sync, n, ts in results:
        best = min(ts)
        bps = n / best
        if name == "raw sqlite3":
            ratio = "1.00 (baseline)"
        elif sync in raw:
            ratio = f"{raw[sync] / best:.2f}"
        else:  # memory and pure build: against the cheaper raw baseline, for orientation
            ratio = f"{raw['NORMAL'] / best:.2f} vs NORMAL"
        spread = f"{(max(ts) - best) / best * 100:.0f}%" if len(ts) > 1 else "-"
        rows = f"{bps * ROWS_PER_BUNDLE:,.0f}" if name != "build_bundle only" else "-"
        table.append((name, sync, f"{n}", f"{bps:,.0f}", rows, ratio, spread))
    print_table(header, table)
    print()
    for sync in ("FULL", "NORMAL"):
        ops = next(min(ts) for name, s, _, ts in results if name == "dataops sqlite" and s == sync)
        verdict = "met" if raw[sync] / ops >= 0.5 else "NOT met"
        print(f"goal (dataops sqlite >= 0.50 x raw), synchronous={sync}: "
              f"{raw[sync] / ops:.2f} -> {verdict}")


def report_check(problems: list[str]) -> None:
    if problems:
        print("\nCHECK FAILED: the raw baseline did not write what the engine wrote, so the ratios "
              "above are not comparable:")
        for p in problems:
            print(f"  {p}")
    else:
        print("\nraw writes checked against the engine's (first repetition, FULL and NORMAL): same "
              "rows per table, same indexed columns, same doc bytes (event IDs are random)")


# ---- profiling (shared with transitions.py) ---------------------------------------------------


def _where(file: str, line: int, name: str) -> str:
    path = Path(file)
    try:
        return f"{path.resolve().relative_to(ROOT)}:{line}({name})"
    except ValueError:
        return f"{path.name}:{line}({name})" if file != "~" else name


def hotspots(prof: cProfile.Profile, units: int, unit: str, top: int, wall: float) -> None:
    """The top functions inside runtime/ by cumulative time, then the top functions anywhere by
    own time (where the time ends up: SQLite, pydantic-core); shares of ``wall``, the wall
    time of the profiled loop (profiler overhead included)."""
    st = pstats.Stats(prof, stream=io.StringIO())
    total = wall
    rows = []
    for (file, line, name), (_, nc, tt, ct, _) in st.stats.items():  # type: ignore[attr-defined]
        rows.append((file, line, name, nc, tt, ct))
    inside = sorted((r for r in rows if str(ROOT / "runtime") in str(Path(r[0]).resolve())),
                    key=lambda r: -r[5])
    entry = [r for r in inside if r[5] >= 0.9 * total]  # the call chain every unit runs through
    print(f"{total * 1e3 / units:,.2f} ms per {unit} under the profiler (cProfile inflates "
          f"Python calls; read the shares, not the absolute times)")
    if entry:
        print("entry chain (>= 90% cumulative, left out below): "
              + " > ".join(f"{nm} {ct / total * 100:.0f}%" for _, _, nm, _, _, ct in entry))
    print()
    print_table(("inside runtime/: function (by cumulative time)", "cum %", "own %",
                 f"calls per {unit}"),
                [(_where(f, ln, nm), f"{ct / total * 100:.1f}", f"{tt / total * 100:.1f}",
                  f"{nc / units:,.1f}")
                 for f, ln, nm, nc, tt, ct in inside[len(entry):len(entry) + top]])
    print()
    print_table(("anywhere: function (by own time)", "own %", "cum %", f"calls per {unit}"),
                [(_where(f, ln, nm), f"{tt / total * 100:.1f}", f"{ct / total * 100:.1f}",
                  f"{nc / units:,.1f}")
                 for f, ln, nm, nc, tt, ct in sorted(rows, key=lambda r: -r[4])[:top]])


def profile_create(folder: Path, n: int, sync: str, top: int) -> None:
    wf = definition()
    days = anchors(n)
    store = SqliteStore(sqlite_url(folder, "profile.db"), synchronous=sync)
    svc = services(store, wf)
    engine.create_bundle(svc, wf.template_id, days[0] - timedelta(days=1))  # warm
    prof = cProfile.Profile()
    gc.collect()
    t0 = time.perf_counter()
    prof.enable()
    for day in days:
        engine.create_bundle(svc, wf.template_id, day)
    prof.disable()
    wall = time.perf_counter() - t0
    store.close()
    print(f"cProfile of engine.create_bundle on sqlite {sync}, {n:,} bundles of {TASKS} tasks")
    print()
    hotspots(prof, n, "bundle", top, wall)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer bundles and one repetition")
    p.add_argument("--bundles", type=int, help="bundles per measurement (default 2000; quick 300)")
    p.add_argument("--reps", type=int, help="repetitions, best is reported (default 3; quick 1)")
    p.add_argument("--dir", help="folder for the database files (default: a new temp folder)")
    p.add_argument("--profile", action="store_true",
                   help="instead: cProfile create_bundle on sqlite (--bundles, default 500)")
    p.add_argument("--sync", default="FULL", choices=("FULL", "NORMAL"), help="for --profile")
    p.add_argument("--top", type=int, default=15, help="rows of the --profile listings")
    args = p.parse_args(argv)
    n = args.bundles or (300 if args.quick else 2000)
    reps = args.reps or (1 if args.quick else 3)
    with tempfile.TemporaryDirectory(prefix="dataops-bench-", dir=args.dir) as tmp:
        folder = Path(tmp)
        if args.profile:
            profile_create(folder, args.bundles or 500, args.sync, args.top)
            return 0
        print(f"instantiate: {TASKS}-task definition, {ROWS_PER_BUNDLE} rows per bundle "
              f"({1 + TASKS} records + {1 + TASKS} audit events), one transaction each; raw "
              f"writes the rows create_bundle wrote")
        print(f"python {sys.version.split()[0]}, sqlite {sqlite3.sqlite_version}, "
              f"db folder {folder} ({mount_of(folder)}, fsync of 4 KiB {fsync_ms(folder):.2f} ms), "
              f"{os.cpu_count()} CPUs, "
              f"{n} bundles x {reps} rep(s), best reported")
        print(f"load average before {load()}")
        print()
        t0 = time.perf_counter()
        results, problems = measure(n, reps, folder)
        report(results)
        report_check(problems)
        print(f"\n(total {time.perf_counter() - t0:.1f} s; load average after {load()}; "
              f"spread = slowest vs best repetition)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
