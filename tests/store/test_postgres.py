"""PostgreSQL-only facts, against the real server of tests/pg.py: the foreign keys are real, the
URL is parsed and its password never shown, the schema is versioned (init, migrate, a newer one
refused), each SQLSTATE the adapter can meet maps to its own error (made for real where a
server can be made to say it), delivery claims skip rows another daemon holds, and a scan is one
snapshot while writers run."""

from __future__ import annotations

import io
from contextlib import redirect_stderr, redirect_stdout
from datetime import date
from pathlib import Path
from typing import Any

import psycopg
import pytest

from runtime import engine
from runtime.artifacts import LocalArtifactStore
from runtime.clock import FixedClock
from runtime.content import load_content
from runtime.engine import Services
from runtime.engine.reminders import record_failure
from runtime.errors import (
    ConflictError,
    InputError,
    StoreFault,
    StoreReadOnly,
    StoreUnreachable,
    ThrottledError,
)
from runtime.model import Bundle, Reminder, Task
from runtime.model.common import utc
from runtime.store import Changes, open_store
from runtime.store.postgres import PostgresStore, parse_url
from runtime.store.postgres_schema import ERRORS, SCHEMA_VERSION, translate
from tests.helpers import reminders

NOW = utc(2026, 11, 25, 8)


@pytest.fixture
def pg(pg_server: Any) -> Any:
    return pg_server


def _services(url: str, content_dir: Path, tmp_path: Path) -> Services:
    content = load_content(content_dir)
    return Services(open_store(url), FixedClock(NOW), "tester",
                    LocalArtifactStore(tmp_path / "art"), lambda: content)


def _cli(*argv: str) -> tuple[int, str, str]:
    from runtime.cli import main

    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


# ---- URL ---------------------------------------------------------------------------------


def test_the_url_keeps_libpq_parameters_and_masks_the_password() -> None:
    conninfo, schema, pool, shown = parse_url(
        "postgresql://app:s3cret@db.example.com:6432/ops?sslmode=require&schema=team_a&pool_size=8"
        "&options=-c%20statement_timeout%3D5000")
    assert schema == "team_a" and pool == 8
    assert conninfo == ("postgresql://app:s3cret@db.example.com:6432/ops?sslmode=require"
                        "&options=-c%20statement_timeout%3D5000")
    assert "s3cret" not in shown and "app:***@db.example.com:6432" in shown
    assert parse_url("postgres://h/db")[1:3] == ("public", 4)


@pytest.mark.parametrize(("url", "needle"), [
    ("postgresql:///nohost", "write a PostgreSQL store as"),
    ("postgresql://h/db?schema=Robert'); DROP", "lower-case SQL name"),
    ("postgresql://h/db?pool_size=0", "pool_size='0'"),
    ("postgresql://h/db?pool_size=many", "from 1 to 100"),
])
def test_a_bad_url_is_named(url: str, needle: str) -> None:
    with pytest.raises(InputError, match="store URL") as err:
        parse_url(url)
    assert needle in str(err.value)


def test_an_unreachable_server_is_its_own_error_and_hides_the_password(pg: Any) -> None:
    with pytest.raises(StoreUnreachable) as err:
        open_store("postgresql://app:hunter2@127.0.0.1:1/postgres")
    assert "hunter2" not in str(err.value) and "app:***@127.0.0.1:1" in str(err.value)
    assert "cannot reach the database server" in str(err.value)
    code, _, line = _cli("--store", "postgresql://app:hunter2@127.0.0.1:1/postgres", "task", "list")
    assert code == 2 and line.startswith("error:") and "hunter2" not in line
    assert len(line.strip().splitlines()) == 1


# ---- foreign keys --------------------------------------------------------------------------


