"""Validation errors and the bundle/task commands through the `dataops` CLI.

Each definition error: exit code 2 and exactly one line on stderr that starts with `error:` and
names the file, the field and (where the YAML gives one) the line. Bundle commands print the
export shape with the DESIGN's field names; failed commands write nothing.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from runtime.model import Bundle
from runtime.store import open_store
from tests.helpers import bundles, generated, log_of

# DESIGN "Records": the export shape's field names are part of the contract.
BUNDLE_FIELDS = {
    "bundle_id", "template_id", "template_version", "title", "anchor_date", "timezone", "stage",
    "status", "references", "required_bundle_links", "source_doc_ids", "tags", "created_at",
    "updated_at", "version",
}
BUNDLE_LINK_FIELDS = {"key", "label", "required", "url"}
TASK_FIELDS = {
    "task_id", "bundle_id", "template_id", "template_task_ref", "title", "phase", "assignee",
    "due_date", "status", "waiting_for", "follow_up_at", "completed_at", "completed_by",
    "proof_requirements", "proof", "instruction_doc_id", "instruction_step_id", "systems",
    "validation", "instructions_url", "comments", "tags", "created_at", "updated_at", "version",
}
COMMENT_FIELDS = {"comment_id", "author", "body", "created_at"}

NOW = "2026-11-25T08:00:00+00:00"
DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
INSTANT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?\+00:00$")


# ---- helpers ---------------------------------------------------------------------------------


def edit(path: Path, old: str, new: str, count: int = 1) -> None:
    """Replace the first ``count`` occurrences of ``old`` (which must be there)."""
    text = path.read_text(encoding="utf-8")
    assert text.count(old) >= count, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, count), encoding="utf-8")


def line_of(path: Path, needle: str) -> int:
    """The 1-based number of the first line of ``path`` that contains ``needle``."""
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if needle in line:
            return i
    raise AssertionError(f"{needle!r} not in {path}")


def one_error(r: Any, code: int = 2) -> str:
    """Assert the exit code and exactly one `error:` line on stderr; return that line."""
    assert r.code == code, (r.code, r.out, r.err)
    lines = r.err.splitlines()
    assert len(lines) == 1, r.err
    assert r.err.endswith("\n")
    assert lines[0].startswith("error: "), lines[0]
    assert "Traceback" not in r.err
    return lines[0]


def store_contents(tmp_path: Path) -> tuple[list[Bundle], int]:
    """The bundles and the number of audit events in the CLI's SQLite store."""
    db = tmp_path / "cli.db"
    if not db.exists():
        return [], 0
    store = open_store(f"sqlite:///{db}")
    try:
        return bundles(store), len(log_of(store))
    finally:
        store.close()


def assert_nothing_written(cli: Any, tmp_path: Path) -> None:
    assert store_contents(tmp_path) == ([], 0)
    r = cli("bundle", "list", "--json")
    assert r.code == 0, r.err
    assert r.json() == []


def assert_snake_case(value: Any, where: str = "") -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            assert re.fullmatch(r"[a-z][a-z0-9_]*", k), f"{where}.{k} is not snake_case"
            assert_snake_case(v, f"{where}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            assert_snake_case(v, f"{where}[{i}]")


def wf_file(content_dir: Path, name: str) -> Path:
    return content_dir / "workflows" / f"{name}.yaml"


# ---- the shipped content validates -----------------------------------------------------------


def test_shipped_content_validates(cli, content_dir):
    r = cli("validate", content=str(content_dir))
    assert r.code == 0, r.err
    assert r.err == ""
    assert r.out.startswith("ok: 3 workflow definitions, 4 documents")


# ---- one error each --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "field", "suggestion"),
    [
        ("    offset_days: -14\n", "    offset_day: -14\n", "tasks[0].offset_day", "offset_days"),
        ("tags: [podcast, content]", "tag: [podcast, content]", "tag", "tags"),
        ("{kind: artifact, label: Signed release form}",
         "{kind: artifact, labl: Signed release form}", "tasks[0].proof[1].labl", "label"),
        ("    instruction_doc_id: doc-podcast-sop\n    instruction_step_id: booking\n",
         "    instructionDocID: doc-podcast-sop\n", "tasks[0].instructionDocID", "instructionDocId"),
    ],
)
def test_unknown_key_suggests_the_known_one(cli, content_dir, old, new, field, suggestion):
    f = wf_file(content_dir, "podcast-episode")
    edit(f, old, new)
    wrong = field.rsplit(".", 1)[-1]
    line = line_of(f, f"{wrong}:")
    err = one_error(cli("validate", content=str(content_dir)))
    assert f"{f}:{line}:" in err
    assert field in err
    assert f"unknown field {wrong!r}" in err
    assert f"did you mean {suggestion!r}?" in err


