"""Routing's cost in a sweep: 10k due reminders over 1k people, with and without routing.

One SQLite store holds 500 bundles (500 definitions of 20 tasks, one bundle each, all anchored
on the sweep's day), created with ``engine.create_bundle``. Every task has only its ``due``
reminder at or before the sweep instant (no proof requirements, so no ``missing_evidence``;
``overdue_repeats: 0``), so a sweep records and delivers exactly 10,000 reminders. 9 tasks in
10 are assigned to one of 1,000 people (``p0000``..``p0999``, email, UTC, ``delivery:
immediate``, every tenth person the manager of the nine after), 1 in 10 to one of 100 groups of
10 members. The bundles do not depend on the people directory, so one database serves every
variant; each repetition sweeps a fresh (fsynced) copy of it.

Per repetition it times, in the same run and in a rotating order, ``engine.reminders.sweep``
(``schedules=False``) of:

* **no routing**: the content without ``people/``; reminders carry no recipients; the sinks are
  one in-memory null sink (the baseline);
* **routing**: the same content plus ``people/team.yaml``; each reminder is recorded with its
  recipients (``routing.recipients_for`` in the unit of work) and its payload lists them;
* **routing + rendering messages for a channel**: as routing, plus a null ``email`` channel:
  each recipient's message is rendered (Jinja2, text and HTML) and "sent" (nothing happens),
  and each recipient's status is recorded.

Each run must record and deliver every reminder (with routing: each with recipients, checked in
the store and in the payloads; with the channel: one send per recipient), else it raises.

    python benchmarks/routing.py            # 10k reminders over 1k people, 3 repetitions
    python benchmarks/routing.py --quick    # 2k reminders over 200 people, 1 repetition
    python benchmarks/routing.py --sync NORMAL   # the store at synchronous=NORMAL (default FULL)

Prints a table; never asserts on timings. Goal (from the issue): routing adds under 25 % to the
sweep (routing / no routing <= 1.25).
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
# Run as a script, this folder is sys.path[0], and benchmarks/transitions.py would shadow the
# `transitions` package the runtime imports: drop the folder, put the repo root in.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from runtime import engine  # noqa: E402
from runtime.clock import FixedClock  # noqa: E402
from runtime.content import Content, load_content  # noqa: E402
from runtime.engine import Services  # noqa: E402
from runtime.engine.reminders import sweep  # noqa: E402
from runtime.model import Reminder  # noqa: E402
from runtime.store import open_store  # noqa: E402

TASKS = 20  # per definition (and bundle)
GROUP_SIZE = 10
TODAY = date(2026, 1, 5)
NOW = datetime(2026, 1, 5, 18, 0, tzinfo=UTC)  # after every task's 08:30 UTC due reminder
CREATED = NOW - timedelta(days=30)
VARIANTS = ("no routing", "routing", "routing + rendering messages for a channel")


# ---- content -----------------------------------------------------------------------------------


def write_content(root: Path, bundles: int, people: int, with_people: bool) -> None:
    """docs/, ``bundles`` definitions of TASKS tasks, and (``with_people``) people/team.yaml."""
    groups = people // GROUP_SIZE
    for sub in ("docs", "workflows"):
        (root / sub).mkdir(parents=True)
    dump = lambda path, data: path.write_text(yaml.safe_dump(data, sort_keys=False))  # noqa: E731
    dump(root / "docs" / "doc-playbook.yaml", {
        "doc_id": "doc-playbook", "title": "Playbook", "location": "https://wiki.example.com/playbook",
        "steps": [{"step_id": f"s{i}", "title": f"Step {i}"} for i in range(TASKS)]})
    for j in range(bundles):
        tasks = []
        for i in range(TASKS):
            n = j * TASKS + i  # 9 in 10 to a person, 1 in 10 to a group
            assignee = f"g{n // 10 % groups:03d}" if i % 10 == 9 else f"p{n % people:04d}"
            tasks.append({"task_ref": f"step-{i:02d}", "title": f"Step {i:02d} of run {j}",
                          "phase": "work", "offset_days": 0, "assignee": assignee,
                          "instruction_doc_id": "doc-playbook", "instruction_step_id": f"s{i}",
                          "validation": "Checked by a second person"})
        dump(root / "workflows" / f"routing-{j:03d}.yaml", {
            "template_id": f"routing-{j:03d}", "version": 1, "title": f"Routing benchmark {j:03d}",
            "timezone": "UTC", "default_assignee": f"p{j % people:04d}",
            "source_doc_ids": ["doc-playbook"], "reminders": {"at": "08:30", "overdue_repeats": 0},
            "phases": [{"phase_id": "work", "title": "Work"}], "tasks": tasks})
    if with_people:
        (root / "people").mkdir()
        persons = [{"person_id": f"p{k:04d}", "name": f"Person {k:04d}",
                    "email": f"p{k:04d}@example.com", "timezone": "UTC", "delivery": "immediate",
                    **({"manager": f"p{k - k % 10:04d}"} if k % 10 else {})} for k in range(people)]
        rng = random.Random(people)
        members = list(range(people))
        rng.shuffle(members)
        grps = [{"group_id": f"g{g:03d}", "members": [f"p{k:04d}" for k in
                                                       members[g * GROUP_SIZE:(g + 1) * GROUP_SIZE]]}
                for g in range(groups)]
        grps.append({"group_id": "operators", "members": ["p0000"]})
        dump(root / "people" / "team.yaml", {"people": persons, "groups": grps})


def load(root: Path, people: int) -> Content:
    content = load_content(root)
    if content.problems():
        raise RuntimeError(f"content {root} does not validate: {content.problems()[:5]}")
    if len(content.directory.people) != people:
        raise RuntimeError(f"{root}: {len(content.directory.people)} people loaded, not {people}")
    return content


# ---- the database ------------------------------------------------------------------------------


def build_db(path: Path, content: Content) -> None:
    store = open_store(f"sqlite:///{path}?synchronous=NORMAL")  # building is not measured
    svc = Services(store, FixedClock(CREATED), "bench", None, lambda: content)
    for template_id in content.workflows:
        engine.create_bundle(svc, template_id, TODAY)
    store.close()
    leftovers = [p.name for p in path.parent.glob(path.name + "-*")]
    if leftovers:
        raise RuntimeError(f"store closed yet {leftovers} remain next to {path}")
    fsync_file(path)


def _sweep_bench() -> Any:
    """benchmarks/sweep.py, loaded by path (this folder is not on sys.path): its fsynced copy of
    a database and its in-memory sink serve here too."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_sweep", HERE / "sweep.py")
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = bench
    spec.loader.exec_module(bench)
    return bench


