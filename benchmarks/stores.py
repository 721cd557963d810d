"""The PostgreSQL store: engine commands against raw psycopg, concurrent writers, and the
reminder sweep at 10k, 100k and 1M open tasks.

The benchmark starts its own PostgreSQL 15 server with ``tests/pg.py``'s ``PgServer`` in a temp
folder, with ``durable=True``: ``fsync``, ``synchronous_commit`` and ``full_page_writes`` stay at
the server's defaults (on), so every commit waits for its WAL to reach the disk. It prints the
settings it read back from the server and stops the server at the end. The adapter is
``runtime.store.postgres.PostgresStore`` (psycopg 3, a ``psycopg_pool`` pool, no server-side
prepared statements). A ``CHECKPOINT`` runs (untimed) before each timed run.

Part 1, engine against raw psycopg. A seed schema gets bundles of the shipped definitions
(``content/``: newsletter, podcast-episode, vat-return; 20 tasks per anchor day) made by
``engine.create_bundle``. Each repetition copies the seed into fresh schemas (``INSERT ...
SELECT``, then ``VACUUM ANALYZE``) and runs, after 20 untimed warm-up assigns, two timed
workloads of engine commands through a ``PostgresStore``: start (``engine.fire_task(svc, id,
"start")`` on K distinct random tasks) and assign (``engine.assign_task`` on K random tasks).
Services are built as the e2e tests build them (a fixed clock, a local artifact store, the
shipped content). The store's commit is wrapped to keep every ``Changes`` it commits. The
baseline replays exactly those writes with plain psycopg 3 on another copy of the seed: per
command one transaction holding the statements the adapter sends (the same SQL text: ``UPDATE
"schema".tasks SET ... WHERE task_id = %s AND version = %s`` with its row count checked, then one
``executemany`` INSERT per table, the same parameters and jsonb docs, serialised before timing)
and a commit; it reads nothing. The baseline connection has the adapter's settings
(``prepare_threshold=None``); a second raw run with psycopg's default (statements prepared
after 5 uses) is printed for reference, and so are the same engine commands on a MemoryStore
seeded alike (the engine's own cost, no database). After the first repetition the raw schemas
are checked to hold exactly the engine's rows (every table, every column). A counting pass
(untimed) then shows what one command sends: pooled transactions, the pool's connection checks
and statements.

Part 2, concurrent writers. 1, 4 and 16 writer processes (multiprocessing ``spawn``: real OS
processes, no shared GIL), each with its own ``PostgresStore`` and its own vat-return bundle,
are released together by a Barrier and fire ``engine.assign_task`` on their own bundle's tasks
for a fixed time. Writers never touch each other's records. It reports total commands/s, the
ratio to one writer, latency percentiles, the ConflictError / ThrottledError count, the WAL
fsyncs per command (``pg_stat_wal``: group commit) and how busy the machine's CPUs were.

Part 3, the reminder sweep at 10k, 100k and 1M open tasks (``--quick``: 10k and 100k; the
first size is the baseline). The tasks are
``benchmarks/sweep.py``'s: 50 definitions of 20 tasks, one bundle per definition and anchor day,
exactly 1,000 tasks (the bundles anchored on the sweep's day) due at the sweep instant, every
other task's first reminder on a later day. A store opened on a fresh ``?schema=`` creates the
real schema; the rows are the ones ``create_bundle`` writes for each definition (captured at
its commit, in the adapter's columns), re-keyed per anchor day (IDs, dates, the reminder
instant in the doc and in ``next_reminder_at``, event IDs) and checked against
``create_bundle``'s for a sample of anchors (modulo random event IDs and hashes over them). They
are bulk-loaded with ``COPY`` in random order (foreign keys checked afterwards by one query,
not per row), then ``VACUUM ANALYZE``. For each size it times the bare SQL the store's finding
runs (plain psycopg, rows fetched, nothing decoded), ``PostgresStore.due_for_reminders``, and a
whole sweep: ``record_due`` + ``deliver_pending`` (``runtime.engine.reminders``) of the 1,000
reminders into an in-memory sink, through a new store each time. After each sweep the rows it
wrote are deleted and the rows it changed restored from a copy taken before the first sweep,
then ``VACUUM`` (untimed, and checked), so every repetition starts from the loaded state.

Parts 4 and 5 (``benchmarks/store_counts.py``, also runnable alone; its docstring has the
details), counts against a local DynamoDB endpoint (``tests/dynamo.py``'s ``MotoServer``, started
and stopped by the run). Part 4: round trips and items written per command (create_bundle of
each shipped definition and of a 120-task definition over DynamoDB's limit, task start, assign,
wait, comment, attach, done, one sweep) on MemoryStore, SqliteStore, PostgresStore (a schema on
this run's server) and DynamoStore, counted at the store's commit, botocore's events, psycopg's
cursor and SQLite's trace callback. Part 5: what a DynamoDB sweep reads with 100k open tasks of
which 100 are due (``--quick``: 10k), bulk-loaded as the adapter's own items: one
``due_for_reminders`` page walk (and one at a page of 10), and one whole sweep, against the
number due. Seconds against moto are not a speed figure; parts 4 and 5 count, they do not time.

    python benchmarks/stores.py                 # full run (about 9-10 minutes on 2 cores)
    python benchmarks/stores.py --quick         # about a minute and a half
    python benchmarks/stores.py --counts-only   # parts 4 and 5 only (about 4.5 minutes; --quick 40 s)
    python benchmarks/stores.py --profile       # also cProfile the engine commands and one sweep

Prints tables with ratios against baselines measured in the same run; never asserts on timings.
Goals (from the issues): engine commands >= 0.5x raw psycopg's commands/s; throughput grows from
1 to 4 to 16 writers with zero conflicts between writers of different records; a sweep at 1M
open tasks within 2x of the same sweep at 10k; exactly one write round trip per command (a
definition over the limit: the minimum the protocol needs); a DynamoDB sweep that reads no more
items than are due plus one page per shard.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import functools
import gc
import hashlib
import multiprocessing as mp
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
# Run as a script, this folder is sys.path[0], and benchmarks/transitions.py would shadow the
# `transitions` package the runtime imports: drop the folder, put the repo root in.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402

from runtime import engine  # noqa: E402
from runtime.artifacts import LocalArtifactStore  # noqa: E402
from runtime.clock import FixedClock  # noqa: E402
from runtime.content import Content, load_content  # noqa: E402
from runtime.engine import Services  # noqa: E402
from runtime.engine.reminders import SweepReport, deliver_pending, record_due  # noqa: E402
from runtime.errors import ConflictError, DataopsError, ThrottledError  # noqa: E402
from runtime.model import Task, format_instant, kind_of, record_id  # noqa: E402
from runtime.model.common import utc  # noqa: E402
from runtime.rules.reminders import local_instant  # noqa: E402
from runtime.store.base import Changes  # noqa: E402
from runtime.store.memory import MemoryStore  # noqa: E402
from runtime.store.postgres import PostgresStore  # noqa: E402
from runtime.store.postgres_schema import TABLES, columns_of  # noqa: E402
from tests.pg import PgServer  # noqa: E402

CONTENT = ROOT / "content"
NOW = utc(2026, 11, 25, 8)  # parts 1 and 2: the commands' clock
START = date(2024, 1, 1)  # first anchor day of the seeded bundles
WARM = 20  # untimed engine commands before each timed run
ALL_TABLES = [t for t, _ in TABLES.values()]
Row = tuple[object, ...]


@functools.cache
def _bench(name: str) -> Any:
    """benchmarks/<name>.py, loaded by path (this folder is off sys.path, see above)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"bench_{name}", HERE / f"{name}.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


@functools.cache
def shipped_content() -> Content:
    return load_content(CONTENT)


