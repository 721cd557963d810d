"""Assistant jobs: jobs/s through claim -> complete with 1, 4 and 8 worker processes on SQLite
and PostgreSQL, against raw sqlite3 / psycopg writing the same rows the same way.

Stores. SQLite: files in a temp folder, opened with the store's defaults (WAL,
``synchronous=FULL``: every commit fsyncs). PostgreSQL: a server started for this run by
``tests/pg.py``'s ``PgServer(durable=True)`` (``fsync``, ``synchronous_commit`` and
``full_page_writes`` on; the settings read back are printed), the adapter's default pool
(``pool_size`` 4) in every worker's Runtime; stopped in a finally, with the temp folder.

Seed. Once per store, through the library (``runtime.open(store=URL, content="content")``, the
system clock): one bundle of each shipped definition (``content/``: newsletter,
podcast-episode, vat-return) per anchor day for 10 days (200 open tasks), then N jobs of kind
``bench-echo`` (2,000; ``--quick`` 400; ``rt.enqueue_job(task, kind, {"n": i})``, task i mod
200), then 8 jobs of kind ``bench-warm`` for the warm-ups. The SQLite seed is written at
``?synchronous=NORMAL`` (seeding is not measured) and checkpointed; PostgreSQL's goes into a
seed schema and is ``VACUUM ANALYZE``d. Every run (one side at one worker count in one
repetition) works on its own copy of the seed, so every run starts from the same state: SQLite
copies the file; PostgreSQL creates a fresh schema (the store's DDL) and fills it with ``INSERT
... SELECT`` from the seed schema's tables in one transaction, then ``VACUUM ANALYZE``. Before a
run PostgreSQL is ``CHECKPOINT``ed (untimed).

A run. W worker processes (1, 4, 8; forked when this process runs no other thread, else
spawned; printed) each open their own connection(s), claim and complete one ``bench-warm`` job
(untimed: connections, caches and lazy imports warmed), and wait at a Barrier with this process.
Released together, each loops ``claim -> complete`` on ``bench-echo`` jobs until a claim finds
none. jobs/s = the N jobs / (last worker's end - first worker's release), from each process's
``time.perf_counter`` (CLOCK_MONOTONIC, one clock for all processes). A run stops early at its
time cap (120 s; quick 30 s; printed if hit).

* engine: a ``Runtime`` per process (``runtime.open``, actor = the worker's name);
  ``rt.claim_job(["bench-echo"], worker=name, lease_seconds=300)`` then
  ``rt.complete_job(job_id, {"ok": True, "by": name}, worker=name)``. That is
  ``runtime.engine.jobs.claim`` / ``complete``: on SQLite ``store.claimable_jobs`` (a page of 20
  candidates, no lock) and a version-checked commit per candidate until one wins (a lost race
  is a ConflictError caught there, and the next candidate is tried); on PostgreSQL
  ``store.claim_jobs`` (``FOR UPDATE SKIP LOCKED LIMIT 1``, the claim written in the same
  transaction). Both read the job's task and bundle for the claim, and the completion re-reads
  the job.
* raw: the same processes with plain ``sqlite3`` / psycopg 3 and no engine, one connection each
  (SQLite: ``isolation_level=None``, ``busy_timeout`` 30 s, ``synchronous=FULL``, as the store
  connects; psycopg: ``prepare_threshold=None``, as the adapter). Per job, a claim transaction
  and a completion transaction. SQLite claim: ``BEGIN IMMEDIATE``; ``SELECT assistant_job_id,
  version, bundle_id, task_id FROM assistant_jobs WHERE claimable_us <= ? AND kind IN (?)
  ORDER BY claimable_us, assistant_job_id LIMIT 1``; the adapter's ``UPDATE assistant_jobs SET
  bundle_id = ?, task_id = ?, kind = ?, status = ?, claimable_us = ?, version = ?, doc = ?
  WHERE assistant_job_id = ? AND version = ?`` (row count checked); the adapter's ``INSERT INTO
  audit_events (...)`` (``executemany`` of one row); ``COMMIT``. Completion: ``BEGIN
  IMMEDIATE``, the UPDATE, the INSERT, ``COMMIT``. PostgreSQL: the same SELECT with ``kind =
  ANY(%s)`` and ``FOR UPDATE SKIP LOCKED``, the adapter's UPDATE (its columns, ``doc =
  %s::jsonb``) and INSERT, COMMIT; then the completion's UPDATE and INSERT, COMMIT. The docs
  are the engine's: before anything is timed one job is claimed and completed through the
  library on a MemoryStore and the job docs and audit event docs of both writes are captured
  at its commit; in those, the job's ID, task ID, bundle ID, the worker's name and the event ID
  are made placeholders (checked to give back the captured docs). Per job the raw side fills
  them in (``str.replace``) with the row it selected, and a new event ID; timestamps, the
  input and the hashes inside the docs stay the sample's (the raw rows are right in size and in
  every column, not as a verifiable audit chain). It decodes nothing.

Checks after every run (untimed): all N ``bench-echo`` jobs ``succeeded`` with ``attempts``
1 and version 3; exactly one ``claim`` and one ``complete`` audit event per job (SQL over all
jobs); the workers' completed job IDs are exactly the N job IDs, none twice. On the engine's
copy of each first repetition, also through the store: ``store.audit_events(id)`` of 20 jobs is
``create, claim, complete``, and ``runtime.engine.audit.verify`` passes over the whole store.
Any failure is printed under the tables and in the goals.

Figures. Per store, side and worker count: jobs/s (best rep), engine/raw (the goal's ratio),
x 1 worker (scaling against the same side's 1-worker run), every rep's jobs/s; and, for the
best rep: claim and complete latency p50/p95, the workers' CPU per job (their process time,
pool threads included), PostgreSQL's CPU per job (postmaster, backends, ended backends), how
busy the machine's cores were (``/proc/stat``), WAL fsyncs per job (``pg_stat_wal``; below 2
is group commit), SQL statements per job by verb (counted in every run by the connection's
trace callback on SQLite and a wrapper of psycopg's ``Cursor.execute`` / ``executemany`` on
PostgreSQL, where BEGIN and COMMIT, sent by psycopg itself, are not counted), the engine's time
per job inside the store's methods (SQL, fsync, waiting for the lock, decoding rows) against
the rest (the command, the unit of work: copies, JSON, hashes; on PostgreSQL the claim's
callback runs inside ``claim_jobs`` and is counted as engine), ConflictError and ThrottledError
raised by the store's writes (the engine retries them: on SQLite racing workers lose claims),
other errors, and jobs per worker. The instrumentation costs a few microseconds per job, on
both sides alike.

    python benchmarks/jobs.py             # full run (about 2-3 minutes on 2 cores)
    python benchmarks/jobs.py --quick     # under a minute
    python benchmarks/jobs.py --profile   # instead: cProfile of 1 engine worker, each store

Prints tables with ratios against the raw baseline measured in the same run; never asserts on
timings. Goals (from the issue): the engine >= 0.5x raw's jobs/s at 1, 4 and 8 workers; on
PostgreSQL jobs/s growing from 1 to 4 to 8 workers; every job succeeded exactly once.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import hashlib
import io
import multiprocessing as mp
import os
import pstats
import queue
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
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

import psycopg  # noqa: E402

import runtime  # noqa: E402
from runtime.errors import ConflictError, DataopsError, NotFoundError, ThrottledError  # noqa: E402
from runtime.model import AssistantJob, AuditEvent, kind_of  # noqa: E402
from runtime.store import postgres_schema, sqlite_schema  # noqa: E402
from runtime.store.base import Changes  # noqa: E402
from runtime.store.memory import MemoryStore  # noqa: E402
from runtime.store.postgres import PostgresStore  # noqa: E402
from tests.pg import PgServer  # noqa: E402

CONTENT = ROOT / "content"
TEMPLATES = ("newsletter", "podcast-episode", "vat-return")
START = date(2031, 3, 3)  # first anchor day of the seeded bundles
DAYS = 10  # anchor days: 3 bundles (20 tasks) each
KIND, WARM_KIND = "bench-echo", "bench-warm"
WORKERS = (1, 4, 8)
LEASE_S = 300.0
SIDES = ("engine", "raw")
SAMPLE = "bench-sample-worker"  # the worker name in the captured docs (a placeholder there)
MARKS = {"job": "\x01", "task": "\x02", "bundle": "\x03", "worker": "\x04", "event": "\x05"}
PG_TABLES = [t for t, _ in postgres_schema.TABLES.values()]


# ---- the raw side's writes: the engine's, captured once --------------------------------------


@dataclass(frozen=True)
class Write:
    """One write of a job (its claim, or its completion) as the adapter sends it: the UPDATE of
    the job and the INSERT of its audit event, with the engine's docs as templates."""

    update_sql: str
    update_cols: tuple[str, ...]
    status: str
    leased: bool  # the claimable column: the lease's end (a claim) or NULL (a completion)
    version: int  # written; the UPDATE expects version - 1
    doc: str
    insert_sql: str
    insert_cols: tuple[str, ...]
    seq: int
    event_doc: str

    def update_args(self, job: str, bundle: str, task: str, kind: str, worker: str,
                    lease: object) -> tuple[object, ...]:
        doc = fill(self.doc, job, bundle, task, worker)
        v = {"bundle_id": bundle, "task_id": task, "output_artifact_id": None, "kind": kind,
             "status": self.status, "claimable_us": lease if self.leased else None,
             "claimable_at": lease if self.leased else None, "version": self.version,
             "doc": doc}
        return (*(v[c] for c in self.update_cols), job, self.version - 1)

    def insert_row(self, job: str, bundle: str, task: str, worker: str, event: str,
                   at: object) -> tuple[object, ...]:
        doc = fill(self.event_doc, job, bundle, task, worker).replace(MARKS["event"], event)
        v = {"event_id": event, "entity_type": "assistant_job", "entity_id": job,
             "seq": self.seq, "at_us": at, "at": at, "version": 1, "doc": doc}
        return tuple(v[c] for c in self.insert_cols)


