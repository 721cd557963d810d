"""One bad thing stays one bad thing: a broken definition beside good ones, a stored record that
does not decode; and the core's CLI contract additions (DESIGN.md "CLI")."""

from __future__ import annotations

import json
import sqlite3
from datetime import date
from pathlib import Path
from typing import Any

from runtime import engine
from runtime.artifacts import LocalArtifactStore
from runtime.clock import FixedClock
from runtime.content import load_content
from runtime.engine import Services
from runtime.engine.reminders import sweep
from runtime.export import ENTITIES, export_store, import_export
from runtime.model import ReminderKind
from runtime.model.common import utc
from runtime.notify import FileSink
from runtime.store.memory import MemoryStore
from runtime.store.sqlite import SqliteStore
from tests.helpers import reminders

BUNDLE = "vat-return/2026-11-02"
PAY = f"{BUNDLE}/pay-balance"


def failures(store: Any) -> list[Any]:
    return [r for r in reminders(store) if r.kind == ReminderKind.AUTOMATION_FAILURE]


# ---- a broken definition beside good ones: the daemon -----------------------------------------


def test_the_sweep_serves_good_definitions_and_reports_a_broken_file_once_per_change(
        content_dir: Path, tmp_path: Path) -> None:
    broken = content_dir / "workflows" / "podcast-episode.yaml"
    broken.write_text(broken.read_text().replace("offset_days: -14", "offset_day: -14"))
    store = MemoryStore()
    svc = Services(store, FixedClock(utc(2026, 11, 25, 8)), "daemon",
                   LocalArtifactStore(tmp_path / "a"), lambda: load_content(content_dir))
    engine.create_bundle(svc, "vat-return", date(2026, 11, 2))
    sink = FileSink(f"file://{tmp_path / 'out.jsonl'}")
    first = sweep(svc, [sink])
    assert first.recorded, "the good definitions' reminders go out"
    [failure] = failures(store)
    assert str(broken) in failure.summary and "offset_day" in failure.summary
    for _ in range(3):  # every later tick: nothing new
        svc.reload_content()
        sweep(svc, [sink])
    assert len(failures(store)) == 1
    broken.write_text(broken.read_text().replace("offset_day: -14", "offset_dayz: -14"))
    svc.reload_content()
    sweep(svc, [sink])
    assert len(failures(store)) == 2  # the file changed and is still broken: said once more
    delivered = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert sum(d["kind"] == "automation_failure" for d in delivered) == 2


def test_scheduler_once_with_a_broken_definition_exits_0_and_records_one_failure(
        cli: Any, content_dir: Path) -> None:
    broken = content_dir / "workflows" / "newsletter.yaml"
    broken.write_text(broken.read_text() + "\nsurprise: true\n")
    assert cli("bundle", "create", "vat-return", "--anchor", "2026-11-02").code == 0
    for _ in range(2):
        r = cli("scheduler", "run", "--once", now="2026-11-25T12:00:00+00:00")
        assert r.code == 0, r.err
    listed = cli("reminders", "list", "--json").json()
    failed = [x for x in listed if x["kind"] == "automation_failure"]
    assert len(failed) == 1 and "newsletter.yaml" in failed[0]["summary"]


# ---- a record that does not decode --------------------------------------------------------------


def _damage(db_path: Path, task_id: str, due_now: bool = True) -> None:
    with sqlite3.connect(db_path, isolation_level=None) as db:
        doc = json.loads(db.execute("SELECT doc FROM tasks WHERE task_id = ?", (task_id,)).fetchone()[0])
        doc["field_from_the_future"] = 1  # written by a newer version
        db.execute("UPDATE tasks SET doc = ?, next_reminder_us = ? WHERE task_id = ?",
                   (json.dumps(doc), 0 if due_now else None, task_id))


def test_a_quarantined_record_stops_nothing_else(cli: Any, tmp_path: Path) -> None:
    assert cli("bundle", "create", "vat-return", "--anchor", "2026-11-02").code == 0
    _damage(tmp_path / "cli.db", PAY)
    shown = cli("task", "show", PAY)
    assert shown.code == 2 and PAY in shown.err and "quarantined" in shown.err
    assert len(shown.err.strip().splitlines()) == 1
    listed = cli("task", "list", "--json")
    assert listed.code == 0
    ids = [t["task_id"] for t in listed.json()]
    assert PAY not in ids and len(ids) == 5
    assert PAY in listed.err and "quarantined" in listed.err
    assert cli("bundle", "show", BUNDLE).code == 0
    for _ in range(2):
        r = cli("scheduler", "run", "--once", now="2026-11-25T12:00:00+00:00")
        assert r.code == 0, r.err
    failed = [x for x in cli("reminders", "list", "--json").json()
              if x["kind"] == "automation_failure"]
    assert len(failed) == 1 and PAY in failed[0]["summary"]
    out = tmp_path / "backup"
    exported = cli("export", "--out", str(out))
    assert exported.code == 0, exported.err
    manifest = json.loads((out / "manifest.json").read_text())
    assert [rid for rid, _ in manifest["quarantined"]] == [PAY]
    tasks = [json.loads(x) for x in (out / "tasks.jsonl").read_text().splitlines()]
    assert [t["task_id"] for t in tasks if t["bundle_id"] == BUNDLE and t["task_id"] == PAY] == []
    assert sum(t["bundle_id"] == BUNDLE for t in tasks) == 5


# ---- export -> import -> export, memory to SQLite and back ---------------------------------------