def services(store: Any, art: Path, now: datetime = NOW) -> Services:
    """As tests/e2e/test_race.py builds them: a fixed clock, local artifacts, shipped content."""
    content = shipped_content()
    return Services(store, FixedClock(now), "bench", LocalArtifactStore(art), lambda: content)


# ---- the server and plain connections ----------------------------------------------------------


class Pg:
    """The running server: URLs, plain connections, and what it is set to."""

    def __init__(self, server: PgServer) -> None:
        self.server = server
        self.conninfo = server.base_url
        self.art = server.root / "artifacts"

    def url(self, schema: str) -> str:
        return f"{self.server.base_url}?schema={schema}"

    def connect(self, *, autocommit: bool = True, prepare_threshold: int | None = None
                ) -> psycopg.Connection[Any]:
        return psycopg.connect(self.conninfo, autocommit=autocommit,
                               prepare_threshold=prepare_threshold)

    def sql(self, *statements: str, args: Sequence[object] = ()) -> list[Any]:
        """Run statements in autocommit (``args`` for those with placeholders); the last one's
        rows (if any)."""
        with self.connect() as conn:
            rows: list[Any] = []
            for s in statements:
                cur = conn.execute(s, args if "%s" in s else None)
                rows = cur.fetchall() if cur.description else []
            return rows

    def settings(self) -> dict[str, str]:
        names = ("server_version", "fsync", "synchronous_commit", "full_page_writes",
                 "wal_sync_method", "wal_level", "shared_buffers", "max_wal_size", "autovacuum")
        with self.connect() as conn:
            return {n: conn.execute(f"SHOW {n}").fetchone()[0] for n in names}

    def new_schema(self, schema: str) -> None:
        """A fresh, empty schema as the store makes it on first use (tables, indexes, meta)."""
        self.sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        PostgresStore(self.url(schema)).close()

    def copy_schema(self, src: str, dst: str) -> None:
        self.new_schema(dst)
        with self.connect(autocommit=False) as conn:
            for t in ALL_TABLES:
                conn.execute(f'INSERT INTO "{dst}".{t} SELECT * FROM "{src}".{t}')
            conn.commit()
        self.sql(*(f'VACUUM ANALYZE "{dst}".{t}' for t in ALL_TABLES))

    def drop(self, *schemas: str) -> None:
        self.sql(*(f'DROP SCHEMA IF EXISTS "{s}" CASCADE' for s in schemas))

    def checkpoint(self) -> None:
        self.sql("CHECKPOINT")

    def same_rows(self, a: str, b: str) -> list[str]:
        """Differences between two schemas' tables, every column compared (empty: identical)."""
        problems = []
        with self.connect() as conn:
            for t in ALL_TABLES:
                for x, y in ((a, b), (b, a)):
                    n = conn.execute(f'SELECT count(*) FROM (SELECT * FROM "{x}".{t} EXCEPT ALL '
                                     f'SELECT * FROM "{y}".{t}) AS d').fetchone()[0]
                    if n:
                        problems.append(f"{t}: {n} rows of {x} not in {y}")
        return problems

    def wal_syncs(self) -> int:
        return int(self.sql("SELECT wal_sync FROM pg_stat_wal")[0][0])

    def wait_for_backends(self, count: int, timeout: float = 10.0) -> None:
        """Until at most ``count`` other client backends run (exited ones have flushed stats)."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            n = self.sql("SELECT count(*) FROM pg_stat_activity WHERE backend_type = "
                         "'client backend' AND pid <> pg_backend_pid()")[0][0]
            if n <= count:
                return
            time.sleep(0.05)

    # CPU time of the server: the postmaster, its live children, and the reaped ones
    def cpu(self) -> float:
        try:
            pid = int((self.server.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return float("nan")
        tick = os.sysconf("SC_CLK_TCK")
        total = 0
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                with open(f"/proc/{entry.name}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            me, ppid = int(entry.name), int(fields[1])
            if me == pid:  # utime, stime, cutime, cstime: itself and its reaped children
                total += sum(int(x) for x in fields[11:15])
            elif ppid == pid:
                total += int(fields[11]) + int(fields[12])
        return total / tick


def machine_cpu() -> tuple[float, float]:
    """(busy, total) jiffies of all CPUs (/proc/stat); busy excludes idle and iowait."""
    with open("/proc/stat") as f:
        parts = [int(x) for x in f.readline().split()[1:]]
    total = sum(parts[:8])
    return total - parts[3] - parts[4], total


# ---- part 1: engine commands against raw psycopg --------------------------------------------


Cmd = tuple[str, str, dict[str, Any]]  # (what, task_id, keyword arguments)
WORKLOADS = ("start", "assign")


def run_cmd(svc: Services, cmd: Cmd) -> None:
    what, task_id, kw = cmd
    if what == "fire":
        kw = dict(kw)
        engine.fire_task(svc, task_id, kw.pop("trigger"), **kw)
    else:
        engine.assign_task(svc, task_id, kw["assignee"])


def seed(pg: Pg, schema: str, days: int) -> tuple[list[str], float]:
    """Bundles of every shipped definition for ``days`` anchor days, made by the engine."""
    pg.new_schema(schema)
    store = PostgresStore(pg.url(schema))
    svc = services(store, pg.art)
    t0 = time.perf_counter()
    for i in range(days):
        for template in sorted(shipped_content().workflows):
            engine.create_bundle(svc, template, START + timedelta(days=i))
    took = time.perf_counter() - t0
    store.close()
    ids = [r[0] for r in pg.sql(f'SELECT task_id FROM "{schema}".tasks ORDER BY task_id')]
    return ids, took


@dataclass
class Workload:
    """(name, timed, commands) in order; untimed: the warm-up."""

    segments: list[tuple[str, bool, list[Cmd]]]

    def commands(self, name: str) -> int:
        return next(len(cmds) for n, _, cmds in self.segments if n == name)


def workload(ids: list[str], k: int, seed_: int = 7) -> Workload:
    rng = random.Random(seed_)
    picked = rng.sample(ids, k + WARM)
    warm, started = picked[:WARM], picked[WARM:]
    return Workload([
        ("warm", False, [("assign", t, {"assignee": "warm-up"}) for t in warm]),
        ("start", True, [("fire", t, {"trigger": "start"}) for t in started]),
        ("assign", True, [("assign", t, {"assignee": f"user-{i % 7}"})
                          for i, t in enumerate(rng.choices(ids, k=k))]),
    ])


class Capture:
    """Keeps every ``Changes`` the store commits (a reference: nothing copied or serialised)."""

    def __init__(self, store: Any) -> None:
        self.log: list[Changes] = []
        inner = store.commit

        def commit(changes: Changes) -> None:
            inner(changes)
            self.log.append(changes)

        store.commit = commit


class RawCommand:
    """One engine write as the statements PostgresStore._write sends, for schema ``{s}``."""

    __slots__ = ("inserts", "updates")

    def __init__(self, updates: list[tuple[str, Row]], inserts: list[tuple[str, list[Row]]]) -> None:
        self.updates, self.inserts = updates, inserts

    def for_schema(self, schema: str) -> RawCommand:
        s = f'"{schema}"'
        return RawCommand([(q.replace("{s}", s), p) for q, p in self.updates],
                          [(q.replace("{s}", s), rows) for q, rows in self.inserts])

    def tables(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for sql, _ in self.updates:
            k = "UPDATE " + sql.split()[1].split(".")[1]
            out[k] = out.get(k, 0) + 1
        for sql, rows in self.inserts:
            k = "INSERT " + sql.split()[2].split(".")[1]
            out[k] = out.get(k, 0) + len(rows)
        return out


def raw_command(changes: Changes) -> RawCommand:
    """The same SQL text, parameters and docs as ``PostgresStore._write`` (and ``_update``)."""
    updates: list[tuple[str, Row]] = []
    for rec, expected in changes.updates:
        table, key = TABLES[kind_of(rec)]
        cols = {**columns_of(rec), "version": getattr(rec, "version", 1), "doc": changes.doc(rec)}
        sets = ", ".join(f"{c} = %s::jsonb" if c == "doc" else f"{c} = %s" for c in cols)
        updates.append((f"UPDATE {{s}}.{table} SET {sets} WHERE {key} = %s AND version = %s",
                        (*cols.values(), record_id(rec), expected)))
    groups: dict[tuple[str, tuple[str, ...]], list[Row]] = {}
    for rec in [*changes.creates, *changes.events]:
        table, key = TABLES[kind_of(rec)]
        cols = {key: record_id(rec), **columns_of(rec), "version": getattr(rec, "version", 1),
                "doc": changes.doc(rec)}
        groups.setdefault((table, tuple(cols)), []).append(tuple(cols.values()))
    inserts = []
    for (table, names), rows in groups.items():
        marks = ", ".join("%s::jsonb" if n == "doc" else "%s" for n in names)
        inserts.append((f"INSERT INTO {{s}}.{table} ({', '.join(names)}) VALUES ({marks})", rows))
    return RawCommand(updates, inserts)


Timing = dict[str, tuple[float, float, float]]  # workload -> (wall s, client CPU s, server CPU s)


def engine_run(pg: Pg, schema: str, wl: Workload,
               profiles: dict[str, cProfile.Profile] | None = None
               ) -> tuple[Timing, dict[str, list[Changes]]]:
    store = PostgresStore(pg.url(schema))
    cap = Capture(store)
    svc = services(store, pg.art)
    out: Timing = {}
    writes: dict[str, list[Changes]] = {}
    for name, timed, cmds in wl.segments:
        n0 = len(cap.log)
        if timed:
            pg.checkpoint()
        prof = (profiles or {}).get(name) if timed else None
        gc.collect()
        s0, t0, c0 = pg.cpu(), time.perf_counter(), time.process_time()
        if prof is not None:
            prof.enable()
        for cmd in cmds:
            run_cmd(svc, cmd)
        if prof is not None:
            prof.disable()
        if timed:
            out[name] = (time.perf_counter() - t0, time.process_time() - c0, pg.cpu() - s0)
        writes[name] = cap.log[n0:]
        if len(writes[name]) != len(cmds):
            raise SystemExit(f"{name}: {len(cmds)} commands made {len(writes[name])} commits; "
                             "the raw replay assumes one write per command")
    store.close()
    return out, writes


def raw_run(pg: Pg, schema: str, plan: list[tuple[str, bool, list[RawCommand]]],
            prepare_threshold: int | None) -> Timing:
    """Each command in its own transaction: its UPDATEs (row count checked), its INSERTs
    (``executemany`` per table), COMMIT. Nothing is read."""
    conn = pg.connect(autocommit=False, prepare_threshold=prepare_threshold)
    out: Timing = {}
    for name, timed, cmds0 in plan:
        cmds = [c.for_schema(schema) for c in cmds0]
        if timed:
            pg.checkpoint()
        gc.collect()
        s0, t0, c0 = pg.cpu(), time.perf_counter(), time.process_time()
        for cmd in cmds:
            with conn.cursor() as cur:
                for sql, params in cmd.updates:
                    cur.execute(sql, params)
                    if cur.rowcount != 1:
                        conn.rollback()
                        raise SystemExit(f"raw replay: {params[-2]} is not at version {params[-1]}")
                for sql, rows in cmd.inserts:
                    cur.executemany(sql, rows)
            conn.commit()
        if timed:
            out[name] = (time.perf_counter() - t0, time.process_time() - c0, pg.cpu() - s0)
    conn.close()
    return out


class Counts:
    """What the client sends, counted at the pool and at psycopg's cursor (untimed passes)."""

    def __init__(self) -> None:
        self.n: dict[str, int] = {}

    def add(self, what: str, k: int = 1) -> None:
        self.n[what] = self.n.get(what, 0) + k

    def statements(self) -> int:
        return sum(v for k, v in self.n.items() if k not in (
            "transaction", "check", "rows in executemany", "units"))

    def exchanges(self) -> int:
        """Requests that wait for the server: the pool's checks, BEGIN and COMMIT of each
        transaction, and each statement (an ``executemany`` is one pipeline sync)."""
        return self.n.get("check", 0) + 2 * self.n.get("transaction", 0) + self.statements()

    def line(self, per: str) -> str:
        u = self.n["units"]
        kinds = sorted(k for k in self.n if k not in (
            "transaction", "check", "rows in executemany", "units"))
        rows = self.n.get("rows in executemany", 0)
        return (f"{self.n.get('transaction', 0) / u:,.2f} transactions "
                f"({self.n.get('check', 0) / u:,.2f} pool checks), "
                + ", ".join(f"{self.n[k] / u:,.2f} {k}" for k in kinds)
                + (f" ({rows / u:,.2f} rows)" if rows else "")
                + f": {self.exchanges() / u:,.1f} exchanges per {per}")