def fill(template: str, job: str, bundle: str, task: str, worker: str) -> str:
    return (template.replace(MARKS["job"], job).replace(MARKS["task"], task)
            .replace(MARKS["bundle"], bundle).replace(MARKS["worker"], worker))


@dataclass(frozen=True)
class RawPlan:
    flavour: str  # sqlite | pg
    select: str
    claim: Write
    complete: Write
    shape: str  # what one job writes, for the report


def capture() -> tuple[Changes, Changes, AssistantJob]:
    """One job claimed and completed through the library on a MemoryStore: the two writes."""
    store = MemoryStore()
    log: list[Changes] = []
    inner = store.commit

    def commit(changes: Changes) -> None:
        inner(changes)
        log.append(changes)

    store.commit = commit  # type: ignore[method-assign]
    rt = runtime.open(store=store, content=str(CONTENT), actor="bench-seed")
    task = rt.create_bundle(TEMPLATES[0], START).tasks[0]
    job = rt.enqueue_job(task.task_id, KIND, {"n": 0})
    rt = rt.as_actor(SAMPLE)  # the claim and the completion are audited as the worker
    n0 = len(log)
    got = rt.claim_job([KIND], worker=SAMPLE, lease_seconds=LEASE_S)
    assert got is not None and got.assistant_job_id == job.assistant_job_id
    rt.complete_job(job.assistant_job_id, {"ok": True, "by": SAMPLE}, worker=SAMPLE)
    writes = log[n0:]
    if len(writes) != 2 or any(len(w.updates) != 1 or len(w.events) != 1 or w.creates
                               for w in writes):
        raise SystemExit("capture: a claim and a completion no longer write one job update and "
                         "one audit event each; the raw side must be rebuilt")
    return writes[0], writes[1], job


def template(text: str, job: AssistantJob, event: str | None = None) -> str:
    assert job.task_id is not None
    out = text.replace(job.assistant_job_id, MARKS["job"]).replace(job.task_id, MARKS["task"])
    out = out.replace(job.bundle_id, MARKS["bundle"]).replace(SAMPLE, MARKS["worker"])
    if event is not None:
        out = out.replace(event, MARKS["event"])
    return out


def raw_write(changes: Changes, job: AssistantJob, flavour: str) -> Write:
    """The adapter's statements for ``changes`` (see ``SqliteStore._update`` / ``_insert_all``
    and ``PostgresStore._update`` / ``_write``), the docs made templates."""
    schema = sqlite_schema if flavour == "sqlite" else postgres_schema
    rec, expected = changes.updates[0]
    (event,) = changes.events
    assert isinstance(rec, AssistantJob) and isinstance(event, AuditEvent)
    table, key = schema.TABLES[kind_of(rec)]
    cols = (*schema.columns_of(rec), "version", "doc")
    etable, ekey = schema.TABLES[kind_of(event)]
    ecols = (ekey, *schema.columns_of(event), "version", "doc")
    t, et = (table, etable) if flavour == "sqlite" else (f"{{s}}.{table}", f"{{s}}.{etable}")
    if flavour == "sqlite":
        sets = ", ".join(f"{c} = ?" for c in cols)
        marks = ", ".join("?" * len(ecols))
        update = f"UPDATE {t} SET {sets} WHERE {key} = ? AND version = ?"
    else:
        sets = ", ".join(f"{c} = %s::jsonb" if c == "doc" else f"{c} = %s" for c in cols)
        marks = ", ".join("%s::jsonb" if c == "doc" else "%s" for c in ecols)
        update = f"UPDATE {t} SET {sets} WHERE {key} = %s AND version = %s"
    w = Write(update, cols, str(rec.status), rec.claimable_at is not None, rec.version,
              template(changes.doc(rec), job), f"INSERT INTO {et} ({', '.join(ecols)}) "
              f"VALUES ({marks})", ecols, event.seq,
              template(changes.doc(event), job, event.event_id))
    assert w.version == expected + 1
    # the templates give back the captured docs
    assert job.task_id is not None
    assert fill(w.doc, job.assistant_job_id, job.bundle_id, job.task_id, SAMPLE) == \
        changes.doc(rec)
    assert fill(w.event_doc, job.assistant_job_id, job.bundle_id, job.task_id, SAMPLE).replace(
        MARKS["event"], event.event_id) == changes.doc(event)
    return w


