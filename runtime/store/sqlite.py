"""The SQLite store: the embedded default. WAL, one IMMEDIATE transaction per command.

Each record kind has a table holding the record's JSON (``doc``, the export shape) beside the
columns that queries need: the ID, parent IDs and list filters, ``version`` for optimistic
concurrency and the time indexes (integer microseconds since the epoch; partial indexes hold
only the rows with something scheduled). Audit events are plain inserts, unique per
``(entity_id, seq)``: there is no global sequence. See docs/store-schemas.md.

Driver errors are translated in one place, :data:`ERRORS`, by SQLite's primary result code.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from runtime.errors import (
    ConflictError,
    InputError,
    NotFoundError,
)
from runtime.model import (
    AssistantJob,
    AuditEvent,
    Bundle,
    Digest,
    Record,
    Reminder,
    Seal,
    Task,
    kind_of,
    record_id,
    record_version,
)
from runtime.store.base import (
    TRANSIENT_KINDS,
    Changes,
    Page,
    R,
    Row,
    by_table,
    check_filters,
    check_size,
    decode,
    decode_list_cursor,
    decode_or_raise,
    decode_rows,
    due_cursor,
    encode_cursor,
    get_or_raise,
    micros,
    row_of,
)
from runtime.store.sqlite_schema import (
    ERRORS,
    LIST_ORDER,
    SCAN_ORDER,
    SCHEMA,
    SCHEMA_VERSION,
    TABLES,
    UPGRADABLE,
    columns_of,
    translate,
    upgrade_statements,
)


def path_from_url(url: str) -> tuple[str, dict[str, str]]:
    """``sqlite:///rel.db`` -> ``rel.db``; ``sqlite:////abs.db`` -> ``/abs.db``."""
    parsed = urlparse(url)
    if parsed.scheme != "sqlite" or not url.startswith("sqlite:///"):
        raise InputError(f"store URL {url!r}: write a SQLite store as sqlite:///path/to/file.db")
    path = url[len("sqlite:///"):].split("?", 1)[0]
    if not path:
        raise InputError(f"store URL {url!r} names no file; write sqlite:///dataops.db")
    options = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
    return path, options


def _jobs_sql(at: datetime, kinds: Sequence[str] | None,
              limit: int) -> tuple[str, tuple[object, ...]]:
    """The claimable jobs of ``kinds`` (None: any) at ``at``, oldest first (the claim index)."""
    kind_sql = f" AND kind IN ({', '.join('?' * len(kinds))})" if kinds else ""
    return ("SELECT assistant_job_id, doc FROM assistant_jobs WHERE claimable_us <= ?"
            f"{kind_sql} ORDER BY claimable_us, assistant_job_id LIMIT ?",
            (micros(at), *(kinds or ()), limit))


def _on_read_only_fs(path: Path) -> bool:
    """Whether the file is whole on a file system mounted read-only: SQLite cannot open a WAL
    database there unless its -shm file happens to exist; opened immutable it can, and a write
    is then refused as read-only. Not when a -wal file holds commits not yet in the file:
    immutable would read without them (an old or a damaged state), so it is opened as usual."""
    try:
        if not os.statvfs(path.parent).f_flag & os.ST_RDONLY or not path.exists():
            return False
        wal = path.with_name(path.name + "-wal")
        return not wal.exists() or wal.stat().st_size == 0
    except OSError:
        return False


class _Clash(Exception):
    """An insert hit an existing or duplicate ID; turned into ConflictError after rollback."""

    def __init__(self, table: str, key: str, ids: list[str]) -> None:
        self.table, self.key, self.ids = table, key, ids