@contextmanager
def counted(store: PostgresStore, counts: Counts) -> Iterator[None]:
    """Counts every pooled transaction of ``store`` and every statement psycopg sends (the
    pool's check is an empty query)."""
    pool = store._pool
    inner = pool.connection

    @contextmanager
    def checkout(*a: Any, **kw: Any) -> Iterator[Any]:
        counts.add("transaction")
        with inner(*a, **kw) as conn:
            yield conn

    cls = psycopg.Cursor
    execute, executemany = cls.execute, cls.executemany

    def ex(self: Any, query: Any, params: Any = None, **kw: Any) -> Any:
        text = str(query).strip()
        counts.add(text.split(None, 1)[0].upper() if text else "check")
        return execute(self, query, params, **kw)

    def exm(self: Any, query: Any, params_seq: Any, **kw: Any) -> Any:
        rows = list(params_seq)
        counts.add("executemany")
        counts.add("rows in executemany", len(rows))
        return executemany(self, query, rows, **kw)

    pool.connection = checkout  # type: ignore[method-assign]
    cls.execute, cls.executemany = ex, exm  # type: ignore[method-assign]
    try:
        yield
    finally:
        cls.execute, cls.executemany = execute, executemany  # type: ignore[method-assign]
        pool.connection = inner  # type: ignore[method-assign]


def count_engine(pg: Pg, schema: str, wl: Workload, n: int) -> dict[str, Counts]:
    """Per workload, what its first ``n`` engine commands send (on a fresh copy of the seed,
    after the warm-up)."""
    store = PostgresStore(pg.url(schema))
    svc = services(store, pg.art)
    out: dict[str, Counts] = {}
    for name, _, cmds in wl.segments:
        if name not in WORKLOADS:
            for cmd in cmds:
                run_cmd(svc, cmd)
            continue
        counts = out[name] = Counts()
        with counted(store, counts):
            for cmd in cmds[:n]:
                run_cmd(svc, cmd)
        counts.add("units", len(cmds[:n]))
    store.close()
    return out


@dataclass
class EngineResult:
    k: int
    runs: dict[tuple[str, str], list[tuple[float, float, float]]]  # (who, workload) -> reps
    shapes: dict[str, str]
    doc_bytes: dict[str, float]
    problems: list[str]
    counts: dict[str, Counts]
    raw_counts: dict[str, float]
    profile_walls: dict[str, float]
    seed_s: float
    seed_tasks: int

    def best(self, who: str, wl: str) -> tuple[float, float, float]:
        return min(self.runs[(who, wl)])


WHO = ("engine", "raw", "raw prepared", "memory")
PG_WHO = WHO[:3]


def memory_run(days: int, wl: Workload, art: Path) -> Timing:
    """The same commands on a MemoryStore seeded alike: the engine's own cost, no database."""
    store = MemoryStore()
    svc = services(store, art)
    for i in range(days):
        for template in sorted(shipped_content().workflows):
            engine.create_bundle(svc, template, START + timedelta(days=i))
    out: Timing = {}
    for name, timed, cmds in wl.segments:
        gc.collect()
        t0, c0 = time.perf_counter(), time.process_time()
        for cmd in cmds:
            run_cmd(svc, cmd)
        if timed:
            out[name] = (time.perf_counter() - t0, time.process_time() - c0, 0.0)
    return out