def raw_plan(flavour: str) -> RawPlan:
    claim, complete, job = capture()
    if flavour == "sqlite":
        select = ("SELECT assistant_job_id, version, bundle_id, task_id, kind FROM "
                  "assistant_jobs WHERE claimable_us <= ? AND kind IN (?) ORDER BY claimable_us, "
                  "assistant_job_id LIMIT 1")
    else:
        select = ("SELECT assistant_job_id, version, bundle_id, task_id, kind FROM "
                  "{s}.assistant_jobs WHERE claimable_at <= %s AND kind = ANY(%s) ORDER BY claimable_at, "
                  "assistant_job_id LIMIT 1 FOR UPDATE SKIP LOCKED")
    c, d = raw_write(claim, job, flavour), raw_write(complete, job, flavour)
    size = (len(c.doc) + len(c.event_doc) + len(d.doc) + len(d.event_doc))
    shape = (f"claim: job -> {c.status} v{c.version} + audit event seq {c.seq}; completion: "
             f"job -> {d.status} v{d.version} + audit event seq {d.seq}; {size:,} doc bytes written "
             f"per job")
    return RawPlan(flavour, select, c, d, shape)


# ---- instrumentation (in the workers) -------------------------------------------------------


class Probe:
    """In a worker: SQL statements by verb, and (the engine) the wall time spent inside the
    store's methods against the rest, by a stack of states switched at each call."""

    METHODS = ("find", "get", "claimable_jobs", "claim_jobs", "commit", "page",
               "task_and_bundle", "audit_events", "tasks_of")

    def __init__(self) -> None:
        self.stmts: Counter[str] = Counter()
        self.spent: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.stack = ["engine"]
        self.t = time.perf_counter()

    def reset(self) -> None:
        self.stmts.clear()
        self.spent.clear()
        self.errors.clear()
        self.t = time.perf_counter()

    def _enter(self, state: str) -> None:
        now = time.perf_counter()
        self.spent[self.stack[-1]] += now - self.t
        self.t = now
        self.stack.append(state)

    def _leave(self) -> None:
        now = time.perf_counter()
        self.spent[self.stack[-1]] += now - self.t
        self.t = now
        self.stack.pop()

    def statement(self, sql: str) -> None:
        text = sql.strip()
        self.stmts[text.split(None, 1)[0].upper() if text else "pool-check"] += 1

    def count_psycopg(self) -> None:
        cls = psycopg.Cursor
        execute, executemany = cls.execute, cls.executemany
        probe = self

        def ex(self: Any, query: Any, params: Any = None, **kw: Any) -> Any:
            probe.statement(str(query))
            return execute(self, query, params, **kw)

        def exm(self: Any, query: Any, params_seq: Any, **kw: Any) -> Any:
            probe.statement(str(query))
            return executemany(self, query, params_seq, **kw)

        cls.execute, cls.executemany = ex, exm  # type: ignore[method-assign]

    def watch(self, store: Any) -> None:
        """Wrap the store's methods (this instance only)."""
        for name in self.METHODS:
            inner = getattr(store, name, None)
            if inner is not None:
                setattr(store, name, self._wrapped(name, inner))
        if hasattr(store, "_raw"):  # SqliteStore: its one connection
            store._raw().set_trace_callback(self.statement)
        else:
            self.count_psycopg()

    def _wrapped(self, name: str, inner: Callable[..., Any]) -> Callable[..., Any]:
        writes = name in ("commit", "claim_jobs")

        def call(*a: Any, **kw: Any) -> Any:
            outer = self.stack[-1] != "store"
            if outer:
                self._enter("store")
            try:
                if name == "claim_jobs":  # the engine's claim runs inside: engine time
                    if len(a) > 3:
                        a = (*a[:3], self._engine(a[3]), *a[4:])
                    elif "claim" in kw:
                        kw["claim"] = self._engine(kw["claim"])
                return inner(*a, **kw)
            except (ConflictError, NotFoundError, ThrottledError) as e:
                if writes and outer:
                    self.errors[type(e).__name__] += 1
                raise
            finally:
                if outer:
                    self._leave()
        return call

    def _engine(self, callback: Callable[..., Any]) -> Callable[..., Any]:
        def run(*a: Any, **kw: Any) -> Any:
            self._enter("engine")
            try:
                return callback(*a, **kw)
            finally:
                self._leave()
        return run


# ---- the workers (one OS process each) ------------------------------------------------------


def _loop(claim: Callable[[], str | None], complete: Callable[[str], None], barrier: Any,
          cap: float, probe: Probe) -> dict[str, Any]:
    """Wait for the others, then claim -> complete until a claim finds nothing (or the cap)."""
    errors: Counter[str] = Counter()
    samples: list[str] = []
    done: list[str] = []
    claims: list[float] = []
    completes: list[float] = []
    capped = False
    barrier.wait(timeout=600)
    probe.reset()
    c0 = time.process_time()
    t0 = time.perf_counter()
    deadline = t0 + cap
    while True:
        a = time.perf_counter()
        if a > deadline:
            capped = True
            break
        try:
            job = claim()
        except DataopsError as e:  # counted; the loop goes on (a busy store, say)
            errors[f"claim: {type(e).__name__}"] += 1
            samples.append(f"claim: {type(e).__name__}: {e}"[:300])
            if sum(errors.values()) > 50:
                break
            continue
        b = time.perf_counter()
        if job is None:
            break
        claims.append(b - a)
        try:
            complete(job)
            done.append(job)
        except DataopsError as e:
            errors[f"complete: {type(e).__name__}"] += 1
            samples.append(f"complete {job}: {type(e).__name__}: {e}"[:300])
            if sum(errors.values()) > 50:
                break
        completes.append(time.perf_counter() - b)
    t1 = time.perf_counter()
    probe.spent[probe.stack[-1]] += t1 - probe.t
    return {"t0": t0, "t1": t1, "cpu": time.process_time() - c0, "done": done, "claims": claims,
            "completes": completes, "errors": dict(errors), "samples": samples[:3],
            "capped": capped, "stmts": dict(probe.stmts), "spent": dict(probe.spent),
            "store_errors": dict(probe.errors)}


def _engine_worker(url: str, name: str, barrier: Any, out: Any, cap: float) -> None:
    try:
        rt = runtime.open(store=url, content=str(CONTENT), actor=name)
        try:
            rt.content  # noqa: B018  (loaded before the clock starts)
            probe = Probe()
            probe.watch(rt.store)
            warm = rt.claim_job([WARM_KIND], worker=name, lease_seconds=LEASE_S)
            if warm is not None:
                rt.complete_job(warm.assistant_job_id, {"ok": True, "by": name}, worker=name)

            def claim() -> str | None:
                job = rt.claim_job([KIND], worker=name, lease_seconds=LEASE_S)
                return None if job is None else job.assistant_job_id

            def complete(job: str) -> None:
                rt.complete_job(job, {"ok": True, "by": name}, worker=name)

            res = _loop(claim, complete, barrier, cap, probe)
        finally:
            rt.close()
        out.put(res)
    except BaseException as e:  # tell the parent; never hang it
        with contextlib.suppress(Exception):
            barrier.abort()
        out.put({"crash": f"{name}: {type(e).__name__}: {e}"})
        raise