def test_the_foreign_keys_of_the_export_manifest_are_real(pg: Any, content_dir: Path,
                                                          tmp_path: Path) -> None:
    from runtime.export import RELATIONSHIPS

    url = pg.new_url()
    store = open_store(url)
    schema = parse_url(url)[1]
    fks = pg.psql(
        "SELECT tc.table_name, kcu.column_name, ccu.table_name, ccu.column_name, "
        "tc.is_deferrable FROM information_schema.table_constraints tc "
        "JOIN information_schema.key_column_usage kcu USING (constraint_schema, constraint_name) "
        "JOIN information_schema.constraint_column_usage ccu "
        "USING (constraint_schema, constraint_name) "
        f"WHERE tc.constraint_type = 'FOREIGN KEY' AND tc.table_schema = '{schema}'")
    got = {tuple(line.split("|")) for line in fks.strip().splitlines()}
    tables = {"bundle": "bundles", "task": "tasks", "artifact": "artifacts",
              "assistant_job": "assistant_jobs", "reminder": "reminders"}
    assert got == {(tables[c], cf, tables[p], pf, "YES") for c, cf, p, pf in RELATIONSHIPS}

    svc = Services(store, FixedClock(NOW), "t", LocalArtifactStore(tmp_path / "a"),
                   lambda: load_content(content_dir))
    view = engine.create_bundle(svc, "vat-return", date(2026, 11, 2))
    orphan = view.tasks[0].model_copy(update={"task_id": "nowhere/2026/x",
                                              "bundle_id": "nowhere/2026"})
    before = store.count(Task)
    with pytest.raises(InputError, match="refers to a parent that does not exist") as err:
        store.commit(Changes(creates=[orphan]))
    assert "nowhere/2026" in str(err.value)
    assert store.count(Task) == before
    store.close()


# ---- schema versions -----------------------------------------------------------------------


def test_store_init_creates_the_schema_and_migrate_reports_it_current(pg: Any) -> None:
    url = pg.new_url()
    code, out, err = _cli("--store", url, "store", "init")
    assert code == 0 and "is ready (empty)" in out, err
    code, out, err = _cli("--store", url, "store", "migrate")
    assert code == 0 and f"at schema {SCHEMA_VERSION}" in out, err


def test_a_newer_schema_is_refused_and_an_older_one_asks_for_migrate(pg: Any) -> None:
    url = pg.new_url()
    store = open_store(url)
    assert isinstance(store, PostgresStore)
    store._execute("UPDATE {s}.meta SET value = %s WHERE key = 'schema_version'",
                   (str(SCHEMA_VERSION + 1),))
    store.close()
    with pytest.raises(InputError, match="upgrade dataops"):
        open_store(url)
    code, _, line = _cli("--store", url, "store", "migrate")
    assert code == 2 and "upgrade dataops" in line

    # an older schema: only the version table of "schema 0"; opening it asks for migrate, and
    # migrate brings it to this version's
    older = pg.new_url()
    name = parse_url(older)[1]
    pg.psql(f"CREATE SCHEMA {name}; CREATE TABLE {name}.meta (key text PRIMARY KEY, value text "
            f"NOT NULL); INSERT INTO {name}.meta VALUES ('schema_version', '0')")
    with pytest.raises(InputError, match="run dataops store migrate"):
        open_store(older)
    code, out, err = _cli("--store", older, "store", "migrate")
    assert code == 0 and f"at schema {SCHEMA_VERSION}" in out, err
    open_store(older).close()


def test_many_processes_opening_a_new_schema_at_once_create_it_once(pg: Any) -> None:
    import subprocess
    import sys

    url = pg.new_url()
    code = ("import sys; from runtime.store import open_store; s = open_store(sys.argv[1]); "
            "print(s.schema_version()); s.close()")
    procs = [subprocess.Popen([sys.executable, "-c", code, url], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(6)]
    results = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), results
    assert {out.strip() for out, _ in results} == {str(SCHEMA_VERSION)}


# ---- SQLSTATE table ------------------------------------------------------------------------


class _Fake(Exception):
    def __init__(self, sqlstate: str | None) -> None:
        super().__init__(f"server says {sqlstate}")
        self.sqlstate = sqlstate


def test_translate_maps_every_entry_of_the_table() -> None:
    for state, (cls, text) in ERRORS.items():
        code = state if len(state) == 5 else state + "000"
        got = translate("postgresql://h/db", _Fake(code))
        assert type(got) is cls, (state, got)
        assert text in str(got) and f"server says {code}" in str(got)
        assert not isinstance(got, ConflictError)
    assert type(translate("u", _Fake("0A000"))) is StoreFault  # not in the table
    assert type(translate("u", _Fake(None))) is StoreUnreachable  # the client's own: no server


def test_a_missing_database_and_a_refused_login_are_named(pg: Any) -> None:
    with pytest.raises(StoreFault, match="the database does not exist"):
        open_store(f"postgresql://postgres@127.0.0.1:{pg.port}/no_such_db")
    pg.psql("DO $$ BEGIN CREATE ROLE nobody_here NOLOGIN; EXCEPTION WHEN duplicate_object "
            "THEN NULL; END $$")
    with pytest.raises(StoreFault, match="refused the login"):
        open_store(f"postgresql://nobody_here@127.0.0.1:{pg.port}/postgres")