def measure_engine(pg: Pg, days: int, k: int, reps: int, log: Callable[[str], None],
                   profiles: dict[str, cProfile.Profile] | None = None) -> EngineResult:
    profile_walls: dict[str, float] = {}
    last_plan: list[tuple[str, bool, list[RawCommand]]] | None = None
    ids, seed_s = seed(pg, "p1_seed", days)
    log(f"  seeded {len(ids):,} tasks ({days * len(shipped_content().workflows)} bundles) "
        f"through the engine in {seed_s:.1f} s")
    wl = workload(ids, k)
    runs: dict[tuple[str, str], list[tuple[float, float, float]]] = {
        (who, w): [] for who in WHO for w in WORKLOADS}
    problems: list[str] = []
    shapes: dict[str, str] = {}
    doc_bytes: dict[str, float] = {}
    for r in range(reps):
        names = {who: f"p1_{who.replace(' ', '_')}_{r}" for who in PG_WHO}
        for s in names.values():
            pg.copy_schema("p1_seed", s)
        order = list(WHO) if r % 2 == 0 else ["raw", "raw prepared", "engine", "memory"]
        plan: list[tuple[str, bool, list[RawCommand]]] | None = None
        if order[0] != "engine":  # the raw runs need the engine's writes: take the last rep's
            plan = last_plan
        for who in order:
            if who == "memory":
                times = memory_run(days, wl, pg.art)
            elif who == "engine":
                times, writes = engine_run(pg, names[who], wl)
                plan = [(nm, timed, [raw_command(c) for c in writes[nm]])
                        for nm, timed, _ in wl.segments]
                del writes
            else:
                assert plan is not None
                times = raw_run(pg, names[who], plan, None if who == "raw" else 5)
            for w, v in times.items():
                runs[(who, w)].append(v)
        assert plan is not None
        last_plan = plan
        if r == 0:
            for nm, timed, cmds in plan:
                if timed:
                    tally: dict[str, int] = {}
                    for c in cmds:
                        for key, v in c.tables().items():
                            tally[key] = tally.get(key, 0) + v
                    shapes[nm] = " + ".join(
                        f"{v / len(cmds):.2f} {key}" if v % len(cmds) else f"{v // len(cmds)} {key}"
                        for key, v in tally.items())
                    doc_bytes[nm] = sum(len(str(p[-3])) for c in cmds for _, p in c.updates) / len(
                        cmds) + sum(len(str(row[-1])) for c in cmds for _, rows in c.inserts
                                    for row in rows) / len(cmds)
            for who in ("raw", "raw prepared"):
                problems += [f"{who}: {p}" for p in pg.same_rows(names["engine"], names[who])]
        if r == reps - 1:
            pg.copy_schema("p1_seed", "p1_count")
            counts = count_engine(pg, "p1_count", wl, min(100, k))
            pg.drop("p1_count")
            raw_counts = {w: statistics.mean(len(c.updates) + len(c.inserts)
                                             for c in next(cs for nm, _, cs in plan if nm == w))
                          for w in WORKLOADS}
            if profiles is not None:
                pg.copy_schema("p1_seed", "p1_profile")
                profile_walls = {w: v[0] for w, v in engine_run(pg, "p1_profile", wl, profiles)[0].items()}
                pg.drop("p1_profile")
        pg.drop(*names.values())
        log(f"  repetition {r + 1} of {reps}: engine/raw " + ", ".join(
            f"{w} {runs[('raw', w)][-1][0] / runs[('engine', w)][-1][0]:.2f}" for w in WORKLOADS))
    pg.drop("p1_seed")
    return EngineResult(k, runs, shapes, doc_bytes, problems, counts, raw_counts, profile_walls,
                        seed_s, len(ids))


def report_engine(res: EngineResult) -> None:
    print(f"part 1: engine commands on PostgresStore against raw psycopg writing the same rows "
          f"(best of reps by wall time; {res.k} commands per workload on {res.seed_tasks:,} tasks)")
    rows = []
    for w in WORKLOADS:
        raw_wall = res.best("raw", w)[0]
        for who in WHO:
            wall, cpu, srv = res.best(who, w)
            walls = [x[0] for x in res.runs[(who, w)]]
            ratio = "1.00 (baseline)" if who == "raw" else f"{raw_wall / wall:.2f}"
            label = {"engine": "engine (PostgresStore)", "raw": "raw psycopg, no prepared stmts",
                     "raw prepared": "raw psycopg, prepared (reference)",
                     "memory": "engine (MemoryStore, reference)"}[who]
            rows.append((w, label, f"{res.k / wall:,.0f}", ratio, f"{wall / res.k * 1e6:,.0f}",
                         f"{cpu / res.k * 1e6:,.0f}",
                         f"{srv / res.k * 1e6:,.0f}" if who != "memory" else "-",
                         f"{(max(walls) - min(walls)) / min(walls) * 100:.0f}%" if len(walls) > 1
                         else "-"))
    print_table(("workload", "who", "commands/s", "ratio to raw", "wall us/cmd",
                 "client CPU us/cmd", "server CPU us/cmd", "spread"), rows)
    print()
    for w in WORKLOADS:
        print(f"  {w}: one command writes {res.shapes[w]} ({res.doc_bytes[w]:,.0f} doc bytes). "
              f"The engine sends {res.counts[w].line('command')}; raw sends 1 transaction, "
              f"{res.raw_counts[w]:.2f} statements: {2 + res.raw_counts[w]:.1f} exchanges")
    print("  (exchanges: requests that wait for the server: each transaction's BEGIN and COMMIT, "
          "the pool's check (an empty query) when a connection is taken out, each statement; "
          f"counted on the first {res.counts['start'].n['units']} commands of each workload, on "
          "a fresh copy)")
    if res.problems:
        print("  CHECK FAILED: the raw runs did not write what the engine wrote, so the ratios are "
              "not comparable:")
        for p in res.problems:
            print(f"    {p}")
    else:
        print("  raw schemas checked against the engine's after the first repetition: identical "
              "(every table, every column)")
    print()
    for w in WORKLOADS:
        ratio = res.best("raw", w)[0] / res.best("engine", w)[0]
        print(f"goal: engine >= 0.50 x raw psycopg, {w}: {ratio:.2f} -> "
              f"{'met' if ratio >= 0.5 else 'NOT met'}")


# ---- part 2: concurrent writers ----------------------------------------------------------------


def _writer(url: str, art: str, task_ids: list[str], duration: float, barrier: Any,
            out: Any) -> None:
    """One writer process: its own store, its own bundle's tasks, assigns until ``duration``."""
    try:
        store = PostgresStore(url)
        svc = services(store, Path(art))
        n = 0
        for _ in range(50):  # warm: imports, caches, the pool's connection
            engine.assign_task(svc, task_ids[n % len(task_ids)], f"user-{n % 7}")
            n += 1
        errors = {"conflict": 0, "throttled": 0, "other": 0}
        lat: list[float] = []
        barrier.wait(timeout=300)
        c0 = time.process_time()
        t0 = time.monotonic()
        end = t0 + duration
        done = 0
        while True:
            a = time.monotonic()
            if a >= end:
                break
            try:
                engine.assign_task(svc, task_ids[n % len(task_ids)], f"user-{n % 7}")
                done += 1
            except ConflictError:
                errors["conflict"] += 1
            except ThrottledError:
                errors["throttled"] += 1
            except DataopsError:
                errors["other"] += 1
            n += 1
            lat.append(time.monotonic() - a)
        t1 = time.monotonic()
        cpu = time.process_time() - c0
        store.close()
        out.put({"done": done, "t0": t0, "t1": t1, "lat": lat, "errors": errors, "cpu": cpu})
    except BaseException as e:  # tell the parent; never hang it
        out.put({"error": f"{type(e).__name__}: {e}"})
        raise