def test_unknown_doc_id_on_a_task(cli, content_dir):
    f = wf_file(content_dir, "podcast-episode")
    edit(f, "    instruction_doc_id: doc-podcast-sop\n", "    instruction_doc_id: doc-nowhere\n")
    line = line_of(f, "doc-nowhere")
    err = one_error(cli("validate", content=str(content_dir)))
    assert f"{f}:{line}:" in err
    assert "tasks[0].instruction_doc_id" in err
    assert "'doc-nowhere'" in err


def test_unknown_doc_id_in_source_doc_ids(cli, content_dir):
    f = wf_file(content_dir, "newsletter")
    edit(f, "source_doc_ids: [doc-newsletter-playbook, doc-brand-guide]",
         "source_doc_ids: [doc-newsletter-playbook, doc-brand-guid]")
    line = line_of(f, "source_doc_ids:")
    err = one_error(cli("validate", content=str(content_dir)))
    assert f"{f}:{line}:" in err
    assert "source_doc_ids[1]" in err
    assert "'doc-brand-guid'" in err
    assert "did you mean 'doc-brand-guide'?" in err


def test_unknown_step_id(cli, content_dir):
    f = wf_file(content_dir, "podcast-episode")
    edit(f, "instruction_step_id: booking", "instruction_step_id: bookng")
    line = line_of(f, "instruction_step_id: bookng")
    err = one_error(cli("validate", content=str(content_dir)))
    assert f"{f}:{line}:" in err
    assert "tasks[0].instruction_step_id" in err
    assert "'bookng'" in err and "'doc-podcast-sop'" in err


def test_duplicate_template_id_across_two_files(cli, content_dir):
    original = wf_file(content_dir, "vat-return")
    copy = content_dir / "workflows" / "vat-return-copy.yaml"
    shutil.copy(original, copy)
    err = one_error(cli("validate", content=str(content_dir)))
    # neither file is used (which one won would depend on the names): each names the other
    line = line_of(original, "template_id:")
    assert f"{original}:{line}: template_id: 'vat-return' is also defined in {copy}" in err
    assert f"{copy}:{line}: template_id: 'vat-return' is also defined in {original}" in err
    assert "2 problems" in err
    err = one_error(cli("bundle", "create", "vat-return", "--anchor", "2026-12-01"))
    assert "template IDs must be unique across content/" in err


def test_duplicate_task_ref(cli, content_dir):
    f = wf_file(content_dir, "podcast-episode")
    edit(f, "task_ref: research-guest", "task_ref: book-guest")
    line = line_of(f, "title: Research the guest") - 1  # the task_ref line of the second task
    err = one_error(cli("validate", content=str(content_dir)))
    assert f"{f}:{line}:" in err
    assert "tasks[1].task_ref" in err and "'book-guest'" in err


def test_task_phase_not_declared(cli, content_dir):
    f = wf_file(content_dir, "vat-return")
    edit(f, "    phase: close\n", "    phase: closing\n")
    line = line_of(f, "phase: closing")
    err = one_error(cli("validate", content=str(content_dir)))
    assert f"{f}:{line}:" in err
    assert "tasks[5].phase" in err and "'closing'" in err


def test_invalid_iana_zone(cli, content_dir):
    f = wf_file(content_dir, "newsletter")
    edit(f, "timezone: America/Chicago", "timezone: America/Chicagoo")
    line = line_of(f, "timezone:")
    err = one_error(cli("validate", content=str(content_dir)))
    assert f"{f}:{line}:" in err
    assert "timezone" in err and "'America/Chicagoo'" in err and "IANA" in err


