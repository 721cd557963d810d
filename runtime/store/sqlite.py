"""The SQLite store: the embedded default. WAL, one IMMEDIATE transaction per command.

Each record kind has a table holding the record's JSON (``doc``, the export shape) beside the
columns that queries need: the ID, the parent IDs, ``version`` for optimistic concurrency and
the time indexes (integer microseconds since the epoch, partial indexes that hold only the rows
with something scheduled). See docs/store-schemas.md.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs, urlparse

from runtime.errors import ConflictError, InputError, NotFoundError, ThrottledError
from runtime.model import (
    GENESIS_HASH,
    Artifact,
    AssistantJob,
    AuditEvent,
    Bundle,
    Record,
    Reminder,
    Task,
    chain,
    kind_of,
    record_id,
    record_version,
)
from runtime.store.base import Changes, R, check_size

SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS bundles (
    bundle_id TEXT PRIMARY KEY,
    template_id TEXT NOT NULL,
    created_at TEXT NOT NULL,
    next_reminder_us INTEGER,
    version INTEGER NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS bundles_next_reminder ON bundles (next_reminder_us)
    WHERE next_reminder_us IS NOT NULL;
CREATE TABLE IF NOT EXISTS tasks (
    pos INTEGER PRIMARY KEY,
    task_id TEXT NOT NULL UNIQUE,
    bundle_id TEXT NOT NULL,
    next_reminder_us INTEGER,
    version INTEGER NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS tasks_bundle ON tasks (bundle_id);
CREATE INDEX IF NOT EXISTS tasks_next_reminder ON tasks (next_reminder_us)
    WHERE next_reminder_us IS NOT NULL;
CREATE TABLE IF NOT EXISTS artifacts (
    artifact_id TEXT PRIMARY KEY,
    task_id TEXT NOT NULL,
    bundle_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS artifacts_task ON artifacts (task_id);
CREATE TABLE IF NOT EXISTS assistant_jobs (
    assistant_job_id TEXT PRIMARY KEY,
    bundle_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    doc TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS reminders (
    pos INTEGER PRIMARY KEY,
    reminder_id TEXT NOT NULL UNIQUE,
    entity_id TEXT NOT NULL,
    deliver_after_us INTEGER,
    version INTEGER NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS reminders_entity ON reminders (entity_id);
CREATE INDEX IF NOT EXISTS reminders_deliver_after ON reminders (deliver_after_us)
    WHERE deliver_after_us IS NOT NULL;
CREATE TABLE IF NOT EXISTS audit_events (
    seq INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL UNIQUE,
    entity_id TEXT NOT NULL,
    hash TEXT NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_entity ON audit_events (entity_id);
"""

_TABLE = {
    "bundle": ("bundles", "bundle_id"),
    "task": ("tasks", "task_id"),
    "artifact": ("artifacts", "artifact_id"),
    "assistant_job": ("assistant_jobs", "assistant_job_id"),
    "reminder": ("reminders", "reminder_id"),
}

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def micros(at: datetime | None) -> int | None:
    if at is None:
        return None
    delta = at - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _columns(rec: Record) -> dict[str, object]:
    """The indexed columns of a record, besides its ID, version and doc."""
    match rec:
        case Bundle():
            return {
                "template_id": rec.template_id,
                "created_at": rec.created_at.isoformat(),
                "next_reminder_us": micros(rec.next_reminder_at),
            }
        case Task():
            return {"bundle_id": rec.bundle_id, "next_reminder_us": micros(rec.next_reminder_at)}
        case Artifact():
            return {"task_id": rec.task_id, "bundle_id": rec.bundle_id}
        case AssistantJob():
            return {"bundle_id": rec.bundle_id}
        case Reminder():
            return {"entity_id": rec.entity_id, "deliver_after_us": micros(rec.deliver_after)}
    raise InputError(f"the sqlite store cannot hold a {type(rec).__name__}")


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


class _Clash(Exception):
    """An insert hit an existing or duplicate ID; turned into ConflictError after rollback."""

    def __init__(self, table: str, key: str, ids: list[str]) -> None:
        self.table, self.key, self.ids = table, key, ids


