"""A killed import (SIGKILL, a real process) leaves the target store as it was: on SQLite the
import is one atomic write. Running the same import again completes it, and the result exports
byte-identically. On a store with a per-write limit the import goes in batches and a re-run
writes only what is missing (DESIGN.md "Portable export")."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import pytest

from runtime import engine
from runtime.artifacts import LocalArtifactStore
from runtime.clock import FixedClock
from runtime.content import load_content
from runtime.engine import Services
from runtime.errors import DataopsError
from runtime.export import ENTITIES, export_store, import_export
from runtime.model import Bundle
from runtime.model.common import utc
from runtime.store import open_store
from runtime.store.memory import MemoryStore
from runtime.store.sqlite import SqliteStore
from tests.conftest import need_server
from tests.helpers import kill_when_paused

REPO = Path(__file__).resolve().parents[2]
NOW = "2026-11-25T08:00:00+00:00"


def _export_of(n: int, content_dir: Path, tmp_path: Path) -> Path:
    """An export of ``n`` vat-return bundles with their tasks, events and reminders."""
    content = load_content(content_dir)
    store = SqliteStore(f"sqlite:///{tmp_path / 'source.db'}?synchronous=NORMAL")
    svc = Services(store, FixedClock(utc(2026, 11, 25, 8)), "setup",
                   LocalArtifactStore(tmp_path / "art"), lambda: content)
    for i in range(n):
        engine.create_bundle(svc, "vat-return", date(2020, 1, 1) + timedelta(days=i))
    out = tmp_path / "export"
    export_store(store, out, utc(2026, 11, 25, 8))
    store.close()
    return out


def _same(a: Path, b: Path) -> bool:
    return all((a / s.file).read_bytes() == (b / s.file).read_bytes() for s in ENTITIES)


def _env() -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith("DATAOPS_")}
    e["PYTHONPATH"] = str(REPO) + os.pathsep + e.get("PYTHONPATH", "")
    return e


PAUSED_IMPORT = r"""
import sys, time
from pathlib import Path
import runtime.store.postgres as pg
import runtime.store.sqlite as lite
from runtime.cli import main
after, marker, argv = int(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:]
calls = []

def pausing(real):
    def write(*args, **kw):
        result = real(*args, **kw)
        calls.append(1)
        if len(calls) == after:  # that many batches are in the open transaction
            marker.touch()
            time.sleep(600)  # SIGKILLed here by the test
        return result
    return write

lite.SqliteStore._insert_rows = pausing(lite.SqliteStore._insert_rows)  # either way
if any(a.startswith("dynamodb://") for a in argv):
    import runtime.store.dynamodb as dynamo
    dynamo.DynamoStore.commit = pausing(dynamo.DynamoStore.commit)
pg.PostgresStore._insert_rows = pausing(pg.PostgresStore._insert_rows)  # either way
sys.exit(main(argv))
"""


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_an_import_killed_while_it_writes_leaves_the_store_as_it_was(
        kind: str, request: pytest.FixtureRequest, content_dir: Path, tmp_path: Path) -> None:
    """A real ``dataops import`` process, SIGKILLed with 4 batches of rows written in its open
    transaction (a pause spliced in there so that the kill lands mid-write; into an empty store
    the export is validated and loaded in one pass, so the export is also half validated
    then): the store is as it was; the same command completes it; the store then exports
    byte-identically."""
    from tests.conftest import store_url

    need_server(request, kind)
    export = _export_of(300, content_dir, tmp_path)
    url = store_url(kind, tmp_path, "target")
    open_store(url).close()  # the schema exists; from here on only the import writes
    marker = tmp_path / "paused"
    argv = ["--store", url, "--now", NOW, "import", str(export), "--quiet"]
    code = kill_when_paused(PAUSED_IMPORT, ["4", str(marker), *argv], marker, tmp_path)
    assert code == -signal.SIGKILL
    store = open_store(url)
    try:
        assert store.is_empty(), "a killed import left part of itself behind"
    finally:
        store.close()
    cli = [sys.executable, "-m", "runtime.cli", "--store", url, "--now", NOW]
    r = subprocess.run([*cli, "import", str(export)], env=_env(), cwd=tmp_path,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    again = tmp_path / "again"
    r = subprocess.run([*cli, "export", "--out", str(again)], env=_env(), cwd=tmp_path,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert _same(export, again)
    r = subprocess.run([*cli, "audit", "verify"], env=_env(), cwd=tmp_path,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr


class _DiesAfter(MemoryStore):
    """A store with a per-write limit (16) whose process "dies" (raises) after ``writes`` commits:
    the interruption of a batched import at a chosen batch."""

    def __init__(self, writes: int) -> None:
        super().__init__("memory://?max_items=16")
        self.left = writes

    def commit(self, changes):  # type: ignore[no-untyped-def]
        if self.left == 0:
            raise DataopsError("killed")
        self.left -= 1
        super().commit(changes)


def test_a_batched_import_interrupted_at_any_batch_is_completed_by_running_it_again(
        content_dir: Path, tmp_path: Path) -> None:
    export = _export_of(6, content_dir, tmp_path)
    total = sum(1 for s in ENTITIES for _ in (export / s.file).read_text().splitlines())
    batches = -(-total // 16)
    assert batches >= 3
    for dies_after in range(batches):
        store = _DiesAfter(dies_after)
        try:
            import_export(store, export)
            raise AssertionError("the import was not interrupted")
        except DataopsError as e:
            assert str(e) == "killed"
        store.left = -1  # alive again: the same import completes it
        import_export(store, export)
        out = tmp_path / f"out{dies_after}"
        export_store(store, out, utc(2026, 11, 25, 8))
        assert _same(export, out), dies_after
        writes_before = store.left
        import_export(store, export)  # and once more: nothing left to write
        assert store.left == writes_before
    with store.snapshot() as snap:
        assert len(list(snap.scan(Bundle))) == 6


def test_a_dynamodb_import_killed_between_batches_is_completed_by_running_it_again(
        request: pytest.FixtureRequest, content_dir: Path, tmp_path: Path) -> None:
    """On DynamoDB (50 records a write) an import goes in batches: a real ``dataops import``
    process SIGKILLed after 3 of them leaves those batches, the same command completes it,
    the result exports byte-identically and its chains verify."""
    from tests.conftest import store_url

    need_server(request, "dynamodb")
    export = _export_of(12, content_dir, tmp_path)  # 168 records: 4 writes
    url = store_url("dynamodb", tmp_path, "target")
    open_store(url).close()
    marker = tmp_path / "paused"
    argv = ["--store", url, "--now", NOW, "import", str(export), "--quiet"]
    code = kill_when_paused(PAUSED_IMPORT, ["3", str(marker), *argv], marker, tmp_path)
    assert code == -signal.SIGKILL
    store = open_store(url)
    try:
        assert not store.is_empty(), "the batches written before the kill are there"
    finally:
        store.close()
    cli = [sys.executable, "-m", "runtime.cli", "--store", url, "--now", NOW]
    for step in (["import", str(export)], ["import", str(export)],
                 ["export", "--out", str(tmp_path / "again")], ["audit", "verify"]):
        r = subprocess.run([*cli, *step], env=_env(), cwd=tmp_path, capture_output=True,
                           text=True, timeout=300)
        assert r.returncode == 0, (step, r.stdout + r.stderr)
    assert _same(export, tmp_path / "again")
