"""The HTTP API under load: commands/s through ``dataops serve`` against the same commands
through the library, with 1 and 8 concurrent clients, on SQLite and PostgreSQL.

Stores. SQLite: a file in a temp folder with the store's defaults (WAL, ``synchronous=FULL``:
every commit fsyncs). PostgreSQL: a server started for this run by ``tests/pg.py``'s
``PgServer(durable=True)`` (``fsync``, ``synchronous_commit``, ``full_page_writes`` on; the
settings read back are printed), a fresh schema, the adapter's default pool (``pool_size`` 4)
in every Runtime and in every server worker; stopped in a finally.

Records. Before anything is timed, through the library (``runtime.open``), one set of records
per client per run: a bundle of each shipped definition (``content/``: newsletter,
podcast-episode, vat-return; 20 tasks), each set anchored a day after the one before, plus one
set per row of the per-request table. A client works on its own set only, and no run reuses
another's, so no two clients write the same record and no run inherits another's grown task
docs (comments accumulate in them).

Workload. Each client runs 4 untimed warm-up commands and then its share of the run's commands
(480 per run, split evenly between the clients; ``--quick`` 96), one after the other: assign (a
new assignee each time) and comment, alternating, round-robin over its 20 tasks; both always
succeed and write the task and one audit event. The clients are released together by a Barrier
once all have warmed up; a run lasts from the first client's start to the last one's end, and
stops early if it reaches its time cap (60 s; quick 15 s; printed if hit). Every failure is
counted (in the library an exception; through the API any non-2xx answer or transport error)
and the run goes on.

Sides, each at 1 and 8 clients unless said:

* library, threads (the baseline): N threads in this process sharing one
  ``runtime.open(store=URL, content="content")`` Runtime, as a server worker shares one store
  among its request threads (SqliteStore: one connection behind a lock; PostgresStore: its
  pool);
* library, processes (8 only, for reference): 8 processes, each with its own Runtime; forked
  when this process runs no other thread, else spawned (``--start-method``);
* API, 1 worker: ``dataops serve`` (``python -m runtime.cli --store URL --content content
  --artifacts file://... serve --port P --workers 1 --log-level warning``) as a real process on
  a free 127.0.0.1 port, with a token for actor ``bench-api``, role operator, from ``dataops
  token create --json``; N client threads in this process, each with its own ``httpx.Client``
  (keep-alive: one connection each), sending ``POST /v1/tasks/{task_id}/assign
  {"assignee": ...}`` and ``POST /v1/tasks/{task_id}/comments {"body": ...}`` (the task ID's
  slashes as they are). Only the status is checked; the body is not parsed;
* API, 2 workers (8 only, for reference): the same with ``--workers 2``.

Both servers start before a store's first run and stop (SIGTERM; exit code printed) after its
last, in a finally. Before every run the WAL is checkpointed, untimed (SQLite
``wal_checkpoint(TRUNCATE)``, PostgreSQL ``CHECKPOINT``). A rep runs every side once at 1
client and then at 8; odd reps run the sides in reverse order, so drift hits both ends alike.
Full: 3 reps; quick: 1.

Figures per side and client count: commands/s (the best rep), latency p50/p95/p99 (every timed
command of every rep), the failures, and CPU ms per command while timed: this process (the
library threads, or the httpx clients; for processes, their sum), the server's process tree,
PostgreSQL's (postmaster, backends, ended backends), and how busy the machine's cores were
(``/proc/stat``: everyone's, including other work on the machine). The cost factor is library
threads' commands/s at the same client count divided by the row's: the API's cost per command
in units of the library's. After the runs the audit log must hold exactly one assign or comment
event by ``bench-api`` per successful API command, and one by ``bench-lib`` per library one.

Then, per store, a per-request table: one client, 300 requests of each kind in a row (quick
100) against the 1-worker server (a 404, which is the HTTP floor: uvicorn, the middleware and
the routing; ``GET /v1/health``, one store read; ``GET /v1/tasks/{id}``, the token checked and
the task read; the commands), two kinds against the 2-worker one (a fifth as many), and the
library's equivalents (``rt.task(id)``, the same commands): wall time and CPU per request of
this process, the server and PostgreSQL. It shows where the API's cost per command goes. Where
the 2-worker server answers a health check over 5x slower than the 1-worker one, a note names
the likely cause (uvicorn's multi-worker listener leaves TCP_NODELAY off).

The goal compares the 1-worker server with the library's threads at 8 clients: on each side one
Python process holds one store object and runs the commands on threads, so the factor is what
HTTP (uvicorn, FastAPI, the token check, two worker-thread hops per request, JSON) adds to a
command. The httpx clients run in this process on the same 2 cores as the server and
PostgreSQL, so their CPU is part of the API's cost as measured (column "CPU client"). The
2-worker server against the 8 library processes is printed for reference.

    python benchmarks/api.py             # full run (about 2-3 minutes on 2 cores)
    python benchmarks/api.py --quick     # under a minute
    python benchmarks/api.py --profile   # instead: cProfile of the library and of a served
                                         # API (every thread), 1 client, SQLite

Prints tables with ratios against the baseline measured in the same run; never asserts on
timings. Goals (from the issue): at 8 clients the API adds no more than 2x the library's cost
per command (cost factor <= 2.0), on SQLite and PostgreSQL; no request fails.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import functools
import hashlib
import io
import json
import multiprocessing as mp
import os
import pstats
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
# Run as a script, this folder is sys.path[0], and benchmarks/transitions.py would shadow the
# `transitions` package the runtime imports: drop the folder, put the repo root in.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import psycopg  # noqa: E402

import runtime  # noqa: E402
from runtime.api import Runtime  # noqa: E402
from tests.pg import PgServer  # noqa: E402

CONTENT = ROOT / "content"
TEMPLATES = ("newsletter", "podcast-episode", "vat-return")  # one bundle of each per client
START = date(2030, 1, 7)  # anchor of the first seeded set; one day further per set
WARM = 4  # untimed commands per client before each timed run (the same on every side)
API_ACTOR = "bench-api"  # the token's actor: every API write is audited as it
LIB_ACTOR = "bench-lib"
CLIENTS = (1, 8)
SIDES = {  # key: (label, client counts it runs at)
    "lib": ("library, threads", CLIENTS),
    "proc": ("library, processes", (8,)),
    "api1": ("API, 1 worker", CLIENTS),
    "api2": ("API, 2 workers", (8,)),
}
IDLE = ("poll' of 'select.epoll", "acquire' of '_thread.lock", "'_queue.SimpleQueue' objects",
        "select.select", "'wait' of", "<built-in method time.sleep>")
"""Functions where a profiled server thread waits for work (left out of the shares)."""
Cmd = tuple[str, str, str]  # (assign | comment, task_id, assignee | body)


# ---- the workload ----------------------------------------------------------------------------


def seed_set(rt: Runtime, s: int) -> list[str]:
    """Set ``s``: one bundle of each shipped definition anchored on day ``s``; its 20 task IDs,
    the bundles' tasks interleaved."""
    anchor = START + timedelta(days=s)
    per = [[t.task_id for t in rt.create_bundle(tpl, anchor).tasks] for tpl in TEMPLATES]
    out = []
    for i in range(max(len(p) for p in per)):
        out += [p[i] for p in per if i < len(p)]
    return out