class SqliteStore:
    """See the module docstring. Safe to share between the threads of one process."""

    def __init__(self, url: str, *, synchronous: str | None = None) -> None:
        self.url = url
        path, options = path_from_url(url)
        sync = (synchronous or options.get("synchronous", "FULL")).upper()
        if sync not in {"FULL", "NORMAL", "EXTRA"}:
            raise InputError(f"store URL {url!r}: synchronous must be FULL, NORMAL or EXTRA")
        self.path = Path(path)
        if not self.path.parent.exists():
            raise InputError(
                f"store {url!r}: folder {self.path.parent} does not exist; create it first"
            )
        self._lock = threading.RLock()
        try:
            self._db = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=30.0
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={sync}")
            self._db.execute("PRAGMA busy_timeout=30000")
            with self._lock:
                self._db.execute("BEGIN IMMEDIATE")
                for statement in SCHEMA.split(";"):
                    if statement.strip():
                        self._db.execute(statement)
                row = self._db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
                if row is None:
                    self._db.execute(
                        "INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
                    )
                elif int(row[0]) > SCHEMA_VERSION:
                    self._db.execute("ROLLBACK")
                    raise InputError(
                        f"store {url!r} has schema {row[0]}, newer than this runtime's "
                        f"{SCHEMA_VERSION}; upgrade dataops"
                    )
                self._db.execute("COMMIT")
        except sqlite3.DatabaseError as e:
            raise InputError(f"store {url!r} is not a usable SQLite database: {e}") from e
        self.synchronous = sync

    # -- reads -----------------------------------------------------------------------------
    def _one(self, sql: str, args: tuple[object, ...]) -> tuple[object, ...] | None:
        rows = self._all(sql, args)
        return rows[0] if rows else None

    def _all(self, sql: str, args: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        with self._lock:
            try:
                return self._db.execute(sql, args).fetchall()
            except sqlite3.OperationalError as e:
                raise ThrottledError(f"{self.url}: {e}") from e

    def find(self, kind: type[R], record_id: str) -> R | None:
        if kind is AuditEvent:
            row = self._one("SELECT doc FROM audit_events WHERE event_id = ?", (record_id,))
            return None if row is None else kind.model_validate_json(row[0])  # type: ignore[arg-type]
        table, key = _TABLE[kind.record_kind]  # type: ignore[attr-defined]
        row = self._one(f"SELECT doc FROM {table} WHERE {key} = ?", (record_id,))
        return None if row is None else kind.model_validate_json(row[0])  # type: ignore[arg-type]

    def get(self, kind: type[R], record_id: str) -> R:
        found = self.find(kind, record_id)
        if found is None:
            raise NotFoundError(kind.record_kind, record_id)  # type: ignore[attr-defined]
        return found

    def tasks_of(self, bundle_id: str) -> list[Task]:
        rows = self._all("SELECT doc FROM tasks WHERE bundle_id = ? ORDER BY pos", (bundle_id,))
        return [Task.model_validate_json(r[0]) for r in rows]  # type: ignore[arg-type]

    def bundles(self) -> list[Bundle]:
        rows = self._all("SELECT doc FROM bundles ORDER BY created_at, bundle_id")
        return [Bundle.model_validate_json(r[0]) for r in rows]  # type: ignore[arg-type]

    def reminders(self, *, entity_id: str | None = None) -> list[Reminder]:
        if entity_id is None:
            rows = self._all("SELECT doc FROM reminders ORDER BY pos")
        else:
            rows = self._all(
                "SELECT doc FROM reminders WHERE entity_id = ? ORDER BY pos", (entity_id,)
            )
        return [Reminder.model_validate_json(r[0]) for r in rows]  # type: ignore[arg-type]

    def due_for_reminders(self, at: datetime, limit: int) -> list[Task | Bundle]:
        t = micros(at)
        bundles = self._all(
            "SELECT doc FROM bundles WHERE next_reminder_us <= ? ORDER BY next_reminder_us LIMIT ?",
            (t, limit),
        )
        tasks = self._all(
            "SELECT doc FROM tasks WHERE next_reminder_us <= ? ORDER BY next_reminder_us LIMIT ?",
            (t, limit),
        )
        out: list[Task | Bundle] = [Bundle.model_validate_json(r[0]) for r in bundles]  # type: ignore[arg-type]
        out += [Task.model_validate_json(r[0]) for r in tasks]  # type: ignore[arg-type]
        out.sort(key=lambda r: (r.next_reminder_at, r.id))
        return out[:limit]

    def pending_deliveries(self, at: datetime, limit: int) -> list[Reminder]:
        rows = self._all(
            "SELECT doc FROM reminders WHERE deliver_after_us <= ? "
            "ORDER BY deliver_after_us, pos LIMIT ?",
            (micros(at), limit),
        )
        return [Reminder.model_validate_json(r[0]) for r in rows]  # type: ignore[arg-type]

    def audit_events(self, *, entity_id: str | None = None) -> list[AuditEvent]:
        if entity_id is None:
            rows = self._all("SELECT doc FROM audit_events ORDER BY seq")
        else:
            rows = self._all(
                "SELECT doc FROM audit_events WHERE entity_id = ? ORDER BY seq", (entity_id,)
            )
        return [AuditEvent.model_validate_json(r[0]) for r in rows]  # type: ignore[arg-type]

    def scan(self, kind: type[R]) -> Iterator[R]:
        if kind is AuditEvent:
            sql = "SELECT doc FROM audit_events ORDER BY seq"
        else:
            table, key = _TABLE[kind.record_kind]  # type: ignore[attr-defined]
            sql = f"SELECT doc FROM {table} ORDER BY {key}"
        for row in self._all(sql):
            yield kind.model_validate_json(row[0])  # type: ignore[arg-type]

    # -- writes ----------------------------------------------------------------------------
    def commit(self, changes: Changes) -> list[AuditEvent]:
        check_size(changes)
        with self._lock:
            db = self._db
            try:
                db.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as e:
                raise ThrottledError(f"database is busy: {e}") from e
            try:
                self._insert_all(changes.creates)
                for rec, expected in changes.updates:
                    self._update(rec, expected)
                placed = self._append_events(changes.events)
                db.execute("COMMIT")
                return placed
            except _Clash as clash:
                db.execute("ROLLBACK")
                # after the rollback only what existed before is visible: name the record
                raise ConflictError(self._clashing(clash.table, clash.key, clash.ids),
                                    "it exists already") from clash.__cause__
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def _insert_all(self, records: list[Record]) -> None:
        """Insert records, one executemany per table and column set."""
        groups: dict[tuple[str, tuple[str, ...]], list[tuple[object, ...]]] = {}
        ids: dict[str, list[str]] = {}
        for rec in records:
            table, key = _TABLE[kind_of(rec)]
            cols = {key: record_id(rec), **_columns(rec), "version": record_version(rec),
                    "doc": rec.model_dump_json()}
            groups.setdefault((table, tuple(cols)), []).append(tuple(cols.values()))
            ids.setdefault(table, []).append(record_id(rec))
        for (table, names), rows in groups.items():
            marks = ", ".join("?" * len(names))
            try:
                self._db.executemany(
                    f"INSERT INTO {table} ({', '.join(names)}) VALUES ({marks})", rows
                )
            except sqlite3.IntegrityError as e:
                raise _Clash(table, names[0], ids[table]) from e

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

    def _update(self, rec: Record, expected: int) -> None:
        table, key = _TABLE[kind_of(rec)]
        cols = {**_columns(rec), "version": record_version(rec), "doc": rec.model_dump_json()}
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

    def _append_events(self, events: list[AuditEvent]) -> list[AuditEvent]:
        if not events:
            return []
        row = self._db.execute("SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1").fetchone()
        prev_seq, prev_hash = (row[0], row[1]) if row else (0, GENESIS_HASH)
        placed = []
        for event in events:
            event = chain(event, prev_seq, prev_hash)
            prev_seq, prev_hash = event.seq, event.hash
            placed.append(event)
        try:
            self._db.executemany(
                "INSERT INTO audit_events (seq, event_id, entity_id, hash, doc) VALUES (?, ?, ?, ?, ?)",
                [(e.seq, e.event_id, e.entity_id, e.hash, e.model_dump_json()) for e in placed],
            )
        except sqlite3.IntegrityError as e:
            raise _Clash("audit_events", "event_id", [p.event_id for p in placed]) from e
        return placed

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- test hooks -------------------------------------------------------------------------
    def _raw(self) -> sqlite3.Connection:
        return self._db