_SWEEP = _sweep_bench()
fsync_file, fresh_copy, NullSink = _SWEEP.fsync_file, _SWEEP.fresh_copy, _SWEEP.MemorySink


class NullChannel:
    """A person channel that sends nothing (the messages are rendered before ``send``)."""

    channel = "email"
    url = "null://"
    timeout_s = 10.0

    def __init__(self) -> None:
        self.sent: list[str] = []
        self._lock = threading.Lock()

    def address(self, person: Any) -> str | None:
        return person.email

    def send(self, person: Any, message: Any) -> None:
        with self._lock:
            self.sent.append(person.person_id)

    def close(self) -> None:
        pass


# ---- one measured sweep ------------------------------------------------------------------------


def one_sweep(variant: str, src: Path, work: Path, contents: dict[bool, Content], sync: str,
              expected: int) -> dict[str, float]:
    routed = variant != VARIANTS[0]
    fresh_copy(src, work)
    store = open_store(f"sqlite:///{work}?synchronous={sync}")
    content = contents[routed]
    svc = Services(store, FixedClock(NOW), "bench", None, lambda: content)
    sink, channel = NullSink(), NullChannel()
    sinks: list[Any] = [sink, channel] if variant == VARIANTS[2] else [sink]
    gc.collect()
    t0, c0 = time.perf_counter(), time.process_time()
    report = sweep(svc, sinks, now=NOW, schedules=False)
    took, cpu = time.perf_counter() - t0, time.process_time() - c0
    try:
        check(variant, report, store, sink, channel, expected)
    finally:
        store.close()
    recipients = sum(len(r.recipients) for r in report.recorded)
    return {"seconds": took, "cpu": cpu, "recipients": recipients / len(report.recorded)}


def check(variant: str, report: Any, store: Any, sink: Any, channel: NullChannel,
          expected: int) -> None:
    """Every reminder recorded and delivered; with routing, each with recipients (in the store
    too); with the channel, one send per recipient and each recipient ``sent``."""
    routed = variant != VARIANTS[0]

    def fail(why: str) -> None:
        raise RuntimeError(f"{variant}: {why} ({report.line()})")

    if len(report.recorded) != expected or len(report.delivered) != expected:
        fail(f"expected {expected:,} recorded and delivered")
    if report.failed or report.retried or report.skipped or len(sink.payloads) != expected:
        fail(f"the sink got {len(sink.payloads):,} payloads")
    if any(bool(p["recipients"]) != routed for p in sink.payloads):
        fail("a payload's recipients do not match the variant")
    total = sum(len(r.recipients) for r in report.recorded)
    if variant == VARIANTS[2] and len(channel.sent) != total:
        fail(f"{len(channel.sent):,} sends for {total:,} recipients")
    for rec in random.Random(0).sample(report.recorded, 50):
        stored = store.find(Reminder, rec.reminder_id)
        if stored is None or bool(stored.recipients) != routed:
            fail(f"reminder {rec.reminder_id} in the store: {stored and stored.recipients}")
        if variant == VARIANTS[2] and any(r.status != "sent" or r.channels != ["email"]
                                          for r in stored.recipients):
            fail(f"reminder {rec.reminder_id}: recipients not sent: {stored.recipients}")