def commands(ids: list[str], k: int, client: int, tag: str) -> list[Cmd]:
    """``k`` commands round-robin over ``ids``; assign and comment alternate, and alternate per
    task from one round to the next."""
    out: list[Cmd] = []
    for j in range(k):
        task = ids[j % len(ids)]
        if (j + j // len(ids)) % 2 == 0:
            out.append(("assign", task, f"{tag}-user-{(j + client) % 7}"))
        else:
            out.append(("comment", task, f"{tag} note {j} from client {client}"))
    return out


def lib_do(rt: Runtime) -> Callable[[Cmd], str | None]:
    def do(cmd: Cmd) -> str | None:
        what, task_id, arg = cmd
        if what == "assign":
            rt.assign(task_id, arg)
        else:
            rt.comment(task_id, arg)
        return None
    return do


def api_do(client: httpx.Client) -> Callable[[Cmd], str | None]:
    def do(cmd: Cmd) -> str | None:
        what, task_id, arg = cmd
        if what == "assign":
            r = client.post(f"/v1/tasks/{task_id}/assign", json={"assignee": arg})
        else:
            r = client.post(f"/v1/tasks/{task_id}/comments", json={"body": arg})
        if 200 <= r.status_code < 300:
            return None
        return f"HTTP {r.status_code} {r.text[:300]}"
    return do


def drive(do: Callable[[Cmd], str | None], warm: list[Cmd], cmds: list[Cmd],
          ready: Any, go: Any, cap: float) -> dict[str, Any]:
    """Warm up, wait for the others (``ready``, ``go``), then the timed commands, one after
    the other, until done or ``cap`` seconds passed. Every command that raised or answered
    non-2xx is a failure (and the run goes on)."""
    fails: list[str] = []

    def once(cmd: Cmd) -> None:
        try:
            err = do(cmd)
        except Exception as e:  # noqa: BLE001  (counted and shown, the run goes on)
            err = f"{type(e).__name__}: {e}"[:300]
        if err is not None:
            fails.append(err)

    for cmd in warm:
        once(cmd)
    warm_fails = len(fails)
    ready.wait()
    go.wait()
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    deadline = t0 + cap
    lat: list[float] = []
    capped = False
    for cmd in cmds:
        s = time.perf_counter()
        once(cmd)
        e = time.perf_counter()
        lat.append(e - s)
        if e > deadline and len(lat) < len(cmds):
            capped = True
            break
    t1 = time.perf_counter()
    return {"t0": t0, "t1": t1, "lat": lat, "fails": len(fails) - warm_fails,
            "warm_fails": warm_fails, "errors": fails[:3], "capped": capped,
            "warm": len(warm), "cpu": time.process_time() - cpu0}


def _lib_child(url: str, warm: list[Cmd], cmds: list[Cmd], ready: Any, go: Any, cap: float,
               out: Any) -> None:
    """One library process: its own Runtime (store, pool), the same commands."""
    try:
        rt = runtime.open(store=url, content=str(CONTENT), actor=LIB_ACTOR)
        rt.content  # noqa: B018  (loaded before the clock starts)
        try:
            out.put(drive(lib_do(rt), warm, cmds, ready, go, cap))
        finally:
            rt.close()
    except BaseException as e:
        ready.abort()
        go.abort()
        out.put({"crash": f"{type(e).__name__}: {e}"})
        raise


# ---- CPU accounting ------------------------------------------------------------------------


def _stat(pid: int) -> tuple[int, list[int]] | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[1]), [int(x) for x in fields[11:15]]


def tree_cpu(pid: int | None) -> float:
    """CPU seconds of ``pid`` and its live descendants, plus the reaped children it waited for
    (PostgreSQL's ended backends; uvicorn's workers run throughout)."""
    if pid is None:
        return float("nan")
    kids: dict[int, list[int]] = {}
    stats: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            got = _stat(int(entry.name))
            if got is not None:
                kids.setdefault(got[0], []).append(int(entry.name))
                stats[int(entry.name)] = got[1]
    if pid not in stats:
        return float("nan")
    total = sum(stats[pid])  # utime, stime, cutime, cstime
    todo = list(kids.get(pid, []))
    while todo:
        p = todo.pop()
        total += stats[p][0] + stats[p][1]
        todo += kids.get(p, [])
    return total / os.sysconf("SC_CLK_TCK")


def machine_cpu() -> tuple[float, float]:
    """(busy, total) jiffies of all CPUs (/proc/stat); busy excludes idle and iowait."""
    with open("/proc/stat") as f:
        parts = [int(x) for x in f.readline().split()[1:]]
    total = sum(parts[:8])
    return total - parts[3] - parts[4], total


@dataclass
class Meter:
    """CPU used while a run is timed: this process, the server, PostgreSQL, the machine."""

    server: Callable[[], int | None]
    pg: Callable[[], int | None]
    start: dict[str, float] = field(default_factory=dict)

    def __enter__(self) -> Meter:
        busy, total = machine_cpu()
        self.start = {"here": time.process_time(), "server": tree_cpu(self.server()),
                      "pg": tree_cpu(self.pg()), "busy": busy, "total": total}
        return self

    def __exit__(self, *exc: object) -> None:
        busy, total = machine_cpu()
        s = self.start
        self.used = {"here": time.process_time() - s["here"],
                     "server": tree_cpu(self.server()) - s["server"],
                     "pg": tree_cpu(self.pg()) - s["pg"],
                     "busy": (busy - s["busy"]) / max(1.0, total - s["total"])}