class _Reader:
    """Scans over one connection inside one read transaction (a WAL snapshot)."""

    def __init__(self, store: SqliteStore, db: sqlite3.Connection) -> None:
        self.store, self.db = store, db

    def scan(self, kind: type[R]) -> Iterator[R]:
        for rid, doc in self.scan_docs(kind):
            rec = decode(kind, rid, doc, self.store.quarantined)
            if rec is not None:
                yield rec

    def scan_docs(self, kind: type[Record]) -> Iterator[tuple[str, str]]:
        """``(ID, doc)`` of every record of ``kind`` in scan order, the docs as stored (the
        export decodes them in its worker processes)."""
        name = kind.record_kind  # type: ignore[attr-defined]
        table, key = TABLES[name]
        order = SCAN_ORDER.get(name, key)
        with self.store._driver():
            cur = self.db.execute(f"SELECT {key}, doc FROM {table} ORDER BY {order}")
            while rows := cur.fetchmany(500):
                yield from rows


class SqliteStore:
    """See the module docstring. Safe to share between the threads of one process."""

    max_items: int | None = None
    bulk_rows = "sqlite"
    """The rows :meth:`bulk_insert` takes: ``runtime.export_lines.check_batch`` mode 'sqlite'."""

    def __init__(self, url: str, *, synchronous: str | None = None) -> None:
        self.url = url
        self.quarantined: dict[str, str] = {}
        path, options = path_from_url(url)
        sync = (synchronous or options.get("synchronous", "FULL")).upper()
        if sync not in {"FULL", "NORMAL", "EXTRA"}:
            raise InputError(f"store URL {url!r}: synchronous must be FULL, NORMAL or EXTRA")
        self.path = Path(path)
        if not self.path.parent.exists():
            raise InputError(
                f"store {url!r}: folder {self.path.parent} does not exist; create it first"
            )
        self.synchronous = sync
        self._lock = threading.RLock()
        self._db = self._connect()
        self._ensure_schema()

    # -- connection and schema ---------------------------------------------------------------
    @contextmanager
    def _driver(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.IntegrityError:
            raise
        except sqlite3.Error as e:
            raise translate(self.url, e) from e

    def _connect(self) -> sqlite3.Connection:
        with self._driver():
            target: str | Path = self.path
            uri = _on_read_only_fs(self.path)
            if uri:  # nobody can write there: open it immutable, so reads need no -shm file
                target = f"file:{self.path.resolve()}?mode=ro&immutable=1"
            db = sqlite3.connect(target, isolation_level=None, check_same_thread=False,
                                 timeout=30.0, uri=uri)
            db.execute("PRAGMA busy_timeout=30000")
            db.execute(f"PRAGMA synchronous={self.synchronous}")
            return db

    def _ensure_schema(self) -> None:
        """Read the schema version without a lock; take the write lock only to create it.
        The connection is closed when the file cannot be used."""
        try:
            self._create_schema()
        except BaseException:
            self._db.close()
            raise

    def _create_schema(self) -> None:
        with self._lock, self._driver():
            version = self._schema_version()
            if version in UPGRADABLE:  # additive: the new tables, then the version
                self._schema_tx(upgrade=True)
                version = self._schema_version()
            if version is None:
                self._db.execute("PRAGMA journal_mode=WAL")
                self._schema_tx(upgrade=False)
                version = self._schema_version()
        if version != SCHEMA_VERSION:
            newer = (version or 0) > SCHEMA_VERSION
            raise InputError(
                f"store {self.url!r} has schema {version}; this runtime reads schema "
                f"{SCHEMA_VERSION}: " + ("upgrade dataops" if newer else
                "it was written by dataops 0.1 (one global audit chain), which this version "
                "cannot convert yet; keep using 0.1 for it, or start a new store")
            )

    def _schema_tx(self, *, upgrade: bool) -> None:
        """Create the schema in an empty file, or upgrade an older one, in one ``BEGIN
        IMMEDIATE`` transaction (re-checked under the lock: another process may have done it)."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            found = self._schema_version()
            if upgrade and found in UPGRADABLE:
                for statement in upgrade_statements(found):
                    self._db.execute(statement)
                self._run_schema()
                self._db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'",
                                 (str(SCHEMA_VERSION),))
            elif not upgrade and found is None:
                self._run_schema()
                self._db.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)",
                                 (str(SCHEMA_VERSION),))
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def _run_schema(self) -> None:
        for statement in SCHEMA.split(";"):
            if statement.strip():
                self._db.execute(statement)

    def schema_version(self) -> int | None:
        """The schema version the file holds (this runtime reads :data:`SCHEMA_VERSION`)."""
        with self._lock, self._driver():
            return self._schema_version()

    def _schema_version(self) -> int | None:
        try:
            row = self._db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        except sqlite3.OperationalError as e:
            if "no such table" in str(e):
                return None
            raise
        return None if row is None else int(row[0])

    # -- reads -------------------------------------------------------------------------------
    def _all(self, sql: str, args: tuple[object, ...] = ()) -> list[Any]:
        with self._lock, self._driver():
            return self._db.execute(sql, args).fetchall()

    def _decoded(self, kind: type[R], rows: list[Any]) -> list[R]:
        return decode_rows(kind, rows, self.quarantined)

    def find(self, kind: type[R], record_id: str) -> R | None:
        table, key = TABLES[kind.record_kind]  # type: ignore[attr-defined]
        rows = self._all(f"SELECT doc FROM {table} WHERE {key} = ?", (record_id,))
        return decode_or_raise(kind, record_id, rows[0][0], self.quarantined) if rows else None

    def get(self, kind: type[R], record_id: str) -> R:
        return get_or_raise(self, kind, record_id)

    def tasks_of(self, bundle_id: str) -> list[Task]:
        rows = self._all("SELECT task_id, doc FROM tasks WHERE bundle_id = ? "
                         "ORDER BY position, task_id",
                         (bundle_id,))
        return self._decoded(Task, rows)

    def page(self, kind: type[R], *, where: dict[str, str] | None = None, limit: int = 100,
             cursor: str | None = None) -> Page[R]:
        name = kind.record_kind  # type: ignore[attr-defined]
        where = where or {}
        check_filters(name, where)
        table, key = TABLES[name]
        order = LIST_ORDER.get(name, (key,))
        clauses = [f"{col} = ?" for col in where]
        args: list[object] = list(where.values())
        if cursor:
            after = decode_list_cursor(name, cursor)
            clauses.append(f"({', '.join(order)}) > ({', '.join('?' * len(order))})")
            args += after
        sql = (f"SELECT {', '.join(order)}, {key}, doc FROM {table}"
               + (f" WHERE {' AND '.join(clauses)}" if clauses else "")
               + f" ORDER BY {', '.join(order)} LIMIT ?")
        rows = self._all(sql, (*args, limit + 1))
        items = self._decoded(kind, [r[-2:] for r in rows[:limit]])
        more = len(rows) > limit
        return Page(items, encode_cursor(rows[limit - 1][:len(order)]) if more and limit else None)

    def count(self, kind: type[R], *, where: dict[str, str] | None = None) -> int | None:
        name = kind.record_kind  # type: ignore[attr-defined]
        where = where or {}
        check_filters(name, where)
        table, _ = TABLES[name]
        cond = " AND ".join(f"{col} = ?" for col in where)
        rows = self._all(f"SELECT COUNT(*) FROM {table}" + (f" WHERE {cond}" if cond else ""),
                         tuple(where.values()))
        return int(rows[0][0])

    def audit_events(self, entity_id: str) -> list[AuditEvent]:
        rows = self._all("SELECT event_id, doc FROM audit_events WHERE entity_id = ? ORDER BY seq",
                         (entity_id,))
        return self._decoded(AuditEvent, rows)

    def due_for_reminders(self, at: datetime, limit: int,
                          cursor: str | None = None) -> Page[Task | Bundle]:
        after = due_cursor(cursor)
        rows: list[tuple[int, str, Any, Any]] = []
        for kind, table, key in ((Bundle, "bundles", "bundle_id"), (Task, "tasks", "task_id")):
            sql = (f"SELECT next_reminder_us, {key}, doc FROM {table} WHERE next_reminder_us <= ?"
                   + (f" AND (next_reminder_us, {key}) > (?, ?)" if after else "")
                   + f" ORDER BY next_reminder_us, {key} LIMIT ?")
            args = (micros(at), *(after or ()), limit + 1)
            rows += [(us, rid, doc, kind) for us, rid, doc in self._all(sql, args)]
        rows.sort(key=lambda r: (r[0], r[1]))  # positions by raw row: a damaged one moves it on
        taken = rows[:limit]
        found: list[Task | Bundle] = [r for us, rid, doc, kind in taken
                                      if (r := decode(kind, rid, doc, self.quarantined))]
        more = len(rows) > limit
        return Page(found, encode_cursor(taken[-1][:2]) if more else None)

    def pending_deliveries(self, at: datetime, limit: int) -> list[Reminder]:
        return self._pending(Reminder, at, limit)

    def pending_digest_deliveries(self, at: datetime, limit: int) -> list[Digest]:
        return self._pending(Digest, at, limit)

    def _pending(self, kind: type[R], at: datetime, limit: int) -> list[R]:
        table, key = TABLES[kind.record_kind]  # type: ignore[attr-defined]
        rows = self._all(f"SELECT {key}, doc FROM {table} WHERE deliver_after_us <= ? "
                         f"ORDER BY deliver_after_us, {key} LIMIT ?", (micros(at), limit))
        return self._decoded(kind, rows)

    def pending_digests(self, at: datetime, limit: int) -> list[Reminder]:
        rows = self._all(
            "SELECT reminder_id, doc FROM reminders WHERE digest_after_us <= ? "
            "ORDER BY digest_after_us, reminder_id LIMIT ?",
            (micros(at), limit),
        )
        return self._decoded(Reminder, rows)

    def latest_seal(self) -> Seal | None:
        rows = self._all("SELECT seal_id, doc FROM seals ORDER BY at_us DESC, seal_id DESC LIMIT 1")
        found = self._decoded(Seal, rows)
        return found[0] if found else None

    @contextmanager
    def snapshot(self) -> Iterator[_Reader]:
        db = self._connect()
        try:
            with self._driver():
                db.execute("BEGIN")  # deferred: the snapshot starts at the first read
            yield _Reader(self, db)
        finally:
            with suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            db.close()

    def is_empty(self) -> bool:
        return not any(self._all(f"SELECT 1 FROM {table} LIMIT 1")
                       for kind, (table, _) in TABLES.items() if kind not in TRANSIENT_KINDS)

    def claimable_jobs(self, at: datetime, kinds: Sequence[str] | None,
                       limit: int) -> list[AssistantJob]:
        return self._decoded(AssistantJob, self._all(*_jobs_sql(at, kinds, limit)))

    def claim_jobs(self, at: datetime, kinds: Sequence[str] | None, limit: int,
                   claim: Callable[[list[AssistantJob], Callable[[type[Any], str], Any]], Changes],
                   ) -> list[AssistantJob]:
        """Read up to ``limit`` claimable jobs and write what ``claim`` says for them inside one
        ``BEGIN IMMEDIATE`` transaction (SQLite's one writer), so workers never lose a claim to
        each other: the next one reads after this one committed."""
        page: list[AssistantJob] = []

        def inside() -> Iterator[Changes]:  # run by import_atomically, in its transaction
            page[:] = self._decoded(AssistantJob, self._all(*_jobs_sql(at, kinds, limit)))
            changes = claim(page, self.find)  # reads on this connection, in this transaction
            check_size(self, changes)
            yield changes

        self.import_atomically(inside())
        return page

    def purge_idempotency_keys(self, before: datetime, limit: int = 1000) -> int:
        with self._lock, self._driver():
            cur = self._db.execute(
                "DELETE FROM idempotency_keys WHERE key_id IN (SELECT key_id FROM "
                "idempotency_keys WHERE expires_us <= ? LIMIT ?)", (micros(before), limit))
            return int(cur.rowcount)

    # -- writes ------------------------------------------------------------------------------
    def commit(self, changes: Changes) -> None:
        check_size(self, changes)
        self.import_atomically([changes])

    def import_atomically(self, batches: Iterable[Changes]) -> None:
        """Write every batch in one ``BEGIN IMMEDIATE`` transaction (one command's changes, an
        import's batches, or a claim's, read and decided inside it): all of them or, if
        anything fails or the process dies, none.
        Per batch the version-conditional updates first (a lost race names the record), then
        the inserts."""
        with self._immediate():
            for changes in batches:
                for rec, expected in changes.updates:
                    self._update(rec, expected, changes)
                self._insert_all([*changes.creates, *changes.events], changes)

    @contextmanager
    def bulk_insert(self) -> Iterator[Callable[[Sequence[Row]], None]]:
        """One ``BEGIN IMMEDIATE`` transaction for an import of rows that
        ``runtime.export_lines`` made (table, columns, values): what it yields inserts a batch
        of them; all are committed at the end, or none if anything fails or the process dies.

        :raises ConflictError: an ID is there already (or twice), named.
        """
        with self._immediate():
            yield self._insert_rows

    @contextmanager
    def _immediate(self) -> Iterator[None]:
        """One ``BEGIN IMMEDIATE`` transaction around the body: committed when it returns,
        rolled back when it raises; an insert that hit an ID stored already (or given twice)
        is a :class:`ConflictError` naming it."""
        with self._lock, self._driver():
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                yield
                db.execute("COMMIT")
            except _Clash as clash:
                db.execute("ROLLBACK")
                # after the rollback only what existed before is visible: name the record
                raise ConflictError(self._clashing(clash.table, clash.key, clash.ids),
                                    "it exists already") from clash.__cause__
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise

    def _insert_rows(self, rows: Sequence[Row]) -> None:
        for (table, names), values_of in by_table(rows).items():
            marks = ", ".join("?" * len(names))
            try:
                self._db.executemany(
                    f"INSERT INTO {table} ({', '.join(names)}) VALUES ({marks})", values_of)
            except sqlite3.IntegrityError as e:
                raise _Clash(table, names[0], [str(v[0]) for v in values_of]) from e

    def _insert_all(self, records: list[Record], changes: Changes) -> None:
        """Insert records, one executemany per table and column set."""
        self._insert_rows([row_of(rec, columns_of(rec), changes.doc(rec)) for rec in records])

    def _clashing(self, table: str, key: str, candidates: list[str]) -> str:
        """Which of ``candidates`` made an insert fail (a duplicate, or one stored already)."""
        seen: set[str] = set()
        for rid in candidates:
            if rid in seen:
                return rid
            seen.add(rid)
        for rid in candidates:
            n = self._db.execute(f"SELECT COUNT(*) FROM {table} WHERE {key} = ?", (rid,)).fetchone()
            if n and n[0]:
                return rid
        return candidates[0]

    def _update(self, rec: Record, expected: int, changes: Changes) -> None:
        table, key = TABLES[kind_of(rec)]
        cols = {**columns_of(rec), "version": record_version(rec), "doc": changes.doc(rec)}
        sets = ", ".join(f"{c} = ?" for c in cols)
        cur = self._db.execute(
            f"UPDATE {table} SET {sets} WHERE {key} = ? AND version = ?",
            (*cols.values(), record_id(rec), expected),
        )
        if cur.rowcount == 1:
            return
        row = self._db.execute(f"SELECT version FROM {table} WHERE {key} = ?", (record_id(rec),)).fetchone()
        if row is None:
            raise NotFoundError(kind_of(rec), record_id(rec))
        raise ConflictError(record_id(rec), f"version is {row[0]}, expected {expected}")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- test hooks --------------------------------------------------------------------------
    def _raw(self) -> sqlite3.Connection:
        return self._db


__all__ = ["ERRORS", "SCHEMA", "SCHEMA_VERSION", "SqliteStore", "micros", "path_from_url",
           "translate"]