@dataclass
class ConcResult:
    writers: int
    done: int
    wall: float
    per_writer: list[int]
    lat: list[float]
    errors: dict[str, int]
    wal_syncs: int
    busy: float
    client_cpu: float
    server_cpu: float

    @property
    def rate(self) -> float:
        return self.done / self.wall


def concurrency_run(pg: Pg, schema: str, tasks: dict[str, list[str]], bundles: list[str],
                    writers: int, duration: float) -> ConcResult:
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(writers + 1)
    out = ctx.Queue()
    pg.checkpoint()
    procs = [ctx.Process(target=_writer, args=(pg.url(schema), str(pg.art), tasks[bundles[w]],
                                               duration, barrier, out), daemon=True)
             for w in range(writers)]
    for p in procs:
        p.start()
    try:
        barrier.wait(timeout=300)
    except Exception:
        for p in procs:
            p.kill()
        raise SystemExit("part 2: the writers did not reach the barrier") from None
    s0, w0, m0 = pg.cpu(), pg.wal_syncs(), machine_cpu()
    results = [out.get(timeout=duration + 120) for _ in procs]
    m1 = machine_cpu()
    for p in procs:
        p.join(timeout=60)
    bad = [r["error"] for r in results if "error" in r]
    if bad:
        raise SystemExit(f"part 2: a writer failed: {bad[0]}")
    pg.wait_for_backends(0)
    w1, s1 = pg.wal_syncs(), pg.cpu()
    done = sum(r["done"] for r in results)
    wall = max(r["t1"] for r in results) - min(r["t0"] for r in results)
    errors = {k: sum(r["errors"][k] for r in results) for k in ("conflict", "throttled", "other")}
    lat = sorted(x for r in results for x in r["lat"])
    busy = (m1[0] - m0[0]) / max(1, m1[1] - m0[1])
    return ConcResult(writers, done, wall, sorted(r["done"] for r in results), lat, errors,
                      w1 - w0, busy, sum(r["cpu"] for r in results), s1 - s0)


def measure_concurrency(pg: Pg, counts: Sequence[int], duration: float, reps: int,
                        log: Callable[[str], None]) -> list[list[ConcResult]]:
    schema = "p2"
    pg.new_schema(schema)
    store = PostgresStore(pg.url(schema))
    svc = services(store, pg.art)
    bundles = [engine.create_bundle(svc, "vat-return", START + timedelta(days=w)).bundle.bundle_id
               for w in range(max(counts))]
    tasks = {b: [t.task_id for t in store.tasks_of(b)] for b in bundles}
    store.close()
    pg.sql(*(f'VACUUM ANALYZE "{schema}".{t}' for t in ALL_TABLES))
    out: list[list[ConcResult]] = [[] for _ in counts]
    for r in range(reps):
        for i, n in enumerate(counts):
            res = concurrency_run(pg, schema, tasks, bundles, n, duration)
            out[i].append(res)
            log(f"  repetition {r + 1} of {reps}, {n} writer(s): {res.rate:,.0f} commands/s, "
                f"{sum(res.errors.values())} errors")
    pg.drop(schema)
    return out


def report_concurrency(results: list[list[ConcResult]], duration: float) -> None:
    cpus = os.cpu_count()
    print(f"part 2: concurrent writers, one OS process each (spawn), released by a Barrier; each "
          f"fires engine.assign_task on its own bundle's 6 tasks for {duration:g} s (best of reps "
          f"by commands/s). This machine has {cpus} CPU cores, shared by the writers and the "
          f"server.")
    best = [max(rs, key=lambda r: r.rate) for rs in results]
    base = best[0].rate
    rows = []
    for rs, b in zip(results, best, strict=True):
        q = b.lat
        rows.append((f"{b.writers}", f"{b.done:,}", f"{b.rate:,.0f}", f"{b.rate / base:.2f}",
                     f"{b.per_writer[0]:,}-{b.per_writer[-1]:,}",
                     f"{q[len(q) // 2] * 1e3:.1f}", f"{q[int(len(q) * 0.95)] * 1e3:.1f}",
                     f"{q[-1] * 1e3:.0f}",
                     f"{b.errors['conflict']}", f"{b.errors['throttled']}", f"{b.errors['other']}",
                     f"{b.wal_syncs / max(1, b.done):.2f}", f"{b.busy * 100:.0f}%",
                     f"{b.client_cpu / max(1, b.done) * 1e6:,.0f}",
                     f"{b.server_cpu / max(1, b.done) * 1e6:,.0f}",
                     f"{cpus * b.done / max(1e-9, b.client_cpu + b.server_cpu):,.0f}",
                     " / ".join(f"{x.rate:,.0f}" for x in rs)))
    print_table(("writers", "commands", "commands/s", "x 1 writer", "per writer", "p50 ms",
                 "p95 ms", "max ms", "conflicts", "throttled", "other errors",
                 "WAL fsyncs/cmd", "CPU busy", "client CPU us/cmd", "server CPU us/cmd",
                 "CPU ceiling cmd/s", "each rep cmd/s"), rows)
    print("  (CPU busy: all cores of the machine, idle and iowait excluded, during the timed "
          "window. CPU ceiling: the commands/s the cores would allow at that run's client + "
          "server CPU per command. WAL fsyncs from pg_stat_wal: below 1 per command is group "
          "commit)")
    print()
    steps = [(a, b) for a, b in zip(best, best[1:], strict=False)]
    grows = all(b.rate > a.rate for a, b in steps)
    print("goal: throughput grows with writers: " + ", ".join(
        f"{b.writers}/{a.writers} writers {b.rate / a.rate:.2f}x" for a, b in steps)
        + f" -> {'met' if grows else 'NOT met'}")
    seen = sum(sum(r.errors.values()) for rs in results for r in rs)
    conflicts = sum(r.errors["conflict"] for rs in results for r in rs)
    throttled = sum(r.errors["throttled"] for rs in results for r in rs)
    print(f"goal: zero conflicts between writers of different records (every run): "
          f"{conflicts} ConflictError, {throttled} ThrottledError, {seen - conflicts - throttled} "
          f"other -> {'met' if seen == 0 else 'NOT met'}")


# ---- part 3: the reminder sweep at scale -------------------------------------------------------

_D, _N, _S = "\x01", "\x02", "\x03"  # marks: anchor date, reminder instant, bundle serial


def copy_text(v: object) -> str:
    """One field of COPY's text format."""
    if v is None:
        return "\\N"
    if isinstance(v, datetime):
        return format_instant(v)
    s = str(v)
    return s.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def created_pg_rows(wf: Any, anchor: date) -> dict[str, tuple[tuple[str, ...], list[Row]]]:
    """The rows ``create_bundle`` writes for ``wf`` at ``anchor`` (clock: sweep.CREATED), per
    table, in the PostgreSQL store's columns (as ``PostgresStore._write`` builds them)."""
    sw = _bench("sweep")
    store = MemoryStore()
    cap = Capture(store)
    engine.create_bundle(_bench("instantiate").services(store, wf, sw.CREATED), wf.template_id,
                         anchor)
    (changes,) = cap.log
    assert not changes.updates
    out: dict[str, tuple[tuple[str, ...], list[Row]]] = {}
    for rec in [*changes.creates, *changes.events]:
        table, key = TABLES[kind_of(rec)]
        cols = {key: record_id(rec), **columns_of(rec), "version": getattr(rec, "version", 1),
                "doc": changes.doc(rec)}
        names, rows = out.setdefault(table, (tuple(cols), []))
        assert names == tuple(cols)
        rows.append(tuple(cols.values()))
    return out


