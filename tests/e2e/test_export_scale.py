"""Export at scale (DESIGN.md "Portable export"): an export killed at any point leaves the
previous one valid; an export taken while other processes write is a consistent cut;
binaries round-trip with --with-binaries; random stores round-trip byte for byte through every
store; each planted violation is named with its file and line; the validator streams."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import runtime.export as export
from runtime import engine
from runtime.artifacts import LocalArtifactStore
from runtime.clock import FixedClock
from runtime.content import load_content
from runtime.engine import Services
from runtime.errors import DataopsError, ExportFormatError
from runtime.export import ENTITIES, export_store, import_export, load_export
from runtime.model.common import utc
from runtime.store import open_store
from runtime.store.sqlite import SqliteStore
from tests.conftest import SHARED_KINDS, SHIPPED_CONTENT, make_store, need_server
from tests.helpers import kill_when_paused

REPO = Path(__file__).resolve().parents[2]
NOW = "2026-11-25T08:00:00+00:00"
T0 = utc(2026, 11, 25, 8)


def _env() -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith("DATAOPS_")}
    e["PYTHONPATH"] = str(REPO) + os.pathsep + e.get("PYTHONPATH", "")
    return e


def _cli(url: str, content: Path, *argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "runtime.cli", "--store", url, "--content",
                           str(content), "--now", NOW, *argv], cwd=cwd, env=_env(),
                          capture_output=True, text=True, timeout=300)


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def _sqlite_with(n: int, content_dir: Path, tmp_path: Path, name: str = "src") -> str:
    url = f"sqlite:///{tmp_path / (name + '.db')}?synchronous=NORMAL"
    content = load_content(content_dir)
    store = SqliteStore(url)
    svc = Services(store, FixedClock(T0), "setup", LocalArtifactStore(tmp_path / "art"),
                   lambda: content)
    for i in range(n):
        engine.create_bundle(svc, "vat-return", date(2020, 1, 1) + timedelta(days=i))
    store.close()
    return url.split("?")[0]


# ---- a killed export never costs the previous one ------------------------------------------


PAUSED_EXPORT = r"""
import sys, time
from pathlib import Path
import runtime.export as export
from runtime.cli import main
stage, marker, argv = int(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:]
written = []
real_entity, real_swap = export._write_entity, export._swap_into_place

def pause():
    marker.touch()
    time.sleep(600)  # SIGKILLed here by the test

def entity(*args, **kw):
    result = real_entity(*args, **kw)
    written.append(result)
    if len(written) == stage:
        pause()
    return result

def swap(*args, **kw):
    if stage == len(export.ENTITIES) + 1:
        pause()
    return real_swap(*args, **kw)

export._write_entity, export._swap_into_place = entity, swap
sys.exit(main(argv))
"""


def test_an_export_killed_at_any_point_leaves_the_previous_one_valid(
        content_dir: Path, tmp_path: Path) -> None:
    """A real export process (the CLI, with a pause spliced in at one point so the kill lands
    there) is SIGKILLed after each entity file, and once with every file and the manifest
    written, just before the rename: each time the previous export is unchanged and valid."""
    url = _sqlite_with(20, content_dir, tmp_path)
    out = tmp_path / "backup"
    assert _cli(url, content_dir, "export", "--out", str(out), cwd=tmp_path).returncode == 0
    good = _files(out)
    assert _cli(url, content_dir, "bundle", "create", "vat-return", "--anchor", "2026-06-01",
                cwd=tmp_path).returncode == 0
    argv = ["--store", url, "--content", str(content_dir), "--now", NOW, "export", "--out",
            str(out), "--quiet"]
    for stage in range(1, len(ENTITIES) + 2):
        marker = tmp_path / f"paused-{stage}"
        code = kill_when_paused(PAUSED_EXPORT, [str(stage), str(marker), *argv], marker, tmp_path)
        assert code == -signal.SIGKILL
        assert _files(out) == good, f"killed at stage {stage}: the previous export changed"
        load_export(out)
        incoming = list(tmp_path.glob(".backup.incoming-*"))
        assert incoming, "a killed export leaves its temporary folder beside, not in --out"
    # a whole run replaces it; the leftovers of the killed ones never stand in its way
    assert _cli(url, content_dir, "export", "--out", str(out), cwd=tmp_path).returncode == 0
    assert _files(out) != good
    assert load_export(out)["bundle"] == 21


# ---- an export while other processes write ---------------------------------------------------

WRITER = r"""
import sys
from datetime import date, timedelta
from runtime.cli import main
url, content, start, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
base = ["--store", url, "--content", content, "--now", "2026-11-25T08:00:00+00:00"]
for i in range(start, start + n):
    anchor = (date(2021, 1, 1) + timedelta(days=i)).isoformat()
    assert main(base + ["bundle", "create", "vat-return", "--anchor", anchor]) == 0
    tid = f"vat-return/{anchor}/collect-invoices"
    assert main(base + ["task", "start", tid]) == 0
    assert main(base + ["task", "assign", tid, f"w{i}"]) == 0