# ---- running and reporting ---------------------------------------------------------------------


def print_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, tuple("-" * w for w in widths), *rows]:
        cells = [f"{c:<{w}}" if i == 0 else f"{c:>{w}}"
                 for i, (c, w) in enumerate(zip(row, widths, strict=True))]
        print("  ".join(cells).rstrip())


def loadavg() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="2k reminders over 200 people, 1 repetition")
    p.add_argument("--reps", type=int, help="repetitions of each variant (default 3; quick 1)")
    p.add_argument("--sync", default="FULL", choices=("FULL", "NORMAL"),
                   help="the store's synchronous mode in the timed sweeps (default FULL)")
    p.add_argument("--dir", help="folder for the files (default: a new temp folder)")
    args = p.parse_args(argv)
    bundles, people = (100, 200) if args.quick else (500, 1_000)
    reps = args.reps or (1 if args.quick else 3)
    expected = bundles * TASKS

    print(f"routing: {expected:,} due reminders ({bundles} bundles of {TASKS} tasks) over "
          f"{people:,} people and {people // GROUP_SIZE} groups of {GROUP_SIZE}; sweep at "
          f"{NOW.isoformat()}; SQLite synchronous={args.sync}; {reps} repetition(s)")
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs; load average before {loadavg()}",
          flush=True)
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="dataops-routing-", dir=args.dir) as tmp:
        folder = Path(tmp)
        contents: dict[bool, Content] = {}
        for routed in (False, True):
            root = folder / ("content-people" if routed else "content")
            write_content(root, bundles, people, routed)
            t0 = time.perf_counter()
            contents[routed] = load(root, people if routed else 0)
            print(f"  content {root.name}: loaded in {time.perf_counter() - t0:.1f} s", flush=True)
        src = folder / "bundles.db"
        t0 = time.perf_counter()
        build_db(src, contents[False])
        print(f"  created {bundles} bundles in {time.perf_counter() - t0:.1f} s "
              f"({src.stat().st_size / 1e6:.1f} MB)", flush=True)

        one_sweep(VARIANTS[2], src, folder / "warm.db", contents, args.sync, expected)  # imports
        runs: dict[str, list[dict[str, float]]] = {v: [] for v in VARIANTS}
        for rep in range(reps):
            order = VARIANTS[rep % 3:] + VARIANTS[:rep % 3]  # no variant always goes first
            for variant in order:
                runs[variant].append(one_sweep(variant, src, folder / "work.db", contents,
                                               args.sync, expected))
            print(f"  repetition {rep + 1} of {reps} done", flush=True)

    base = runs[VARIANTS[0]]
    b_best = min(r["seconds"] for r in base)
    b_med = statistics.median(r["seconds"] for r in base)
    b_cpu = min(r["cpu"] for r in base)
    print(f"\nwhole sweep (record_due + deliver_pending) of {expected:,} reminders, fresh DB "
          f"copy each; wall seconds, best and median of {reps}; CPU seconds of this process, best")
    rows = []
    for variant in VARIANTS:
        ts = [r["seconds"] for r in runs[variant]]
        best, med, cpu = min(ts), statistics.median(ts), min(r["cpu"] for r in runs[variant])
        rows.append((variant, f"{best:.2f}", f"{med:.2f}", f"{expected / best:,.0f}",
                     f"{best / b_best:.2f}", f"{med / b_med:.2f}", f"{cpu:.2f}", f"{cpu / b_cpu:.2f}",
                     f"{(max(ts) - best) / best * 100:.0f}%" if len(ts) > 1 else "-",
                     f"{runs[variant][0]['recipients']:.2f}"))
    print_table(("variant", "best s", "median s", "reminders/s", "best/base", "median/base",
                 "CPU s", "CPU/base", "spread", "recipients/reminder"), rows)
    print("(base = no routing; reminders/s from the best; spread = slowest vs best repetition)")
    ratio = min(r["seconds"] for r in runs[VARIANTS[1]]) / b_best
    med_ratio = statistics.median(r["seconds"] for r in runs[VARIANTS[1]]) / b_med
    print(f"\ngoal: routing adds under 25 % (routing / no routing <= 1.25): best {ratio:.2f}, "
          f"median {med_ratio:.2f} -> {'met' if ratio <= 1.25 else 'NOT met'}")
    chan = min(r["seconds"] for r in runs[VARIANTS[2]]) / b_best
    print(f"(routing + rendering messages for a channel: {chan:.2f}x the baseline; not the goal's "
          f"subject, shown for what a person channel costs)")
    print(f"(CPU time: routing {min(r['cpu'] for r in runs[VARIANTS[1]]) / b_cpu:.2f}x the "
          f"baseline, less sensitive to other load on a shared machine than wall time)")
    print(f"(total {time.perf_counter() - t_start:.1f} s; load average after {loadavg()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