@pytest.mark.parametrize("cron", ["0 25 * * MON", "0 9 * MON", "every monday at nine"])
def test_invalid_cron(cli, content_dir, cron):
    f = wf_file(content_dir, "newsletter")
    edit(f, 'cron: "0 9 * * MON"', f'cron: "{cron}"')
    line = line_of(f, "cron:")
    err = one_error(cli("validate", content=str(content_dir)))
    assert f"{f}:{line}:" in err
    assert "trigger.cron" in err and repr(cron) in err


def test_both_offsets(cli, content_dir):
    f = wf_file(content_dir, "podcast-episode")
    edit(f, "    offset_days: -7\n", "    offset_days: -7\n    offset_business_days: -5\n")
    line = line_of(f, "task_ref: record-episode")
    err = one_error(cli("validate", content=str(content_dir)))
    assert f"{f}:{line}:" in err
    assert "tasks[2]" in err
    assert "offset_days" in err and "offset_business_days" in err


@pytest.mark.parametrize(
    ("calendar", "wrong"),
    [("{country: XX}", "'XX'"), ("{country: US, subdivision: ZZ}", "'ZZ'")],
)
def test_unknown_business_calendar(cli, content_dir, calendar, wrong):
    f = wf_file(content_dir, "vat-return")
    edit(f, "business_calendar: {country: US, subdivision: NY}", f"business_calendar: {calendar}")
    line = line_of(f, "business_calendar:")
    err = one_error(cli("validate", content=str(content_dir)))
    assert f"{f}:{line}:" in err
    assert "business_calendar" in err
    assert wrong in err  # names the part that is wrong
    if wrong == "'ZZ'":
        # the country is fine; only its subdivision is unknown
        assert "country 'US' is not known" not in err


def test_duplicate_key_is_an_error(cli, content_dir):
    """YAML allows a key twice and keeps the last value: a rule would be silently dropped."""
    f = wf_file(content_dir, "podcast-episode")
    edit(f, "    offset_days: -14\n", "    offset_days: -14\n    offset_days: -10\n")
    line = line_of(f, "offset_days: -10")
    err = one_error(cli("validate", content=str(content_dir)))
    assert f"{f}:{line}:" in err
    assert "offset_days" in err


def test_same_field_in_snake_and_camel_case(cli, content_dir):
    """Both spellings of one field in one mapping: an error that names both spellings, not a
    claim that the (known) snake_case name is unknown."""
    f = wf_file(content_dir, "podcast-episode")
    edit(f, "    instruction_step_id: booking\n",
         "    instruction_step_id: booking\n    instructionStepId: research\n")
    err = one_error(cli("validate", content=str(content_dir)))
    assert str(f) in err and "tasks[0]" in err
    assert "instruction_step_id" in err and "instructionStepId" in err
    assert "unknown field 'instruction_step_id'" not in err
    assert "did you mean 'instruction_step_id'" not in err


def test_invalid_yaml(cli, content_dir):
    f = content_dir / "workflows" / "broken.yaml"
    f.write_text("template_id: broken\nversion: 1\n  title: indented wrongly\n", encoding="utf-8")
    err = one_error(cli("validate", content=str(content_dir)))
    assert f"{f}:3:" in err
    assert "not valid YAML" in err


def test_missing_content_folder(cli, tmp_path):
    missing = tmp_path / "no-such-content"
    err = one_error(cli("validate", content=str(missing)))
    assert str(missing) in err
    assert "does not exist" in err


@pytest.mark.parametrize("name", ["task", "bundle"])
def test_missing_machine_spec(cli, content_dir, specs_copy, name):
    (specs_copy / f"{name}.yaml").unlink()
    err = one_error(cli("validate", content=str(content_dir)))
    assert str(specs_copy / f"{name}.yaml") in err and "missing" in err


def test_missing_machine_specs_package(cli, content_dir, monkeypatch):
    from runtime import machines

    monkeypatch.setattr(machines, "SPECS_PACKAGE", "runtime.no_such_specs")
    err = one_error(cli("validate", content=str(content_dir)))
    assert "runtime.no_such_specs" in err and "reinstall" in err


