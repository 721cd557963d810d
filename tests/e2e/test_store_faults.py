"""Store faults made for real, through the CLI in real processes (DESIGN.md "Errors"): a disk
that fills up, a file system that turns read-only, a flipped byte in a page of the database.
Each is one named line on stderr with its own exit code, and changes nothing it did not finish.

The small disk is a 384 KiB tmpfs mounted in a private mount namespace (``unshare --user
--map-root-user --mount``), so neither root nor a loop device is needed and nothing outside the
test sees it. A machine that cannot make one fails this test loudly: it never skips.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from datetime import date, timedelta
from pathlib import Path

import pytest

NOW = "2026-11-25T08:00:00+00:00"

DRIVER = textwrap.dedent("""
    import json, os, subprocess, sys
    disk, content, report = sys.argv[1], sys.argv[2], sys.argv[3]
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", disk], check=True)
    url = f"sqlite:///{disk}/store.db"
    with open(f"{disk}/ballast", "wb") as f:  # room to free once the disk is full
        f.write(bytes(48 * 1024))

    def cli(*argv):
        r = subprocess.run([sys.executable, "-m", "runtime.cli", "--store", url, "--content",
                            content, "--now", "%(now)s", *argv], capture_output=True, text=True)
        return {"argv": list(argv), "code": r.returncode, "out": r.stdout, "err": r.stderr}

    steps = {"init": cli("store", "init"), "creates": []}
    for anchor in %(anchors)r:
        r = cli("bundle", "create", "vat-return", "--anchor", anchor, "--json")
        steps["creates"].append(r)
        if r["code"] != 0:
            break
    steps["list_full"] = cli("bundle", "list", "--all", "--json")
    steps["verify_full"] = cli("audit", "verify")
    # Free nothing, turn the file system read-only: reads still answer, writes are refused.
    subprocess.run(["mount", "-o", "remount,ro", disk], check=True)
    first = json.loads(steps["list_full"]["out"])[0]["bundle_id"]
    steps["start_ro"] = cli("task", "start", first + "/collect-invoices")
    steps["list_ro"] = cli("bundle", "list", "--all", "--json")
    subprocess.run(["mount", "-o", "remount,rw", disk], check=True)
    steps["start_still_full"] = cli("task", "start", first + "/collect-invoices")
    os.remove(f"{disk}/ballast")  # the operator frees space, as the line says
    steps["verify_rw"] = cli("audit", "verify")
    steps["start_rw"] = cli("task", "start", first + "/collect-invoices")
    json.dump(steps, open(report, "w"))
""")


def _one_line(r: dict, code: int, *needles: str) -> None:
    assert r["code"] == code, r
    lines = r["err"].strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), r["err"]
    assert "Traceback" not in r["err"]
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_a_full_disk_then_a_read_only_one(tmp_path: Path, content_dir: Path) -> None:
    unshare = shutil.which("unshare")
    assert unshare, "this test needs util-linux's unshare (Debian: util-linux)"
    disk = tmp_path / "disk"
    disk.mkdir()
    anchors = [str(date(2026, 1, 1) + timedelta(days=i)) for i in range(400)]
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER % {"now": NOW, "anchors": anchors}, encoding="utf-8")
    report = tmp_path / "report.json"
    proc = subprocess.run([unshare, "--user", "--map-root-user", "--mount", sys.executable,
                           str(driver), str(disk), str(content_dir), str(report)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    steps = json.loads(report.read_text(encoding="utf-8"))
    assert steps["init"]["code"] == 0, steps["init"]

    creates = steps["creates"]
    made = [r for r in creates if r["code"] == 0]
    assert len(made) >= 1 and creates[-1]["code"] != 0, "the disk never filled up"
    # The disk fills: one line naming the store and what to do, exit 2, never a traceback and
    # never "cannot rollback" or "busy".
    _one_line(creates[-1], 2, "store sqlite:///", "full; free space and retry")
    assert "rollback" not in creates[-1]["err"] and "busy" not in creates[-1]["err"]
    # Nothing of the failed bundle was written: the store holds exactly the bundles that were
    # acknowledged, and every chain still verifies.
    listed = json.loads(steps["list_full"]["out"])
    assert steps["list_full"]["code"] == 0, steps["list_full"]
    assert sorted(b["bundle_id"] for b in listed) == sorted(
        json.loads(r["out"])["bundle"]["bundle_id"] for r in made)
    assert steps["verify_full"]["code"] == 0, steps["verify_full"]

    # Read-only file system: the write is refused with its own line; reads still answer.
    _one_line(steps["start_ro"], 2, "read-only")
    assert steps["list_ro"]["code"] == 0, steps["list_ro"]
    assert json.loads(steps["list_ro"]["out"]) == listed
    # Writable but still full: the full line again; then space is freed, nothing was lost and
    # the refused write goes through.
    _one_line(steps["start_still_full"], 2, "full; free space and retry")
    assert steps["verify_rw"]["code"] == 0, steps["verify_rw"]
    assert steps["start_rw"]["code"] == 0, steps["start_rw"]


def _flip_page_type(db_file: Path, table: str) -> None:
    """Overwrite the b-tree page-type byte of ``table``'s root page with a value SQLite never
    writes: one flipped byte in one page, the rest of the file untouched."""
    con = sqlite3.connect(db_file)
    page_size = con.execute("PRAGMA page_size").fetchone()[0]
    (root,) = con.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (table,)).fetchone()
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    offset = (root - 1) * page_size + (100 if root == 1 else 0)
    with open(db_file, "r+b") as f:
        f.seek(offset)
        assert f.read(1) in (b"\x0d", b"\x05")  # a table leaf or interior page
        f.seek(offset)
        f.write(b"\x42")


@pytest.mark.parametrize("argv", [["task", "list", "--all"], ["task", "show",
                                  "vat-return/2026-11-02/file-return"], ["audit", "verify"],
                                  ["task", "start", "vat-return/2026-11-02/collect-invoices"]])
def test_a_flipped_byte_in_a_page_is_a_damaged_store(run, tmp_path: Path, argv: list[str]) -> None:
    _flip_page_type(tmp_path / "cli.db", "tasks")
    r = run(*argv)
    _one_line({"code": r.code, "err": r.err}, 2, "damaged; restore it from an export")
    assert str(tmp_path / "cli.db") in r.err
    # The other tables still answer: one bad page stays one bad page.
    assert run("bundle", "list", "--all", "--json").code == 0
