"""The seed scenarios end to end through `dataops` (DESIGN "CLI", "Task lifecycle", "Proof"):
completion requires proof, waiting keeps a task open, the audit log verifies and detects
tampering with the SQLite file, and the generated diagrams are current.

Exit codes: 0 ok, 2 bad input, 3 rejected, 4 conflict, 5 not found; for 2 to 5 exactly one line
on stderr that starts with ``error:``.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import one_error_line, show

REPO = Path(__file__).resolve().parents[2]
BUNDLE = "vat-return/2026-11-02"
FILE_RETURN = f"{BUNDLE}/file-return"  # url (pattern ^https://) + external_status tax_portal
COLLECT = f"{BUNDLE}/collect-invoices"  # artifact (application/pdf, application/zip)
PAY = f"{BUNDLE}/pay-balance"  # external_status bank=paid








# ---- Completion requires proof ---------------------------------------------------------------


def test_done_without_proof_is_rejected_and_records_no_completion(run: Any) -> None:
    assert run("task", "start", FILE_RETURN).code == 0
    before = show(run, FILE_RETURN)
    r = run("task", "done", FILE_RETURN)
    assert r.code == 3
    assert r.out == ""
    line = one_error_line(r.err)
    assert FILE_RETURN in line
    assert "url 'Filing confirmation' (pattern ^https://)" in line
    assert "external_status tax_portal=accepted (reported: nothing)" in line
    after = show(run, FILE_RETURN)
    assert after == before
    assert after["status"] == "in_progress"
    assert after["completed_at"] is None and after["completed_by"] is None
    # also with --json: nothing on stdout, the same one-line error
    r = run("task", "done", FILE_RETURN, "--json")
    assert r.code == 3 and r.out == ""
    one_error_line(r.err)


def test_attach_then_done_records_the_actor(run: Any) -> None:
    r = run("task", "attach", FILE_RETURN, "--url", "https://tax.example.gov/c/1", "--json")
    assert r.code == 0, r.err
    assert [(p["kind"], p["value"]) for p in r.json()["proof"]] == [
        ("url", "https://tax.example.gov/c/1")]
    r = run("task", "done", FILE_RETURN)
    assert r.code == 3
    line = one_error_line(r.err)
    assert "tax_portal=accepted (reported: nothing)" in line and "Filing confirmation" not in line
    r = run("task", "attach", FILE_RETURN, "--external-status", "tax_portal=pending")
    assert r.code == 0, r.err
    r = run("task", "done", FILE_RETURN)
    assert r.code == 3 and "(reported: pending)" in one_error_line(r.err)
    assert run("task", "attach", FILE_RETURN, "--external-status", "tax_portal=accepted").code == 0
    r = run("task", "done", FILE_RETURN, "--json", actor="alice")
    assert r.code == 0, r.err
    task = r.json()
    assert task["status"] == "done"
    assert task["completed_by"] == "alice"
    assert task["completed_at"] == "2026-11-25T08:00:00+00:00"
    assert show(run, FILE_RETURN) == task


def test_attach_a_file_then_done(run: Any, tmp_path: Path) -> None:
    pdf = tmp_path / "invoices.pdf"
    pdf.write_bytes(b"%PDF-1.7 invoices\n")
    r = run("task", "done", COLLECT)
    assert r.code == 3 and "artifact 'Invoice bundle'" in one_error_line(r.err)
    r = run("task", "attach", COLLECT, "--file", str(pdf), "--json")
    assert r.code == 0, r.err
    entry = r.json()["proof"][-1]
    assert entry["kind"] == "artifact" and entry["artifact_id"]
    assert entry["content_type"] == "application/pdf"
    blobs = [p for p in tmp_path.rglob("*") if p.is_file() and p.read_bytes() == pdf.read_bytes()]
    assert any(p != pdf for p in blobs)  # a copy of the binary landed in the artifact folder
    r = run("task", "done", COLLECT, "--json")
    assert r.code == 0, r.err
    assert r.json()["completed_by"] == "tester"


def test_bad_attach_input_exits_2(run: Any) -> None:
    for argv in (("--url", "not-a-url"), ("--external-status", "no-equals-sign"),
                 ("--comment", "  "), ("--file", "/no/such/file.pdf")):
        r = run("task", "attach", PAY, *argv)
        assert r.code == 2, (argv, r.err)
        one_error_line(r.err)
    assert show(run, PAY)["proof"] == []
    assert show(run, PAY)["version"] == 1


# ---- Waiting work creates follow-up state without closing the task ---------------------------


def test_wait_keeps_the_task_open_and_listed(run: Any) -> None:
    before = show(run, PAY)
    r = run("task", "wait", PAY, "--waiting-for", "the bank", "--follow-up-at",
            "2026-12-01T09:00:00+01:00", "--json")
    assert r.code == 0, r.err
    task = r.json()
    assert task["status"] == "waiting"
    assert task["waiting_for"] == "the bank"
    assert task["follow_up_at"] == "2026-12-01T08:00:00+00:00"
    assert task["due_date"] == before["due_date"]
    assert task["completed_at"] is None and task["completed_by"] is None
    assert task["version"] == before["version"] + 1
    listed = run("task", "list", "--status", "waiting", "--json")
    assert listed.code == 0
    assert [t["task_id"] for t in listed.json()] == [PAY]
    assert listed.json()[0] == task
    # still open: the bundle is active and the task is not among the closed ones
    bundle = run("bundle", "show", BUNDLE, "--json").json()["bundle"]
    assert bundle["status"] == "active"
    assert run("task", "list", "--status", "done", "--json").json() == []
    # the human view names the waiting fields and what is allowed now
    r = run("task", "show", PAY)
    assert r.code == 0
    assert "the bank" in r.out
    allowed = [line for line in r.out.splitlines() if line.startswith("allowed now")]
    assert len(allowed) == 1
    assert "resume" in allowed[0] and "cancel" in allowed[0]
    assert "complete" not in allowed[0]
    # it drives a follow-up-due reminder when the follow-up date arrives
    r = run("reminders", "due", "--at", "2026-12-01T08:00:00+00:00", "--json")
    assert r.code == 0, r.err
    kinds = {(x["kind"], x["entity_id"]) for x in r.json()}
    assert ("follow_up_due", PAY) in kinds


def test_wait_then_resume_then_done(run: Any) -> None:
    assert run("task", "wait", PAY, "--waiting-for", "bank", "--follow-up-at",
               "2026-11-26T09:00:00Z").code == 0
    r = run("task", "done", PAY)
    assert r.code == 3
    assert "resume" in one_error_line(r.err)
    assert show(run, PAY)["status"] == "waiting"
    r = run("task", "resume", PAY, "--json")
    assert r.code == 0, r.err
    assert (r.json()["waiting_for"], r.json()["follow_up_at"]) == (None, None)
    assert run("task", "attach", PAY, "--external-status", "bank=paid").code == 0
    assert run("task", "done", PAY).code == 0


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (("--waiting-for", "bank", "--follow-up-at", "2026-12-01T09:00:00"), "offset"),
        (("--waiting-for", "bank", "--follow-up-at", "next tuesday"), "ISO-8601"),
        (("--waiting-for", "bank"), "--follow-up-at"),
        (("--follow-up-at", "2026-12-01T09:00:00+00:00"), "--waiting-for"),
    ],
    ids=["naive", "garbage", "no-follow-up", "no-waiting-for"],
)
def test_wait_with_bad_input_exits_2(run: Any, argv: tuple[str, ...], needle: str) -> None:
    before = show(run, PAY)
    r = run("task", "wait", PAY, *argv)
    assert r.code == 2, r.err
    assert needle in r.err
    if "usage:" not in r.err:  # argparse's own usage error prints its usage line first
        one_error_line(r.err)
    assert show(run, PAY) == before


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (("--waiting-for", "  ", "--follow-up-at", "2026-12-01T09:00:00+00:00"), "waiting_for"),
        (("--waiting-for", "bank", "--follow-up-at", "2026-11-25T08:00:00+00:00"), "not later"),
        (("--waiting-for", "bank", "--follow-up-at", "2026-11-01T08:00:00+00:00"), "not later"),
    ],
    ids=["blank-waiting-for", "follow-up-now", "follow-up-past"],
)
def test_wait_rejected_by_the_guard_exits_3(run: Any, argv: tuple[str, ...], needle: str) -> None:
    before = show(run, PAY)
    r = run("task", "wait", PAY, *argv)
    assert r.code == 3, r.err
    assert needle in one_error_line(r.err)
    assert show(run, PAY) == before


def test_cancel_and_reopen_need_a_reason(run: Any) -> None:
    r = run("task", "cancel", PAY, "--reason", " ")
    assert r.code == 3 and "reason" in one_error_line(r.err)
    assert run("task", "cancel", PAY, "--reason", "paid by direct debit").code == 0
    r = run("task", "start", PAY)
    assert r.code == 3 and "not allowed from state cancelled" in one_error_line(r.err)
    r = run("task", "reopen", PAY, "--reason", "", "--json")
    assert r.code == 3
    r = run("task", "reopen", PAY, "--reason", "the debit bounced", "--json")
    assert r.code == 0 and r.json()["status"] == "in_progress"


# ---- not found -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ("task", "show", f"{BUNDLE}/no-such-task"),
        ("task", "start", f"{BUNDLE}/no-such-task"),
        ("task", "done", "nope"),
        ("task", "attach", "nope", "--url", "https://x.example.com/"),
        ("bundle", "show", "vat-return/1999-01-01"),
    ],
)
def test_unknown_ids_exit_5(run: Any, argv: tuple[str, ...]) -> None:
    r = run(*argv)
    assert r.code == 5, r.err
    line = one_error_line(r.err)
    assert argv[2] in line


# ---- audit log -------------------------------------------------------------------------------


def busy(run: Any) -> None:
    """A handful of commands: every one appends audit events."""
    for argv in (
        ("task", "start", FILE_RETURN),
        ("task", "attach", FILE_RETURN, "--url", "https://tax.example.gov/c/1"),
        ("task", "attach", FILE_RETURN, "--external-status", "tax_portal=accepted"),
        ("task", "done", FILE_RETURN),
        ("task", "assign", PAY, "carol"),
        ("task", "comment", PAY, "due on the 2nd"),
        ("bundle", "link", BUNDLE, "evidence_folder", "https://drive.example.com/ev"),
    ):
        r = run(*argv)
        assert r.code == 0, (argv, r.err)


def test_audit_log_and_verify(run: Any) -> None:
    busy(run)
    r = run("audit", "log", "--json")
    assert r.code == 0
    events = r.json()
    assert isinstance(events, list) and len(events) >= 10
    chains: dict[str, list[int]] = {}
    for e in events:  # oldest first; each entity's chain in order, from 1
        chains.setdefault(e["entity_id"], []).append(e["seq"])
    assert all(seqs == list(range(1, len(seqs) + 1)) for seqs in chains.values()), chains
    for e in events:
        assert set(e) >= {"event_id", "seq", "actor", "entity_type", "entity_id", "action",
                          "before", "after", "summary", "at", "prev_hash", "hash"}
    r = run("audit", "log", "--entity", FILE_RETURN, "--json")
    assert r.code == 0
    mine = r.json()
    assert {e["entity_id"] for e in mine} == {FILE_RETURN}
    assert [e["action"] for e in mine] == ["create", "start", "attach", "attach", "complete"]
    assert mine[-1]["before"]["status"] == "in_progress"
    assert mine[-1]["after"]["status"] == "done"
    assert mine[-1]["after"]["completed_by"] == "tester"
    r = run("audit", "log", "--entity", FILE_RETURN)
    assert r.code == 0 and FILE_RETURN in r.out
    r = run("audit", "verify")
    assert r.code == 0, r.err
    assert r.out.startswith("ok:") and str(len(events)) in r.out


def _db(tmp_path: Path) -> sqlite3.Connection:
    return sqlite3.connect(tmp_path / "cli.db", isolation_level=None)


CHAIN = FILE_RETURN  # created, started, two proofs, done: events #1..#5 of its own chain


def _doc(db: sqlite3.Connection, seq: int, entity: str = CHAIN) -> dict[str, Any]:
    row = db.execute("SELECT doc FROM audit_events WHERE entity_id = ? AND seq = ?",
                     (entity, seq)).fetchone()
    data: dict[str, Any] = json.loads(row[0])
    return data


def _set(db: sqlite3.Connection, seq: int, sql: str, *args: Any) -> None:
    db.execute(f"UPDATE audit_events SET {sql} WHERE entity_id = ? AND seq = ?",
               (*args, CHAIN, seq))


def _verify_fails(run: Any) -> str:
    r = run("audit", "verify")
    assert r.code == 2, (r.out, r.err)
    return one_error_line(r.err)


def test_verify_detects_an_edited_event(run: Any, tmp_path: Path) -> None:
    busy(run)
    with _db(tmp_path) as db:
        doc = _doc(db, 3)
        doc["summary"] = "nothing to see here"
        _set(db, 3, "doc = ?", json.dumps(doc))
    line = _verify_fails(run)
    assert CHAIN in line and "#3" in line and doc["event_id"] in line
    assert "edited" in line


def test_verify_detects_an_edited_actor_with_a_recomputed_hash(run: Any, tmp_path: Path) -> None:
    """Recomputing the edited event's own hash does not help: the next event links to the old
    one."""
    from runtime.model import AuditEvent
    from runtime.rules.audit import event_hash

    busy(run)
    with _db(tmp_path) as db:
        doc = _doc(db, 3)
        doc["actor"] = "mallory"
        doc["hash"] = event_hash(AuditEvent.model_validate(doc))
        _set(db, 3, "doc = ?", json.dumps(doc))
    line = _verify_fails(run)
    assert "#4" in line and CHAIN in line


def test_verify_detects_a_deleted_event(run: Any, tmp_path: Path) -> None:
    busy(run)
    with _db(tmp_path) as db:
        removed = _doc(db, 3)
        db.execute("DELETE FROM audit_events WHERE entity_id = ? AND seq = 3", (CHAIN,))
    line = _verify_fails(run)
    assert "#4" in line and "#3" in line  # at event #4: expected event #3 here
    assert removed["event_id"] not in line


def test_verify_detects_swapped_events(run: Any, tmp_path: Path) -> None:
    busy(run)
    with _db(tmp_path) as db:
        _set(db, 3, "seq = -1")
        _set(db, 4, "seq = 3")
        _set(db, -1, "seq = 4")
    line = _verify_fails(run)
    assert "#4" in line and "#3" in line  # event #4 found where #3 was expected


def test_verify_detects_swapped_events_with_renumbered_docs(run: Any, tmp_path: Path) -> None:
    busy(run)
    with _db(tmp_path) as db:
        three, four = _doc(db, 3), _doc(db, 4)
        three["seq"], four["seq"] = 4, 3
        _set(db, 3, "seq = -1")
        _set(db, 4, "seq = 3, doc = ?", json.dumps(four))
        _set(db, -1, "seq = 4, doc = ?", json.dumps(three))
    line = _verify_fails(run)
    assert "#3" in line and four["event_id"] in line


def test_verify_detects_a_truncated_chain(run: Any, tmp_path: Path) -> None:
    """The last event removed: every event left still links, but the record's chain head
    names the event that is gone."""
    busy(run)
    with _db(tmp_path) as db:
        db.execute("DELETE FROM audit_events WHERE entity_id = ? AND seq = 5", (CHAIN,))
    line = _verify_fails(run)
    assert CHAIN in line and "truncated" in line


def test_verify_detects_a_record_edited_in_place(run: Any, tmp_path: Path) -> None:
    busy(run)
    with _db(tmp_path) as db:
        doc = json.loads(db.execute("SELECT doc FROM tasks WHERE task_id = ?", (PAY,)).fetchone()[0])
        doc["assignee"] = "mallory"
        db.execute("UPDATE tasks SET doc = ? WHERE task_id = ?", (json.dumps(doc), PAY))
    line = _verify_fails(run)
    assert PAY in line and "edited in place" in line


def test_verify_against_a_seal_detects_an_entity_removed_with_all_its_events(
        run: Any, tmp_path: Path) -> None:
    busy(run)
    r = run("audit", "seal")
    assert r.code == 0 and "root" in r.out
    assert run("audit", "verify").code == 0
    with _db(tmp_path) as db:
        db.execute("DELETE FROM audit_events WHERE entity_id = ?", (PAY,))
        db.execute("DELETE FROM tasks WHERE task_id = ?", (PAY,))
    line = _verify_fails(run)
    assert PAY in line and "gone with all its events" in line


# ---- diagrams --------------------------------------------------------------------------------


def test_diagrams_in_the_repo_are_current(cli: Any) -> None:
    r = cli("diagrams", "--check", "--out", str(REPO / "docs" / "diagrams"))
    assert r.code == 0, r.err
    assert r.out.startswith("ok:")


def test_diagrams_check_fails_when_a_spec_is_missing(cli: Any, specs_copy: Path) -> None:
    assert cli("diagrams", "--check", "--out", str(REPO / "docs" / "diagrams")).code == 0
    (specs_copy / "bundle.yaml").unlink()
    r = cli("diagrams", "--check", "--out", str(REPO / "docs" / "diagrams"))
    assert r.code == 2
    assert str(specs_copy / "bundle.yaml") in one_error_line(r.err)


def test_diagrams_check_fails_on_an_edited_copy(cli: Any, tmp_path: Path) -> None:
    copy = tmp_path / "diagrams"
    shutil.copytree(REPO / "docs" / "diagrams", copy)
    assert cli("diagrams", "--check", "--out", str(copy)).code == 0
    (copy / "task.mmd").write_text((copy / "task.mmd").read_text() + "  todo --> done\n")
    r = cli("diagrams", "--check", "--out", str(copy))
    assert r.code != 0
    line = one_error_line(r.err)
    assert "task.mmd" in line and "bundle.mmd" not in line
    # regenerating fixes it
    assert cli("diagrams", "--out", str(copy)).code == 0
    assert cli("diagrams", "--check", "--out", str(copy)).code == 0
    (copy / "bundle.mmd").unlink()
    r = cli("diagrams", "--check", "--out", str(copy))
    assert r.code != 0 and "bundle.mmd" in one_error_line(r.err)