# ---- the server ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env() -> dict[str, str]:
    """This environment without DATAOPS_* (the command line says everything)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("DATAOPS_")}


def cli(url: str, *args: str, actor: str = "bench-admin") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "runtime.cli", "--store", url, "--content",
                           str(CONTENT), *args], capture_output=True, text=True, timeout=120,
                          cwd=ROOT, env={**_env(), "DATAOPS_ACTOR": actor}, check=False)


def make_token(url: str) -> str:
    r = cli(url, "token", "create", "--actor", API_ACTOR, "--role", "operator", "--json")
    if r.returncode != 0:
        raise RuntimeError(f"dataops token create failed ({r.returncode}): {r.stderr.strip()}")
    return str(json.loads(r.stdout)["token"])


class Server:
    """``dataops serve`` as a real process on a free 127.0.0.1 port (as tests/server/served.py
    starts it); ``profile``: under this file's ``--serve-profiled`` wrapper, which writes a
    cProfile of every thread there when the server stops."""

    def __init__(self, url: str, folder: Path, workers: int, profile: Path | None = None) -> None:
        self.store, self.folder, self.workers, self.profile = url, folder, workers, profile
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = folder / f"serve-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_s = self.t0 = float("nan")

    def start(self, within: float = 60.0) -> Server:
        return self.launch().ready(within)

    def launch(self) -> Server:
        args = ["--store", self.store, "--content", str(CONTENT), "--artifacts",
                f"file://{self.folder / 'artifacts'}", "serve", "--port", str(self.port),
                "--workers", str(self.workers), "--log-level", "warning"]
        head = ([sys.executable, "-m", "runtime.cli"] if self.profile is None else
                [sys.executable, str(Path(__file__).resolve()), "--serve-profiled",
                 str(self.profile)])
        self.t0 = time.perf_counter()
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen([*head, *args], stdout=log, stderr=subprocess.STDOUT,
                                         cwd=ROOT, env=_env())
        return self

    def ready(self, within: float = 60.0) -> Server:
        """Once ``/v1/health`` answers 200 (or an error naming the log)."""
        assert self.proc is not None
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:  # until the port answers
            if self.proc.poll() is not None:
                raise RuntimeError(f"dataops serve exited {self.proc.returncode}: "
                                   f"{self.log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/v1/health", timeout=1.0).status_code == 200:
                    self.started_s = time.perf_counter() - self.t0
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"dataops serve did not answer within {within} s: "
                           f"{self.log.read_text()[-3000:]}")

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None and self.proc.poll() is None else None

    def stop(self) -> int | None:
        """SIGTERM (uvicorn finishes the requests in hand), then the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def log_tail(self) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        lines = [ln for ln in text.splitlines() if "serving the dataops API" not in ln]
        return "\n".join(lines[-20:])


def serve_profiled(argv: list[str]) -> int:
    """``--serve-profiled OUT CLI-ARGS...``: ``dataops CLI-ARGS`` with a cProfile.Profile in
    every thread (the event loop's and each worker thread's), merged into OUT at the end."""
    out, rest = Path(argv[0]), argv[1:]
    profiles: list[cProfile.Profile] = []

    def boot(*_: object) -> None:  # the first event in a new thread: profile it from here on
        prof = cProfile.Profile()
        profiles.append(prof)
        prof.enable()

    def reset(*_: object) -> None:  # SIGUSR1: start over (start-up and warm-up left out)
        for prof in list(profiles):
            prof.clear()

    signal.signal(signal.SIGUSR1, reset)
    threading.setprofile(boot)
    main_prof = cProfile.Profile()
    profiles.append(main_prof)
    from runtime.cli import main

    main_prof.enable()
    try:
        return main(rest)
    finally:
        main_prof.disable()
        threading.setprofile(None)
        stats = pstats.Stats(profiles[0], stream=io.StringIO())
        for prof in profiles[1:]:
            with contextlib.suppress(TypeError, ValueError):  # a thread that recorded nothing
                stats.add(prof)
        stats.dump_stats(str(out))


# ---- one store -------------------------------------------------------------------------------


@dataclass
class Run:
    side: str
    clients: int
    rep: int
    done: int = 0
    fails: int = 0
    warm_done: int = 0
    warm_fails: int = 0
    wall: float = float("nan")
    lat: list[float] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)
    child_cpu: float = 0.0
    capped: bool = False
    errors: list[str] = field(default_factory=list)
    how: str = ""  # library processes: fork or spawn

    @property
    def rate(self) -> float:
        return self.done / self.wall if self.wall > 0 else float("nan")


@dataclass
class StoreResult:
    label: str
    runs: list[Run]
    seed_s: float
    sets: int
    server_start: dict[int, float]
    audit: dict[str, tuple[int, int]]  # actor: (events of assign/comment, successful commands)
    server_logs: dict[int, str]
    server_exit: dict[int, int | None]
    probes: list[tuple[str, ...]]
    probed: tuple[int, int]  # API requests of the per-request table: sent, failed