def test_a_read_only_server_and_missing_rights_are_store_read_only(pg: Any) -> None:
    url = pg.new_url()
    store = open_store(url)
    b = Bundle.model_validate(_bundle_doc("ro/1"))
    read_only = open_store(url + "&options=-c%20default_transaction_read_only%3Don")
    with pytest.raises(StoreReadOnly, match="read-only"):
        read_only.commit(Changes(creates=[b]))
    assert read_only.find(Bundle, "ro/1") is None  # reads still answer
    read_only.close()
    schema = parse_url(url)[1]
    pg.psql("DO $$ BEGIN CREATE ROLE reader LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; "
            f"END $$; GRANT USAGE ON SCHEMA {schema} TO reader; "
            f"GRANT SELECT ON ALL TABLES IN SCHEMA {schema} TO reader")
    reader = open_store(url.replace("postgres@", "reader@"))
    with pytest.raises(StoreReadOnly, match="permission denied"):
        reader.commit(Changes(creates=[b]))
    reader.close()
    assert store.find(Bundle, "ro/1") is None
    store.close()


def test_a_lock_held_past_lock_timeout_is_busy_not_a_conflict(pg: Any) -> None:
    url = pg.new_url()
    store = open_store(url)
    b = Bundle.model_validate(_bundle_doc("busy/1"))
    store.commit(Changes(creates=[b]))
    impatient = open_store(url + "&options=-c%20lock_timeout%3D100")
    schema = parse_url(url)[1]
    with psycopg.connect(pg.base_url) as holder:  # another writer holds the row
        holder.execute(f"SELECT 1 FROM {schema}.bundles WHERE bundle_id = 'busy/1' FOR UPDATE")
        with pytest.raises(ThrottledError, match="lock_timeout") as err:
            impatient.commit(Changes(updates=[(b.model_copy(update={"version": 2}), 1)]))
        assert not isinstance(err.value, ConflictError)
    impatient.close()
    assert store.get(Bundle, "busy/1").version == 1  # nothing was written
    store.close()


def _bundle_doc(bundle_id: str) -> dict[str, Any]:
    return {"bundle_id": bundle_id, "template_id": "t", "template_version": 1, "title": "T",
            "anchor_date": "2026-11-02", "timezone": "UTC", "stage": "s", "status": "active",
            "phases": [], "created_at": NOW.isoformat(), "updated_at": NOW.isoformat(),
            "version": 1}


# ---- delivery claims skip what another daemon holds ---------------------------------------


def test_claims_skip_reminders_locked_by_another_daemon(pg: Any, content_dir: Path,
                                                        tmp_path: Path) -> None:
    url = pg.new_url()
    svc = _services(url, content_dir, tmp_path)
    for i in range(6):
        record_failure(svc, f"job:nightly-{i}", NOW, f"job {i} failed")
    ids = sorted(r.reminder_id for r in reminders(svc.store))
    schema = parse_url(url)[1]
    store = svc.store
    assert isinstance(store, PostgresStore)
    with psycopg.connect(pg.base_url) as other:  # "another daemon" mid-claim holds the first 3
        held = [r[0] for r in other.execute(
            f"SELECT reminder_id FROM {schema}.reminders ORDER BY deliver_after, reminder_id "
            "LIMIT 3 FOR UPDATE").fetchall()]
        seen: list[list[Reminder]] = []

        def lease(page: list[Reminder]) -> Changes:
            seen.append(page)
            return Changes(updates=[(r.model_copy(update={"version": r.version + 1}), r.version)
                                    for r in page])

        page = store.claim_deliveries(NOW, 10, lease)  # does not wait for the other
    got = sorted(r.reminder_id for r in page)
    assert got == sorted(set(ids) - set(held)) and len(got) == 3
    assert all(store.get(Reminder, rid).version == 2 for rid in got)
    assert all(store.get(Reminder, rid).version == 1 for rid in held)
    svc.store.close()


# ---- one snapshot while writers run --------------------------------------------------------


def test_a_scan_sees_one_snapshot_while_a_writer_commits(pg: Any) -> None:
    url = pg.new_url()
    store = open_store(url)
    store.commit(Changes(creates=[Bundle.model_validate(_bundle_doc(f"s/{i:02d}"))
                                  for i in range(20)]))
    with store.snapshot() as snap:
        scan = snap.scan(Bundle)
        first = [next(scan) for _ in range(5)]
        store.commit(Changes(creates=[Bundle.model_validate(_bundle_doc("s/99"))]))
        rest = list(scan)
        again = list(snap.scan(Bundle))
    assert len(first) + len(rest) == 20 and len(again) == 20
    assert store.count(Bundle) == 21
    store.close()