def _raw_worker(plan: RawPlan, where: str, schema: str, name: str, barrier: Any, out: Any,
                cap: float) -> None:
    try:
        probe = Probe()
        s = f'"{schema}"'
        c, d = plan.claim, plan.complete
        if plan.flavour == "sqlite":
            db = sqlite3.connect(where, isolation_level=None, check_same_thread=False,
                                 timeout=30.0)
            db.execute("PRAGMA busy_timeout=30000")
            db.execute("PRAGMA synchronous=FULL")
            db.set_trace_callback(probe.statement)

            def claim_kind(kind: str) -> tuple[str, str, str, str] | None:
                now = time.time()
                lease = int((now + LEASE_S) * 1e6)
                db.execute("BEGIN IMMEDIATE")
                try:
                    row = db.execute(plan.select, (int(now * 1e6), kind)).fetchone()
                    if row is None:
                        db.execute("ROLLBACK")
                        return None
                    job, _, bundle, task, kind_ = row
                    cur = db.execute(c.update_sql, c.update_args(job, bundle, task, kind_, name,
                                                                 lease))
                    if cur.rowcount != 1:
                        raise RuntimeError(f"raw claim: {job} moved on")
                    db.executemany(c.insert_sql, [c.insert_row(
                        job, bundle, task, name, f"evt-{os.urandom(16).hex()}", int(now * 1e6))])
                    db.execute("COMMIT")
                except BaseException:
                    if db.in_transaction:
                        db.execute("ROLLBACK")
                    raise
                return job, bundle, task, kind_

            def complete_one(job: str, bundle: str, task: str, kind_: str) -> None:
                now_us = int(time.time() * 1e6)
                db.execute("BEGIN IMMEDIATE")
                try:
                    cur = db.execute(d.update_sql, d.update_args(job, bundle, task, kind_, name,
                                                                 None))
                    if cur.rowcount != 1:
                        raise RuntimeError(f"raw complete: {job} moved on")
                    db.executemany(d.insert_sql, [d.insert_row(
                        job, bundle, task, name, f"evt-{os.urandom(16).hex()}", now_us)])
                    db.execute("COMMIT")
                except BaseException:
                    if db.in_transaction:
                        db.execute("ROLLBACK")
                    raise

            close = db.close
        else:
            conn = psycopg.connect(where, autocommit=False, prepare_threshold=None)
            probe.count_psycopg()
            select = plan.select.replace("{s}", s)
            c_up, c_in = c.update_sql.replace("{s}", s), c.insert_sql.replace("{s}", s)
            d_up, d_in = d.update_sql.replace("{s}", s), d.insert_sql.replace("{s}", s)

            def claim_kind(kind: str) -> tuple[str, str, str, str] | None:
                now = datetime.now(UTC)
                try:
                    with conn.cursor() as cur:
                        row = cur.execute(select, (now, [kind])).fetchone()
                        if row is None:
                            conn.rollback()
                            return None
                        job, _, bundle, task, kind_ = row
                        cur.execute(c_up, c.update_args(job, bundle, task, kind_, name,
                                                        now + timedelta(seconds=LEASE_S)))
                        if cur.rowcount != 1:
                            raise RuntimeError(f"raw claim: {job} moved on")
                        cur.executemany(c_in, [c.insert_row(
                            job, bundle, task, name, f"evt-{os.urandom(16).hex()}", now)])
                    conn.commit()
                except BaseException:
                    conn.rollback()
                    raise
                return job, bundle, task, kind_

            def complete_one(job: str, bundle: str, task: str, kind_: str) -> None:
                now = datetime.now(UTC)
                try:
                    with conn.cursor() as cur:
                        cur.execute(d_up, d.update_args(job, bundle, task, kind_, name, None))
                        if cur.rowcount != 1:
                            raise RuntimeError(f"raw complete: {job} moved on")
                        cur.executemany(d_in, [d.insert_row(
                            job, bundle, task, name, f"evt-{os.urandom(16).hex()}", now)])
                    conn.commit()
                except BaseException:
                    conn.rollback()
                    raise

            close = conn.close
        try:
            warm = claim_kind(WARM_KIND)
            if warm is not None:
                complete_one(*warm)
            held: dict[str, tuple[str, str, str, str]] = {}

            def claim() -> str | None:
                got = claim_kind(KIND)
                if got is None:
                    return None
                held[got[0]] = got
                return got[0]

            def complete(job: str) -> None:
                complete_one(*held.pop(job))

            res = _loop(claim, complete, barrier, cap, probe)
        finally:
            close()
        out.put(res)
    except BaseException as e:
        with contextlib.suppress(Exception):
            barrier.abort()
        out.put({"crash": f"{name}: {type(e).__name__}: {e}"})
        raise


# ---- the stores --------------------------------------------------------------------------------


def seed(url: str, jobs: int) -> tuple[list[str], int, float]:
    """Bundles and jobs through the library: (job IDs, open tasks, seconds)."""
    rt = runtime.open(store=url, content=str(CONTENT), actor="bench-seed")
    try:
        t0 = time.perf_counter()
        tasks: list[str] = []
        for d in range(DAYS):
            for tpl in TEMPLATES:
                view = rt.create_bundle(tpl, START + timedelta(days=d))
                tasks += [t.task_id for t in view.tasks if t.status.is_open]
        ids = [rt.enqueue_job(tasks[i % len(tasks)], KIND, {"n": i}).assistant_job_id
               for i in range(jobs)]
        for i in range(max(WORKERS)):
            rt.enqueue_job(tasks[i], WARM_KIND, {"n": i})
        return ids, len(tasks), time.perf_counter() - t0
    finally:
        rt.close()


class SqliteTarget:
    label = "SQLite"
    flavour = "sqlite"

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.seed_path = folder / "seed.db"

    def seed(self, jobs: int) -> tuple[list[str], int, float]:
        out = seed(f"sqlite:///{self.seed_path}?synchronous=NORMAL", jobs)
        with contextlib.closing(sqlite3.connect(self.seed_path)) as db:
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            (mode,), = db.execute("PRAGMA journal_mode").fetchall()
        self.label = f"SQLite (journal_mode={mode}, synchronous=FULL)"
        return out

    def path(self, name: str) -> Path:
        return self.folder / f"{name}.db"

    def fresh(self, name: str) -> str:
        shutil.copyfile(self.seed_path, self.path(name))
        return f"sqlite:///{self.path(name)}"

    def raw_where(self, name: str) -> tuple[str, str]:
        return str(self.path(name)), ""

    def drop(self, name: str) -> None:
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(f"{self.path(name)}{suffix}")

    def sql(self, name: str, query: str, args: Sequence[object] = ()) -> list[Any]:
        with contextlib.closing(sqlite3.connect(self.path(name) if name else self.seed_path)) as db:
            return db.execute(query, args).fetchall()

    def checkpoint(self) -> None:
        pass  # every run starts on a fresh copy, without a WAL

    def server_cpu(self) -> float:
        return float("nan")

    def wal_syncs(self) -> int | None:
        return None

    def wait_for_backends(self) -> None:
        pass

    def plan_text(self) -> str:
        rows = self.sql("", "EXPLAIN QUERY PLAN SELECT assistant_job_id, doc FROM assistant_jobs "
                            "WHERE claimable_us <= ? AND kind IN (?) ORDER BY claimable_us, "
                            "assistant_job_id LIMIT ?", (2**62, KIND, 20))
        return "; ".join(r[-1] for r in rows)

    def outcome(self, name: str) -> tuple[tuple[int, ...], dict[str, tuple[int, int, int]]]:
        jobs = self.sql(name, "SELECT count(*), sum(status = 'succeeded'), "
                              "sum(json_extract(doc, '$.attempts') = 1), sum(version = 3), "
                              "sum(json_extract(doc, '$.assistant_job_id') = assistant_job_id "
                              "AND json_extract(doc, '$.task_id') = task_id AND "
                              "json_extract(doc, '$.status') = status AND "
                              "json_extract(doc, '$.version') = version), sum(length(doc)) "
                              "FROM assistant_jobs WHERE kind = ?", (KIND,))[0]
        events = self.sql(name, "SELECT json_extract(e.doc, '$.action'), count(*), "
                                "count(DISTINCT e.entity_id), sum(length(e.doc)) FROM "
                                "audit_events e JOIN assistant_jobs j ON j.assistant_job_id = "
                                "e.entity_id WHERE j.kind = ? AND json_extract(e.doc, "
                                "'$.entity_id') = e.entity_id GROUP BY 1", (KIND,))
        return tuple(int(x or 0) for x in jobs), {a: (n, k, b) for a, n, k, b in events}