def test_two_errors_in_two_files_are_both_reported(cli, content_dir):
    podcast = wf_file(content_dir, "podcast-episode")
    vat = wf_file(content_dir, "vat-return")
    edit(podcast, "    offset_days: -14\n", "    offset_day: -14\n")
    edit(vat, "    phase: close\n", "    phase: closing\n")
    err = one_error(cli("validate", content=str(content_dir)))
    assert f"{podcast}:{line_of(podcast, 'offset_day:')}:" in err
    assert "tasks[0].offset_day" in err and "did you mean 'offset_days'?" in err
    assert f"{vat}:{line_of(vat, 'phase: closing')}:" in err
    assert "tasks[5].phase" in err
    assert "2 problems" in err


def test_definition_written_from_a_dict_with_several_errors(cli, tmp_path):
    """A content tree built from dicts: one run reports every problem, still on one line."""
    root = tmp_path / "built"
    (root / "workflows").mkdir(parents=True)
    (root / "docs").mkdir()
    (root / "docs" / "doc-a.yaml").write_text(yaml.safe_dump(
        {"doc_id": "doc-a", "title": "A", "location": "https://x.example.com",
         "steps": [{"step_id": "one", "title": "One"}]}))
    (root / "workflows" / "w.yaml").write_text(yaml.safe_dump({
        "template_id": "w", "version": 1, "title": "W", "timezone": "Mars/Olympus",
        "default_assignee": "me",
        "phases": [{"phase_id": "p", "title": "P"}],
        "tasks": [{"task_ref": "t", "title": "T", "phase": "q", "offset_days": 0,
                   "instruction_doc_id": "doc-a", "instruction_step_id": "two"}],
    }, sort_keys=False))
    err = one_error(cli("validate", content=str(root)))
    f = root / "workflows" / "w.yaml"
    # the model fails on the zone, so the cross-checks (phase, step) cannot run yet
    assert f"{f}:{line_of(f, 'timezone:')}:" in err and "'Mars/Olympus'" in err
    # fix the zone: both cross-reference errors are reported together
    edit(f, "Mars/Olympus", "UTC")
    err = one_error(cli("validate", content=str(root)))
    assert "2 problems" in err
    assert f"{f}:{line_of(f, 'phase: q')}: tasks[0].phase" in err
    assert f"{f}:{line_of(f, 'instruction_step_id: two')}: tasks[0].instruction_step_id" in err


# ---- a broken file does not stop the good ones ---------------------------------------------




def break_podcast(content_dir: Path) -> Path:
    f = wf_file(content_dir, "podcast-episode")
    edit(f, "    offset_days: -14\n", "    offset_day: -14\n")
    return f


def test_validate_lists_every_problem_of_several_broken_files_in_one_run(cli, content_dir):
    podcast = break_podcast(content_dir)
    vat = wf_file(content_dir, "vat-return")
    edit(vat, "    phase: close\n", "    phase: closing\n")
    half = wf_file(content_dir, "half-written")
    half.write_text("template_id: half-written\nversion: 1\n  title: indented\n", encoding="utf-8")
    doc = content_dir / "docs" / "doc-brand-guide.yaml"
    edit(doc, "location:", "locaton:")
    newsletter = wf_file(content_dir, "newsletter")
    err = one_error(cli("validate", content=str(content_dir)))
    assert err.startswith("error: 6 problems: ")
    assert f"{doc}:{line_of(doc, 'locaton:')}: locaton: unknown field 'locaton'" in err
    assert f"{doc}:1: location: required field is missing" in err
    assert (f"{newsletter}:{line_of(newsletter, 'source_doc_ids:')}: source_doc_ids[1]: unknown "
            f"document 'doc-brand-guide': the file that defines it is broken ({doc})") in err
    assert f"{half}:3: not valid YAML" in err
    assert f"{podcast}:{line_of(podcast, 'offset_day:')}: tasks[0].offset_day" in err
    assert f"{vat}:{line_of(vat, 'phase: closing')}: tasks[5].phase" in err