def as_lines(rows: list[Row]) -> str:
    return "".join("\t".join(copy_text(v) for v in r) + "\n" for r in rows)


class PgTemplates:
    """Per definition, the COPY text of one bundle's rows at sweep.SENTINEL with the anchor
    date, the reminder instant and the bundle's part of its event IDs made marks; a bundle
    costs three ``str.replace`` per table. Every bundle keeps its template's hashes (right
    sizes; chains that would not verify; nothing in a sweep reads them)."""

    TABLES = ("bundles", "tasks", "audit_events")

    def __init__(self) -> None:
        sw = _bench("sweep")
        self.sw = sw
        self.wfs = [sw.definition(j) for j in range(sw.TEMPLATES)]
        nr = format_instant(local_instant(sw.SENTINEL, sw.AT, sw.ZONE))
        self.columns: dict[str, tuple[str, ...]] = {}
        self.blocks: list[dict[str, str]] = []
        for wf in self.wfs:
            rows = created_pg_rows(wf, sw.SENTINEL)
            assert [len(rows[t][1]) for t in self.TABLES] == [1, sw.TASKS, 1 + sw.TASKS]
            assert rows["bundles"][1][0][3] is None  # no required links: bundles never fire
            events = [str(r[0]) for r in rows["audit_events"][1]]
            assert all(e.startswith("evt-") and len(e) == 36 for e in events), events[:2]
            block = {}
            for t in self.TABLES:
                self.columns[t] = rows[t][0]
                text = as_lines(rows[t][1])
                assert nr in text or t != "tasks"
                text = text.replace(nr, _N).replace(sw.SENTINEL.isoformat(), _D)
                for i, e in enumerate(events):
                    text = text.replace(e, f"evt-{_S}{i:08x}")
                block[t] = text
            self.blocks.append(block)

    def fill(self, j: int, anchor: date, serial: int, table: str) -> str:
        nr = format_instant(local_instant(anchor, self.sw.AT, self.sw.ZONE))
        return (self.blocks[j][table].replace(_D, anchor.isoformat()).replace(_N, nr)
                .replace(_S, f"{serial:024x}"))

    def check(self, samples: Sequence[tuple[int, date]]) -> None:
        """The generated rows are create_bundle's, every column, but for the event IDs and the
        hashes over them."""
        hexes = self.sw._HEX
        for j, anchor in samples:
            real = created_pg_rows(self.wfs[j], anchor)
            for t in self.TABLES:
                a = hexes.sub("#", as_lines(real[t][1])).splitlines()
                b = hexes.sub("#", self.fill(j, anchor, 0, t)).splitlines()
                for x, y in zip(a, b, strict=True):
                    assert x == y, (j, anchor, t, "generated row differs from create_bundle's",
                                    [(p, q) for p, q in zip(x.split("\t"), y.split("\t"),
                                                            strict=True) if p != q])


