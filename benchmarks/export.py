"""Export at scale: export, validate and import 1,000,000 records on SQLite and PostgreSQL,
against ``json.dumps`` and ``json.loads`` of the same rows; import and export on DynamoDB
(requests counted, on a smaller set).

The store looks like a team's: bundles of one 20-task definition shape (four phases, proofs on
most tasks, assignees, systems, tags) and, per bundle, the 4 ``due`` reminders a sweep records
on its anchor day; every record carries the first event of its own audit chain. Per bundle
that is 25 records (1 bundle, 20 tasks, 4 reminders) and 25 audit events: 50 export lines, half
records and half events. 1,000,000 lines are 20,000 bundles: 200 definitions (``team-000`` ...
``team-199``, alike but for their ID) x 100 weekly anchor days. ``--quick`` uses 50,000 lines.

Generating the SQLite store. For each of the 100 anchors, ``engine.create_bundle`` and then
``record_due`` (at 08:31 local on the anchor day) run for real on a SqliteStore, with the
event IDs drawn in a known order; the rows the store then holds (every column, the docs as
stored) are the template of that anchor. The chain hashes cover every ID (``state_hash`` covers
``bundle_id`` and ``task_id``, an event's ``hash`` its ``event_id`` and ``entity_id``), so a
bundle of another definition is not a plain re-key: its template ID, event IDs (random-looking,
derived from the bundle's serial) and reminder IDs (``reminder_id_for``) are substituted, and
then each record's ``state_hash`` and each event's ``hash`` (and the record's ``audit_hash``)
are recomputed exactly as the unit of work does (``digest`` of the record's doc without the
bookkeeping fields; ``digest`` of the event's hashed fields). Each template is first re-made
with its own IDs and must give back the engine's hashes bit for bit, and a sample of generated
bundles is compared with what the engine writes for them (same event IDs): every column of
every row must be equal. The rows are bulk-inserted with plain ``sqlite3`` in creation order
(anchor by anchor), indexes built afterwards; the export validating (it validates itself
before it is renamed into place) proves every chain.

What is measured, each operation in a fresh child process (``python -c`` running a small
driver that imports only ``runtime.export`` and ``runtime.store``, from a copy of runtime/
taken at the start so that edits to the work tree during a run do not mix versions), so the
generator's memory is not in the figures: wall time, CPU time, the RSS after imports and store
opening, and the peak RSS, nothing subtracted (``VmHWM`` of /proc/self/status: Linux carries
``ru_maxrss`` over from the forked parent across exec, so it would show the generator's); and
of the worker processes the operation checks lines in (past 20,000 lines, one per core), their
CPU time (``RUSAGE_CHILDREN``) and each one's peak RSS (its ``VmHWM``, read just before it is
closed), the total peak adding them to the child's:

* baseline ``json.dumps``: the docs of the same rows, in export order, loaded into dicts with
  ``orjson.loads`` before timing (in chunks of 25,000, the preparation untimed), then
  ``json.dumps`` of each written to one file, one per line, fsynced; baseline ``json.loads``:
  that file read line by line, ``json.loads`` of each line;
* ``runtime.export.export_store(store, out, now)`` from the SQLite store: it checks each
  record with the validator's checks as it writes it, before the rename;
* ``runtime.export.load_export(dir)``: the streaming validator;
* ``runtime.export.import_export(store, dir)`` into a fresh empty SQLite store at
  ``?synchronous=NORMAL`` and at ``FULL``: validated and loaded in one pass, in one
  transaction (``bulk_insert``);
* two floors, what no export or import could beat on the machine whatever it checked: the
  SQLite scan of the stored docs in export order written to a file as they are (unparsed),
  and the SQLite insert (one transaction, ``synchronous=NORMAL``, into a fresh store) of the
  rows ``import_export`` inserts, made beforehand with ``check_batch`` (untimed);
* the same three on PostgreSQL: a server started for this run by ``tests/pg.py``'s
  ``PgServer(durable=True)`` (fsync, synchronous_commit, full_page_writes on), the
  ``PostgresStore`` loaded by importing the SQLite export (the import measurement), then
  exported; the two exports are compared file by file (sha256);
* DynamoDB: a smaller set of the same mix (10,000 lines; ``--quick`` 5,000: moto, served one
  request at a time by ``tests/dynamo.py``'s ``MotoProcess``, slows down as its table grows)
  imported into a 16-shard table and exported back, the HTTP requests each sent counted
  (records per request, as the issue asks: seconds against moto are not a figure), the export
  compared with the SQLite one file by file.

"records" below are export lines (records and audit events alike). Prints tables with ratios
against the baselines of the same run and the load average; never asserts on timings.

    python benchmarks/export.py            # 1,000,000 lines (about 15 minutes on 2 cores)
    python benchmarks/export.py --quick    # 50,000 lines, under a minute
    python benchmarks/export.py --profile 50000   # cProfile of export, validate and import

Goals (from the issue): export >= 1.0x the json.dumps baseline's records/s; validate >= 0.5x
the json.loads baseline's; import >= 100k records/s at synchronous=NORMAL and >= 50k at FULL;
peak memory under 200 MB for each of export, validate and import.
"""

from __future__ import annotations

import argparse
import compileall
import cProfile
import functools
import hashlib
import itertools
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
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

import orjson  # noqa: E402
import psycopg  # noqa: E402
import pydantic  # noqa: E402

from runtime import engine  # noqa: E402
from runtime.clock import FixedClock  # noqa: E402
from runtime.content import Content  # noqa: E402
from runtime.engine import Services  # noqa: E402
from runtime.engine import uow as uow_module  # noqa: E402
from runtime.engine.reminders import record_due  # noqa: E402
from runtime.model import GENESIS_HASH, WorkflowDefinition, parse_instant, reminder_id_for  # noqa: E402
from runtime.rules.audit import HASHED, STATE_EXCLUDE, digest  # noqa: E402
from runtime.rules.reminders import local_instant  # noqa: E402
from runtime.store.postgres import PostgresStore  # noqa: E402
from runtime.store.sqlite import SCHEMA, SCHEMA_VERSION, SqliteStore  # noqa: E402
from tests.pg import PgServer  # noqa: E402