"""


@pytest.mark.parametrize("kind", SHARED_KINDS)
def test_exports_taken_while_processes_write_are_consistent(
        kind: str, request: pytest.FixtureRequest, content_dir: Path, tmp_path: Path) -> None:
    from tests.conftest import store_url

    need_server(request, kind)
    url = store_url(kind, tmp_path, "busy")
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, url, str(content_dir),
                                 str(w * 1000), "25"], cwd=tmp_path, env=_env(),
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
               for w in range(2)]
    exports = 0
    try:
        while any(w.poll() is None for w in writers) or exports < 2:
            out = tmp_path / f"cut-{exports}"
            r = _cli(url, content_dir, "export", "--out", str(out), "--quiet", cwd=tmp_path)
            assert r.returncode == 0, r.stderr  # it validated itself before it was renamed
            load_export(out)  # and validates again here: every chain whole, every parent there
            exports += 1
    finally:
        for w in writers:
            _, err = w.communicate(timeout=300)
            assert w.returncode == 0, err
    assert exports >= 2
    final = tmp_path / "final"
    assert _cli(url, content_dir, "export", "--out", str(final), cwd=tmp_path).returncode == 0
    assert load_export(final)["bundle"] == 50


# ---- binaries --------------------------------------------------------------------------------


def test_binaries_round_trip_with_with_binaries(cli, tmp_path: Path) -> None:
    task = "vat-return/2026-11-02/collect-invoices"
    assert cli("bundle", "create", "vat-return", "--anchor", "2026-11-02").code == 0
    pdf = tmp_path / "invoices.pdf"
    pdf.write_bytes(b"%PDF-1.4 the invoices\n")
    assert cli("task", "attach", task, "--file", str(pdf)).code == 0
    out = tmp_path / "with-blobs"
    r = cli("export", "--out", str(out), "--with-binaries")
    assert r.code == 0 and "1 binaries" in r.out, r.err
    sha = hashlib.sha256(pdf.read_bytes()).hexdigest()
    assert (out / "blobs" / sha).read_bytes() == pdf.read_bytes()
    assert json.loads((out / "manifest.json").read_text())["blobs"] == {"dir": "blobs", "count": 1}
    assert cli("export", "validate", str(out)).code == 0
    # into another store with its own artifact folder: the binary goes there
    other = f"sqlite:///{tmp_path / 'other.db'}"
    r = cli("import", str(out), store=other)
    assert r.code == 0 and "1 binaries" in r.out, r.err
    assert LocalArtifactStore(tmp_path / "other.db.artifacts").get_sha256(sha) == pdf.read_bytes()
    again = tmp_path / "again"
    assert cli("export", "--out", str(again), "--with-binaries", store=other).code == 0
    assert _files(again / "blobs") == _files(out / "blobs")
    for spec in ENTITIES:
        assert (again / spec.file).read_bytes() == (out / spec.file).read_bytes()
    # a tampered or missing binary is named
    (out / "blobs" / sha).write_bytes(b"not the invoices")
    r = cli("export", "validate", str(out))
    assert r.code == 2 and f"blobs/{sha}: its content does not hash to its name" in r.err
    (out / "blobs" / sha).unlink()
    r = cli("export", "validate", str(out))
    assert r.code == 2 and f"no binary for artifact sha256 {sha}" in r.err, r.err


# ---- random stores round-trip through every store -----------------------------------------

COMMANDS = st.lists(st.tuples(st.sampled_from(["create", "start", "assign", "comment", "cancel",
                                               "sweep"]),
                              st.integers(0, 5), st.integers(0, 6)), min_size=1, max_size=12)


def _build(commands: list[tuple[str, int, int]], svc: Services) -> None:
    from runtime.engine.reminders import sweep

    refs = ["collect-invoices", "reconcile-accounts", "file-return", "pay-balance"]
    for op, b, t in commands:
        anchor = date(2026, 11, 2) + timedelta(days=7 * b)
        tid = f"vat-return/{anchor.isoformat()}/{refs[t % len(refs)]}"
        try:
            if op == "create":
                engine.create_bundle(svc, "vat-return", anchor)
            elif op == "start":
                engine.fire_task(svc, tid, "start")
            elif op == "assign":
                engine.assign_task(svc, tid, f"person-{t}")
            elif op == "comment":
                engine.comment_task(svc, tid, f"note {t}: ünïcode \u2028 and \"quotes\"")
            elif op == "cancel":
                engine.fire_task(svc, tid, "cancel", reason=f"reason {t}")
            else:
                sweep(svc, [])
        except DataopsError:
            pass  # a command the machine or the store refuses is part of a random history


@pytest.fixture
def every_store(pg_server: Any, moto_endpoint: str, tmp_path: Path) -> Any:
    def make(kind: str, n: int) -> Any:
        return make_store(kind, tmp_path / f"{kind}-{n}") if kind != "sqlite" else open_store(
            f"sqlite:///{tmp_path / f'rt-{n}.db'}")
    return make


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(commands=COMMANDS)
def test_random_stores_round_trip_byte_for_byte_through_every_store(
        every_store: Any, tmp_path: Path, commands: list[tuple[str, int, int]]) -> None:
    content = load_content(SHIPPED_CONTENT)
    run = len(list(tmp_path.glob("src-*")))
    source = open_store("memory://")
    svc = Services(source, FixedClock(T0), "fuzz", LocalArtifactStore(tmp_path / "a"),
                   lambda: content)
    _build(commands, svc)
    first = tmp_path / f"src-{run}"
    export_store(source, first, T0)
    for kind in ("memory", "sqlite", "postgres", "dynamodb"):
        (tmp_path / f"{kind}-{run}").mkdir(exist_ok=True)
        target = every_store(kind, run)
        try:
            import_export(target, first)
            import_export(target, first)  # again: changes nothing
            out = tmp_path / f"{kind}-out-{run}"
            export_store(target, out, T0)
        finally:
            target.close()
        for spec in ENTITIES:
            assert (out / spec.file).read_bytes() == (first / spec.file).read_bytes(), \
                (kind, spec.file)


# ---- planted violations ------------------------------------------------------------------


def _plant(directory: Path, file: str, change: Any) -> None:
    """Rewrite ``file``'s lines with ``change(lines)`` and fix the manifest's checksum and count,
    so that only the planted violation is wrong."""
    path = directory / file
    lines = change(path.read_text(encoding="utf-8").splitlines())
    text = "".join(line + "\n" for line in lines)
    path.write_text(text, encoding="utf-8")
    manifest = json.loads((directory / "manifest.json").read_text())
    for entry in manifest["entities"]:
        if entry["file"] == file:
            entry["sha256"] = hashlib.sha256(text.encode()).hexdigest()
            entry["count"] = len(lines)
    (directory / "manifest.json").write_text(json.dumps(manifest))


def _edit(n: int, **fields: Any) -> Any:
    def change(lines: list[str]) -> list[str]:
        rec = json.loads(lines[n])
        rec.update(fields)
        return [*lines[:n], json.dumps(rec), *lines[n + 1:]]
    return change


PLANTED = [
    ("tasks.jsonl", _edit(0, title="edited in place"), "edited in place"),
    ("tasks.jsonl", lambda ls: ls[1:], "events but no record"),
    ("tasks.jsonl", lambda ls: [*ls, ls[0]], "appears twice (first on line 1)"),
    ("tasks.jsonl", _edit(2, bundle_id="vat-return/1999-01-01"), "tasks.jsonl:3: task"),
    ("bundles.jsonl", lambda ls: [], "has no bundle with that bundle_id"),
    ("audit_events.jsonl", lambda ls: ls[:-1], "truncated or extended"),
    ("audit_events.jsonl", lambda ls: [*ls[1:], ls[0]], "out of (entity_id, seq) order"),
    ("audit_events.jsonl", _edit(0, summary="rewritten"), "edited after it was written"),
    ("audit_events.jsonl", lambda ls: [ls[0], *ls], "appears twice"),
    ("reminders.jsonl", _edit(0, entity_id="vat-return/1999-01-01/x"), "has no task"),
    ("tasks.jsonl", lambda ls: [*ls[:3], "{not json", *ls[3:]], "tasks.jsonl:4: not valid JSON"),
    ("tasks.jsonl", _edit(0, taskId="x"), "tasks.jsonl:1: fields must be snake_case"),
]


@pytest.mark.parametrize(("file", "change", "needle"), PLANTED,
                         ids=[f"{f}-{n}" for f, _, n in PLANTED])
def test_each_planted_violation_is_named(cli, tmp_path: Path, file: str, change: Any,
                                         needle: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Named the same, in the same order, by the validator checking the lines here and by it
    checking them in two worker processes (batches of 3 lines, so that each file spans
    several batches on both workers)."""
    assert cli("bundle", "create", "vat-return", "--anchor", "2026-11-02").code == 0
    r = cli("scheduler", "run", "--once", "--sink", f"file://{tmp_path / 's.jsonl'}",
            now="2026-11-28T12:00:00+00:00")
    assert r.code == 0, r.err
    out = tmp_path / "planted"
    assert cli("export", "--out", str(out)).code == 0
    assert (out / "reminders.jsonl").read_text().strip(), "the sweep recorded reminders"
    _plant(out, file, change)
    monkeypatch.setattr(export, "BATCH_LINES", 3)
    found = {}
    for workers in (0, 2):
        with pytest.raises(ExportFormatError) as err:
            load_export(out, workers=workers)
        found[workers] = err.value.problems
    assert any(needle in p for p in found[0]), found[0]
    assert found[2] == found[0]