class PgTarget:
    label = "PostgreSQL"
    flavour = "pg"
    SEED = "jobs_seed"

    def __init__(self, server: PgServer) -> None:
        self.server = server
        self.conninfo = server.base_url

    def url(self, schema: str) -> str:
        return f"{self.conninfo}?schema={schema}"

    def run_sql(self, *statements: str, args: Sequence[object] = ()) -> list[Any]:
        with psycopg.connect(self.conninfo, autocommit=True) as conn:
            rows: list[Any] = []
            for s in statements:
                cur = conn.execute(s, args if "%s" in s else None)  # type: ignore[call-overload]
                rows = cur.fetchall() if cur.description else []
            return rows

    def sql(self, name: str, query: str, args: Sequence[object] = ()) -> list[Any]:
        return self.run_sql(query.replace("{s}", f'"{name or self.SEED}"'), args=args)

    def settings(self) -> dict[str, str]:
        names = ("server_version", "fsync", "synchronous_commit", "full_page_writes",
                 "wal_sync_method", "commit_delay", "shared_buffers", "max_connections",
                 "autovacuum")
        with psycopg.connect(self.conninfo, autocommit=True) as conn:
            return {n: conn.execute(f"SHOW {n}").fetchone()[0]  # type: ignore[index]
                    for n in names}

    def new_schema(self, schema: str) -> None:
        self.run_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        PostgresStore(self.url(schema)).close()  # the store's own DDL

    def seed(self, jobs: int) -> tuple[list[str], int, float]:
        self.new_schema(self.SEED)
        out = seed(self.url(self.SEED), jobs)
        self.run_sql(*(f'VACUUM ANALYZE "{self.SEED}".{t}' for t in PG_TABLES))
        self.label = f"PostgreSQL {self.settings()['server_version'].split()[0]}"
        return out

    def fresh(self, name: str) -> str:
        self.new_schema(name)
        with psycopg.connect(self.conninfo, autocommit=False) as conn:
            for t in PG_TABLES:  # foreign keys are deferred: checked at the commit
                conn.execute(f'INSERT INTO "{name}".{t} SELECT * FROM "{self.SEED}".{t}')
            conn.commit()
        self.run_sql(*(f'VACUUM ANALYZE "{name}".{t}' for t in PG_TABLES))
        return self.url(name)

    def raw_where(self, name: str) -> tuple[str, str]:
        return self.conninfo, name

    def drop(self, name: str) -> None:
        self.run_sql(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')

    def checkpoint(self) -> None:
        self.run_sql("CHECKPOINT")

    def server_cpu(self) -> float:
        """CPU seconds of the postmaster, its live children and its reaped ones."""
        try:
            pid = int((self.server.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return float("nan")
        total = 0
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                with open(f"/proc/{entry.name}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(entry.name) == pid:  # utime, stime, cutime, cstime
                total += sum(int(x) for x in fields[11:15])
            elif int(fields[1]) == pid:
                total += int(fields[11]) + int(fields[12])
        return total / os.sysconf("SC_CLK_TCK")

    def wal_syncs(self) -> int | None:
        return int(self.run_sql("SELECT wal_sync FROM pg_stat_wal")[0][0])

    def wait_for_backends(self, timeout: float = 10.0) -> None:
        """Until no other client backend runs (ended ones have flushed their statistics)."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            (n,), = self.run_sql("SELECT count(*) FROM pg_stat_activity WHERE backend_type = "
                                 "'client backend' AND pid <> pg_backend_pid()")
            if n == 0:
                return
            time.sleep(0.05)

    def plan_text(self) -> str:
        rows = self.sql("", "EXPLAIN SELECT assistant_job_id, doc::text FROM {s}.assistant_jobs "
                            "WHERE claimable_at <= now() AND kind = ANY(%s) ORDER BY "
                            "claimable_at, assistant_job_id LIMIT 1 FOR UPDATE SKIP LOCKED",
                        ([KIND],))
        return " / ".join(r[0].strip().split("  (")[0].lstrip("-> ").strip() for r in rows)

    def outcome(self, name: str) -> tuple[tuple[int, ...], dict[str, tuple[int, int, int]]]:
        jobs = self.sql(name, "SELECT count(*), count(*) FILTER (WHERE status = 'succeeded'), "
                              "count(*) FILTER (WHERE (doc->>'attempts')::int = 1), "
                              "count(*) FILTER (WHERE version = 3), count(*) FILTER (WHERE "
                              "doc->>'assistant_job_id' = assistant_job_id AND doc->>'task_id' "
                              "= task_id AND doc->>'status' = status AND (doc->>'version')::int "
                              "= version), sum(length(doc::text)) FROM {s}.assistant_jobs "
                              "WHERE kind = %s", (KIND,))[0]
        events = self.sql(name, "SELECT e.doc->>'action', count(*), count(DISTINCT e.entity_id), "
                                "sum(length(e.doc::text)) FROM {s}.audit_events e JOIN "
                                "{s}.assistant_jobs j ON j.assistant_job_id = e.entity_id WHERE "
                                "j.kind = %s AND e.doc->>'entity_id' = e.entity_id GROUP BY 1",
                          (KIND,))
        return tuple(int(x or 0) for x in jobs), {a: (n, k, b) for a, n, k, b in events}


Target = SqliteTarget | PgTarget


def machine_cpu() -> tuple[float, float]:
    """(busy, total) jiffies of all CPUs (/proc/stat); busy excludes idle and iowait."""
    with open("/proc/stat") as f:
        parts = [int(x) for x in f.readline().split()[1:]]
    total = sum(parts[:8])
    return total - parts[3] - parts[4], total


# ---- a run -------------------------------------------------------------------------------------


@dataclass
class Run:
    side: str
    workers: int
    rep: int
    how: str = ""
    jobs: int = 0
    wall: float = float("nan")
    per_worker: list[int] = field(default_factory=list)
    claims: list[float] = field(default_factory=list)
    completes: list[float] = field(default_factory=list)
    cpu: float = 0.0
    server_cpu: float = float("nan")
    busy: float = float("nan")
    wal_syncs: int | None = None
    stmts: Counter[str] = field(default_factory=Counter)
    spent: Counter[str] = field(default_factory=Counter)
    store_errors: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    samples: list[str] = field(default_factory=list)
    capped: bool = False
    problems: list[str] = field(default_factory=list)
    deep: str = ""  # the first rep's check through the store (engine)
    doc_bytes: float = 0.0  # stored per job: the job's doc, its claim and complete events

    @property
    def rate(self) -> float:
        return self.jobs / self.wall if self.wall > 0 else float("nan")


def start_method(choice: str) -> str:
    if choice != "auto":
        return choice
    return "fork" if threading.active_count() == 1 and sys.platform == "linux" else "spawn"


def one_run(target: Target, plan: RawPlan, ids: list[str], side: str, workers: int, rep: int,
            cap: float, method: str, deep: bool) -> Run:
    name = f"run_{side}_{workers}_{rep}"
    url = target.fresh(name)
    target.checkpoint()
    run = Run(side, workers, rep, how=start_method(method))
    ctx: Any = mp.get_context(run.how)
    barrier = ctx.Barrier(workers + 1)
    out = ctx.Queue()
    if side == "engine":
        procs = [ctx.Process(target=_engine_worker, args=(url, f"engine-w{i}", barrier, out, cap),
                             daemon=True) for i in range(workers)]
    else:
        where, schema = target.raw_where(name)
        procs = [ctx.Process(target=_raw_worker, args=(plan, where, schema, f"raw-w{i}", barrier,
                                                       out, cap), daemon=True)
                 for i in range(workers)]
    results: list[dict[str, Any]] = []
    try:
        for p in procs:
            p.start()
        # a worker that failed before the start broke the barrier; its message is queued
        with contextlib.suppress(threading.BrokenBarrierError):
            barrier.wait(timeout=600)
        w0, s0, m0 = target.wal_syncs(), target.server_cpu(), machine_cpu()
        for _ in procs:
            try:
                results.append(out.get(timeout=cap + 180))
            except queue.Empty:
                break
        m1 = machine_cpu()
        for p in procs:
            p.join(timeout=60)
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
                p.join()
    crashed = [r["crash"] for r in results if "crash" in r]
    if crashed or len(results) != workers:
        target.drop(name)
        raise SystemExit(f"{target.label}, {side}, {workers} worker(s): a worker failed: "
                         f"{crashed[0] if crashed else 'no result'}")
    target.wait_for_backends()
    w1, s1 = target.wal_syncs(), target.server_cpu()
    run.wall = max(r["t1"] for r in results) - min(r["t0"] for r in results)
    done = [j for r in results for j in r["done"]]
    run.jobs = len(done)
    run.per_worker = sorted(len(r["done"]) for r in results)
    run.claims = [x for r in results for x in r["claims"]]
    run.completes = [x for r in results for x in r["completes"]]
    run.cpu = sum(r["cpu"] for r in results)
    run.server_cpu = s1 - s0
    run.busy = (m1[0] - m0[0]) / max(1.0, m1[1] - m0[1])
    run.wal_syncs = None if w0 is None or w1 is None else w1 - w0
    for r in results:
        run.stmts.update(r["stmts"])
        run.spent.update(r["spent"])
        run.store_errors.update(r["store_errors"])
        run.errors.update(r["errors"])
        run.samples += r["samples"]
    run.capped = any(r["capped"] for r in results)
    run.problems, run.doc_bytes = check(target, name, ids, done)
    if deep and side == "engine":
        run.deep = check_store(url, ids, run.problems)
    target.drop(name)
    return run


def check(target: Target, name: str, ids: list[str], done: list[str]
          ) -> tuple[list[str], float]:
    """Every job succeeded exactly once, in the store and by the workers' account; and the
    doc bytes per job (the job's doc and its claim and complete events)."""
    n = len(ids)
    problems = []
    (total, succeeded, first, v3, same, size), events = target.outcome(name)
    if (total, succeeded, first, v3, same) != (n, n, n, n, n):
        problems.append(f"{total} jobs: {succeeded} succeeded, {first} with attempts 1, {v3} at "
                        f"version 3, {same} whose doc agrees with its columns (want {n} of "
                        f"each)")
    for action in ("claim", "complete"):
        got = events.get(action, (0, 0, 0))
        if got[:2] != (n, n):
            problems.append(f"{got[0]} '{action}' events on {got[1]} jobs (want one per job: "
                            f"{n} on {n})")
        size += got[2]
    twice = [j for j, k in Counter(done).items() if k > 1]
    if twice:
        problems.append(f"{len(twice)} jobs completed by more than one worker, e.g. {twice[0]}")
    missing = set(ids) - set(done)
    if missing:
        problems.append(f"{len(missing)} jobs not completed by any worker, e.g. "
                        f"{sorted(missing)[0]}")
    return problems, size / max(1, n)


def check_store(url: str, ids: list[str], problems: list[str]) -> str:
    """Through the store: 20 jobs' audit logs, and every chain verified."""
    from runtime.engine.audit import verify

    rt = runtime.open(store=url, content=str(CONTENT), actor="bench-check")
    try:
        step = max(1, len(ids) // 20)
        sample = ids[::step][:20]
        for job in sample:
            actions = [e.action for e in rt.store.audit_events(job)]
            if actions != ["create", "claim", "complete"]:
                problems.append(f"{job}: audit log {actions}")
        t0 = time.perf_counter()
        try:
            events = verify(rt.store).events
        except DataopsError as e:
            problems.append(f"audit verify: {type(e).__name__}: {str(e)[:300]}")
            return "verify FAILED"
        return (f"{len(sample)} jobs' audit logs create/claim/complete; verify: {events:,} events "
                f"in {time.perf_counter() - t0:.1f} s")
    finally:
        rt.close()


@dataclass
class StoreResult:
    label: str
    runs: list[Run]
    seed_s: float
    tasks: int
    jobs: int
    plan: str
    shape: str
    settings: str = ""

    def of(self, side: str, workers: int) -> list[Run]:
        return [r for r in self.runs if r.side == side and r.workers == workers]

    def best(self, side: str, workers: int) -> Run | None:
        runs = self.of(side, workers)
        return max(runs, key=lambda r: r.rate) if runs else None


def measure(target: Target, jobs: int, reps: int, cap: float, method: str,
            workers: Sequence[int], log: Callable[[str], None]) -> StoreResult:
    ids, tasks, seed_s = target.seed(jobs)
    log(f"  {target.label}: seeded {DAYS * len(TEMPLATES)} bundles ({tasks} open tasks) and "
        f"{len(ids):,} + {max(WORKERS)} jobs through the library in {seed_s:.1f} s")
    plan = raw_plan(target.flavour)
    res = StoreResult(target.label, [], seed_s, tasks, len(ids), target.plan_text(), plan.shape)
    for rep in range(reps):
        for w in workers:
            for side in (SIDES if rep % 2 == 0 else SIDES[::-1]):
                run = one_run(target, plan, ids, side, w, rep, cap, method, deep=rep == 0)
                res.runs.append(run)
                log(f"  rep {rep + 1}, {w} worker(s), {side}: {run.jobs:,} jobs in "
                    f"{run.wall:.2f} s = {run.rate:,.0f} jobs/s ({run.how}); "
                    f"{sum(run.store_errors.values())} conflicts/throttles, "
                    f"{sum(run.errors.values())} errors"
                    + (", TIME CAP HIT" if run.capped else "")
                    + (f"; CHECK FAILED: {run.problems[0]}" if run.problems else ""))
    return res


# ---- output ----------------------------------------------------------------------------------


def print_table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> None:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, tuple("-" * w for w in widths), *rows]:
        cells = [f"{c:<{w}}" if i <= 1 and not c[:1].isdigit() else f"{c:>{w}}"
                 for i, (c, w) in enumerate(zip(row, widths, strict=True))]
        print("  ".join(cells).rstrip())


def pct(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))]


def spread(runs: list[Run]) -> str:
    rates = [r.rate for r in runs]
    return f"{(max(rates) - min(rates)) / min(rates) * 100:.0f}%" if len(rates) > 1 else "-"


def per_job(x: float, n: int) -> str:
    return "-" if x != x or not n else f"{x / n * 1e3:.2f}"


def stmts_line(c: Counter[str], n: int) -> str:
    order = ("BEGIN", "SELECT", "UPDATE", "INSERT", "COMMIT", "ROLLBACK")
    keys = sorted(c, key=lambda k: (order.index(k) if k in order else 99, k))
    return " ".join(f"{c[k] / n:.2f} {k}" for k in keys) if n else "-"


def report(res: StoreResult, reps: int, workers: Sequence[int]) -> None:
    print(f"{res.label}: {res.jobs:,} jobs on {res.tasks} open tasks; jobs/s best of {reps} "
          f"rep(s)")
    rows = []
    for w in workers:
        raw = res.best("raw", w)
        for side in SIDES:
            b = res.best(side, w)
            one = res.best(side, workers[0])
            if b is None or raw is None or one is None:
                continue
            rows.append((f"{w}", side, f"{b.rate:,.0f}",
                         "1.00 (baseline)" if side == "raw" else f"{b.rate / raw.rate:.2f}",
                         f"{b.rate / one.rate:.2f}",
                         " / ".join(f"{r.rate:,.0f}" for r in res.of(side, w)),
                         spread(res.of(side, w))))
    print_table(("workers", "side", "jobs/s", "engine/raw", f"x {workers[0]} worker",
                 "each rep jobs/s", "spread"), rows)
    print()
    print(f"{res.label}, the best rep of each: latency per job (ms), CPU per job (ms), where the "
          f"engine's time goes (ms per job, summed over workers), errors (all reps)")
    rows = []
    pg = res.label.startswith("PostgreSQL")
    for w in workers:
        for side in SIDES:
            b = res.best(side, w)
            if b is None:
                continue
            runs = res.of(side, w)
            n = b.jobs
            conflicts = sum(r.store_errors.get("ConflictError", 0) for r in runs)
            throttled = sum(r.store_errors.get("ThrottledError", 0) for r in runs)
            errors = sum(sum(r.errors.values()) for r in runs)
            eng = side == "engine"
            rows.append((
                f"{w}", side, f"{pct(b.claims, .5) * 1e3:.2f}", f"{pct(b.claims, .95) * 1e3:.2f}",
                f"{pct(b.completes, .5) * 1e3:.2f}", f"{pct(b.completes, .95) * 1e3:.2f}",
                per_job(b.cpu, n), per_job(b.server_cpu, n) if pg else "-",
                f"{b.busy * 100:.0f}%",
                per_job(b.spent.get("store", 0.0), n) if eng else "-",
                per_job(b.spent.get("engine", 0.0), n) if eng else "-",
                f"{b.wal_syncs / n:.2f}" if b.wal_syncs is not None and n else "-",
                f"{sum(b.stmts.values()) / n:.1f}" if n else "-",
                f"{conflicts:,}", f"{throttled:,}", f"{errors:,}",
                f"{b.per_worker[0]:,}-{b.per_worker[-1]:,}"))
    print_table(("workers", "side", "claim p50", "claim p95", "complete p50", "complete p95",
                 "CPU workers", "CPU PG", "machine busy", "in store", "engine rest",
                 "WAL fsyncs/job", "stmts/job", "conflicts", "throttled", "errors",
                 "jobs per worker"), rows)
    print()
    for side in SIDES:
        b = res.best(side, workers[-1])
        b1 = res.best(side, workers[0])
        if b is not None and b1 is not None:
            print(f"  {side} statements per job: {workers[0]} worker {stmts_line(b1.stmts, b1.jobs)}"
                  f"; {workers[-1]} workers {stmts_line(b.stmts, b.jobs)}")
    sizes = {side: statistics.mean(r.doc_bytes for r in res.runs if r.side == side)
             for side in SIDES if any(r.side == side for r in res.runs)}
    print(f"  what one job writes (both sides): {res.shape}; stored per job (the job's doc and "
          f"its claim and complete events, as the store gives them back): "
          + ", ".join(f"{side} {v:,.0f} bytes" for side, v in sizes.items()))
    print(f"  the engine's claim query plan: {res.plan}")
    print("  (in store = wall time inside the store's methods: SQL, fsync, lock waits, decoding "
          "rows; engine rest = the remaining wall time of the loop: the command, the unit of "
          "work" + (", and the claim's callback inside claim_jobs" if pg else "")
          + ". conflicts / throttled: ConflictError / ThrottledError raised by the store's "
          "writes and retried by the engine; errors: reached the worker's loop)")
    deep = [f"{r.workers} worker(s): {r.deep}" for r in res.runs if r.deep]
    if deep:
        print("  checked through the store (engine, first rep): " + "; ".join(deep))
    bad = [r for r in res.runs if r.problems]
    if not bad:
        print(f"  every run: all {res.jobs:,} jobs succeeded, attempts 1, version 3, one claim "
              f"and one complete event each, each completed by exactly one worker")
    for r in bad:
        print(f"  CHECK FAILED ({r.side}, {r.workers} workers, rep {r.rep + 1}): "
              + "; ".join(r.problems))
    for r in res.runs:
        for s in r.samples[:2]:
            print(f"  error ({r.side}, {r.workers} workers, rep {r.rep + 1}): {s}")
        if r.capped:
            print(f"  time cap hit ({r.side}, {r.workers} workers, rep {r.rep + 1}): "
                  f"{r.jobs:,} of {res.jobs:,} jobs done")
    print()


def goals(results: list[StoreResult], workers: Sequence[int]) -> None:
    print("goals (from the issue)")
    rows = []
    for res in results:
        for w in workers:
            e, r = res.best("engine", w), res.best("raw", w)
            if e and r:
                ratio = e.rate / r.rate
                rows.append((f"engine >= 0.5x raw jobs/s at {w} worker(s)", res.label,
                             f"{ratio:.2f}x ({e.rate:,.0f} vs {r.rate:,.0f})",
                             "met" if ratio >= 0.5 else "NOT met"))
    for res in results:
        best = [res.best("engine", w) for w in workers]
        if len(best) < 2 or any(b is None for b in best):
            continue
        steps = list(zip(best, best[1:], strict=False))
        figure = ", ".join(f"{b.workers}/{a.workers}: {b.rate / a.rate:.2f}x"  # type: ignore[union-attr]
                           for a, b in steps)
        grows = all(b.rate > a.rate for a, b in steps)  # type: ignore[union-attr]
        pg = res.label.startswith("PostgreSQL")
        rows.append((("" if pg else "  for reference: ") + "engine jobs/s grows with workers "
                     f"({' -> '.join(str(w) for w in workers)})", res.label, figure,
                     "met" if grows else "NOT met"))
    for res in results:
        bad = sum(1 for r in res.runs if r.problems)
        rows.append(("every job succeeded exactly once (every run, both sides)", res.label,
                     f"{bad} of {len(res.runs)} runs failed the check",
                     "met" if bad == 0 else "NOT met"))
    print_table(("goal", "store", "figure", "verdict"), rows)


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
    return statistics.median(times) * 1e3


def code_digest() -> str:
    """sha256 over runtime/**/*.py (another engineer may edit them during a run)."""
    h = hashlib.sha256()
    for p in sorted((ROOT / "runtime").rglob("*.py")):
        h.update(str(p.relative_to(ROOT)).encode() + b"\0" + p.read_bytes())
    return h.hexdigest()[:12]


def revision() -> str:
    try:
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, check=False).stdout.strip()
        changed = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--",
                                  "runtime"], capture_output=True, text=True,
                                 check=False).stdout.splitlines()
    except OSError:
        return "?"
    return (f"commit {head}, runtime/ " + (f"differs from it in {len(changed)} path(s)" if changed
                                           else "as committed") + f" (sha256 {code_digest()})")