def test_the_documented_schema_is_the_one_the_adapter_creates() -> None:
    from runtime.store.postgres_schema import MIGRATIONS

    doc = (Path(__file__).resolve().parents[2] / "docs" / "store-schemas.md").read_text()
    section = doc.split("## PostgreSQL", 1)[1]
    block = section.split("```sql\n", 1)[1].split("```", 1)[0]
    assert block.strip() == "\n\n".join(ddl.replace("{s}", "dataops").strip()
                                        for _, ddl in MIGRATIONS)
    for state in ERRORS:
        assert f"| `{state}` |" in section, state


def test_connections_the_server_dropped_are_replaced_and_a_stopped_server_is_named(
        pg: Any) -> None:
    url = pg.new_url()
    store = open_store(url)
    store.commit(Changes(creates=[Bundle.model_validate(_bundle_doc("drop/1"))]))
    # the server ends every connection of ours (a restart or failover looks like this)
    pg.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE pid <> pg_backend_pid() AND backend_type = 'client backend'")
    assert store.get(Bundle, "drop/1").version == 1  # a fresh connection answers
    b = store.get(Bundle, "drop/1")
    store.commit(Changes(updates=[(b.model_copy(update={"version": 2}), 1)]))
    assert store.get(Bundle, "drop/1").version == 2
    store.close()


def test_a_server_that_stops_is_unreachable_not_busy(tmp_path: Path) -> None:
    from tests.pg import PgServer

    own = PgServer().start()
    try:
        store = PostgresStore(own.new_url(), pool_wait=0.5)  # the wait for a pooled connection
        store.commit(Changes(creates=[Bundle.model_validate(_bundle_doc("gone/1"))]))
    finally:
        own.stop()
    with pytest.raises(StoreUnreachable, match="cannot reach the database server"):
        store.get(Bundle, "gone/1")
    store.close()


def test_ids_sort_byte_by_byte_in_a_database_whose_default_collation_does_not(pg: Any) -> None:
    """An export must list records in the same order from every store: IDs are ``COLLATE "C"``
    even in a database created with a natural-language (ICU) collation."""
    pg.psql("DROP DATABASE IF EXISTS natural_order")
    pg.psql("CREATE DATABASE natural_order TEMPLATE template0 LOCALE_PROVIDER icu "
            "ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'")
    natural = pg.psql("SELECT string_agg(x, ' ' ORDER BY x COLLATE \"en-US-x-icu\") FROM "
                      "(VALUES ('a-b'), ('aB'), ('ab'), ('B'), ('a_b'), ('Ä')) v(x)").split()
    ids = sorted(["a-b", "aB", "ab", "B", "a_b", "Ä"])
    assert natural != ids  # the server's natural order really differs from byte order
    store = open_store(f"postgresql://postgres@127.0.0.1:{pg.port}/natural_order?schema=t")
    store.commit(Changes(creates=[Bundle.model_validate(_bundle_doc(i)) for i in ids]))
    with store.snapshot() as snap:
        assert [b.bundle_id for b in snap.scan(Bundle)] == ids
    page = store.page(Bundle, limit=3)
    rest = store.page(Bundle, limit=10, cursor=page.next_cursor)
    assert [b.bundle_id for b in page.items + rest.items] == ids
    store.close()


def test_a_task_and_its_bundle_in_one_read(pg: Any, content_dir: Path, tmp_path: Path) -> None:
    from runtime.errors import NotFoundError, RecordUnreadable

    svc = _services(pg.new_url(), content_dir, tmp_path)
    view = engine.create_bundle(svc, "vat-return", date(2026, 11, 2))
    store = svc.store
    assert isinstance(store, PostgresStore)
    first = view.tasks[0]
    task, bundle = store.task_and_bundle(first.task_id)
    assert task == store.get(Task, first.task_id) and bundle == view.bundle
    with pytest.raises(NotFoundError, match="no task 'vat-return/2026-11-02/nope'"):
        store.task_and_bundle("vat-return/2026-11-02/nope")
    store._execute("UPDATE {s}.tasks SET doc = '{\"garbage\": 1}'::jsonb WHERE task_id = %s",
                   (first.task_id,))
    with pytest.raises(RecordUnreadable):
        store.task_and_bundle(first.task_id)
    with pytest.raises(RecordUnreadable):  # and so does the command, through the engine
        engine.fire_task(svc, first.task_id, "start")
    store.close()
