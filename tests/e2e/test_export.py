"""Seed scenario "Portable export remains migration-safe", through the CLI."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from runtime.export import ENTITIES, RELATIONSHIPS, load_export

BUNDLE = "podcast-episode/2026-12-01"
BOOK = f"{BUNDLE}/book-guest"


@pytest.fixture
def populated(cli, tmp_path: Path) -> Path:
    """A representative run: bundle, tasks, proof (url + artifact), waiting, reminders, audit."""
    assert cli("bundle", "create", "podcast-episode", "--anchor", "2026-12-01").code == 0
    assert cli("task", "start", BOOK).code == 0
    assert cli("task", "attach", BOOK, "--url", "https://cal.example.com/booking/1").code == 0
    release = tmp_path / "release.pdf"
    release.write_bytes(b"%PDF-1.4 signed\n")
    assert cli("task", "attach", BOOK, "--file", str(release)).code == 0
    assert cli("task", "done", BOOK).code == 0
    wait = cli("task", "wait", f"{BUNDLE}/research-guest", "--waiting-for", "guest bio",
               "--follow-up-at", "2026-11-27T09:00:00+01:00")
    assert wait.code == 0, wait.err
    job = cli("job", "enqueue", f"{BUNDLE}/research-guest", "--kind", "draft-bio", "--input",
              '{"tone": "warm"}', "--json")
    assert job.code == 0, job.err
    assert cli("job", "claim", "--kind", "draft-bio", "--worker", "w1").code == 0
    done = cli("job", "complete", job.json()["assistant_job_id"], "--output", '{"words": 80}',
               "--worker", "w1", "--file", str(release))
    assert done.code == 0, done.err
    tok = cli("token", "create", "--actor", "ui", "--role", "operator", "--json")
    assert tok.code == 0, tok.err
    assert cli("token", "revoke", tok.json()["token_id"]).code == 0
    assert cli("bundle", "create", "vat-return", "--anchor", "2026-12-08").code == 0
    r = cli("scheduler", "run", "--once", "--sink", f"file://{tmp_path / 'r.jsonl'}",
            now="2026-11-28T12:00:00+00:00")
    assert r.code == 0, r.err
    # bob's digest time (08:30 in New York): a person channel gathers it into a digest (nobody
    # in the shipped directory has a chat webhook, so nothing is posted)
    r = cli("scheduler", "run", "--once", "--sink", f"file://{tmp_path / 'r.jsonl'}",
            "--sink", "chat://", now="2026-11-28T13:30:00+00:00")
    assert r.code == 0, r.err
    out = tmp_path / "export"
    assert cli("export", "--out", str(out)).code == 0
    return out


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_export_is_snake_case_with_stable_ids_and_relationships(populated: Path, cli) -> None:
    manifest = json.loads((populated / "manifest.json").read_text())
    listed = {e["entity_type"]: e for e in manifest["entities"]}
    assert set(listed) == {e.entity_type for e in ENTITIES}
    assert all(listed[k]["implemented"] for k in listed)
    assert "task.bundle_id -> bundle.bundle_id" in manifest["relationships"]
    assert "artifact.task_id -> task.task_id" in manifest["relationships"]
    assert manifest["format_version"] == 4
    [digest] = _lines(populated / "digests.jsonl")
    assert digest["person_id"] == "bob" and digest["local_date"] == "2026-11-28"
    routed = {r["reminder_id"]: r for r in _lines(populated / "reminders.jsonl") if "recipients" in r}
    assert set(digest["reminder_ids"]) <= set(routed)
    assert all(any(x["person_id"] == "bob" and x["digest_id"] == digest["digest_id"]
                   for x in routed[rid]["recipients"]) for rid in digest["reminder_ids"])
    for entry in manifest["entities"]:
        data = (populated / entry["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"]
        assert len(data.decode().splitlines()) == entry["count"]
    tasks = _lines(populated / "tasks.jsonl")
    bundle_ids = {b["bundle_id"] for b in _lines(populated / "bundles.jsonl")}
    assert BUNDLE in bundle_ids
    assert {t["bundle_id"] for t in tasks} <= bundle_ids
    book = next(t for t in tasks if t["task_id"] == BOOK)
    assert book["completed_by"] == "tester" and book["status"] == "done"
    artifact_ids = [p["artifact_id"] for p in book["proof"] if p["kind"] == "artifact"]
    artifacts = {a["artifact_id"]: a for a in _lines(populated / "artifacts.jsonl")}
    [job] = _lines(populated / "assistant_jobs.jsonl")
    assert job["status"] == "succeeded" and job["output"] == {"words": 80}
    assert set(artifacts) == {*artifact_ids, job["output_artifact_id"]}
    assert artifacts[artifact_ids[0]]["task_id"] == BOOK
    assert artifacts[artifact_ids[0]]["bundle_id"] == BUNDLE
    waiting = next(t for t in tasks if t["status"] == "waiting")
    assert waiting["waiting_for"] == "guest bio"
    assert waiting["follow_up_at"] == "2026-11-27T08:00:00+00:00"
    reminders = _lines(populated / "reminders.jsonl")
    assert any(r["kind"] == "follow_up_due" and r["task_id"] == waiting["task_id"] for r in reminders)
    for entry in manifest["entities"]:
        for record in _lines(populated / entry["file"]):
            assert not {"PK", "SK", "rowid", "pos"} & record.keys()
            assert all(k == k.lower() for k in record), record.keys()
            assert record[entry["id_field"]]
    assert cli("export", "validate", str(populated)).code == 0


def _rewrite(directory: Path, file: str, edit) -> None:
    """Edit one file and fix its checksum, so only the edit itself is wrong."""
    path = directory / file
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    lines = edit(lines)
    text = "".join(json.dumps(x) + "\n" for x in lines)
    path.write_text(text)
    manifest = json.loads((directory / "manifest.json").read_text())
    for entry in manifest["entities"]:
        if entry["file"] == file:
            entry["sha256"] = hashlib.sha256(text.encode()).hexdigest()
            entry["count"] = len(lines)
    (directory / "manifest.json").write_text(json.dumps(manifest))


def _broken(cli, directory: Path, *needles: str) -> None:
    r = cli("export", "validate", str(directory))
    assert r.code == 2, r.out + r.err
    assert r.err.startswith("error:") and len(r.err.strip().splitlines()) == 1
    for needle in needles:
        assert needle in r.err, r.err


def test_a_changed_file_fails_its_checksum(populated: Path, cli) -> None:
    with (populated / "tasks.jsonl").open("a") as f:
        f.write("\n")
    _broken(cli, populated, "tasks.jsonl", "checksum")




def test_dangling_task_bundle_id(populated: Path, cli) -> None:
    def orphan(tasks):
        tasks[0]["bundle_id"] = "podcast-episode/1999-01-01"
        return tasks

    _rewrite(populated, "tasks.jsonl", orphan)
    _broken(cli, populated, "tasks.jsonl", "bundle_id 'podcast-episode/1999-01-01'")


def test_a_store_key_is_refused(populated: Path, cli) -> None:
    def keyed(bundles):
        bundles[0]["PK"] = "BUNDLE#" + bundles[0]["bundle_id"]
        return bundles

    _rewrite(populated, "bundles.jsonl", keyed)
    _broken(cli, populated, "bundles.jsonl:1", "PK")


def test_camel_case_fields_are_refused(populated: Path, cli) -> None:
    def camel(tasks):
        tasks[0]["bundleId"] = tasks[0].pop("bundle_id")
        return tasks

    _rewrite(populated, "tasks.jsonl", camel)
    _broken(cli, populated, "tasks.jsonl:1", "snake_case")


def test_an_unlisted_entity_is_refused(populated: Path, cli) -> None:
    manifest = json.loads((populated / "manifest.json").read_text())
    manifest["entities"] = [e for e in manifest["entities"] if e["entity_type"] != "assistant_job"]
    (populated / "manifest.json").write_text(json.dumps(manifest))
    _broken(cli, populated, "assistant_job", "implemented: false")


def test_an_edited_audit_event_breaks_the_export(populated: Path, cli) -> None:
    def edit(events):
        events[2]["summary"] = "nothing to see"
        return events

    _rewrite(populated, "audit_events.jsonl", edit)
    _broken(cli, populated, "its content was edited after it was written")


@pytest.mark.parametrize("target", ["memory://", "sqlite"])
def test_import_round_trips_every_id(populated: Path, cli, tmp_path: Path, target: str) -> None:
    url = f"sqlite:///{tmp_path / 'copy.db'}" if target == "sqlite" else target
    if target == "memory://":
        # a memory store lives in one process: import and re-export in one library call
        from runtime.export import export_store, import_export
        from runtime.model.common import utc
        from runtime.store import open_store

        store = open_store(url)
        import_export(store, populated)
        export_store(store, tmp_path / "again", utc(2026, 11, 28))
    else:
        assert cli("import", str(populated), store=url).code == 0
        assert cli("audit", "verify", store=url).code == 0
        assert cli("export", "--out", str(tmp_path / "again"), store=url).code == 0
    for spec in ENTITIES:
        assert (tmp_path / "again" / spec.file).read_text() == (populated / spec.file).read_text()


def test_importing_an_export_into_the_store_that_holds_it_changes_nothing(
        populated: Path, cli, tmp_path: Path) -> None:
    r = cli("import", str(populated))
    assert r.code == 0, r.err
    assert cli("export", "--out", str(tmp_path / "again")).code == 0
    for spec in ENTITIES:
        assert (tmp_path / "again" / spec.file).read_bytes() == (populated / spec.file).read_bytes()


def test_import_refuses_a_store_with_other_data(populated: Path, cli) -> None:
    assert cli("bundle", "create", "vat-return", "--anchor", "2026-11-02").code == 0
    before = cli("audit", "log", "--all", "--json").out
    r = cli("import", str(populated))
    assert r.code == 2 and "empty store" in r.err and "bundle vat-return/2026-11-02" in r.err, r.err
    assert cli("audit", "log", "--all", "--json").out == before


def test_import_refuses_a_store_holding_another_version_of_a_record(populated: Path, cli) -> None:
    assert cli("task", "start", f"{BUNDLE}/record-episode").code == 0
    before = cli("audit", "log", "--all", "--json").out
    r = cli("import", str(populated))
    assert r.code == 4, r.err
    assert f"another version of task {BUNDLE}/record-episode" in r.err, r.err
    assert cli("audit", "log", "--all", "--json").out == before


def test_relationships_listed_in_the_manifest_cover_every_parent_field() -> None:
    fields = {spec.entity_type: set(spec.model.model_fields) for spec in ENTITIES}
    for child, field, parent, pfield in RELATIONSHIPS:
        assert field in fields[child] and pfield in fields[parent]


# ---- bounded lines (DESIGN.md "Errors"): a named problem "file:line: ...", never a traceback --


def _raw_line(directory: Path, file: str, line: str) -> None:
    """Append one raw line to ``file`` and fix the manifest, so only the line is wrong."""
    path = directory / file
    text = path.read_text() + line + "\n"
    path.write_text(text)
    manifest = json.loads((directory / "manifest.json").read_text())
    for entry in manifest["entities"]:
        if entry["file"] == file:
            entry["sha256"] = hashlib.sha256(text.encode()).hexdigest()
            entry["count"] = len(text.splitlines())
    (directory / "manifest.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize(("line", "needles"), [
    ('{"a": ' + "[" * 2000 + "]" * 2000 + "}", ("nesting deeper than 100",)),
    ('{"a": ' + "[" * 101 + "]" * 101 + "}", ("nesting deeper than 100",)),
    ('{"n": ' + "9" * 5000 + "}", ("5000 digits", "limit is 100 digits")),
    ('{"n": 1.' + "5" * 200 + "}", ("201 digits",)),
    ('{"s": "' + "x" * (1024 * 1024) + '"}', ("bytes; the limit is 1048576",)),
])
def test_an_export_line_past_a_limit_is_named(populated: Path, cli, line: str, needles) -> None:
    n = len((populated / "tasks.jsonl").read_text().splitlines()) + 1
    _raw_line(populated, "tasks.jsonl", line)
    _broken(cli, populated, f"tasks.jsonl:{n}:", *needles)
    r = cli("import", str(populated), store=f"sqlite:///{populated.parent / 'fresh.db'}")
    assert r.code == 2 and f"tasks.jsonl:{n}:" in r.err and "Traceback" not in r.err


def test_a_count_given_as_a_string_must_be_a_number(populated: Path, cli) -> None:
    manifest = json.loads((populated / "manifest.json").read_text())
    entry = next(e for e in manifest["entities"] if e["file"] == "tasks.jsonl")
    entry["count"] = str(entry["count"])
    (populated / "manifest.json").write_text(json.dumps(manifest))
    r = cli("export", "validate", str(populated))
    assert r.code == 2 and "count '" in r.err and "must be a number" in r.err, r.err
    assert "the manifest says" not in r.err


def test_a_manifest_past_a_limit_is_named(populated: Path, cli) -> None:
    (populated / "manifest.json").write_text('{"format": ' + "1" * 5000 + "}")
    _broken(cli, populated, "manifest.json", "5000 digits")
    (populated / "manifest.json").write_text('{"format": "dataops-export", "entities": 3}')
    _broken(cli, populated, "entities must be a list")


def test_sqlite_to_postgres_to_sqlite_is_byte_identical(populated: Path, cli, pg_server,
                                                        tmp_path: Path) -> None:
    """The migration a team makes (docs/migration.md): SQLite -> export -> PostgreSQL ->
    export is byte-identical, and PostgreSQL -> export -> SQLite -> export too."""
    pg = pg_server.new_url()
    assert cli("store", "init", store=pg).code == 0
    r = cli("import", str(populated), store=pg)
    assert r.code == 0, r.err
    assert cli("audit", "verify", store=pg).code == 0
    assert cli("export", "--out", str(tmp_path / "from-pg"), store=pg).code == 0
    for spec in ENTITIES:
        assert (tmp_path / "from-pg" / spec.file).read_bytes() == \
            (populated / spec.file).read_bytes(), spec.file
    # the same commands work on the migrated store
    assert cli("task", "show", BOOK, store=pg).code == 0
    assert cli("reminders", "list", "--all", store=pg).code == 0
    back = f"sqlite:///{tmp_path / 'back.db'}"
    assert cli("import", str(tmp_path / "from-pg"), store=back).code == 0
    assert cli("export", "--out", str(tmp_path / "back"), store=back).code == 0
    for spec in ENTITIES:
        assert (tmp_path / "back" / spec.file).read_bytes() == \
            (populated / spec.file).read_bytes(), spec.file
    # importing again into PostgreSQL changes nothing
    assert cli("import", str(populated), store=pg).code == 0
    assert cli("export", "--out", str(tmp_path / "from-pg-2"), store=pg).code == 0
    for spec in ENTITIES:
        assert (tmp_path / "from-pg-2" / spec.file).read_bytes() == \
            (populated / spec.file).read_bytes()


def test_import_replace_overwrites_another_version_with_the_exports(populated: Path, cli,
                                                                     tmp_path: Path) -> None:
    task = f"{BUNDLE}/record-episode"
    exported = cli("task", "show", task, "--json").json()
    assert cli("task", "assign", task, "someone-else").code == 0
    assert cli("import", str(populated)).code == 4
    r = cli("import", str(populated), "--replace")
    assert r.code == 0, r.err
    assert cli("task", "show", task, "--json").json() == exported
    # the store's own later event stays: the chain is now longer than its record's head, and
    # audit verify says so (docs/export-format.md)
    r = cli("audit", "verify")
    assert r.code == 2 and task in r.err and "truncated or extended" in r.err, r.err
    # an export of that store is written, but beside: it does not replace a good one
    r = cli("export", "--out", str(populated))
    assert r.code == 2 and "was not replaced" in r.err and "audit verify" in r.err, r.err
    [kept] = tmp_path.glob(f".{populated.name}.invalid-*")
    assert (kept / "bundles.jsonl").read_bytes() == (populated / "bundles.jsonl").read_bytes()
    assert (kept / "tasks.jsonl").read_bytes() == (populated / "tasks.jsonl").read_bytes()
    load_export(populated)  # the previous export is still there, whole


def test_a_format_2_export_without_tokens_still_validates_and_imports(populated: Path, cli,
                                                                      tmp_path: Path) -> None:
    old = tmp_path / "format2"
    shutil.copytree(populated, old)
    manifest = json.loads((old / "manifest.json").read_text())
    manifest["format_version"] = 2
    manifest["entities"] = [e for e in manifest["entities"]
                            if e["entity_type"] not in ("api_token", "digest")]
    (old / "api_tokens.jsonl").unlink()
    (old / "digests.jsonl").unlink()
    events = old / "audit_events.jsonl"  # a format-2 export had no token or digest events
    kept = [line for line in events.read_bytes().splitlines(keepends=True)
            if json.loads(line)["entity_type"] not in ("api_token", "digest")]
    events.write_bytes(b"".join(kept))
    entry = next(e for e in manifest["entities"] if e["entity_type"] == "audit_event")
    entry["count"], entry["sha256"] = len(kept), hashlib.sha256(b"".join(kept)).hexdigest()
    (old / "manifest.json").write_text(json.dumps(manifest))
    assert cli("export", "validate", str(old)).code == 0
    r = cli("--store", f"sqlite:///{tmp_path / 'from2.db'}", "import", str(old), "--quiet")
    assert r.code == 0, r.err