def load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


# ---- --profile ---------------------------------------------------------------------------------


def profile(target: Target, jobs: int, top: int) -> None:
    """One engine worker in this process under cProfile, on a fresh copy of the seed."""
    ids, _, _ = target.seed(jobs)
    name = "profile"
    url = target.fresh(name)
    rt = runtime.open(store=url, content=str(CONTENT), actor="engine-w0")
    try:
        rt.content  # noqa: B018
        warm = rt.claim_job([WARM_KIND], worker="engine-w0", lease_seconds=LEASE_S)
        assert warm is not None
        rt.complete_job(warm.assistant_job_id, {"ok": True, "by": "engine-w0"}, worker="engine-w0")
        prof = cProfile.Profile()
        n = 0
        t0 = time.perf_counter()
        prof.enable()
        while (job := rt.claim_job([KIND], worker="engine-w0", lease_seconds=LEASE_S)) is not None:
            rt.complete_job(job.assistant_job_id, {"ok": True, "by": "engine-w0"},
                            worker="engine-w0")
            n += 1
        prof.disable()
        wall = time.perf_counter() - t0
    finally:
        rt.close()
        target.drop(name)
    assert n == len(ids), (n, len(ids))
    print(f"cProfile, {target.label}, 1 engine worker, {n:,} jobs: {wall / n * 1e3:.2f} ms per "
          f"job under the profiler (its overhead inflates Python calls: read the shares)")
    stats = pstats.Stats(prof, stream=io.StringIO())
    items = stats.stats.items()  # type: ignore[attr-defined]

    def label(file: str, line: int, fn: str) -> str:
        if file == "~":
            return fn
        p = Path(file)
        try:
            rel = str(p.resolve().relative_to(ROOT))
        except ValueError:
            rel = ("/".join(p.parts[p.parts.index("site-packages") + 1:])
                   if "site-packages" in p.parts else p.name)
        return f"{rel}:{line}({fn})"

    own = sorted(((label(*k), v[2], v[3], v[1]) for k, v in items), key=lambda r: -r[1])
    print_table(("function (by own time)", "own ms/job", "cum ms/job", "calls/job"),
                [(f, f"{tt / n * 1e3:.3f}", f"{ct / n * 1e3:.3f}", f"{nc / n:.1f}")
                 for f, tt, ct, nc in own[:top]])
    print()
    mine = sorted(((label(*k), v[3], v[1]) for k, v in items if "runtime/" in label(*k)),
                  key=lambda r: -r[1])
    print_table(("runtime/ function (by cumulative time)", "cum ms/job", "calls/job"),
                [(f, f"{ct / n * 1e3:.3f}", f"{nc / n:.1f}") for f, ct, nc in mine[:top]])
    print()