def test_template_list_lists_the_good_ones_and_warns_of_the_broken_one(cli, content_dir):
    f = break_podcast(content_dir)
    warning = (f"warning: 1 definition in {content_dir}/ is broken ({f}); "
               "run dataops validate\n")
    r = cli("template", "list")
    assert r.code == 0, r.err
    assert r.err == warning
    assert "newsletter" in r.out and "vat-return" in r.out and "podcast-episode" not in r.out
    r = cli("template", "list", "--json")
    assert r.code == 0, r.err
    assert [t["template_id"] for t in r.json()] == ["newsletter", "vat-return"]
    assert r.err == warning
    half = wf_file(content_dir, "half")
    half.write_text("a: [\n", encoding="utf-8")
    r = cli("template", "list")
    assert r.code == 0, r.err
    assert r.err == (f"warning: 2 definitions in {content_dir}/ are broken ({half}, {f}); "
                     "run dataops validate\n")


def test_scheduler_sweeps_beside_a_broken_definition_and_says_so(cli, content_dir):
    f = break_podcast(content_dir)
    assert cli("bundle", "create", "vat-return", "--anchor", "2026-12-01").code == 0
    r = cli("scheduler", "run", "--once", now="2026-12-07T12:00:00+00:00")
    assert r.code == 0, r.err
    assert f"warning: 1 definition in {content_dir}/ is broken ({f}); run dataops validate" in r.err
    assert "Traceback" not in r.err


def test_bundle_create_of_a_good_template_beside_a_broken_one(cli, tmp_path, content_dir):
    f = break_podcast(content_dir)
    good = cli("bundle", "create", "vat-return", "--anchor", "2026-12-01", "--json")
    assert good.code == 0, good.err
    assert good.err == ""
    assert good.json()["bundle"]["bundle_id"] == "vat-return/2026-12-01"
    err = one_error(cli("bundle", "create", "podcast-episode", "--anchor", "2026-12-01"))
    assert f"{f}:{line_of(f, 'offset_day:')}: tasks[0].offset_day" in err
    assert "did you mean 'offset_days'?" in err
    err = one_error(cli("template", "show", "podcast-episode"))
    assert "tasks[0].offset_day" in err
    assert [b.bundle_id for b in store_contents(tmp_path)[0]] == ["vat-return/2026-12-01"]


def test_reminders_due_works_beside_a_broken_definition(cli, content_dir):
    """The broken definition is the schedule-triggered one: its firings are left out."""
    f = wf_file(content_dir, "newsletter")
    edit(f, 'cron: "0 9 * * MON"', 'cron: "every monday at nine"')
    assert cli("bundle", "create", "vat-return", "--anchor", "2026-12-01").code == 0
    r = cli("reminders", "due", "--at", "2026-12-07T12:00:00+00:00", "--json")
    assert r.code == 0, r.err
    due = r.json()
    assert due and all(d["bundle_id"] == "vat-return/2026-12-01" for d in due)
    assert "overdue" in {d["kind"] for d in due}


def test_a_broken_document_file(cli, content_dir):
    doc = content_dir / "docs" / "doc-tax-handbook.yaml"
    doc.write_text("doc_id: doc-tax-handbook\ntitle: [unclosed\n", encoding="utf-8")
    vat = wf_file(content_dir, "vat-return")
    err = one_error(cli("validate", content=str(content_dir)))
    assert f"{doc}:" in err and "not valid YAML" in err
    assert f"{vat}:{line_of(vat, 'source_doc_ids:')}: source_doc_ids[0]: unknown document " \
           "'doc-tax-handbook'" in err
    r = cli("template", "list", "--json")
    assert r.code == 0, r.err
    assert [t["template_id"] for t in r.json()] == ["newsletter", "podcast-episode"]
    assert r.err.startswith(f"warning: 2 files in {content_dir}/ are broken ({doc}, {vat}); ")
    assert cli("bundle", "create", "podcast-episode", "--anchor", "2026-12-01").code == 0
    err = one_error(cli("bundle", "create", "vat-return", "--anchor", "2026-12-01"))
    assert "unknown document 'doc-tax-handbook'" in err and str(doc) in err


@pytest.mark.parametrize("n_tasks", [53, 500])
def test_a_definition_of_any_size_validates(cli, content_dir, n_tasks):
    f = wf_file(content_dir, f"big-{n_tasks}")
    f.write_text(yaml.safe_dump(generated(f"big-{n_tasks}", n_tasks)), encoding="utf-8")
    r = cli("validate", content=str(content_dir))
    assert r.code == 0, r.err
    assert r.out.startswith("ok: 4 workflow definitions")