TASKS = 20
REMINDED = 4  # tasks due on the anchor day: each gives one `due` reminder at the sweep
PER_BUNDLE = 2 * (1 + TASKS + REMINDED)  # records and their creation events: 50 lines
ANCHORS = 100  # weekly anchor days, one template each
START = date(2025, 1, 6)  # a Monday
ZONE = "America/Chicago"
AT = dtime(8, 30)
BASE = "tplbase"  # the template ID of the templates; appears nowhere else in a row
NOW = datetime(2027, 1, 4, 12, 0, tzinfo=UTC)  # the export's timestamp
TABLES = ("bundles", "tasks", "reminders", "audit_events")
KEYS = {"bundles": "bundle_id", "tasks": "task_id", "reminders": "reminder_id",
        "audit_events": "event_id"}
EXPORT_ORDER = (("bundles", "bundle_id"), ("tasks", "task_id"), ("reminders", "reminder_id"),
                ("audit_events", "entity_id, seq"))  # export_store's file order and scan order
MB = 1_000_000  # memory and sizes in decimal MB (a goal of 200 MB is 200e6 bytes)
Row = tuple[object, ...]


# ---- the definition --------------------------------------------------------------------------


def definition(template_id: str) -> WorkflowDefinition:
    """A 20-task weekly definition: tasks 0-3 due on the anchor day (no proof, so each fires
    exactly one `due` reminder there), the others due on later days with proofs to attach."""
    phases = [{"phase_id": p, "title": p.title()} for p in ("plan", "build", "review", "ship")]
    tasks = []
    for i in range(TASKS):
        task: dict[str, object] = {
            "task_ref": f"step-{i:02d}",
            "title": f"Step {i:02d}: do the {i}th thing of the week's run",
            "phase": phases[i * len(phases) // TASKS]["phase_id"],
            "offset_days": 0 if i < REMINDED else 1 + (i - REMINDED) // 3,
            "instruction_doc_id": "doc-playbook",
            "instruction_step_id": f"s{i}",
            "systems": ["notion", "google-docs", "slack"][: 1 + i % 3],
            "validation": "Checked by a second person; links open; numbers add up",
            "tags": ["weekly", f"group-{i % 4}"],
        }
        if i >= REMINDED:
            task["proof"] = [
                {"kind": "url", "label": "Evidence link", "pattern": r"^https://docs\.example\.com/"}
                if i % 3 == 0 else {"kind": "comment", "label": "Sign-off"}
            ]
        if i % 5 == 0:
            task["assignee"] = "reviewer"
        tasks.append(task)
    return WorkflowDefinition.model_validate({
        "template_id": template_id,
        "version": 3,
        "title": "Weekly operations run",
        "timezone": ZONE,
        "default_assignee": "editor",
        "source_doc_ids": ["doc-playbook"],
        "references": [{"label": "Archive", "url": "https://example.com/archive"}],
        "reminders": {"at": "08:30", "overdue_repeats": 2},
        "phases": phases,
        "tasks": tasks,
        "tags": ["weekly"],
    })


def anchor_of(k: int) -> date:
    return START + timedelta(weeks=k)


def sweep_at(k: int) -> datetime:
    """08:31 local on anchor day ``k``: the 4 tasks due that day fire, nothing else has yet."""
    return local_instant(anchor_of(k), dtime(8, 31), ZONE)


def template_id_of(m: int) -> str:
    return f"team-{m:03d}"


def event_id(serial: int, i: int) -> str:
    """Event ``i`` of bundle ``serial``: random-looking (as new_id's), deterministic."""
    return "evt-" + hashlib.blake2b(f"{serial}.{i}".encode(), digest_size=16).hexdigest()


# ---- what the engine writes ------------------------------------------------------------------


def engine_rows(folder: Path, template_id: str, k: int, ids: Iterator[str]) -> dict[str, list[Row]]:
    """The rows a SqliteStore holds after ``create_bundle`` (clock: a week before the anchor's
    sweep) and ``record_due`` (at the sweep) of ``template_id`` at anchor ``k``, the event IDs
    taken from ``ids`` in the order the unit of work draws them."""
    path = folder / f"engine-{template_id}-{k}.db"
    for f in folder.glob(f"{path.name}*"):
        f.unlink()
    wf = definition(template_id)
    content = Content(root=Path("."), workflows={wf.template_id: wf})
    store = SqliteStore(f"sqlite:///{path}?synchronous=NORMAL")
    clock = FixedClock(sweep_at(k) - timedelta(days=7))
    svc = Services(store=store, clock=clock, actor="ops-team", content_loader=lambda: content)
    real = uow_module.new_id

    def drawn(prefix: str) -> str:
        assert prefix == "evt", prefix
        return next(ids)

    uow_module.new_id = drawn  # type: ignore[assignment]
    try:
        engine.create_bundle(svc, wf.template_id, anchor_of(k))
        clock.set(sweep_at(k))
        report = record_due(svc, sweep_at(k))
    finally:
        uow_module.new_id = real  # type: ignore[assignment]
    assert len(report.recorded) == REMINDED, report.line()
    store.close()
    db = sqlite3.connect(path)
    rows = {t: db.execute(f"SELECT * FROM {t} ORDER BY {KEYS[t]}").fetchall() for t in TABLES}
    db.close()
    for f in folder.glob(f"{path.name}*"):
        f.unlink()
    return rows


_MARK = re.compile("\x00(\\w+)\x00")
_TOKEN = re.compile(rf"{BASE}|evt-[0-9a-f]{{32}}|rem-[0-9a-f]{{24}}|[0-9a-f]{{64}}")
"""What a template may mark: its template ID, event and reminder IDs, hashes (each looked
up: the genesis hash, say, is left as it is)."""


class Parts:
    """A string with marks (``\\x00key\\x00``): literal pieces and the keys between them."""

    __slots__ = ("keys", "lits")

    def __init__(self, text: str) -> None:
        pieces = _MARK.split(text)
        self.lits, self.keys = pieces[0::2], pieces[1::2]

    def fill(self, vals: dict[str, str]) -> str:
        out = [self.lits[0]]
        for key, lit in zip(self.keys, self.lits[1:], strict=True):
            out += (vals[key], lit)
        return "".join(out)


def _fill(v: object, vals: dict[str, str]) -> object:
    return v.fill(vals) if isinstance(v, Parts) else v


class Template:
    """The rows of anchor ``k`` with marks where a bundle of another definition differs: the
    template ID (``T``), event IDs (``E<i>``, in the order they were drawn), reminder IDs
    (``R<j>``), and each chain's hashes (``H<i>``: the event's ``hash`` and its record's
    ``audit_hash``; ``S<i>``: its ``state_hash``)."""

    def __init__(self, folder: Path, k: int) -> None:
        self.k = k
        drawn = [f"evt-{i:032x}" for i in range(PER_BUNDLE // 2)]
        rows = engine_rows(folder, BASE, k, iter(drawn))
        assert [len(rows[t]) for t in TABLES] == [1, TASKS, REMINDED, PER_BUNDLE // 2], \
            {t: len(r) for t, r in rows.items()}
        events = [orjson.loads(r[-1]) for r in rows["audit_events"]]
        assert all(e["seq"] == 1 and e["prev_hash"] == GENESIS_HASH for e in events)
        marks = {BASE: "\x00T\x00"}
        marks.update({eid: f"\x00E{i}\x00" for i, eid in enumerate(drawn)})
        self.reminders = []  # (mark, kind, entity_id with marks, fire_at)
        for j, r in enumerate(rows["reminders"]):
            doc = orjson.loads(r[-1])
            marks[doc["reminder_id"]] = f"\x00R{j}\x00"
            self.reminders.append((f"R{j}", doc["kind"], doc["entity_id"],
                                   parse_instant(doc["fire_at"])))
        by_entity = {}
        for e in events:
            i = drawn.index(e["event_id"])
            marks[e["hash"]] = f"\x00H{i}\x00"
            marks[e["state_hash"]] = f"\x00S{i}\x00"
            by_entity[e["entity_id"]] = i
        self.original = {"T": BASE, **{f"E{i}": eid for i, eid in enumerate(drawn)},
                         **{m.strip("\x00"): v for v, m in marks.items()}}

        def blank(v: object) -> object:
            if not isinstance(v, str):
                return v
            marked = _TOKEN.sub(lambda mt: marks.get(mt.group(), mt.group()), v)
            return Parts(marked) if marked != v else v

        self.rows = {t: [tuple(blank(v) for v in r) for r in rs] for t, rs in rows.items()}
        self.reminders = [(key, kind, blank(entity), at) for key, kind, entity, at in self.reminders]
        # the chains: each record's doc with its event's doc, in the order the events were drawn
        ev_doc = {by_entity[orjson.loads(r[-1])["entity_id"]]: p[-1]
                  for r, p in zip(rows["audit_events"], self.rows["audit_events"], strict=True)}
        self.chains = []
        for t in ("bundles", "tasks", "reminders"):
            for r, p in zip(rows[t], self.rows[t], strict=True):
                i = by_entity[r[0]]
                self.chains.append((i, p[-1], ev_doc[i]))
        self.chains.sort(key=lambda c: c[0])
        self.n_events = len(drawn)
        # the method, checked: re-made with its own IDs, the template gives back the engine's
        # hashes and rows
        assert self.vals(dict(self.original)) == self.original, f"anchor {k}: hashes differ"
        assert self.filled(self.original) == rows, f"anchor {k}: rows differ"

    def vals(self, vals: dict[str, str]) -> dict[str, str]:
        """``vals`` (``T`` and the ``E<i>`` set) completed: reminder IDs and every hash."""
        for key, kind, entity, at in self.reminders:
            vals[key] = reminder_id_for(kind, str(_fill(entity, vals)), at)
        for i, rec_doc, ev_doc in self.chains:
            h, s = f"H{i}", f"S{i}"
            vals[h] = vals[s] = ""
            state = orjson.loads(_fill(rec_doc, vals))  # type: ignore[arg-type]
            vals[s] = digest({k_: v for k_, v in state.items() if k_ not in STATE_EXCLUDE})
            event = orjson.loads(_fill(ev_doc, vals))  # type: ignore[arg-type]
            vals[h] = digest({name: event[name] for name in HASHED})
        return vals

    def filled(self, vals: dict[str, str]) -> dict[str, list[Row]]:
        return {t: [tuple(_fill(v, vals) for v in r) for r in rs] for t, rs in self.rows.items()}

    def rows_for(self, m: int, serial: int) -> dict[str, list[Row]]:
        """Bundle ``serial``: definition ``m`` at this template's anchor."""
        vals = {"T": template_id_of(m), **{f"E{i}": event_id(serial, i) for i in range(self.n_events)}}
        return self.filled(self.vals(vals))


def check_against_engine(folder: Path, templates: list[Template], defs: int,
                         samples: Sequence[tuple[int, int]]) -> int:
    """Generated bundles equal what the engine writes for them (same event IDs): every
    column of every row. Returns how many bundles were compared."""
    for m, k in samples:
        serial = k * defs + m
        real = engine_rows(folder, template_id_of(m), k,
                           (event_id(serial, i) for i in itertools.count()))
        made = templates[k].rows_for(m, serial)
        for t in TABLES:
            made_t = sorted(made[t], key=lambda r: str(r[0]))
            assert real[t] == made_t, (m, k, t, "generated rows differ from the engine's")
    return len(samples)


def generate(path: Path, n: int, folder: Path) -> dict[str, Any]:
    """A SQLite store of ``n`` export lines (a multiple of PER_BUNDLE * ANCHORS)."""
    if n % (PER_BUNDLE * ANCHORS) or n <= 0:
        raise SystemExit(f"--records {n}: give a multiple of {PER_BUNDLE * ANCHORS:,}")
    defs = n // (PER_BUNDLE * ANCHORS)
    t0 = time.perf_counter()
    templates = [Template(folder, k) for k in range(ANCHORS)]
    t_tpl = time.perf_counter() - t0
    samples = sorted({(0, 0), (defs - 1, ANCHORS - 1), (defs // 2, 13), (defs // 3, 42),
                      (defs - 1, 0), (0, ANCHORS - 1)})
    checked = check_against_engine(folder, templates, defs, samples)
    t_check = time.perf_counter() - t0 - t_tpl

    t1 = time.perf_counter()
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
    width = {t: len(templates[0].rows[t][0]) for t in TABLES}
    sql = {t: f"INSERT INTO {t} VALUES ({', '.join('?' * width[t])})" for t in TABLES}
    chunk: dict[str, list[Row]] = {t: [] for t in TABLES}
    for k in range(ANCHORS):  # creation order: week by week, every definition's bundle
        for m in range(defs):
            for t, rows in templates[k].rows_for(m, k * defs + m).items():
                chunk[t] += rows
            if len(chunk["tasks"]) >= 20_000 or (k == ANCHORS - 1 and m == defs - 1):
                for t, rows in chunk.items():
                    db.executemany(sql[t], rows)
                chunk = {t: [] for t in TABLES}
    db.execute("COMMIT")
    t_rows = time.perf_counter() - t1
    for s in statements:  # indexes after the rows: a sorted build, much faster than per row
        if s.startswith("CREATE INDEX"):
            db.execute(s)
    counts = {t: db.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}
    bundles = n // PER_BUNDLE
    assert counts == {"bundles": bundles, "tasks": bundles * TASKS,
                      "reminders": bundles * REMINDED,
                      "audit_events": bundles * (1 + TASKS + REMINDED)}, counts
    db.execute("PRAGMA journal_mode=WAL")  # what the store uses; persistent in the file
    db.close()
    fsync_file(path)
    return {"defs": defs, "counts": counts, "templates_s": t_tpl, "check_s": t_check,
            "checked": checked, "rows_s": t_rows, "total_s": time.perf_counter() - t0,
            "mb": path.stat().st_size / 1e6}


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# ---- the child processes ---------------------------------------------------------------------

CHILD = r'''
import json, os, resource, sys, time

spec = json.loads(sys.argv[1])


def status(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


def rss():
    return status("VmRSS")


def peak():
    # VmHWM: the peak RSS of this process image. (ru_maxrss would do on its own, but Linux
    # carries it over from the forked parent across exec: it would report the generator's.)
    return status("VmHWM")


def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def cpu_children():
    # the worker processes that check lines (reaped when the operation ends)
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


worker_peaks = []  # each worker's VmHWM, read just before it is closed


op = spec["op"]
inside = [0.0]
out = {}
requests = [0]
store = None
if op in ("export", "validate", "import", "dynamo-import", "dynamo-export"):
    from datetime import datetime
    from pathlib import Path

    import runtime.export as ex
    from runtime.store import open_store

    real = ex.load_export

    def timed(*a, **kw):
        t = time.perf_counter()
        try:
            return real(*a, **kw)
        finally:
            inside[0] += time.perf_counter() - t

    ex.load_export = timed  # export_store and import_export call it by this name
    real_close = ex._Worker.close

    def close(self):
        try:
            with open(f"/proc/{self.proc.pid}/status") as f:
                worker_peaks.extend(int(line.split()[1]) * 1024 for line in f
                                    if line.startswith("VmHWM:"))
        except OSError:
            pass
        return real_close(self)

    ex._Worker.close = close
    store = open_store(spec["url"]) if op != "validate" else None
    if op in ("import", "dynamo-import"):
        assert store.is_empty(), "import: the target store is not empty"
    if op.startswith("dynamo-"):  # every HTTP request sent, retries included
        store._client.meta.events.register(
            "before-send.dynamodb", lambda **_: requests.__setitem__(0, requests[0] + 1))
else:
    import sqlite3

    import orjson
base_rss, base_peak, c0, w0 = rss(), peak(), cpu(), cpu_children()
t0 = time.perf_counter()
if op == "dumps":
    db = sqlite3.connect(spec["db"])
    timed_s, timed_cpu, n = 0.0, 0.0, 0
    with open(spec["out"], "w", encoding="utf-8", buffering=1 << 20) as f:
        for table, order in spec["order"]:
            cur = db.execute(f"SELECT doc FROM {table} ORDER BY {order}")
            while rows := cur.fetchmany(25_000):
                dicts = [orjson.loads(doc) for (doc,) in rows]  # prepared: untimed
                del rows
                t, c = time.perf_counter(), time.process_time()
                dumps, write = json.dumps, f.write
                for d in dicts:
                    write(dumps(d))
                    write("\n")
                timed_s += time.perf_counter() - t
                timed_cpu += time.process_time() - c
                n += len(dicts)
                del dicts
        t, c = time.perf_counter(), time.process_time()
        f.flush()
        os.fsync(f.fileno())
        timed_s += time.perf_counter() - t
        timed_cpu += time.process_time() - c
    out = {"n": n, "seconds": timed_s, "timed_cpu": timed_cpu}
elif op == "scan-floor":  # what an export cannot beat: the stored docs, unparsed, to a file
    db = sqlite3.connect(spec["db"])
    n = 0
    with open(spec["out"], "w", encoding="utf-8", buffering=1 << 20) as f:
        write = f.write
        for table, order in spec["order"]:
            cur = db.execute(f"SELECT doc FROM {table} ORDER BY {order}")
            while rows := cur.fetchmany(500):
                for (doc,) in rows:
                    write(doc)
                    write("\n")
                n += len(rows)
        f.flush()
        os.fsync(f.fileno())
    out = {"n": n}
elif op == "insert-floor":  # what an import cannot beat: the rows it inserts, made beforehand
    from pathlib import Path

    from runtime.export import ENTITIES, _line_batches
    from runtime.export_lines import check_batch
    from runtime.store import open_store

    store = open_store(spec["url"])
    assert store.is_empty()
    timed_s, timed_cpu, n = 0.0, 0.0, 0
    bulk = store.bulk_insert()
    insert = bulk.__enter__()
    for es in ENTITIES:
        with open(Path(spec["dir"]) / es.file, "rb") as f:
            for lines in _line_batches(f, None):
                rows = [made for _, _, made, _ in check_batch(es.entity_type, es.file, 1, lines,
                                                              "sqlite")]  # prepared: untimed
                t, c = time.perf_counter(), time.process_time()
                insert(rows)
                timed_s += time.perf_counter() - t
                timed_cpu += time.process_time() - c
                n += len(rows)
    t, c = time.perf_counter(), time.process_time()
    bulk.__exit__(None, None, None)  # the commit
    timed_s += time.perf_counter() - t
    timed_cpu += time.process_time() - c
    out = {"n": n, "seconds": timed_s, "timed_cpu": timed_cpu}
elif op == "loads":
    n = 0
    loads = json.loads
    with open(spec["file"], "rb") as f:
        for line in f:
            loads(line)
            n += 1
    out = {"n": n}
elif op in ("export", "dynamo-export"):
    manifest = ex.export_store(store, Path(spec["out"]), datetime.fromisoformat(spec["now"]))
    out = {"n": sum(e["count"] for e in manifest["entities"]),
           "files": {e["file"]: e["sha256"] for e in manifest["entities"]}}
elif op == "validate":
    out = {"n": sum(ex.load_export(Path(spec["dir"])).values())}
elif op in ("import", "dynamo-import"):
    out = {"n": sum(ex.import_export(store, Path(spec["dir"])).values())}
wall = time.perf_counter() - t0
out.setdefault("seconds", wall)
if store is not None:
    store.close()  # the workers are reaped by then: their CPU and peak are in RUSAGE_CHILDREN
out.update(wall=wall, cpu=out.pop("timed_cpu", cpu() - c0), inside=inside[0], base_rss=base_rss,
           base_peak=base_peak, peak=peak(), workers_cpu=cpu_children() - w0,
           workers_peak=max(worker_peaks, default=0), workers=len(worker_peaks),
           workers_total=sum(worker_peaks), requests=requests[0])
print(json.dumps(out))
'''


CODE: list[Path] = []
"""Where the children import ``runtime`` from: a copy of runtime/ taken at the start of the
run (see :func:`snapshot`), else the work tree."""


def snapshot(folder: Path) -> Path:
    """A copy of runtime/ as it is now, for the children: every measurement of one run uses
    the same code even while someone edits the work tree (the parent's own imports are from
    the start of the run too)."""
    code = folder / "code"
    shutil.copytree(ROOT / "runtime", code / "runtime",
                    ignore=shutil.ignore_patterns("__pycache__"))
    # compiled here, as an installed package is: otherwise the first operation measured (the
    # export) and its worker processes pay for compiling the modules they import
    compileall.compile_dir(code / "runtime", quiet=1)
    CODE[:] = [code]
    return code


def child(spec: dict[str, Any]) -> dict[str, Any]:
    code = CODE[0] if CODE else ROOT
    env = {**os.environ, "PYTHONPATH": str(code) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    r = subprocess.run([sys.executable, "-c", CHILD, json.dumps(spec)], cwd=code, env=env,
                       capture_output=True, text=True, check=False)
    if r.returncode != 0:
        raise SystemExit(f"child {spec['op']} failed ({r.returncode}):\n{r.stderr[-4000:]}")
    return dict(json.loads(r.stdout.strip().splitlines()[-1]))


# ---- running ---------------------------------------------------------------------------------

Runs = dict[str, list[dict[str, Any]]]


def remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    for f in path.parent.glob(f"{path.name}*"):
        if f.is_file():
            f.unlink()


def measure_sqlite(folder: Path, src: Path, reps: dict[str, int], n: int,
                   log: Callable[[str], None]) -> tuple[Runs, Path]:
    """Interleaved repetitions (load drift on a shared machine hits every operation alike)."""
    runs: Runs = {k: [] for k in ("dumps", "loads", "export", "validate", "NORMAL", "FULL",
                                  "scan-floor", "insert-floor")}
    base_file, export_dir = folder / "baseline.jsonl", folder / "export"
    for rep in range(max(reps.values())):
        if rep < reps["baseline"]:
            remove(base_file)
            runs["dumps"].append(child({"op": "dumps", "db": str(src), "out": str(base_file),
                                        "order": EXPORT_ORDER}))
            runs["loads"].append(child({"op": "loads", "file": str(base_file)}))
        if rep < reps["export"]:
            remove(export_dir)
            runs["export"].append(child({"op": "export", "url": f"sqlite:///{src}",
                                         "out": str(export_dir), "now": NOW.isoformat()}))
            runs["validate"].append(child({"op": "validate", "dir": str(export_dir)}))
            remove(base_file)
            runs["scan-floor"].append(child({"op": "scan-floor", "db": str(src),
                                             "out": str(base_file), "order": EXPORT_ORDER}))
        if rep < reps["import"]:
            for sync in ("NORMAL", "FULL"):
                target = folder / f"import-{sync}.db"
                remove(target)
                runs[sync].append(child({"op": "import", "dir": str(export_dir),
                                         "url": f"sqlite:///{target}?synchronous={sync}"}))
                check_import(SqliteStore(f"sqlite:///{target}"), n)
                remove(target)
            target = folder / "insert-floor.db"
            runs["insert-floor"].append(child({
                "op": "insert-floor", "dir": str(export_dir),
                "url": f"sqlite:///{target}?synchronous=NORMAL"}))
            check_import(SqliteStore(f"sqlite:///{target}"), n)
            remove(target)
        log(f"  SQLite repetition {rep + 1} of {max(reps.values())} done (load average {load()})")
    for r in runs.values():
        for x in r:
            assert x["n"] == n, (x, n)
    return runs, export_dir


def check_import(store: Any, n: int) -> None:
    from runtime.export import ENTITIES

    held = sum(store.count(spec.model) or 0 for spec in ENTITIES)
    store.close()
    assert held == n, f"the imported store holds {held} records, the export {n}"


def measure_postgres(folder: Path, export_dir: Path, sqlite_files: dict[str, str],
                     reps: dict[str, int], n: int, log: Callable[[str], None]) -> dict[str, Any]:
    server = PgServer(durable=True)
    out: dict[str, Any] = {"import": [], "export": [], "validate": []}
    try:
        server.start()

        def sql(*statements: str) -> list[Any]:
            with psycopg.connect(server.base_url, autocommit=True) as conn:
                rows: list[Any] = []
                for s in statements:
                    cur = conn.execute(s)
                    rows = cur.fetchall() if cur.description else []
                return rows

        names = ("server_version", "fsync", "synchronous_commit", "full_page_writes",
                 "shared_buffers", "max_wal_size")
        out["settings"] = {k: sql(f"SHOW {k}")[0][0] for k in names}
        schema = ""
        for rep in range(reps["import"]):
            if schema:
                sql(f'DROP SCHEMA "{schema}" CASCADE')
            schema = f"import_{rep}"
            url = f"{server.base_url}?schema={schema}"
            PostgresStore(url).close()  # the schema as the store makes it; then a checkpoint
            sql("CHECKPOINT")
            out["import"].append(child({"op": "import", "dir": str(export_dir), "url": url}))
            check_import(PostgresStore(url), n)
            log(f"  PostgreSQL import {rep + 1} of {reps['import']} done (load average {load()})")
        sql(f'VACUUM ANALYZE "{schema}".bundles', f'VACUUM ANALYZE "{schema}".tasks',
            f'VACUUM ANALYZE "{schema}".reminders', f'VACUUM ANALYZE "{schema}".audit_events')
        (mb,), = sql("SELECT sum(pg_total_relation_size(c.oid)) / 1e6 FROM pg_class c JOIN "
                     f"pg_namespace ns ON ns.oid = c.relnamespace WHERE ns.nspname = '{schema}' "
                     "AND c.relkind = 'r'")
        out["mb"] = float(mb)
        pg_export = folder / "export-pg"
        for rep in range(reps["export"]):
            remove(pg_export)
            sql("CHECKPOINT")
            out["export"].append(child({"op": "export", "url": f"{server.base_url}?schema={schema}",
                                        "out": str(pg_export), "now": NOW.isoformat()}))
            out["validate"].append(child({"op": "validate", "dir": str(pg_export)}))
            log(f"  PostgreSQL export {rep + 1} of {reps['export']} done (load average {load()})")
        files = out["export"][-1]["files"]
        out["same"] = [f for f in files if files[f] == sqlite_files.get(f)]
        out["differ"] = [f for f in files if files[f] != sqlite_files.get(f)]
        remove(pg_export)
    finally:
        server.stop()
    for r in (out["import"], out["export"], out["validate"]):
        for x in r:
            assert x["n"] == n, (x, n)
    return out


def measure_dynamodb(folder: Path, n: int, log: Callable[[str], None]) -> dict[str, Any]:
    """Import an ``n``-line export (made from its own SQLite store) into DynamoDB and export it
    back, counting the HTTP requests each sends (against moto: counted, not timed), and compare
    the two exports file by file."""
    from tests.dynamo import MotoProcess

    src = folder / "dynamo-source.db"
    generate(src, n, folder)
    sqlite_dir = folder / "dynamo-sqlite-export"
    export_store_of(src, sqlite_dir)
    server = MotoProcess().start()
    out: dict[str, Any] = {"n": n}
    try:
        url = server.new_url(shards=16)  # the adapter's default shard count
        out["import"] = child({"op": "dynamo-import", "dir": str(sqlite_dir), "url": url})
        log(f"  DynamoDB import of {n:,} lines done (load average {load()})")
        back = folder / "dynamo-export"
        out["export"] = child({"op": "dynamo-export", "url": url, "out": str(back),
                               "now": NOW.isoformat()})
        log(f"  DynamoDB export done (load average {load()})")
        files = out["export"]["files"]
        mine = {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sqlite_dir.glob("*.jsonl")}
        out["differ"] = [f for f in files if files[f] != mine.get(f)]
        out["compared"] = len(files)
        remove(back)
    finally:
        server.stop()
        remove(sqlite_dir)
        src.unlink(missing_ok=True)
    for r in (out["import"], out["export"]):
        assert r["n"] == n, (r, n)
    return out


def export_store_of(db: Path, out: Path) -> None:
    store = SqliteStore(f"sqlite:///{db}")
    try:
        from runtime.export import export_store

        export_store(store, out, NOW)
    finally:
        store.close()


# ---- output ----------------------------------------------------------------------------------


def best(runs: list[dict[str, Any]], key: str = "seconds") -> dict[str, Any]:
    return min(runs, key=lambda r: r[key])


def rate(n: int, seconds: float) -> str:
    return f"{n / seconds:,.0f}"


def spread(runs: list[dict[str, Any]]) -> str:
    ts = [r["seconds"] for r in runs]
    return f"{(max(ts) - min(ts)) / min(ts) * 100:.0f}%" if len(ts) > 1 else "-"


def mb(b: float) -> str:
    return f"{b / MB:,.0f}"


def print_table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> None:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, tuple("-" * w for w in widths), *rows]:
        cells = [f"{c:<{w}}" if i == 0 else f"{c:>{w}}"
                 for i, (c, w) in enumerate(zip(row, widths, strict=True))]
        print("  ".join(cells).rstrip())


def total_peak(r: dict[str, Any]) -> float:
    """The peak of the operation: its process's plus each worker's (each peak taken alone,
    so at most the sum)."""
    return float(r["peak"] + r.get("workers_total", 0))


def report(n: int, sq: Runs, pg: dict[str, Any] | None, dy: dict[str, Any] | None) -> None:
    dumps, loads = best(sq["dumps"]), best(sq["loads"])
    base = {"dumps": n / dumps["seconds"], "loads": n / loads["seconds"]}
    lines: list[tuple[str, str, str, dict[str, Any], list[dict[str, Any]]]] = [
        ("baseline json.dumps + write (SQLite docs)", "", "", dumps, sq["dumps"]),
        ("baseline json.loads per line", "", "", loads, sq["loads"]),
        ("SQLite export_store", "dumps", "", best(sq["export"]), sq["export"]),
        ("load_export (validate)", "loads", "", best(sq["validate"]), sq["validate"]),
        ("SQLite import_export, NORMAL", "", "", best(sq["NORMAL"]), sq["NORMAL"]),
        ("SQLite import_export, FULL", "", "", best(sq["FULL"]), sq["FULL"]),
    ]
    if pg is not None:
        lines += [
            ("PostgreSQL import_export", "", "", best(pg["import"]), pg["import"]),
            ("PostgreSQL export_store", "dumps", "", best(pg["export"]), pg["export"]),
            ("load_export of the PostgreSQL export", "loads", "", best(pg["validate"]),
             pg["validate"]),
        ]
    print(f"{n:,} records (export lines), best of reps; peak = the peak RSS (VmHWM) of a fresh "
          f"child process, nothing subtracted; start = its RSS after imports and opening the "
          f"store; CPU s = the child's CPU time; workers = the processes it checks lines in "
          f"(their CPU, and the largest one's peak RSS, VmHWM); total peak = peak + each "
          f"worker's")
    rows = []
    for label, vs, _, r, runs in lines:
        ratio = f"{n / r['seconds'] / base[vs]:.2f}x {vs}" if vs else ""
        workers = (f"{r['workers']} x: {r['workers_cpu']:.1f} s, {mb(r['workers_peak'])} MB"
                   if r.get("workers") else "-")
        rows.append((label, f"{r['seconds']:.1f}", rate(n, r["seconds"]), ratio,
                     f"{r['cpu']:.1f}", mb(r["base_rss"]), mb(r["peak"]), workers,
                     mb(total_peak(r)), f"{len(runs)}", spread(runs)))
    print_table(("operation", "s", "records/s", "vs baseline", "CPU s", "start MB", "peak MB",
                 "workers", "total peak MB", "reps", "spread"), rows)
    print()
    if dy is None:
        print("DynamoDB: not measured (--no-dynamodb)")
    else:
        imp, exp = dy["import"], dy["export"]
        same = ("byte for byte the SQLite export" if not dy["differ"] else
                f"NOT the SQLite export: {', '.join(dy['differ'])} differ")
        print(f"DynamoDB ({dy['n']:,} lines of the same mix, against moto served one request at "
              f"a time: requests counted, seconds not a figure): import {imp['requests']:,} "
              f"requests = {dy['n'] / imp['requests']:.1f} records per request "
              f"({imp['seconds']:.0f} s); export {exp['requests']:,} requests = "
              f"{dy['n'] / exp['requests']:.1f} records per request ({exp['seconds']:.0f} s); "
              f"peaks {mb(total_peak(imp))} and {mb(total_peak(exp))} MB; its export is {same} "
              f"({dy['compared']} files compared by sha256)")
    if pg is not None:
        st = pg["settings"]
        print(f"PostgreSQL {st['server_version']}: fsync={st['fsync']}, synchronous_commit="
              f"{st['synchronous_commit']}, full_page_writes={st['full_page_writes']}, "
              f"shared_buffers={st['shared_buffers']}, max_wal_size={st['max_wal_size']}; "
              f"{pg['mb']:,.0f} MB of tables with indexes and TOAST after the import")
        same = ("byte for byte the SQLite export" if not pg["differ"] else
                f"NOT the SQLite export: {', '.join(pg['differ'])} differ")
        print(f"  its export is {same} ({len(pg['same']) + len(pg['differ'])} files compared by "
              f"sha256); the server's own memory is not in the figures")
    print()

    def goal(text: str, ok: bool) -> None:
        print(f"goal: {text} -> {'met' if ok else 'NOT met'}")

    ex, va = best(sq["export"]), best(sq["validate"])
    r_ex, r_va = n / ex["seconds"] / base["dumps"], n / va["seconds"] / base["loads"]
    goal(f"export >= 1.0x the json.dumps baseline (SQLite): {r_ex:.2f}x", r_ex >= 1.0)
    goal(f"validate >= 0.5x the json.loads baseline: {r_va:.2f}x", r_va >= 0.5)
    for sync, want in (("NORMAL", 100_000), ("FULL", 50_000)):
        got = n / best(sq[sync])["seconds"]
        goal(f"import >= {want // 1000}k records/s at synchronous={sync}: {got:,.0f}/s",
             got >= want)
    peaks = [("export", sq["export"]), ("validate", sq["validate"]),
             ("import NORMAL", sq["NORMAL"]), ("import FULL", sq["FULL"])]
    if pg is not None:
        peaks += [("PostgreSQL import", pg["import"]), ("PostgreSQL export", pg["export"]),
                  ("validate of the PostgreSQL export", pg["validate"])]
    for what, runs in peaks:
        p = max(total_peak(r) for r in runs)
        goal(f"peak memory under 200 MB, {what} (with its workers): {mb(p)} MB", p < 200 * MB)
    print()
    scan, ins = best(sq["scan-floor"]), best(sq["insert-floor"])
    print("floors, for reference (the same run; what no export or import on this machine can "
          "beat with this store, whatever it checks):")
    print(f"  SQLite scan of the stored docs written to a file as they are, unparsed: "
          f"{rate(n, scan['seconds'])}/s = {n / scan['seconds'] / base['dumps']:.2f}x dumps")
    print(f"  SQLite insert of the rows import_export inserts, made beforehand (untimed), one "
          f"transaction, synchronous=NORMAL: {rate(n, ins['seconds'])}/s "
          f"({ins['cpu'] / n * 1e6:.1f} us CPU a row)")
    print()
    print("for reference (not goals of the issue): export checks each record as it writes it "
          "and import (into an empty SQL store) validates and loads in one pass, so neither "
          "has a separate validation to subtract; CPU per line, all processes:")
    for label, _, _, r, _ in lines[2:]:
        print(f"  {label}: {(r['cpu'] + r.get('workers_cpu', 0)) / n * 1e6:.1f} us")


# ---- profile -----------------------------------------------------------------------------------


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


def profile_all(folder: Path, n: int, top: int) -> None:
    """cProfile of export_store, load_export and import_export (NORMAL), in this process."""
    from runtime import export as ex

    src = folder / "source.db"
    gen = generate(src, n, folder)
    print(f"generated {n:,} records in {gen['total_s']:.1f} s")
    hot = _bench("instantiate").hotspots
    out = folder / "export"
    ops: list[tuple[str, Callable[[], object]]] = [
        ("export_store (SQLite)", lambda: ex.export_store(SqliteStore(f"sqlite:///{src}"), out, NOW)),
        ("load_export", lambda: ex.load_export(out)),
        ("import_export (SQLite, NORMAL)", lambda: ex.import_export(
            SqliteStore(f"sqlite:///{folder / 'import.db'}?synchronous=NORMAL"), out)),
    ]
    for label, run in ops:
        prof = cProfile.Profile()
        t0 = time.perf_counter()
        prof.enable()
        run()
        prof.disable()
        wall = time.perf_counter() - t0
        print(f"\ncProfile of {label} at {n:,} records: {wall:.1f} s under the profiler\n")
        hot(prof, n, "record", top, wall)


# ---- main --------------------------------------------------------------------------------------


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


def revision() -> str:
    """The commit, and whether runtime/ differs from it (others may be editing it)."""
    try:
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, check=False).stdout.strip()
        changed = subprocess.run(["git", "-C", str(ROOT), "diff", "--name-only", "HEAD", "--",
                                  "runtime"], capture_output=True, text=True,
                                 check=False).stdout.split()
    except OSError:
        return "?"
    return (f"commit {head}, runtime/ " + (f"MODIFIED in the work tree ({', '.join(changed)})"
                                           if changed else "as committed"))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="50,000 records, one repetition")
    p.add_argument("--records", type=int, help=f"export lines, a multiple of "
                   f"{PER_BUNDLE * ANCHORS:,} (default 1,000,000; quick 50,000)")
    p.add_argument("--reps", type=int, help="repetitions of export, validate and the imports "
                   "(default 1: a full run takes about 15 minutes); the baselines run at least 3 "
                   "(quick 1)")
    p.add_argument("--no-postgres", action="store_true", help="skip the PostgreSQL part")
    p.add_argument("--no-dynamodb", action="store_true", help="skip the DynamoDB part")
    p.add_argument("--dynamodb-records", type=int, help="export lines for the DynamoDB part "
                   "(moto is slow: default 10,000; quick 5,000)")
    p.add_argument("--dir", help="folder for the databases and exports (default: a new temp folder)")
    p.add_argument("--profile", type=int, metavar="N",
                   help="instead: cProfile export, validate and import at N records")
    p.add_argument("--top", type=int, default=15, help="rows of the --profile listings")
    args = p.parse_args(argv)
    n = args.records or (50_000 if args.quick else 1_000_000)
    r = args.reps or 1
    reps = {"baseline": 1 if args.quick else max(3, r), "export": r, "import": r}
    pg_reps = {"import": r, "export": r}

    with tempfile.TemporaryDirectory(prefix="dataops-export-", dir=args.dir) as tmp:
        folder = Path(tmp)
        if args.profile:
            profile_all(folder, args.profile, args.top)
            return 0
        t_all = time.perf_counter()
        code = snapshot(folder)

        def log(line: str) -> None:
            print(f"{line} [{time.perf_counter() - t_all:,.0f} s]", flush=True)

        bundles = n // PER_BUNDLE
        print(f"export: {n:,} records on SQLite{'' if args.no_postgres else ' and PostgreSQL'} "
              f"({time.strftime('%Y-%m-%d %H:%M %Z')})")
        print(f"python {sys.version.split()[0]}, sqlite {sqlite3.sqlite_version}, pydantic "
              f"{pydantic.VERSION}, orjson {orjson.__version__}, {os.cpu_count()} CPUs, folder "
              f"{folder} ({mount_of(folder)}); {revision()}, copied to {code} for the children "
              f"at the start; reps: baselines "
              f"{reps['baseline']}, export/validate {reps['export']}, imports {reps['import']}")
        print(f"load average before {load()}", flush=True)
        src = folder / "source.db"
        gen = generate(src, n, folder)
        c = gen["counts"]
        print(f"mix: {bundles:,} bundles ({gen['defs']} definitions x {ANCHORS} weekly anchors) "
              f"of {TASKS} tasks with {REMINDED} due reminders each: {c['bundles']:,} bundles + "
              f"{c['tasks']:,} tasks + {c['reminders']:,} reminders = "
              f"{c['bundles'] + c['tasks'] + c['reminders']:,} records, and {c['audit_events']:,}"
              f" audit events (one creation event per record)")
        log(f"  generated in {gen['total_s']:.1f} s ({ANCHORS} engine templates "
            f"{gen['templates_s']:.1f} s, {gen['checked']} bundles checked against the engine "
            f"{gen['check_s']:.1f} s, rows {gen['rows_s']:.1f} s, indexes the rest); "
            f"{gen['mb']:,.0f} MB")
        t_sq = time.perf_counter()
        sq, export_dir = measure_sqlite(folder, src, reps, n, log)
        t_sq = time.perf_counter() - t_sq
        sizes = sum(f.stat().st_size for f in export_dir.iterdir()) / 1e6
        base_mb = (folder / "baseline.jsonl").stat().st_size / 1e6
        pg = None
        t_pg = 0.0
        if not args.no_postgres:
            t_pg = time.perf_counter()
            try:
                pg = measure_postgres(folder, export_dir, best(sq["export"])["files"], pg_reps,
                                      n, log)
            except (Exception, SystemExit) as e:  # the SQLite figures are still worth printing
                print(f"\nthe PostgreSQL part FAILED, left out below: {type(e).__name__}: {e}")
            t_pg = time.perf_counter() - t_pg
        dy = None
        t_dy = time.perf_counter()
        if not args.no_dynamodb:
            try:
                dy = measure_dynamodb(folder, args.dynamodb_records or
                                      (5_000 if args.quick else 10_000), log)
            except (Exception, SystemExit) as e:
                print(f"\nthe DynamoDB part FAILED, left out below: {type(e).__name__}: {e}")
        t_dy = time.perf_counter() - t_dy
        print()
        print(f"export folder {sizes:,.0f} MB, baseline file {base_mb:,.0f} MB (json.dumps' "
              f"default separators; the export is compact)")
        report(n, sq, pg, dy)
        print(f"\n(total {time.perf_counter() - t_all:.1f} s: generation {gen['total_s']:.0f} s, "
              f"SQLite {t_sq:.0f} s, PostgreSQL {t_pg:.0f} s, DynamoDB {t_dy:.0f} s; load "
              f"average after {load()}; spread = slowest vs best repetition)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