def test_export_import_export_is_byte_identical_from_memory_to_sqlite_and_back(
        content: Any, tmp_path: Path) -> None:
    svc = Services(MemoryStore(), FixedClock(utc(2026, 11, 25, 8)), "tester",
                   LocalArtifactStore(tmp_path / "art"), lambda: content)
    view = engine.create_bundle(svc, "podcast-episode", date(2026, 12, 1))
    book = view.tasks[0].task_id
    engine.fire_task(svc, book, "start")
    engine.attach_file(svc, book, b"%PDF-1.4\n", "release.pdf", "application/pdf")
    engine.fire_task(svc, view.tasks[1].task_id, "wait", waiting_for="guest",
                     follow_up_at="2026-11-30T10:00:00+01:00")
    sweep(svc, [], now=utc(2026, 12, 3, 12))
    at = utc(2026, 12, 4)
    export_store(svc.store, tmp_path / "a", at)
    sqlite = SqliteStore(f"sqlite:///{tmp_path / 'copy.db'}")
    import_export(sqlite, tmp_path / "a")
    export_store(sqlite, tmp_path / "b", at)
    back = MemoryStore()
    import_export(back, tmp_path / "b")
    export_store(back, tmp_path / "c", at)
    sqlite.close()
    for spec in ENTITIES:
        a = (tmp_path / "a" / spec.file).read_bytes()
        assert a == (tmp_path / "b" / spec.file).read_bytes() == (tmp_path / "c" / spec.file).read_bytes()
    for name in ("manifest.json",):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "c" / name).read_bytes()


def test_the_library_takes_an_instant_as_text_and_every_store_gives_it_back_in_utc(
        tmp_path: Path, content_dir: Path) -> None:
    import runtime

    got = []
    for url in ("memory://", f"sqlite:///{tmp_path / 'x.db'}"):
        with runtime.open(store=url, content=str(content_dir),
                          clock=FixedClock(utc(2026, 11, 25, 8))) as rt:
            rt.create_bundle("vat-return", "2026-11-02")
            rt.wait(PAY, "the bank", "2026-12-01T10:00:00+01:00")
            got.append(rt.task(PAY).to_json())
    assert got[0]["follow_up_at"] == got[1]["follow_up_at"] == "2026-12-01T09:00:00+00:00"
    assert {k: v for k, v in got[0].items() if k != "audit_hash"} == \
        {k: v for k, v in got[1].items() if k != "audit_hash"}


# ---- the CLI contract additions ---------------------------------------------------------------


def test_lists_take_limit_and_all(cli: Any) -> None:
    for day in ("2026-11-02", "2026-11-09", "2026-11-16"):
        assert cli("bundle", "create", "vat-return", "--anchor", day).code == 0
    two = cli("bundle", "list", "--limit", "2", "--json")
    assert two.code == 0 and len(two.json()) == 2 and "--all" in two.err
    every_one = cli("bundle", "list", "--all", "--json")
    assert len(every_one.json()) == 3 and every_one.err == ""
    tasks = cli("task", "list", "--limit", "4", "--json")
    assert len(tasks.json()) == 4
    assert len(cli("task", "list", "--all", "--json").json()) == 18
    assert len(cli("audit", "log", "--all", "--json").json()) == 21
    bad = cli("task", "list", "--limit", "0")
    assert bad.code == 2 and bad.err.startswith("error:")


def test_store_init_and_audit_seal(cli: Any) -> None:
    r = cli("store", "init")
    assert r.code == 0 and "ready" in r.out
    assert cli("bundle", "create", "vat-return", "--anchor", "2026-11-02").code == 0
    sealed = cli("audit", "seal", "--json")
    assert sealed.code == 0
    seal = sealed.json()
    assert seal["count"] == 7 and len(seal["root"]) == 64
    verify = cli("audit", "verify")
    assert verify.code == 0 and seal["seal_id"] in verify.out


def test_an_empty_store_url_is_an_error_not_the_default(cli: Any, tmp_path: Path) -> None:
    r = cli("task", "list", store="")
    assert r.code == 2 and "store URL is empty" in r.err
    assert not (tmp_path / "dataops.db").exists()


def test_memory_store_on_the_cli_warns_that_nothing_is_kept(cli: Any) -> None:
    r = cli("bundle", "list", store="memory://")
    assert r.code == 0 and "memory://" in r.err and "keeps nothing" in r.err


def test_an_interrupted_export_leaves_the_previous_one_whole(
        content: Any, tmp_path: Path) -> None:
    svc = Services(MemoryStore(), FixedClock(utc(2026, 11, 25, 8)), "tester",
                   LocalArtifactStore(tmp_path / "art"), lambda: content)
    engine.create_bundle(svc, "vat-return", date(2026, 11, 2))
    out = tmp_path / "backup"
    export_store(svc.store, out, utc(2026, 11, 25))
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    engine.create_bundle(svc, "vat-return", date(2026, 11, 9))

    class Dies(Exception):
        pass

    class DyingStore:
        """The store dies half-way through the export's scans."""

        def __init__(self, inner: Any) -> None:
            self.inner = inner

        def snapshot(self) -> Any:
            from contextlib import contextmanager

            @contextmanager
            def snap() -> Any:
                with self.inner.snapshot() as real:
                    class Half:
                        def scan(self, kind: Any) -> Any:
                            if kind.record_kind == "reminder":
                                raise Dies("killed")
                            return real.scan(kind)
                    yield Half()
            return snap()

        def __getattr__(self, name: str) -> Any:
            return getattr(self.inner, name)

    import pytest

    with pytest.raises(Dies):
        export_store(DyingStore(svc.store), out, utc(2026, 11, 26))  # type: ignore[arg-type]
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # the old one, whole
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".backup")] == []
    export_store(svc.store, out, utc(2026, 11, 26))  # a whole one replaces it
    assert (out / "bundles.jsonl").read_text().count("\n") == 2