def test_bundle_create_of_a_53_task_definition(cli, tmp_path, content_dir):
    f = wf_file(content_dir, "big-53")
    f.write_text(yaml.safe_dump(generated("big-53", 53)), encoding="utf-8")
    r = cli("bundle", "create", "big-53", "--anchor", "2026-12-01", "--json")
    assert r.code == 0, r.err
    assert len(r.json()["tasks"]) == 53
    assert store_contents(tmp_path)[1] == 54  # the bundle and its 53 tasks, one event each


# ---- bundle create failures write nothing ----------------------------------------------------


def test_bundle_create_unknown_template(cli, tmp_path):
    err = one_error(cli("bundle", "create", "no-such-template", "--anchor", "2026-12-01"), code=5)
    assert "'no-such-template'" in err
    assert "podcast-episode" in err  # lists what exists
    assert_nothing_written(cli, tmp_path)


@pytest.mark.parametrize("anchor", ["2026-13-01", "12/01/2026", "tomorrow", "2026-02-30"])
def test_bundle_create_bad_anchor(cli, tmp_path, anchor):
    err = one_error(cli("bundle", "create", "podcast-episode", "--anchor", anchor))
    assert "--anchor" in err and repr(anchor) in err
    assert_nothing_written(cli, tmp_path)


@pytest.mark.parametrize("now", ["2026-11-25T08:00:00", "2026-11-25 08:00", "not-a-time"])
def test_bundle_create_bad_now(cli, tmp_path, now):
    err = one_error(cli("bundle", "create", "podcast-episode", "--anchor", "2026-12-01", now=now))
    assert "--now" in err and repr(now) in err
    assert_nothing_written(cli, tmp_path)


def test_bundle_create_with_invalid_content_writes_nothing(cli, tmp_path, content_dir):
    edit(wf_file(content_dir, "podcast-episode"), "    offset_days: -14\n", "    offset_day: -14\n")
    err = one_error(cli("bundle", "create", "podcast-episode", "--anchor", "2026-12-01"))
    assert "offset_day" in err
    assert_nothing_written(cli, tmp_path)


# ---- bundle create is idempotent; the JSON is the export shape -------------------------------


def check_bundle_json(bundle: dict[str, Any]) -> None:
    assert bundle.keys() >= BUNDLE_FIELDS, BUNDLE_FIELDS - bundle.keys()
    for link in bundle["required_bundle_links"]:
        assert link.keys() >= BUNDLE_LINK_FIELDS
    assert DAY.match(bundle["anchor_date"])
    assert INSTANT.match(bundle["created_at"]) and INSTANT.match(bundle["updated_at"])
    assert_snake_case(bundle, "bundle")


def check_task_json(task: dict[str, Any]) -> None:
    assert task.keys() >= TASK_FIELDS, TASK_FIELDS - task.keys()
    for comment in task["comments"]:
        assert comment.keys() >= COMMENT_FIELDS
    assert DAY.match(task["due_date"])
    assert INSTANT.match(task["created_at"]) and INSTANT.match(task["updated_at"])
    assert_snake_case(task, "task")


def test_bundle_create_twice_prints_the_same_bundle_and_creates_nothing(cli, tmp_path):
    first = cli("bundle", "create", "podcast-episode", "--anchor", "2026-12-01", "--json")
    assert first.code == 0, first.err
    assert first.err == ""
    created = first.json()
    assert set(created) == {"bundle", "tasks"}
    assert created["bundle"]["bundle_id"] == "podcast-episode/2026-12-01"
    assert created["bundle"]["created_at"] == NOW
    assert len(created["tasks"]) == 8
    bundles, events = store_contents(tmp_path)
    assert [b.bundle_id for b in bundles] == ["podcast-episode/2026-12-01"]
    assert events == 9  # the bundle and its eight tasks

    second = cli("bundle", "create", "podcast-episode", "--anchor", "2026-12-01", "--json",
                 "--title", "Another title", now="2026-11-26T10:00:00+00:00")
    assert second.code == 0, second.err
    assert second.json() == created
    assert store_contents(tmp_path)[1] == events

    text = cli("bundle", "create", "podcast-episode", "--anchor", "2026-12-01")
    assert text.code == 0, text.err
    assert "exists already, nothing created" in text.out
    assert store_contents(tmp_path)[1] == events