class Store:
    """Where a store part runs: its URL, raw queries on it, the PostgreSQL server (if any)."""

    def __init__(self, label: str, url: str, pg: PgServer | None, folder: Path) -> None:
        self.label, self.url, self.pg, self.folder = label, url, pg, folder

    def sql(self, query: str, args: Sequence[object] = ()) -> list[Any]:
        if self.pg is None:
            db = sqlite3.connect(self.url[len("sqlite:///"):])
            try:
                return db.execute(query, args).fetchall()
            finally:
                db.close()
        with psycopg.connect(self.pg.base_url, autocommit=True) as conn:
            schema = self.url.split("schema=")[1]
            cur = conn.execute(query.replace("{s}", f'"{schema}".').replace("?", "%s"), args)
            return cur.fetchall() if cur.description else []

    def checkpoint(self) -> None:
        """Untimed, before each run: the WAL written back, so no run inherits another's."""
        if self.pg is None:
            self.sql("PRAGMA wal_checkpoint(TRUNCATE)")
        else:
            self.sql("CHECKPOINT")

    def postmaster(self) -> int | None:
        if self.pg is None:
            return None
        try:
            return int((self.pg.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def audited(self, actor: str) -> int:
        if self.pg is None:
            q = ("SELECT count(*) FROM audit_events WHERE json_extract(doc, '$.actor') = ? AND "
                 "json_extract(doc, '$.action') IN ('assign', 'comment')")
        else:
            q = ("SELECT count(*) FROM {s}audit_events WHERE doc->>'actor' = ? AND "
                 "doc->>'action' IN ('assign', 'comment')")
        return int(self.sql(q, (actor,))[0][0])


def plan(reps: int) -> list[tuple[str, int, int]]:
    """(side, clients, rep) in running order: every rep goes through the client counts, each
    side in turn; odd reps run the sides in reverse order (drift hits both ends alike)."""
    out = []
    for rep in range(reps):
        for n in CLIENTS:
            sides = [s for s, (_, ns) in SIDES.items() if n in ns]
            out += [(s, n, rep) for s in (sides if rep % 2 == 0 else sides[::-1])]
    return out


def measure_store(st: Store, per: int, reps: int, cap: float, workers: Sequence[int],
                  probe: int, log: Callable[[str], None]) -> StoreResult:
    runs_plan = [(s, n, r) for s, n, r in plan(reps)
                 if not s.startswith("api") or int(s[3:]) in workers]
    probe_sets = len(workers) + 1
    sets = sum(n for _, n, _ in runs_plan) + probe_sets  # and those of the per-request rows
    rt = runtime.open(store=st.url, content=str(CONTENT), actor="bench-seed")
    t0 = time.perf_counter()
    try:
        all_ids = [seed_set(rt, s) for s in range(sets)]
    finally:
        rt.close()
    seed_s = time.perf_counter() - t0
    log(f"  seeded {sets} sets ({sets * len(TEMPLATES)} bundles, {sum(map(len, all_ids)):,} "
        f"tasks) through the library in {seed_s:.1f} s")
    token = make_token(st.url)
    servers: dict[int, Server] = {}
    runs: list[Run] = []
    exits: dict[int, int | None] = {}
    try:
        for w in workers:  # started together, so that their start-ups overlap
            servers[w] = Server(st.url, st.folder, w).launch()
        for w in workers:
            servers[w].ready()
            log(f"  dataops serve --workers {w} answers on {servers[w].url} after "
                f"{servers[w].started_s:.1f} s")
        next_set = 0
        for side, n, rep in runs_plan:
            ids = all_ids[next_set:next_set + n]
            next_set += n
            k = max(1, per // n)
            warm = [commands(ids[i], WARM, i, "warm") for i in range(n)]
            cmds = [[c for c in commands(ids[i], WARM + k, i, "bench")][WARM:] for i in range(n)]
            st.checkpoint()
            server = servers.get(int(side[3:])) if side.startswith("api") else None
            run = Run(side, n, rep)
            def server_pid(srv: Server | None = server) -> int | None:
                return srv.pid if srv is not None else None

            meter = Meter(server_pid, st.postmaster)
            if side == "proc":
                run.how = start_method()
                results = run_processes(st.url, warm, cmds, cap, meter)
            elif side == "lib":
                shared = runtime.open(store=st.url, content=str(CONTENT), actor=LIB_ACTOR)
                shared.content  # noqa: B018  (loaded before the clock starts)
                def threaded(rt: Runtime = shared) -> tuple[Callable[[Cmd], str | None],
                                                            Callable[[], None]]:
                    return lib_do(rt), lambda: None

                try:
                    results = run_threads([threaded] * n, warm, cmds, cap, meter)
                finally:
                    shared.close()
            else:
                assert server is not None

                def client(srv: Server = server) -> tuple[Callable[[Cmd], str | None],
                                                          Callable[[], None]]:
                    c = httpx.Client(base_url=srv.url, timeout=30.0,
                                     headers={"Authorization": f"Bearer {token}"})
                    return api_do(c), c.close

                results = run_threads([client] * n, warm, cmds, cap, meter)
            run.wall = max(r["t1"] for r in results) - min(r["t0"] for r in results)
            run.done = sum(len(r["lat"]) for r in results)
            run.fails = sum(r["fails"] for r in results)
            run.warm_done = sum(r["warm"] for r in results)
            run.warm_fails = sum(r["warm_fails"] for r in results)
            run.lat = [x for r in results for x in r["lat"]]
            run.capped = any(r["capped"] for r in results)
            run.errors = [e for r in results for e in r["errors"]][:3]
            run.cpu = meter.used
            run.child_cpu = sum(r["cpu"] for r in results) if side == "proc" else 0.0
            runs.append(run)
            log(f"  rep {rep + 1}, {n} client(s), {SIDES[side][0]}: {run.done} commands in "
                f"{run.wall:.2f} s = {run.rate:,.0f}/s, {run.fails + run.warm_fails} failed"
                + (" (time cap hit)" if run.capped else ""))
        probes: list[tuple[str, ...]] = []
        probed = {API_ACTOR: 0, LIB_ACTOR: 0, "sent": 0, "failed": 0}
        if probe:
            st.checkpoint()
            probes, probed = per_request(st, servers, token, all_ids[-probe_sets:], probe)
            log(f"  per-request probes done ({probe} requests each)")
    finally:
        for w, srv in servers.items():
            exits[w] = srv.stop()
    audit = {}
    for actor, sides in ((API_ACTOR, ("api1", "api2")), (LIB_ACTOR, ("lib", "proc"))):
        ok = sum(r.done - r.fails + r.warm_done - r.warm_fails for r in runs if r.side in sides)
        audit[actor] = (st.audited(actor), ok + probed[actor])
    return StoreResult(st.label, runs, seed_s, sets,
                       {w: s.started_s for w, s in servers.items()},
                       audit, {w: s.log_tail() for w, s in servers.items()}, exits, probes,
                       (probed["sent"], probed["failed"]))


def per_request(st: Store, servers: dict[int, Server], token: str, sets: list[list[str]],
                m: int) -> tuple[list[tuple[str, ...]], dict[str, int]]:
    """One client, ``m`` requests of each kind in a row against the 1-worker server (and two
    kinds against the 2-worker one), then the library's equivalents: wall time, this process's
    CPU, the server's and PostgreSQL's, per request. The HTTP floor (a 404), a read without a
    token, a read with one, the commands. ``sets``: one per command row."""
    ok = {API_ACTOR: 0, LIB_ACTOR: 0, "sent": 0, "failed": 0}  # sent, failed: API requests
    rows: list[tuple[str, ...]] = []
    tid = sets[0][0]
    spare = iter(sets)

    def measure(label: str, once: Callable[[int], bool], warm: int,
                server: Server | None) -> None:
        m = count
        fails = sum(not once(-1 - i) for i in range(warm))
        pid = server.pid if server else None
        s0, p0, c0 = tree_cpu(pid), tree_cpu(st.postmaster()), time.process_time()
        t0 = time.perf_counter()
        fails += sum(not once(i) for i in range(m))
        wall = time.perf_counter() - t0
        here, srv = time.process_time() - c0, tree_cpu(pid) - s0
        pgc = tree_cpu(st.postmaster()) - p0
        if label.startswith("API"):
            ok["sent"] += warm + m
            ok["failed"] += fails
        rows.append((label, f"{m}", f"{fails}", f"{wall * 1e3 / m:.2f}", f"{here * 1e3 / m:.2f}",
                     "-" if srv != srv else f"{srv * 1e3 / m:.2f}",
                     "-" if pgc != pgc else f"{pgc * 1e3 / m:.2f}"))

    for w, server in sorted(servers.items()):
        # fewer on a multi-worker server: each request may wait ~40 ms there (see report_store)
        count = m if w == 1 else max(20, m // 5)
        with httpx.Client(base_url=server.url, timeout=30.0,
                          headers={"Authorization": f"Bearer {token}"}) as client:
            def get(path: str, status: int, c: httpx.Client = client) -> Callable[[int], bool]:
                return lambda i: c.get(path).status_code == status

            tag = f"API, {w} worker{'s' if w > 1 else ''}:"
            if w == 1:
                measure(f"{tag} GET /v1/nope (a 404: uvicorn, middleware, routing; no token, "
                        "no store)", get("/v1/nope", 404), 10, server)
            measure(f"{tag} GET /v1/health (+ one store read; no token)",
                    get("/v1/health", 200), 10, server)
            if w == 1:
                measure(f"{tag} GET /v1/tasks/{{id}} (+ the token checked, the task read)",
                        get(f"/v1/tasks/{tid}", 200), 10, server)
            cmds = commands(next(spare), WARM + m, 0, "probe")
            do = api_do(client)

            def command(i: int, do: Callable[[Cmd], str | None] = do,
                        cmds: list[Cmd] = cmds) -> bool:
                good = do(cmds[_at(i)]) is None
                ok[API_ACTOR] += good
                return good

            measure(f"{tag} the commands (POST assign / comments, alternating)", command, WARM,
                    server)
    count = m
    rt = runtime.open(store=st.url, content=str(CONTENT), actor=LIB_ACTOR)
    rt.content  # noqa: B018
    try:
        def read(i: int) -> bool:
            return rt.task(tid).task_id == tid

        measure("library: rt.task(id)", read, 10, None)
        lcmds = commands(next(spare), WARM + m, 0, "probe")
        ldo = lib_do(rt)

        def lcommand(i: int) -> bool:
            try:
                good = ldo(lcmds[_at(i)]) is None
            except Exception:  # noqa: BLE001  (counted)
                good = False
            ok[LIB_ACTOR] += good
            return good

        measure("library: the same commands (rt.assign / rt.comment)", lcommand, WARM, None)
    finally:
        rt.close()
    return rows, ok


def _at(i: int) -> int:
    """``measure``'s index (warm-ups -1, -2, ...; then 0, 1, ...) into WARM + m commands."""
    return -1 - i if i < 0 else WARM + i


Factory = Callable[[], tuple[Callable[[Cmd], str | None], Callable[[], None]]]


def run_threads(factories: list[Factory], warm: list[list[Cmd]], cmds: list[list[Cmd]],
                cap: float, meter: Meter) -> list[dict[str, Any]]:
    """One thread per client, released together once all have warmed up."""
    n = len(factories)
    ready, go = threading.Barrier(n + 1, timeout=300), threading.Barrier(n + 1, timeout=300)
    out: list[dict[str, Any] | None] = [None] * n
    crash: list[BaseException] = []

    def body(i: int) -> None:
        try:
            do, close = factories[i]()
            try:
                out[i] = drive(do, warm[i], cmds[i], ready, go, cap)
            finally:
                close()
        except BaseException as e:
            crash.append(e)
            ready.abort()
            go.abort()

    threads = [threading.Thread(target=body, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    try:
        ready.wait()
        with meter:
            go.wait()
            for t in threads:
                t.join()
    except threading.BrokenBarrierError:
        for t in threads:
            t.join(timeout=60)
    if crash:
        raise crash[0]
    assert all(r is not None for r in out)
    return [r for r in out if r is not None]


START_METHOD = ["auto"]  # --start-method


def start_method() -> str:
    if START_METHOD[0] != "auto":
        return START_METHOD[0]
    return "fork" if threading.active_count() == 1 and sys.platform == "linux" else "spawn"


def run_processes(url: str, warm: list[list[Cmd]], cmds: list[list[Cmd]], cap: float,
                  meter: Meter) -> list[dict[str, Any]]:
    """One process per client (its own interpreter, GIL and Runtime): forked, when this
    process runs no other thread (a spawned one would take seconds to import the runtime on
    2 cores), else spawned."""
    ctx: Any = mp.get_context(start_method())
    n = len(cmds)
    ready, go = ctx.Barrier(n + 1, timeout=300), ctx.Barrier(n + 1, timeout=300)
    q = ctx.Queue()
    procs = [ctx.Process(target=_lib_child, args=(url, warm[i], cmds[i], ready, go, cap, q),
                         daemon=True) for i in range(n)]
    for p in procs:
        p.start()
    results: list[dict[str, Any]] = []
    try:
        ready.wait()
        with meter:
            go.wait()
            results = [q.get(timeout=cap + 120) for _ in procs]
            for p in procs:
                p.join(timeout=60)
    except threading.BrokenBarrierError:
        while not q.empty():
            results.append(q.get())
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
                p.join()
    crashed = [r["crash"] for r in results if "crash" in r]
    if crashed or len(results) != n:
        raise RuntimeError(f"library processes failed: {crashed or 'no result'}")
    return results


# ---- the profile -----------------------------------------------------------------------------


def profile_api(folder: Path, per: int, top: int) -> None:
    """cProfile of the same commands, 1 client, on SQLite: in the library (this process) and in
    a ``dataops serve`` (every thread of it)."""
    st = Store("SQLite", f"sqlite:///{folder / 'profile.db'}", None, folder)
    rt = runtime.open(store=st.url, content=str(CONTENT), actor="bench-seed")
    ids = [seed_set(rt, s) for s in range(2)]
    rt.close()
    token = make_token(st.url)
    out = folder / "serve.prof"
    shares: dict[str, dict[str, float]] = {}
    PROFILED[0] = per
    walls: dict[str, float] = {}

    lib = runtime.open(store=st.url, content=str(CONTENT), actor=LIB_ACTOR)
    lib.content  # noqa: B018
    do = lib_do(lib)
    cmds = commands(ids[0], WARM + per, 0, "bench")
    for c_ in cmds[:WARM]:
        do(c_)
    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.enable()
    for c_ in cmds[WARM:]:
        do(c_)
    prof.disable()
    walls["library"] = time.perf_counter() - t0
    lib.close()
    shares["library"] = by_package(pstats.Stats(prof, stream=io.StringIO()))

    srv = Server(st.url, folder, 1, profile=out).start()
    try:
        with httpx.Client(base_url=srv.url, headers={"Authorization": f"Bearer {token}"},
                          timeout=30) as client:
            do = api_do(client)
            cmds = commands(ids[1], WARM + per, 0, "bench")
            for c_ in cmds[:WARM]:
                do(c_)
            assert srv.pid is not None
            os.kill(srv.pid, signal.SIGUSR1)  # the server's profile starts over
            time.sleep(0.5)
            t0 = time.perf_counter()
            fails = [e for c_ in cmds[WARM:] if (e := do(c_)) is not None]
            walls["API"] = time.perf_counter() - t0
    finally:
        srv.stop()
    if fails:
        print(f"  {len(fails)} profiled API commands FAILED, e.g. {fails[0]}")
    if not out.exists():
        print(f"  the profiled server wrote no profile: {srv.log_tail()}")
        return
    stats = pstats.Stats(str(out), stream=io.StringIO())
    shares["API server"] = by_package(stats)
    print(f"cProfile, 1 client, SQLite FULL, {per} commands (assign and comment alternating): "
          f"library {walls['library'] * 1e3 / per:.2f} ms, API {walls['API'] * 1e3 / per:.2f} ms "
          f"per command under the profiler (its overhead inflates Python calls: read the "
          f"shares). Own time of each package, in ms per command; the server's threads summed, "
          f"waiting for work (epoll, idle worker threads) left out")
    names = sorted({k for s in shares.values() for k in s},
                   key=lambda k: -max(s.get(k, 0.0) for s in shares.values()))
    rows = [(name, *(f"{shares[w].get(name, 0.0) * 1e3 / per:.3f}" for w in shares))
            for name in names[:top]]
    rows.append(("total (idle left out)",
                 *(f"{sum(shares[w].values()) * 1e3 / per:.3f}" for w in shares)))
    print_table(("package (own time)", *shares), rows)
    print()
    print("  the server's top functions by own time (ms per command; idle left out):")
    flat = []
    for (file, line, name), (_, nc, tt, ct, _) in stats.stats.items():  # type: ignore[attr-defined]
        label = where(file, line, name)
        if not any(i in label for i in IDLE):
            flat.append((label, tt, ct, nc))
    flat.sort(key=lambda r: -r[1])
    print_table(("function", "own ms", "cum ms", "calls"),
                [(lbl, f"{tt * 1e3 / per:.3f}", f"{ct * 1e3 / per:.3f}", f"{nc / per:.1f}")
                 for lbl, tt, ct, nc in flat[:top]])
    print()
    print("  the call chain, cumulative ms per command (the largest entry of each; the library "
          "for comparison):")
    lib_stats = pstats.Stats(prof, stream=io.StringIO())
    got = {"library": chain_of(lib_stats), "API server": chain_of(stats)}
    print_table(("step", "function", "library", "API server"),
                [(step, fn, *(f"{got[w][i]:.3f}" if got[w][i] else "-" for w in got))
                 for i, (step, fn) in enumerate((s_, f"{m}:{n}") for s_, m, n in CHAIN)]
                if per else [])


CHAIN = (  # (step, module, function): the path of one request through the server
    ("HTTP in (h11, whole request)", "uvicorn/protocols/http/h11_impl.py", "run_asgi"),
    ("HTTP bytes parsed", "uvicorn/protocols/http/h11_impl.py", "data_received"),
    ("@app.middleware (BaseHTTPMiddleware)", "starlette/middleware/base.py", "__call__"),
    ("FastAPI route", "fastapi/routing.py", "app"),
    ("  its dependencies and body", "fastapi/dependencies/utils.py", "solve_dependencies"),
    ("    the token checked", "runtime/engine/tokens.py", "authenticate"),
    ("  to a worker thread", "starlette/concurrency.py", "run_in_threadpool"),
    ("    the command", "runtime/engine/__init__.py", "handle"),
    ("      its unit of work's commit", "runtime/engine/uow.py", "commit"),
    ("        SQLite's commit", "runtime/store/sqlite.py", "commit"),
    ("    the answer's JSON", "runtime/server/app.py", "_task"),
    ("HTTP out (h11 send)", "uvicorn/protocols/http/h11_impl.py", "send"),
)


def chain_of(stats: pstats.Stats) -> list[float]:
    """ms per command... of each CHAIN step: the largest cumulative time of a function of that
    module and name (closures share names), in ms over the profiled commands."""
    out = []
    items = stats.stats.items()  # type: ignore[attr-defined]
    for _, mod, name in CHAIN:
        cts = [ct for (file, _, nm), (_, _, _, ct, _) in items
               if nm == name and file != "~" and module_of(file).endswith(mod)]
        out.append(max(cts) * 1e3 / PROFILED[0] if cts else 0.0)
    return out


PROFILED = [1]  # commands in the profiled loops (chain_of divides by it)


def where(file: str, line: int, name: str) -> str:
    if file == "~":
        return name
    return f"{module_of(file)}:{line}({name})"


def module_of(file: str) -> str:
    p = Path(file)
    try:
        rel = str(p.resolve().relative_to(ROOT))
    except ValueError:
        parts = p.parts
        rel = "/".join(parts[parts.index("site-packages") + 1:]) if "site-packages" in parts \
            else p.name
    return rel


def by_package(stats: pstats.Stats) -> dict[str, float]:
    """Own time per package (runtime/ by module, site-packages by top folder, the standard
    library as one, C built-ins by their module), idle waits left out."""
    out: dict[str, float] = {}
    for (file, line, name), (_, _, tt, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        label = where(file, line, name)
        if any(i in label for i in IDLE):
            continue
        if file == "~":
            if "sqlite3" in name:
                key = "sqlite3 (C)"
            elif "pydantic_core" in name or "SchemaSerializer" in name or "SchemaValidator" in name:
                key = "pydantic_core (C)"
            elif "orjson" in name:
                key = "orjson (C)"
            else:
                key = "other C built-ins"
        else:
            p = Path(file)
            if "site-packages" in p.parts:
                key = p.parts[p.parts.index("site-packages") + 1].split(".")[0]
            elif str(p.resolve()).startswith(str(ROOT / "runtime")):
                rel = p.resolve().relative_to(ROOT / "runtime")
                key = "runtime/" + (rel.parts[0] if len(rel.parts) > 1 else rel.name)
            else:
                key = "standard library"
        out[key] = out.get(key, 0.0) + tt
    return out


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


def best(runs: list[Run]) -> Run:
    return max(runs, key=lambda r: r.rate)


def spread(runs: list[Run]) -> str:
    rates = [r.rate for r in runs]
    return f"{(max(rates) - min(rates)) / min(rates) * 100:.0f}%" if len(rates) > 1 else "-"


def cost_factor(res: StoreResult, n: int, side: str, base: str = "lib") -> float | None:
    a = [r for r in res.runs if r.side == side and r.clients == n]
    b = [r for r in res.runs if r.side == base and r.clients == n]
    return best(b).rate / best(a).rate if a and b else None


def report_store(res: StoreResult, reps: int) -> None:
    print(f"{res.label}: commands/s best of {reps} rep(s) (a rep: every side once); latency "
          f"percentiles over all reps' timed commands; CPU ms per command while timed")
    rows = []
    for n in CLIENTS:
        for side, (label, ns) in SIDES.items():
            runs = [r for r in res.runs if r.side == side and r.clients == n]
            if n not in ns or not runs:
                continue
            b = best(runs)
            if side == "proc":
                label = f"{label} ({', '.join(sorted({r.how for r in runs}))})"
            lat = [x for r in runs for x in r.lat]
            lib = best([r for r in res.runs if r.side == "lib" and r.clients == n])
            done = sum(r.done for r in runs)
            fails = sum(r.fails + r.warm_fails for r in runs)
            here = statistics.median(
                (r.child_cpu if r.side == "proc" else r.cpu["here"]) / r.done for r in runs)
            srv = statistics.median(r.cpu["server"] / r.done for r in runs)
            pgc = statistics.median(r.cpu["pg"] / r.done for r in runs)
            busy = statistics.median(r.cpu["busy"] for r in runs)
            rows.append((
                f"{n}", label, f"{done:,}", f"{fails}", f"{b.rate:,.0f}",
                f"{lib.rate / b.rate:.2f}",
                f"{pct(lat, .5) * 1e3:.2f}", f"{pct(lat, .95) * 1e3:.2f}",
                f"{pct(lat, .99) * 1e3:.2f}",
                f"{here * 1e3:.2f}", "-" if side in ("lib", "proc") else f"{srv * 1e3:.2f}",
                "-" if pgc != pgc else f"{pgc * 1e3:.2f}", f"{busy * 100:.0f}%", spread(runs),
                "yes" if any(r.capped for r in runs) else ""))
    print_table(("clients", "side", "commands", "failed", "cmds/s", "cost factor", "p50 ms",
                 "p95 ms", "p99 ms", "CPU client", "CPU server", "CPU PG", "machine busy",
                 "spread", "capped"), rows)
    print()
    for actor, (events, ok) in res.audit.items():
        print(f"  audit check: {events:,} assign/comment events by {actor}, {ok:,} successful "
              f"commands (warm-ups included) -> {'equal' if events == ok else 'DIFFERENT'}")
    if res.probes:
        print(f"  per request, 1 client, {res.probes[0][1]} requests of each kind in a row "
              f"(fewer on the 2-worker server), on the servers and then in the library (ms per "
              f"request)")
        print_table(("  what", "requests", "failed", "wall", "CPU here", "CPU server", "CPU PG"),
                    [(f"  {r[0]}", *r[1:]) for r in res.probes])
        walls = {r[0].split(":")[0]: float(r[3]) for r in res.probes if "/v1/health" in r[0]}
        one, two = walls.get("API, 1 worker"), walls.get("API, 2 workers")
        if one and two and two > 20 and two > 5 * one:
            print(f"  -> GET /v1/health takes {two:.0f} ms on the 2-worker server and {one:.1f} ms "
                  f"on the 1-worker one. That is Nagle's algorithm meeting the client's delayed "
                  f"ACK (~40 ms on Linux): with --workers > 1 uvicorn binds the listening "
                  f"socket itself with proto 0, and asyncio sets TCP_NODELAY on accepted "
                  f"sockets only when proto == IPPROTO_TCP (uvicorn issue #3149). Every "
                  f"'API, 2 workers' figure above carries it.")
        print()
    errs = [(r, e) for r in res.runs for e in r.errors]
    for r, e in errs[:5]:
        print(f"  failure ({SIDES[r.side][0]}, {r.clients} clients, rep {r.rep + 1}): {e}")
    for w, tail in res.server_logs.items():
        code = res.server_exit.get(w)
        print(f"  dataops serve --workers {w}: started in {res.server_start[w]:.1f} s, exit code "
              f"{code} after SIGTERM" + (f"; its log:\n{tail}" if tail.strip() else
                                          "; nothing in its log at --log-level warning"))
    print()


def versions() -> str:
    out = []
    for pkg in ("fastapi", "starlette", "uvicorn", "h11", "httptools", "uvloop", "httpx",
                "pydantic", "anyio", "psycopg"):
        try:
            out.append(f"{pkg} {metadata.version(pkg)}")
        except metadata.PackageNotFoundError:
            out.append(f"{pkg} (not installed)")
    return ", ".join(out)


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


def pg_settings(server: PgServer) -> dict[str, str]:
    names = ("server_version", "fsync", "synchronous_commit", "full_page_writes",
             "wal_sync_method", "shared_buffers", "max_connections")
    with psycopg.connect(server.base_url, autocommit=True) as conn:
        return {n: conn.execute(f"SHOW {n}").fetchone()[0] for n in names}  # type: ignore[index]


def goals(results: list[StoreResult]) -> None:
    print("goals (from the issue)")
    rows = []
    for res in results:
        f = cost_factor(res, 8, "api1")
        if f is not None:
            rows.append(("API cost factor at 8 clients <= 2.0: 1 worker vs 8 library threads",
                         res.label, f"{f:.2f}", "met" if f <= 2.0 else "NOT met"))
    for res in results:
        f = cost_factor(res, 8, "api2", "proc")
        if f is not None:
            rows.append(("  for reference: 2 workers vs 8 library processes", res.label,
                         f"{f:.2f}", "met" if f <= 2.0 else "NOT met"))
    for res in results:
        f = cost_factor(res, 1, "api1")
        if f is not None:
            rows.append(("  for reference: at 1 client", res.label, f"{f:.2f}",
                         "met" if f <= 2.0 else "NOT met"))
    for res in results:
        api = [r for r in res.runs if r.side.startswith("api")]
        sent = sum(r.done + r.warm_done for r in api) + res.probed[0]
        failed = sum(r.fails + r.warm_fails for r in api) + res.probed[1]
        rows.append(("no API request fails (an unexpected status or a transport error)",
                     res.label,
                     f"{failed} of {sent:,}", "met" if failed == 0 else "NOT met"))
    print_table(("goal", "store", "figure", "verdict"), rows)


# ---- main ------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--serve-profiled"]:
        return serve_profiled(argv[1:])
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer commands, one rep; under a minute")
    p.add_argument("--commands", type=int, help="timed commands per run, split between the "
                   "clients (default 480; quick 96)")
    p.add_argument("--reps", type=int, help="repetitions of every run (default 3; quick 1)")
    p.add_argument("--cap", type=float, help="seconds after which a run stops early (default "
                   "60; quick 15)")
    p.add_argument("--stores", default="sqlite,postgres", help="which stores (default both)")
    p.add_argument("--workers", default="1,2", help="dataops serve --workers to run (default "
                   "1,2; the goal is on 1)")
    p.add_argument("--start-method", choices=("auto", "fork", "spawn"), default="auto",
                   help="how the library processes start (default auto: fork when this process "
                   "runs no other thread)")
    p.add_argument("--probe", type=int, help="requests of each kind in the per-request "
                   "table (default 300; quick 100; 0: none)")
    p.add_argument("--profile", action="store_true", help="instead: cProfile the library and a "
                   "served API, 1 client on SQLite")
    p.add_argument("--top", type=int, default=15, help="rows of the --profile listings")
    args = p.parse_args(argv)
    per = args.commands or (96 if args.quick else 480)
    reps = args.reps or (1 if args.quick else 3)
    cap = args.cap or (15.0 if args.quick else 60.0)
    START_METHOD[0] = args.start_method
    probe = args.probe if args.probe is not None else (100 if args.quick else 300)
    stores = [s.strip() for s in args.stores.split(",") if s.strip()]
    workers = [int(w) for w in args.workers.split(",")]

    t_all = time.perf_counter()

    def log(line: str) -> None:
        print(f"{line} [{time.perf_counter() - t_all:,.0f} s]", flush=True)

    with tempfile.TemporaryDirectory(prefix="dataops-api-") as tmp:
        folder = Path(tmp)
        if args.profile:
            profile_api(folder, per, args.top)
            return 0
        digest = code_digest()
        fsync = _bench("instantiate").fsync_ms(folder)
        print(f"api: {per} timed commands per run (split between the clients), {reps} rep(s), "
              f"time cap {cap:.0f} s per run ({time.strftime('%Y-%m-%d %H:%M %Z')})")
        print(f"python {sys.version.split()[0]}, {versions()}, sqlite {sqlite3.sqlite_version}; "
              f"{os.cpu_count()} CPU cores shared by the clients, the server and PostgreSQL")
        print(f"temp folder {folder} (fsync of 4 KiB {fsync:.2f} ms); {revision()}")
        print(f"load average before {load()}", flush=True)
        results: list[StoreResult] = []
        pg: PgServer | None = None
        try:
            if "sqlite" in stores:
                sq = folder / "sqlite"
                sq.mkdir()
                url = f"sqlite:///{sq / 'bench.db'}"
                st = Store("SQLite", url, None, sq)
                rt = runtime.open(store=url, content=str(CONTENT), actor="bench-seed")
                sync = rt.store.synchronous  # type: ignore[attr-defined]
                rt.close()
                (mode,), = st.sql("PRAGMA journal_mode")
                st.label = f"SQLite (journal_mode={mode}, synchronous={sync})"
                log(f"{st.label}: {url}")
                results.append(measure_store(st, per, reps, cap, workers, probe, log))
            if "postgres" in stores:
                pg = PgServer(durable=True)
                pg.start()
                s = pg_settings(pg)
                pgf = folder / "postgres"
                pgf.mkdir()
                st = Store(f"PostgreSQL {s['server_version'].split()[0]}", pg.new_url(), pg, pgf)
                log(f"{st.label}: PgServer(durable=True) fsync={s['fsync']}, "
                    f"synchronous_commit={s['synchronous_commit']}, full_page_writes="
                    f"{s['full_page_writes']}, wal_sync_method={s['wal_sync_method']}, "
                    f"shared_buffers={s['shared_buffers']}, max_connections="
                    f"{s['max_connections']}; store pool_size 4 (the default) in the library "
                    f"and in each server worker; {st.url}")
                results.append(measure_store(st, per, reps, cap, workers, probe, log))
        finally:
            if pg is not None:
                pg.stop()
        print()
        for res in results:
            report_store(res, reps)
        print("  cost factor = the library's (threads) commands/s at the same client count / "
              "this row's: how many times the library's cost per command it takes (goal <= 2.0 "
              "for the API at 8 clients); CPU client = this process (library threads, or the "
              "httpx clients) or, for processes, their sum; CPU server = dataops serve and its "
              "workers; CPU PG = the postmaster, its backends and ended backends; machine busy "
              "= all cores, everyone's")
        print()
        goals(results)
        same = code_digest() == digest
        print()
        print(f"(total {time.perf_counter() - t_all:.1f} s; load average after {load()}; "
              f"runtime/ {'unchanged' if same else 'CHANGED'} during the run; spread = slowest vs "
              f"fastest rep)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