@pytest.mark.parametrize("case", [0, 2, 3, 7], ids=lambda i: PLANTED[i][2])
def test_an_import_in_one_pass_refuses_a_planted_violation_and_writes_nothing(
        cli, tmp_path: Path, case: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Into an empty SQLite store the export is validated and loaded in one transaction: a
    violation anywhere (found as the lines go in, or at the end: an ID twice fails the insert
    first) is the validator's error, and the store stays empty."""
    file, change, needle = PLANTED[case]
    assert cli("bundle", "create", "vat-return", "--anchor", "2026-11-02").code == 0
    out = tmp_path / "planted"
    assert cli("export", "--out", str(out)).code == 0
    _plant(out, file, change)
    monkeypatch.setattr(export, "BATCH_LINES", 3)  # rows go in before the violation is read
    with pytest.raises(ExportFormatError) as expected:
        load_export(out)
    for workers in (0, 2):
        target = open_store(f"sqlite:///{tmp_path / f'target-{workers}.db'}")
        assert export.in_one_pass(target)
        with pytest.raises(ExportFormatError) as err:
            import_export(target, out, workers=workers)
        assert err.value.problems == expected.value.problems
        assert any(needle in p for p in err.value.problems)
        assert target.is_empty()
        target.close()


def _store_with_reminders(cli: Any, tmp_path: Path, bundles: int) -> str:
    for i in range(bundles):
        assert cli("bundle", "create", "vat-return",
                   "--anchor", f"2026-11-{2 + i:02d}").code == 0
    r = cli("scheduler", "run", "--once", "--sink", f"file://{tmp_path / 's.jsonl'}",
            now="2026-11-28T12:00:00+00:00")
    assert r.code == 0, r.err
    return f"sqlite:///{tmp_path / 'cli.db'}"


def test_export_and_validation_in_worker_processes_match_those_done_in_one(
        cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two workers, batches of 4 lines: the same files byte for byte, the same counts; and a
    record the store cannot decode is left out and named as quarantined either way."""
    url = _store_with_reminders(cli, tmp_path, 3)
    monkeypatch.setattr(export, "BATCH_LINES", 4)
    store = open_store(url)
    outs = {}
    for workers in (0, 2):
        outs[workers] = tmp_path / f"out-{workers}"
        export_store(store, outs[workers], T0, workers=workers)
        assert load_export(outs[workers], workers=workers) == load_export(outs[0], workers=0)
    assert _files(outs[2]) == {**_files(outs[0]), "manifest.json": _files(outs[2])[
        "manifest.json"]}
    store.close()
    db = sqlite3.connect(url[len("sqlite:///"):])
    with db:
        db.execute("UPDATE tasks SET doc = json_set(doc, '$.status', 'bogus') WHERE task_id = "
                   "(SELECT task_id FROM tasks ORDER BY task_id LIMIT 1 OFFSET 5)")
    db.close()
    for workers in (0, 2):
        store = open_store(url)
        manifest = export_store(store, tmp_path / f"q-{workers}", T0, workers=workers)
        store.close()
        assert [rid for rid, _ in manifest["quarantined"]] == [
            rid for rid, _ in export_store(open_store(url), tmp_path / "q-ref", T0,
                                           workers=0)["quarantined"]]
        assert "status" in manifest["quarantined"][0][1]


def test_a_worker_that_dies_mid_run_costs_nothing(
        cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """A worker killed while it holds a batch: the run goes on in this process, and the
    result is what it would have been; one warning line says so; no worker process is left
    behind."""
    url = _store_with_reminders(cli, tmp_path, 2)
    store = open_store(url)
    export_store(store, tmp_path / "ref", T0, workers=0)
    monkeypatch.setattr(export, "BATCH_LINES", 4)
    real_receive = export._Worker.receive
    started: list[export._Worker] = []

    def dying(self: export._Worker, entity_type: str) -> Any:
        started.append(self)
        if len(started) == 3:
            self.proc.kill()
            self.proc.wait()
        return real_receive(self, entity_type)

    monkeypatch.setattr(export._Worker, "receive", dying)
    with caplog.at_level("WARNING", logger="dataops.export"):
        export_store(store, tmp_path / "out", T0, workers=2)
    store.close()
    [warning] = [r.getMessage() for r in caplog.records]
    assert "a worker process checking lines failed (it ended with exit status -9)" in warning
    assert len(started) >= 3
    assert all(w.proc.poll() is not None for w in started)
    ref, out = _files(tmp_path / "ref"), _files(tmp_path / "out")
    assert {k: v for k, v in out.items() if k != "manifest.json"} == {
        k: v for k, v in ref.items() if k != "manifest.json"}
    assert load_export(tmp_path / "out", workers=2) == load_export(tmp_path / "ref")


def test_a_worker_that_cannot_start_is_one_warning_line_and_the_run_goes_on(
        cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """A broken install (the interpreter the workers are started with cannot import the
    runtime): the validation gives its result all the same, and one warning line names what
    the worker said."""
    _store_with_reminders(cli, tmp_path, 2)
    out = tmp_path / "out"
    assert cli("export", "--out", str(out)).code == 0
    expected = load_export(out, workers=0)
    broken = tmp_path / "broken-python"
    broken.write_text("#!/bin/sh\necho \"ModuleNotFoundError: No module named 'runtime'\" >&2\n"
                      "exit 1\n")
    broken.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(broken))
    monkeypatch.setattr(export, "BATCH_LINES", 4)
    with caplog.at_level("WARNING", logger="dataops.export"):
        assert load_export(out, workers=2) == expected
    [warning] = [r.getMessage() for r in caplog.records]
    assert "failed (ModuleNotFoundError: No module named 'runtime')" in warning, warning


PAUSED_VALIDATION = r"""
import sys, time
from pathlib import Path
import runtime.export as export
directory, marker = Path(sys.argv[1]), Path(sys.argv[2])
export.BATCH_LINES = 2

class Paused:
    n = 0
    def update(self, k=1):
        self.n += k
        if self.n == 6:  # the workers hold batches now
            ready = marker.with_suffix(".tmp")  # written whole, then renamed: never half read
            ready.write_text(" ".join(str(w.proc.pid) for w in pipeline.pool))
            ready.rename(marker)
            time.sleep(600)  # SIGKILLed here by the test

real = export._Lines.__enter__
def enter(self):
    global pipeline
    pipeline = real(self)
    return pipeline
export._Lines.__enter__ = enter
export.load_export(directory, Paused(), workers=2)
"""


def test_a_killed_validation_leaves_no_worker_process_behind(cli, tmp_path: Path) -> None:
    """The workers end when the process they work for dies (their stdin closes)."""
    _store_with_reminders(cli, tmp_path, 2)
    out = tmp_path / "out"
    assert cli("export", "--out", str(out)).code == 0
    marker = tmp_path / "paused"
    kill_when_paused(PAUSED_VALIDATION, [str(out), str(marker)], marker, tmp_path)
    pids = [int(p) for p in marker.read_text().split()]
    assert len(pids) == 2
    for pid in pids:
        _wait_gone(pid)


INTERRUPTED_VALIDATION = r"""
import sys, time
from pathlib import Path
import runtime.export as export
from runtime.cli import main
marker, argv = Path(sys.argv[1]), sys.argv[2:]
export.BATCH_LINES, export.PARALLEL_FROM = 2, 0  # workers from the first lines on
real_take, taken = export._Checker.take, []

def take(self, *args):
    taken.append(1)
    if len(taken) == 6:  # the workers hold batches now
        pool = [w for w in __import__("gc").get_objects() if isinstance(w, export._Worker)]
        ready = marker.with_suffix(".tmp")  # written whole, then renamed: never half read
        ready.write_text(" ".join(str(w.proc.pid) for w in pool))
        ready.rename(marker)
        time.sleep(600)  # interrupted here by the test
    return real_take(self, *args)

export._Checker.take = take
sys.exit(main(argv))
"""


def test_ctrl_c_during_a_validation_ends_it_and_its_workers_without_a_traceback(
        cli, tmp_path: Path) -> None:
    """Ctrl-C reaches the whole process group: the command says it was interrupted (exit
    130), the workers end quietly with it."""
    url = _store_with_reminders(cli, tmp_path, 2)
    out = tmp_path / "out"
    assert cli("export", "--out", str(out)).code == 0
    marker = tmp_path / "paused"
    proc = subprocess.Popen([sys.executable, "-c", INTERRUPTED_VALIDATION, str(marker),
                             "--store", url, "export", "validate", str(out)], cwd=tmp_path,
                            env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        while not marker.exists():  # polling for a condition, not waiting for time
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.005)
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "error: interrupted" in err, err
    pids = [int(p) for p in marker.read_text().split()]
    assert len(pids) == 2
    for pid in pids:
        _wait_gone(pid)


def _wait_gone(pid: int) -> None:
    """Until ``pid`` has exited (a zombie not yet reaped counts as gone); polls a condition."""
    import time

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return
        if state in {"Z", "X"}:
            return
        time.sleep(0.01)
    raise AssertionError(f"worker {pid} outlived the validation that started it")


def _reshaped(lines: list[str]) -> list[str]:
    """The same records in another JSON shape: keys in reverse order, spaced separators, and
    the top-level instants written with ``Z`` for ``+00:00`` (or the other way round; nested
    values are left alone, as an event's ``before`` and ``after`` are data, not instants)."""
    def instant(v: Any) -> Any:
        if isinstance(v, str) and len(v) >= 20 and v[4:5] == "-" and v[10:11] == "T":
            return v[:-6] + "Z" if v.endswith("+00:00") else v.replace("Z", "+00:00")
        return v
    return [json.dumps({k: instant(v) for k, v in reversed(json.loads(ln).items())})
            for ln in lines]


def test_an_export_in_another_json_shape_validates_and_an_edit_in_it_is_named(
        cli, tmp_path: Path) -> None:
    """The validator hashes each line as parsed (the fast path); a line that is not in the
    export shape hashes otherwise, so a mismatch is confirmed with the record's own state
    hash before it is reported: a reshaped export is valid, a real edit in it still named."""
    assert cli("bundle", "create", "vat-return", "--anchor", "2026-11-02").code == 0
    out = tmp_path / "reshaped"
    assert cli("export", "--out", str(out)).code == 0
    for spec in ENTITIES:
        if (out / spec.file).read_text().strip():
            _plant(out, spec.file, _reshaped)
    assert "Z" in (out / "tasks.jsonl").read_text()  # the instants were rewritten
    counts = load_export(out)
    assert counts["task"] > 0 and counts["audit_event"] > counts["task"]
    _plant(out, "tasks.jsonl", _edit(1, title="edited in place"))
    with pytest.raises(ExportFormatError) as err:
        load_export(out)
    assert len(err.value.problems) == 1, err.value.problems
    assert "edited in place" in err.value.problems[0]