def test_bundle_and_task_commands_print_the_export_shape(cli):
    created = cli("bundle", "create", "vat-return", "--anchor", "2026-12-01", "--json").json()
    bundle_id = "vat-return/2026-12-01"

    show = cli("bundle", "show", bundle_id, "--json")
    assert show.code == 0, show.err
    shown = show.json()
    assert shown == created
    check_bundle_json(shown["bundle"])
    b = shown["bundle"]
    assert b["template_id"] == "vat-return" and b["template_version"] == 1
    assert b["anchor_date"] == "2026-12-01" and b["timezone"] == "America/New_York"
    assert b["stage"] == "collect" and b["status"] == "active" and b["version"] == 1
    assert b["source_doc_ids"] == ["doc-tax-handbook"]
    assert b["tags"] == ["tax", "finance", "quarterly"]
    assert [link["url"] for link in b["required_bundle_links"]] == [None, None, None]
    for task in shown["tasks"]:
        check_task_json(task)

    later = cli("bundle", "create", "newsletter", "--anchor", "2026-11-27",
                now="2026-11-25T09:00:00+00:00")
    assert later.code == 0, later.err
    listed = cli("bundle", "list", "--json")
    assert listed.code == 0, listed.err
    bundles = listed.json()
    assert isinstance(bundles, list)
    assert [x["bundle_id"] for x in bundles] == ["newsletter/2026-11-27", bundle_id]  # by ID
    for x in bundles:
        check_bundle_json(x)
    assert bundles[1] == b
    only = cli("bundle", "list", "--template", "newsletter", "--json").json()
    assert [x["bundle_id"] for x in only] == ["newsletter/2026-11-27"]

    tasks = cli("task", "list", "--bundle", bundle_id, "--json")
    assert tasks.code == 0, tasks.err
    items = tasks.json()
    assert isinstance(items, list)
    assert [t["task_id"] for t in items] == [
        f"{bundle_id}/{ref}" for ref in ("collect-invoices", "reconcile-accounts",
                                          "prepare-return", "file-return", "pay-balance",
                                          "archive-records")
    ]
    assert items == shown["tasks"]
    for t in items:
        check_task_json(t)
        assert t["bundle_id"] == bundle_id and t["status"] == "todo"

    one = cli("task", "show", f"{bundle_id}/file-return", "--json")
    assert one.code == 0, one.err
    task = one.json()
    assert isinstance(task, dict)
    assert task == items[3]
    check_task_json(task)
    assert task["template_task_ref"] == "file-return"
    assert task["due_date"] == "2026-11-30"
    assert task["assignee"] == "accountant"
    assert task["instruction_doc_id"] == "doc-tax-handbook"
    assert task["instruction_step_id"] == "filing"
    assert task["systems"] == ["tax_portal"]
    assert task["proof_requirements"] == [
        {"kind": "url", "label": "Filing confirmation", "pattern": "^https://"},
        {"kind": "external_status", "system": "tax_portal", "expected": "accepted", "label": None},
    ]
    assert task["waiting_for"] is None and task["follow_up_at"] is None
    assert task["completed_at"] is None and task["completed_by"] is None

    commented = cli("task", "comment", f"{bundle_id}/file-return", "Portal opens Monday", "--json")
    assert commented.code == 0, commented.err
    after = cli("task", "show", f"{bundle_id}/file-return", "--json").json()
    check_task_json(after)
    assert len(after["comments"]) == 1
    comment = after["comments"][0]
    assert comment["author"] == "tester" and comment["body"] == "Portal opens Monday"
    assert comment["created_at"] == NOW
    assert after["version"] == 2


def test_show_unknown_bundle_and_task_exit_5(cli):
    err = one_error(cli("bundle", "show", "podcast-episode/2030-01-01", "--json"), code=5)
    assert "podcast-episode/2030-01-01" in err
    err = one_error(cli("task", "show", "podcast-episode/2030-01-01/book-guest", "--json"), code=5)
    assert "podcast-episode/2030-01-01/book-guest" in err