def load_size(pg: Pg, n: int, tpl: PgTemplates) -> tuple[str, float]:
    """A schema of ``n`` open tasks, 1,000 due at sweep.NOW, bulk-loaded; (schema, seconds)."""
    sw = tpl.sw
    if n % sw.DUE or n < sw.DUE:
        raise SystemExit(f"size {n}: give a multiple of {sw.DUE}")
    t0 = time.perf_counter()
    per_template = n // sw.DUE
    pairs = [(j, d) for j in range(sw.TEMPLATES) for d in range(per_template)]
    random.Random(n).shuffle(pairs)  # creation order unrelated to due order
    tpl.check([(0, sw.TODAY), (7, sw.TODAY + timedelta(days=per_template - 1)),
               (13, date(2026, 3, 8)), (21, date(2026, 11, 1)),
               *[(j, sw.TODAY + timedelta(days=d)) for j, d in random.Random(1).sample(pairs, 5)]])
    schema = f"sweep_{n}"
    pg.new_schema(schema)
    s = f'"{schema}"'
    with pg.connect(autocommit=False) as conn:
        # foreign keys: not checked row by row while loading (as pg_restore --disable-triggers
        # would); one query below checks them all
        conn.execute("SET LOCAL session_replication_role = replica")
        for t in tpl.TABLES:
            with conn.cursor() as cur, cur.copy(
                    f"COPY {s}.{t} ({', '.join(tpl.columns[t])}) FROM STDIN") as cp:
                buf: list[str] = []
                size = 0
                for serial, (j, d) in enumerate(pairs):
                    text = tpl.fill(j, sw.TODAY + timedelta(days=d), serial, t)
                    buf.append(text)
                    size += len(text)
                    if size > 1 << 20:
                        cp.write("".join(buf))
                        buf, size = [], 0
                if buf:
                    cp.write("".join(buf))
        conn.commit()
    pg.sql(*(f"VACUUM ANALYZE {s}.{t}" for t in ALL_TABLES))
    (due, total, events, orphans, bundles), = pg.sql(
        f"SELECT (SELECT count(*) FROM {s}.tasks WHERE next_reminder_at <= %s), "
        f"(SELECT count(*) FROM {s}.tasks), (SELECT count(*) FROM {s}.audit_events), "
        f"(SELECT count(*) FROM {s}.tasks t LEFT JOIN {s}.bundles b USING (bundle_id) "
        f"WHERE b.bundle_id IS NULL), (SELECT count(*) FROM {s}.bundles)", args=(sw.NOW,))
    assert (due, total, events, orphans, bundles) == (sw.DUE, n, n + n // sw.TASKS, 0,
                                                      n // sw.TASKS), (due, total, events, orphans)
    # what a sweep may change, kept to put back after each repetition
    pg.sql("CREATE SCHEMA IF NOT EXISTS bench_keep",
           f"DROP TABLE IF EXISTS bench_keep.tasks_{n}, bench_keep.bundles_{n}",
           f"CREATE TABLE bench_keep.tasks_{n} AS SELECT * FROM {s}.tasks "
           f"WHERE next_reminder_at <= %s",
           f"CREATE TABLE bench_keep.bundles_{n} AS SELECT * FROM {s}.bundles WHERE bundle_id IN "
           f"(SELECT bundle_id FROM bench_keep.tasks_{n})", args=(sw.NOW,))
    return schema, time.perf_counter() - t0


def reset_size(pg: Pg, schema: str, n: int, events: int) -> None:
    """Undo a sweep: its reminders and events deleted, the records it changed put back."""
    sw = _bench("sweep")
    s = f'"{schema}"'
    tcols = ("bundle_id", "position", "status", "assignee", "next_reminder_at", "version", "doc")
    bcols = ("template_id", "status", "next_reminder_at", "version", "doc")

    def put_back(table: str, key: str, cols: tuple[str, ...]) -> str:
        return (f"UPDATE {s}.{table} AS t SET ({', '.join(cols)}) = "
                f"({', '.join('k.' + c for c in cols)}) FROM bench_keep.{table}_{n} AS k "
                f"WHERE t.{key} = k.{key}")

    with pg.connect(autocommit=False) as conn:
        conn.execute(f"DELETE FROM {s}.reminders")
        conn.execute(f"DELETE FROM {s}.audit_events WHERE at > %s", (sw.CREATED,))
        conn.execute(put_back("tasks", "task_id", tcols))
        conn.execute(put_back("bundles", "bundle_id", bcols))
        conn.commit()
    pg.sql(*(f"VACUUM {s}.{t}" for t in ("tasks", "bundles", "reminders", "audit_events")))
    (due, evs, rems, diff), = pg.sql(
        f"SELECT (SELECT count(*) FROM {s}.tasks WHERE next_reminder_at <= %s), "
        f"(SELECT count(*) FROM {s}.audit_events), (SELECT count(*) FROM {s}.reminders), "
        f"(SELECT count(*) FROM (SELECT * FROM bench_keep.tasks_{n} EXCEPT SELECT t.* FROM "
        f"{s}.tasks t JOIN bench_keep.tasks_{n} k USING (task_id)) AS d)", args=(sw.NOW,))
    assert (due, evs, rems, diff) == (sw.DUE, events, 0, 0), ("reset", due, evs, rems, diff)


def bare_sql(schema: str) -> list[str]:
    """What ``PostgresStore.due_for_reminders(at, 1000)`` runs (first page)."""
    return [f'SELECT next_reminder_at, {key}, doc::text FROM "{schema}".{table} '
            f"WHERE next_reminder_at <= %s ORDER BY next_reminder_at, {key} LIMIT %s"
            for table, key in (("bundles", "bundle_id"), ("tasks", "task_id"))]


def one_sweep(pg: Pg, schema: str, profile: cProfile.Profile | None = None,
              counts: Counts | None = None) -> dict[str, float]:
    sw = _bench("sweep")
    store = PostgresStore(pg.url(schema))
    finds: list[float] = []
    inner = store.due_for_reminders

    def timed(at: datetime, limit: int, cursor: str | None = None) -> Any:
        t0 = time.perf_counter()
        out = inner(at, limit, cursor=cursor)
        finds.append(time.perf_counter() - t0)
        return out

    store.due_for_reminders = timed  # type: ignore[method-assign]
    svc = Services(store=store, clock=FixedClock(sw.NOW), actor="bench")
    sink = sw.MemorySink()
    report = SweepReport()
    pg.checkpoint()
    gc.collect()
    s0, c0 = pg.cpu(), time.process_time()
    if profile is not None:
        profile.enable()
    with counted(store, counts) if counts is not None else contextlib.nullcontext():
        t0 = time.perf_counter()
        record_due(svc, sw.NOW, report=report)
        t1 = time.perf_counter()
        deliver_pending(svc, [sink], sw.NOW, report=report)
        t2 = time.perf_counter()
    if profile is not None:
        profile.disable()
    cpu, srv = time.process_time() - c0, pg.cpu() - s0
    assert report.found == sw.DUE and len(report.recorded) == sw.DUE, report.line()
    assert len(report.delivered) == sw.DUE and len(sink.payloads) == sw.DUE, report.line()
    assert not report.failed and not report.retried and not report.skipped, report.line()
    del store.due_for_reminders
    assert store.due_for_reminders(sw.NOW, 10_000).items == [], "a second sweep would find some"
    store.close()
    return {"find": sum(finds), "pages": len(finds), "record": t1 - t0, "deliver": t2 - t1,
            "sweep": t2 - t0, "recorded": len(report.recorded), "delivered": len(report.delivered),
            "cpu": cpu, "server": srv}


Results = dict[str, Any]


def measure_sweep(pg: Pg, sizes: list[int], reps: dict[str, int], log: Callable[[str], None],
                  profile: cProfile.Profile | None = None) -> list[Results]:
    sw = _bench("sweep")
    tpl = PgTemplates()
    res: dict[int, Results] = {}
    for n in sizes:
        schema, took = load_size(pg, n, tpl)
        (mb,), = pg.sql("SELECT sum(pg_total_relation_size(c.oid)) / 1e6 FROM pg_class c "
                        "JOIN pg_namespace ns ON ns.oid = c.relnamespace "
                        "WHERE ns.nspname = %s AND c.relkind = 'r'", args=(schema,))
        (events,), = pg.sql(f'SELECT count(*) FROM "{schema}".audit_events')
        res[n] = {"n": n, "schema": schema, "load_s": took, "mb": float(mb), "events": events,
                  "bare": [], "find": [], "sweep": []}
        log(f"  loaded {n:,} tasks in {took:.1f} s ({float(mb):,.0f} MB with indexes and TOAST)")
    conns = {n: pg.connect(prepare_threshold=None) for n in sizes}
    stores = {n: PostgresStore(pg.url(res[n]["schema"])) for n in sizes}
    for n in sizes:
        plan = []
        for q in bare_sql(res[n]["schema"]):
            lines = [r[0] for r in conns[n].execute("EXPLAIN " + q, (sw.NOW, 1001)).fetchall()]
            plan.append(" / ".join(ln.strip().split("  (")[0].lstrip("-> ").strip()
                                   for ln in lines if "(cost=" in ln))
        res[n]["plan"] = "; ".join(plan)

    def bare(n: int) -> float:
        t0 = time.perf_counter()
        rows = [r for q in bare_sql(res[n]["schema"])
                for r in conns[n].execute(q, (sw.NOW, 1001)).fetchall()]
        elapsed = time.perf_counter() - t0
        assert len(rows) == sw.DUE, len(rows)
        return elapsed

    def find(n: int) -> float:
        t0 = time.perf_counter()
        found = stores[n].due_for_reminders(sw.NOW, 1_000).items
        elapsed = time.perf_counter() - t0
        assert len(found) == sw.DUE and all(isinstance(r, Task) for r in found), len(found)
        return elapsed

    for n in sizes:  # warm
        bare(n)
        find(n)
    for what, once in (("bare", bare), ("find", find)):
        for _ in range(reps[what]):
            for n in sizes:
                gc.collect()
                res[n][what].append(once(n))
    for n in sizes:
        conns[n].close()
        stores[n].close()
    for rep in range(reps["sweep"]):
        for n in sizes:
            res[n]["sweep"].append(one_sweep(pg, res[n]["schema"]))
            reset_size(pg, res[n]["schema"], n, res[n]["events"])
        log(f"  sweep repetition {rep + 1} of {reps['sweep']} done")
    n = sizes[0]
    counts = res[n]["counts"] = Counts()
    one_sweep(pg, res[n]["schema"], counts=counts)
    counts.add("units", sw.DUE)
    reset_size(pg, res[n]["schema"], n, res[n]["events"])
    if profile is not None:
        n = sizes[-1]
        res[n]["profiled"] = one_sweep(pg, res[n]["schema"], profile)
        reset_size(pg, res[n]["schema"], n, res[n]["events"])
    return [res[n] for n in sizes]


def report_sweep(results: list[Results]) -> None:
    base = results[0]
    n0 = f"{base['n']:,}"
    print("part 3: finding the 1,000 due tasks (ms, best of reps)")
    rows = []
    for r in results:
        bare, find = min(r["bare"]), min(r["find"])
        rows.append((f"{r['n']:,}", f"{r['mb']:,.0f}", f"{r['load_s']:.1f}", ms(bare), ms(find),
                     f"{find / bare:.1f}x", f"{find / min(base['find']):.2f}"))
    print_table(("tasks", "schema MB", "load s", "bare SQL", "due_for_reminders", "find/bare",
                 f"find/find({n0})"), rows)
    print()
    print("part 3: whole sweep (record_due + deliver_pending of 1,000 reminders to a memory sink; "
          "ms, best of reps unless median; a new store each, the loaded state each)")
    s0 = min(x["sweep"] for x in base["sweep"])
    rows = []
    for r in results:
        runs = r["sweep"]
        b = min(runs, key=lambda x: x["sweep"])
        med = statistics.median(x["sweep"] for x in runs)
        rows.append((f"{r['n']:,}", ms(b["find"]), ms(b["record"]), ms(b["deliver"]),
                     ms(b["sweep"]), ms(med), f"{b['recorded']:,}", f"{b['delivered']:,}",
                     f"{b['sweep'] / s0:.2f}", f"{b['find'] / min(r['bare']):.1f}x",
                     f"{b['cpu'] * 1e3:,.0f}", f"{b['server'] * 1e3:,.0f}",
                     spread([x["sweep"] for x in runs])))
    print_table(("tasks", "finding", "record_due", "deliver", "sweep", "sweep median", "recorded",
                 "delivered", f"sweep/sweep({n0})", "finding/bare", "client CPU ms",
                 "server CPU ms", "sweep spread"), rows)
    print()
    pages = results[-1]["sweep"][0]["pages"]
    print(f"  finding = due_for_reminders inside the sweep ({pages} call(s)); record_due includes "
          f"it. Bare SQL: the two SELECTs it runs, on a warm plain connection, nothing decoded.")
    print(f"  one sweep (at {n0}, counted in an extra untimed run) sends, per reminder: "
          f"{base['counts'].line('reminder')}")
    for r in results:
        print(f"  query plans at {r['n']:,} (bundles; tasks): {r['plan']}")
    print()
    last = results[-1]
    ratio = min(x["sweep"] for x in last["sweep"]) / s0
    print(f"goal: sweep({last['n']:,}) within 2x of sweep({n0}): {ratio:.2f}x -> "
          f"{'met' if ratio <= 2 else 'NOT met'}")
    f_last = min(x["find"] for x in last["sweep"])
    print(f"  (for reference, sweep.py's SQLite goal of under 50 ms finding at 1M: finding inside "
          f"the sweep at {last['n']:,} took {ms(f_last)} ms, best of reps)")


# ---- output ----------------------------------------------------------------------------------


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:,.1f}" if seconds < 10 else f"{seconds * 1e3:,.0f}"