# ---- main --------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="400 jobs, 1 rep; under a minute")
    p.add_argument("--jobs", type=int, help="jobs per run (default 2000; quick 400)")
    p.add_argument("--reps", type=int, help="repetitions (default 3; quick 1)")
    p.add_argument("--cap", type=float, help="seconds after which a run stops early (default "
                   "120; quick 30)")
    p.add_argument("--workers", default="1,4,8", help="worker counts (default 1,4,8; the first "
                   "is the scaling baseline)")
    p.add_argument("--stores", default="sqlite,postgres", help="which stores (default both)")
    p.add_argument("--start-method", choices=("auto", "fork", "spawn"), default="auto",
                   help="how the worker processes start (default auto: fork when this process "
                   "runs no other thread)")
    p.add_argument("--profile", action="store_true",
                   help="instead: cProfile of 1 engine worker in this process, on each store")
    p.add_argument("--top", type=int, default=20, help="rows of the --profile listings")
    args = p.parse_args(argv)
    jobs = args.jobs or (400 if args.quick else 2000)
    reps = args.reps or (1 if args.quick else 3)
    cap = args.cap or (30.0 if args.quick else 120.0)
    workers = [int(w) for w in args.workers.split(",")]
    if max(workers) > max(WORKERS):
        raise SystemExit(f"--workers: at most {max(WORKERS)} (one warm-up job is seeded each)")
    stores = [s.strip() for s in args.stores.split(",") if s.strip()]
    t_all = time.perf_counter()

    def log(line: str) -> None:
        print(f"{line} [{time.perf_counter() - t_all:,.0f} s]", flush=True)

    pg: PgServer | None = None
    with tempfile.TemporaryDirectory(prefix="dataops-jobs-") as tmp:
        folder = Path(tmp)
        try:
            targets: list[Target] = []
            if "sqlite" in stores:
                targets.append(SqliteTarget(folder))
            if "postgres" in stores:
                pg = PgServer(durable=True)
                pg.start()
                targets.append(PgTarget(pg))
            if args.profile:
                for t in targets:
                    profile(t, jobs if args.jobs else 400, args.top)
                return 0
            digest = code_digest()
            print(f"jobs: {jobs:,} jobs per run, claim -> complete, {reps} rep(s), workers "
                  f"{', '.join(map(str, workers))}, time cap {cap:.0f} s per run "
                  f"({time.strftime('%Y-%m-%d %H:%M %Z')})")
            print(f"python {sys.version.split()[0]}, sqlite {sqlite3.sqlite_version}, psycopg "
                  f"{psycopg.__version__} ({psycopg.pq.__impl__}, libpq {psycopg.pq.version()}); "
                  f"{os.cpu_count()} CPU cores shared by the workers and PostgreSQL; temp folder "
                  f"{folder} (fsync of 4 KiB {fsync_ms(folder):.2f} ms); {revision()}")
            for t in targets:
                if isinstance(t, PgTarget):
                    s = t.settings()
                    print(f"PostgreSQL {s['server_version']}: PgServer(durable=True) fsync="
                          f"{s['fsync']}, synchronous_commit={s['synchronous_commit']}, "
                          f"full_page_writes={s['full_page_writes']}, wal_sync_method="
                          f"{s['wal_sync_method']}, commit_delay={s['commit_delay']}, "
                          f"shared_buffers={s['shared_buffers']}, max_connections="
                          f"{s['max_connections']}, autovacuum={s['autovacuum']}; 127.0.0.1 TCP; "
                          f"the engine's pool: pool_size 4 (the default) per worker")
            print(f"load average before {load()}", flush=True)
            results = [measure(t, jobs, reps, cap, args.start_method, workers, log)
                       for t in targets]
        finally:
            if pg is not None:
                pg.stop()
        print()
        for res in results:
            report(res, reps, workers)
        print("  engine/raw: the engine's jobs/s over raw's at the same worker count (goal >= "
              f"0.5); x {workers[0]} worker: over the same side's {workers[0]}-worker jobs/s; "
              "CPU workers: the workers' process time (for raw and engine alike); CPU PG: "
              "the postmaster, backends and ended backends; machine busy: all cores, idle and "
              "iowait excluded, everyone's")
        print()
        goals(results, workers)
        hows = sorted({r.how for res in results for r in res.runs})
        print()
        print(f"(total {time.perf_counter() - t_all:.1f} s; workers started by "
              f"{', '.join(hows)}; load average after {load()}; runtime/ "
              f"{'unchanged' if code_digest() == digest else 'CHANGED'} during the run; spread "
              f"= slowest vs fastest rep)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
