"""Hardening through `dataops`: an export reads only its own folder, human output escapes
terminal control characters, proof goes to open tasks only, a file's type is sniffed from its
bytes, and messages name what is wrong (a folder, a bundle)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import one_error_line, show

BUNDLE = "vat-return/2026-11-02"
COLLECT = f"{BUNDLE}/collect-invoices"  # artifact (application/pdf, application/zip)
PAY = f"{BUNDLE}/pay-balance"  # external_status bank=paid
EVIL = "x\x1b[31mred\nforged line\x9b2J"
PDF = b"%PDF-1.7 invoices\n"
PNG = bytes.fromhex("89504e470d0a1a0a0000000d49484452") + b"\0" * 16








def no_controls(text: str) -> None:
    assert "\x1b" not in text and "\x9b" not in text, text
    assert not any(line.startswith("forged line") for line in text.splitlines()), text


# ---- 1. an export reads only files inside its folder ----------------------------------------


@pytest.fixture
def exported(run: Any, tmp_path: Path) -> Path:
    out = tmp_path / "export"
    assert run("export", "--out", str(out)).code == 0
    return out


def _point(directory: Path, entity: str, file: str) -> None:
    manifest = json.loads((directory / "manifest.json").read_text())
    for entry in manifest["entities"]:
        if entry["entity_type"] == entity:
            entry["file"] = file
    (directory / "manifest.json").write_text(json.dumps(manifest))


def _outside(cli: Any, directory: Path, file: str) -> None:
    r = cli("export", "validate", str(directory))
    assert r.code == 2, r.out + r.err
    line = one_error_line(r.err)
    assert f"manifest.json: entity task: file {file!r} is outside the export folder" in line, line


def test_an_absolute_file_is_outside_and_never_read(exported: Path, run: Any) -> None:
    _point(exported, "task", "/etc/passwd")
    _outside(run, exported, "/etc/passwd")
    r = run("export", "validate", str(exported))
    assert ":0:0:" not in r.err and "tasks.jsonl" not in r.err  # the file was never parsed


def test_a_dotdot_file_with_a_matching_checksum_is_not_imported(exported: Path, run: Any,
                                                                tmp_path: Path) -> None:
    outside = tmp_path / "x"
    outside.write_bytes((exported / "tasks.jsonl").read_bytes())
    _point(exported, "task", "../x")
    _outside(run, exported, "../x")
    r = run("import", str(exported), store=f"sqlite:///{tmp_path / 'target.db'}")
    assert r.code == 2 and "is outside the export folder" in one_error_line(r.err)


def test_a_symlink_out_of_the_folder_is_not_followed(exported: Path, run: Any,
                                                     tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere.jsonl"
    (exported / "tasks.jsonl").rename(outside)
    os.symlink(outside, exported / "tasks.jsonl")
    _outside(run, exported, "tasks.jsonl")


def test_a_symlink_inside_the_folder_is_read(exported: Path, run: Any) -> None:
    (exported / "tasks.jsonl").rename(exported / "real-tasks.jsonl")
    os.symlink("real-tasks.jsonl", exported / "tasks.jsonl")
    assert run("export", "validate", str(exported)).code == 0


# ---- 2. human output escapes control characters; JSON is unchanged ---------------------------


def test_control_characters_are_escaped_in_human_output(run: Any, tmp_path: Path) -> None:
    url = "https://ok.example.com/\x1b[31mred"  # a URL has no whitespace; see below for \\n
    assert run("task", "comment", COLLECT, EVIL).code == 0
    assert run("task", "attach", PAY, "--url", url).code == 0
    assert run("task", "assign", PAY, "eve\x1b[2J").code == 0
    weird = tmp_path / "in\x1bvoice\n.pdf"
    weird.write_bytes(PDF)
    assert run("task", "attach", COLLECT, "--file", str(weird)).code == 0
    assert run("bundle", "link", BUNDLE, "evidence_folder", url).code == 0
    wait = run("task", "wait", f"{BUNDLE}/reconcile-accounts", "--waiting-for", EVIL,
               "--follow-up-at", "2026-11-26T09:00:00+00:00")
    assert wait.code == 0, wait.err
    assert run("scheduler", "run", "--once", now="2026-11-27T12:00:00+00:00").code == 0
    for argv in (("task", "show", COLLECT), ("task", "show", PAY), ("task", "list"),
                 ("bundle", "show", BUNDLE), ("reminders", "list"), ("audit", "log")):
        r = run(*argv)
        assert r.code == 0, (argv, r.err)
        no_controls(r.out + r.err)
    shown = run("task", "show", COLLECT).out
    assert "x\\x1b[31mred\\nforged line\\x9b2J" in shown
    assert "in\\x1bvoice\\n.pdf" in shown
    assert "\\x1b[2J" in run("task", "list").out
    assert show(run, COLLECT)["comments"][-1]["body"] == EVIL  # JSON keeps the value
    assert show(run, PAY)["proof"][-1]["value"] == url


def test_a_stored_newline_in_a_url_cannot_forge_a_line(run: Any,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """A record may come from an import or an older version: render escapes what it holds."""
    from runtime.cli import render
    from runtime.model import Task

    assert run("task", "attach", PAY, "--url", "https://ok.example.com/a").code == 0
    data = show(run, PAY)
    data["proof"][-1]["value"] = "https://ok.example.com/\x1b[31m\nforged line"
    data["comments"] = [{"comment_id": "cmt-1", "author": "eve\n", "body": EVIL,
                         "created_at": data["updated_at"]}]
    capsys.readouterr()
    render.task(Task.model_validate(data))
    render.tasks([Task.model_validate(data)])
    printed = capsys.readouterr().out
    no_controls(printed)
    assert "https://ok.example.com/\\x1b[31m\\nforged line" in printed


def test_an_error_line_escapes_control_characters(run: Any) -> None:
    r = run("task", "show", "no\x1b[31m\nsuch")
    assert r.code == 5
    assert "\x1b" not in one_error_line(r.err)


# ---- 3. proof goes to open tasks only --------------------------------------------------------


@pytest.mark.parametrize("argv", [("--url", "https://bank.example.com/1"),
                                  ("--comment", "late proof"),
                                  ("--external-status", "bank=paid"),
                                  ("--file", "FILE")])
def test_proof_on_a_closed_task_is_rejected_and_changes_nothing(
        run: Any, tmp_path: Path, argv: tuple[str, str]) -> None:
    pdf = tmp_path / "late.pdf"
    pdf.write_bytes(PDF + b"late")
    argv = (argv[0], str(pdf)) if argv[1] == "FILE" else argv
    assert run("task", "cancel", PAY, "--reason", "not needed").code == 0
    before = show(run, PAY)
    r = run("task", "attach", PAY, *argv)
    assert r.code == 3, r.err
    line = one_error_line(r.err)
    assert f"task {PAY}" in line and "it is cancelled; reopen it first to attach proof" in line
    assert show(run, PAY) == before
    digest = hashlib.sha256(pdf.read_bytes()).hexdigest()
    assert not list(tmp_path.rglob(digest))  # no binary was written
    assert run("task", "comment", PAY, "a note after closing").code == 0  # comments stay allowed


def test_proof_on_a_done_task_is_rejected_until_reopened(run: Any) -> None:
    assert run("task", "attach", PAY, "--external-status", "bank=paid").code == 0
    assert run("task", "done", PAY).code == 0
    r = run("task", "attach", PAY, "--url", "https://bank.example.com/2")
    assert r.code == 3 and "it is done; reopen it first" in one_error_line(r.err)
    assert run("task", "reopen", PAY, "--reason", "one more receipt").code == 0
    assert run("task", "attach", PAY, "--url", "https://bank.example.com/2").code == 0


# ---- 4. a file's content type is sniffed from its bytes --------------------------------------


def test_the_sniffed_type_wins_over_the_extension(run: Any, tmp_path: Path) -> None:
    fake = tmp_path / "invoices.pdf"
    fake.write_bytes(PNG)  # a PNG named .pdf
    r = run("task", "attach", COLLECT, "--file", str(fake), "--json")
    assert r.code == 0, r.err
    assert r.json()["proof"][-1]["content_type"] == "image/png"
    r = run("task", "done", COLLECT)
    assert r.code == 3
    assert "(attached: image/png)" in one_error_line(r.err)
    real = tmp_path / "scan.bin"
    real.write_bytes(PDF)  # a PDF with an unhelpful name
    r = run("task", "attach", COLLECT, "--file", str(real), "--json")
    assert r.json()["proof"][-1]["content_type"] == "application/pdf"
    assert run("task", "done", COLLECT).code == 0


def test_unrecognised_bytes_fall_back_to_the_extension(run: Any, tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("plain words\n")
    r = run("task", "attach", COLLECT, "--file", str(notes), "--json")
    assert r.json()["proof"][-1]["content_type"] == "text/plain"


# ---- 5. messages name what is wrong ----------------------------------------------------------


def test_a_folder_is_not_a_file(run: Any, tmp_path: Path) -> None:
    r = run("task", "attach", COLLECT, "--file", str(tmp_path))
    assert r.code == 2
    line = one_error_line(r.err)
    assert "is a folder, not a file" in line and "no such file" not in line


def test_bundle_rejections_say_bundle(run: Any) -> None:
    assert run("bundle", "cancel", BUNDLE, "--reason", "dropped").code == 0
    r = run("bundle", "cancel", BUNDLE, "--reason", "again")
    assert r.code == 3
    line = one_error_line(r.err)
    assert f"bundle {BUNDLE} cannot cancel" in line and "task " not in line