def spread(ts: Sequence[float]) -> str:
    return f"{(max(ts) - min(ts)) / min(ts) * 100:.0f}%" if len(ts) > 1 else "-"


def print_table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> None:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, tuple("-" * w for w in widths), *rows]:
        cells = [f"{c:<{w}}" if i <= 1 and not c[:1].isdigit() else f"{c:>{w}}"
                 for i, (c, w) in enumerate(zip(row, widths, strict=True))]
        print("  ".join(cells).rstrip())


def load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


def revision() -> str:
    """The commit, and whether the adapter differs from it (others may be editing it)."""
    try:
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, check=False).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "diff", "--quiet", "HEAD", "--",
                                "runtime/store"], check=False).returncode != 0
    except OSError:
        return "?"
    adapter = ROOT / "runtime" / "store" / "postgres.py"
    digest = hashlib.sha256(adapter.read_bytes()).hexdigest()[:12]
    return (f"commit {head}, runtime/store/ {'MODIFIED in the work tree' if dirty else 'as committed'}"
            f" (postgres.py sha256 {digest})")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true",
                   help="fewer commands, shorter writer runs, sweep at 10k and 100k, part 5 at "
                   "10k open tasks; about a minute and a half")
    p.add_argument("--parts", default="1,2,3,4,5", help="which parts to run (default 1,2,3,4,5; "
                   "4 and 5: benchmarks/store_counts.py)")
    p.add_argument("--counts-only", action="store_true",
                   help="only parts 4 and 5 (round trips and items per command and store, the "
                   "DynamoDB sweep's reads): no PostgreSQL timings")
    p.add_argument("--commands", type=int, help="part 1: commands per workload (default 600; "
                   "quick 150)")
    p.add_argument("--reps", type=int, help="repetitions of every part (default 5, 3 and 3; quick 1)")
    p.add_argument("--seconds", type=float, help="part 2: seconds per writer run (default 5; quick 1.5)")
    p.add_argument("--sizes", help="part 3: comma-separated task counts, multiples of 1000 (default "
                   "10000,100000,1000000; quick 10000,100000); the first is the baseline")
    p.add_argument("--profile", action="store_true",
                   help="also: cProfile of part 1's engine workloads and of one sweep at the last size")
    p.add_argument("--top", type=int, default=15, help="rows of the --profile listings")
    args = p.parse_args(argv)
    parts = {4, 5} if args.counts_only else {int(x) for x in args.parts.split(",")}
    k = args.commands or (150 if args.quick else 600)
    days = 40 if args.quick else 150  # 20 tasks per anchor day
    seconds = args.seconds or (1.5 if args.quick else 5.0)
    sizes = ([int(s.replace("_", "")) for s in args.sizes.split(",")] if args.sizes
             else [10_000, 100_000] if args.quick else [10_000, 100_000, 1_000_000])
    reps1 = args.reps or (1 if args.quick else 5)
    reps2 = args.reps or (1 if args.quick else 3)
    reps3 = args.reps or (1 if args.quick else 3)
    writers = (1, 4, 16)

    t_all = time.perf_counter()
    server = PgServer(durable=True)
    try:
        server.start()
        pg = Pg(server)
        st = pg.settings()
        fsync = _bench("instantiate").fsync_ms(Path(tempfile.gettempdir()))
        print(f"stores: PostgresStore against a PostgreSQL {st['server_version']} server started "
              f"for this run ({time.strftime('%Y-%m-%d %H:%M %Z')})")
        print(f"server settings: fsync={st['fsync']}, synchronous_commit={st['synchronous_commit']}, "
              f"full_page_writes={st['full_page_writes']} (PgServer(durable=True)), "
              f"wal_sync_method={st['wal_sync_method']}, wal_level={st['wal_level']}, "
              f"shared_buffers={st['shared_buffers']}, max_wal_size={st['max_wal_size']}, "
              f"autovacuum={st['autovacuum']}; 127.0.0.1 TCP")
        print(f"python {sys.version.split()[0]}, psycopg {psycopg.__version__} "
              f"({psycopg.pq.__impl__} libpq {psycopg.pq.version()}), {os.cpu_count()} CPU cores "
              f"(client and server share them), data folder {server.root} (fsync of 4 KiB "
              f"{fsync:.2f} ms); {revision()}")
        print(f"load average before {load()}", flush=True)
        profiles = {w: cProfile.Profile() for w in WORKLOADS} if args.profile else None
        sweep_prof = cProfile.Profile() if args.profile else None
        eng = conc = swp = None
        timings: dict[str, float] = {}
        if 1 in parts:
            t0 = time.perf_counter()
            eng = measure_engine(pg, days, k, reps1, lambda s: print(s, flush=True), profiles)
            timings["part 1"] = time.perf_counter() - t0
        if 2 in parts:
            t0 = time.perf_counter()
            conc = measure_concurrency(pg, writers, seconds, reps2, lambda s: print(s, flush=True))
            timings["part 2"] = time.perf_counter() - t0
        if 3 in parts:
            t0 = time.perf_counter()
            reps = {"bare": 20, "find": 10 if not args.quick else 5, "sweep": reps3}
            swp = measure_sweep(pg, sizes, reps, lambda s: print(s, flush=True), sweep_prof)
            timings["part 3"] = time.perf_counter() - t0
        counts = None
        if parts & {4, 5}:
            counts = _bench("store_counts").measure(
                quick=args.quick, pg_url=server.new_url, parts=parts & {4, 5},
                log=lambda s: print(s, flush=True),
                header=lambda lines: print("\n".join(lines), flush=True))
            timings.update(counts.seconds)
        print()
        if eng is not None:
            report_engine(eng)
            print()
        if conc is not None:
            report_concurrency(conc, seconds)
            print()
        if swp is not None:
            report_sweep(swp)
            print()
        if counts is not None:
            _bench("store_counts").report(counts)
        if args.profile and profiles is not None and eng is not None:
            hot = _bench("instantiate").hotspots
            for w in WORKLOADS:
                print(f"cProfile of part 1's {w} workload ({k} engine commands)")
                print()
                hot(profiles[w], k, "command", args.top, eng.profile_walls[w])
                print()
        if args.profile and sweep_prof is not None and swp is not None:
            prof_run = swp[-1]["profiled"]
            print(f"cProfile of one sweep at {swp[-1]['n']:,} tasks: {ms(prof_run['sweep'])} ms "
                  f"under the profiler")
            print()
            _bench("instantiate").hotspots(sweep_prof, 1000, "reminder", args.top,
                                           prof_run["sweep"])
            print()
        took = ", ".join(f"{k_} {v:.0f} s" for k_, v in timings.items())
        print(f"(total {time.perf_counter() - t_all:.1f} s: {took}; load average after "
              f"{load()}; spread = slowest vs best repetition)")
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
