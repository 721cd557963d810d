"""Instantiation throughput: bundles per second for a 20-task definition, against raw SQLite.

Each ``create_bundle`` writes 21 records (the bundle and its 20 tasks) and 21 audit events in
one transaction: 42 rows. The baseline inserts the same number of rows, with JSON docs taken
from a real ``build_bundle()`` result, into tables of the real schema with plain ``sqlite3``,
one transaction per bundle, same WAL and ``synchronous`` setting, in the same run.

    python benchmarks/instantiate.py           # full run (a few minutes at most)
    python benchmarks/instantiate.py --quick   # under a minute

Prints a table; never asserts on timings. Goal (from the issue): dataops on sqlite at least
half as fast as the raw inserts of the same rows (ratio >= 0.50).
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import os
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
# Run as a script, this folder is sys.path[0], and benchmarks/transitions.py would shadow the
# `transitions` package the runtime imports: drop the folder, put the repo root in.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from runtime.clock import FixedClock  # noqa: E402
from runtime.content import Content  # noqa: E402
from runtime.engine import Services, build_bundle, create_bundle, event_for  # noqa: E402
from runtime.model import WorkflowDefinition  # noqa: E402
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


def run_dataops(store: object, wf: WorkflowDefinition, days: list[date]) -> float:
    content = Content(root=Path("."), workflows={wf.template_id: wf})
    svc = Services(store=store, clock=FixedClock(NOW), actor="bench",  # type: ignore[arg-type]
                   content_loader=lambda: content)
    create_bundle(svc, wf.template_id, days[0] - timedelta(days=1))  # warm caches, open tx path
    t0 = time.perf_counter()
    for day in days:
        view = create_bundle(svc, wf.template_id, day)
        assert view.created
    return time.perf_counter() - t0


def sqlite_url(folder: Path, name: str) -> str:
    return f"sqlite:///{folder / name}"


# ---- raw sqlite3 baseline --------------------------------------------------------------------


def sample_docs(wf: WorkflowDefinition) -> tuple[str, list[str], list[str]]:
    """JSON docs of one real bundle, its tasks and their creation audit events."""
    bundle, tasks = build_bundle(wf, START, NOW)
    events = [event_for("bench", NOW, "create", f"created bundle {bundle.bundle_id}", None, bundle)]
    events += [event_for("bench", NOW, "create", f"created task {t.task_id} due {t.due_date}",
                         None, t) for t in tasks]
    return (bundle.model_dump_json(), [t.model_dump_json() for t in tasks],
            [e.model_dump_json() for e in events])


Row = tuple[object, ...]
RawRows = list[tuple[Row, list[Row], list[Row]]]


def raw_rows(wf: WorkflowDefinition, days: list[date], seq0: int) -> RawRows:
    """Rows for the raw baseline, built before timing: 1 bundle + 20 tasks + 21 events each."""
    bdoc, tdocs, edocs = sample_docs(wf)
    created = NOW.isoformat()
    out: RawRows = []
    seq = seq0
    for day in days:
        bid = f"{wf.template_id}/{day.isoformat()}"
        brow: Row = (bid, wf.template_id, created, 1_767_000_000_000_000, 1, bdoc)
        trows: list[Row] = [(f"{bid}/step-{i:02d}", bid, 1_767_000_000_000_000, 1, doc)
                 for i, doc in enumerate(tdocs)]
        erows: list[Row] = []
        for i, doc in enumerate(edocs):
            seq += 1
            entity = bid if i == 0 else str(trows[i - 1][0])
            erows.append((seq, f"evt-{uuid.uuid4().hex}", entity,
                          hashlib.sha256(str(seq).encode()).hexdigest(), doc))
        out.append((brow, trows, erows))
    return out


def raw_open(path: Path, sync: str) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(f"PRAGMA synchronous={sync}")
    for statement in SCHEMA.split(";"):
        if statement.strip():
            db.execute(statement)
    return db


def run_raw(path: Path, sync: str, rows: RawRows) -> float:
    db = raw_open(path, sync)
    bsql = ("INSERT INTO bundles (bundle_id, template_id, created_at, next_reminder_us, version,"
            " doc) VALUES (?, ?, ?, ?, ?, ?)")
    tsql = "INSERT INTO tasks (task_id, bundle_id, next_reminder_us, version, doc) VALUES (?, ?, ?, ?, ?)"
    esql = "INSERT INTO audit_events (seq, event_id, entity_id, hash, doc) VALUES (?, ?, ?, ?, ?)"
    ex = db.execute
    t0 = time.perf_counter()
    for brow, trows, erows in rows:
        ex("BEGIN IMMEDIATE")
        ex(bsql, brow)
        for r in trows:
            ex(tsql, r)
        for r in erows:
            ex(esql, r)
        ex("COMMIT")
    elapsed = time.perf_counter() - t0
    db.close()
    return elapsed


# ---- measuring -------------------------------------------------------------------------------


def measure(n: int, reps: int, folder: Path) -> list[tuple[str, str, int, list[float]]]:
    """Every measurement once per repetition, in turn, so drift on a shared machine hits each
    alike; a new database file for each sqlite run."""
    wf = definition()
    days = anchors(n)
    rows = raw_rows(wf, days, seq0=0)

    def ops(sync: str, r: int) -> float:
        store = SqliteStore(sqlite_url(folder, f"ops-{sync}-{r}.db"), synchronous=sync)
        try:
            return run_dataops(store, wf, days)
        finally:
            store.close()

    plan: list[tuple[str, str, Callable[[int], float]]] = [
        ("raw sqlite3", "FULL", lambda r: run_raw(folder / f"raw-FULL-{r}.db", "FULL", rows)),
        ("dataops sqlite", "FULL", lambda r: ops("FULL", r)),
        ("raw sqlite3", "NORMAL", lambda r: run_raw(folder / f"raw-NORMAL-{r}.db", "NORMAL", rows)),
        ("dataops sqlite", "NORMAL", lambda r: ops("NORMAL", r)),
        ("dataops memory", "-", lambda r: run_dataops(MemoryStore(), wf, days)),
        ("build_bundle only", "-", lambda r: _time_build(wf, days)),
    ]
    times: list[list[float]] = [[] for _ in plan]
    for r in range(reps):
        for i, (_, _, once) in enumerate(plan):
            gc.collect()
            times[i].append(once(r))
    return [(name, sync, n, ts) for (name, sync, _), ts in zip(plan, times, strict=True)]


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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer bundles and one repetition")
    p.add_argument("--bundles", type=int, help="bundles per measurement (default 2000; quick 300)")
    p.add_argument("--reps", type=int, help="repetitions, best is reported (default 3; quick 1)")
    p.add_argument("--dir", help="folder for the database files (default: a new temp folder)")
    args = p.parse_args(argv)
    n = args.bundles or (300 if args.quick else 2000)
    reps = args.reps or (1 if args.quick else 3)
    with tempfile.TemporaryDirectory(prefix="dataops-bench-", dir=args.dir) as tmp:
        folder = Path(tmp)
        print(f"instantiate: {TASKS}-task definition, {ROWS_PER_BUNDLE} rows per bundle "
              f"({1 + TASKS} records + {1 + TASKS} audit events), one transaction each")
        print(f"python {sys.version.split()[0]}, sqlite {sqlite3.sqlite_version}, "
              f"db folder {folder} ({mount_of(folder)}, fsync of 4 KiB {fsync_ms(folder):.2f} ms), "
              f"{os.cpu_count()} CPUs, "
              f"{n} bundles x {reps} rep(s), best reported")
        print(f"load average before {load()}")
        print()
        t0 = time.perf_counter()
        results = measure(n, reps, folder)
        report(results)
        print(f"\n(total {time.perf_counter() - t0:.1f} s; load average after {load()}; "
              f"spread = slowest vs best repetition)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
