"""The SQLite store's schema, its columns per record kind, and its one driver-error table."""

from __future__ import annotations

import sqlite3

from runtime.errors import (
    DataopsError,
    InputError,
    StoreCorrupt,
    StoreFault,
    StoreFull,
    StoreReadOnly,
    ThrottledError,
)
from runtime.model import (
    ApiToken,
    Artifact,
    AssistantJob,
    AuditEvent,
    Bundle,
    Digest,
    IdempotencyKey,
    Record,
    Reminder,
    Seal,
    Task,
)
from runtime.store.base import TABLES, micros  # noqa: F401  (TABLES re-exported)

SCHEMA_VERSION = 4
"""2: per-entity audit chains. 3: API tokens and idempotency keys (two new tables) and the
columns assistant jobs are claimed by. 4: digests (a new table), the reminders' digest
index and an index of tasks by assignee (``people show``). An older file is upgraded in place when it is opened: each version's statements from
its own on (:data:`UPGRADES`), then :data:`SCHEMA` (``IF NOT EXISTS``: the new tables and
indexes). Every change only adds; a schema-2 file holds no assistant jobs."""
UPGRADES: dict[int, list[str]] = {
    2: [
        "ALTER TABLE assistant_jobs ADD COLUMN kind TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE assistant_jobs ADD COLUMN status TEXT NOT NULL DEFAULT 'queued'",
        "ALTER TABLE assistant_jobs ADD COLUMN claimable_us INTEGER",
    ],
    3: ["ALTER TABLE reminders ADD COLUMN digest_after_us INTEGER"],
}
UPGRADABLE = frozenset(UPGRADES)


def upgrade_statements(found: int) -> list[str]:
    """The statements that take a schema-``found`` file to :data:`SCHEMA_VERSION` (before
    :data:`SCHEMA` runs)."""
    return [st for version in sorted(UPGRADES) if version >= found for st in UPGRADES[version]]


SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS bundles (
    bundle_id TEXT PRIMARY KEY,
    template_id TEXT NOT NULL,
    status TEXT NOT NULL,
    next_reminder_us INTEGER,
    version INTEGER NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS bundles_next_reminder ON bundles (next_reminder_us)
    WHERE next_reminder_us IS NOT NULL;
CREATE TABLE IF NOT EXISTS tasks (
    task_id TEXT PRIMARY KEY,
    bundle_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    status TEXT NOT NULL,
    assignee TEXT,
    next_reminder_us INTEGER,
    version INTEGER NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS tasks_bundle ON tasks (bundle_id, position, task_id);
CREATE INDEX IF NOT EXISTS tasks_assignee ON tasks (assignee, status, task_id);
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
    task_id TEXT,
    kind TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL DEFAULT 'queued',
    claimable_us INTEGER,
    version INTEGER NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS assistant_jobs_task ON assistant_jobs (task_id, assistant_job_id);
CREATE INDEX IF NOT EXISTS assistant_jobs_claimable ON assistant_jobs (claimable_us)
    WHERE claimable_us IS NOT NULL;
CREATE TABLE IF NOT EXISTS reminders (
    reminder_id TEXT PRIMARY KEY,
    entity_id TEXT NOT NULL,
    fire_at_us INTEGER NOT NULL,
    deliver_after_us INTEGER,
    digest_after_us INTEGER,
    version INTEGER NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS reminders_list ON reminders (fire_at_us, reminder_id);
CREATE INDEX IF NOT EXISTS reminders_digest_after ON reminders (digest_after_us)
    WHERE digest_after_us IS NOT NULL;
CREATE TABLE IF NOT EXISTS digests (
    digest_id TEXT PRIMARY KEY,
    person_id TEXT NOT NULL,
    deliver_after_us INTEGER,
    version INTEGER NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS digests_deliver_after ON digests (deliver_after_us)
    WHERE deliver_after_us IS NOT NULL;
CREATE INDEX IF NOT EXISTS reminders_entity ON reminders (entity_id);
CREATE INDEX IF NOT EXISTS reminders_deliver_after ON reminders (deliver_after_us)
    WHERE deliver_after_us IS NOT NULL;
CREATE TABLE IF NOT EXISTS audit_events (
    event_id TEXT PRIMARY KEY,
    entity_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    at_us INTEGER NOT NULL,
    version INTEGER NOT NULL,
    doc TEXT NOT NULL,
    UNIQUE (entity_id, seq)
);
CREATE INDEX IF NOT EXISTS audit_list ON audit_events (at_us, entity_id, seq);
CREATE TABLE IF NOT EXISTS seals (
    seal_id TEXT PRIMARY KEY,
    at_us INTEGER NOT NULL,
    version INTEGER NOT NULL,
    doc TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS api_tokens (
    token_id TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    doc TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS idempotency_keys (
    key_id TEXT PRIMARY KEY,
    expires_us INTEGER NOT NULL,
    version INTEGER NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS idempotency_expiry ON idempotency_keys (expires_us);
"""

# list order per kind (see Store.page): the columns a cursor carries
LIST_ORDER = {
    "reminder": ("fire_at_us", "reminder_id"),
    "audit_event": ("at_us", "entity_id", "seq"),
}
SCAN_ORDER = {"task": "task_id", "audit_event": "entity_id, seq"}

# SQLite's primary result codes -> (our error, what to tell the operator). One table, pinned by
# a test that makes each condition for real.
ERRORS: dict[int, tuple[type[DataopsError], str]] = {
    5: (ThrottledError, "the database is busy (another writer holds the lock)"),      # BUSY
    6: (ThrottledError, "a table is locked by another connection"),                  # LOCKED
    8: (StoreReadOnly, "the database is read-only; check the file's and folder's permissions"),  # READONLY
    10: (StoreFault, "disk I/O error; check the disk"),                               # IOERR
    11: (StoreCorrupt, "the database file is damaged; restore it from an export"),   # CORRUPT
    13: (StoreFull, "the database or disk is full; free space and retry"),           # FULL
    14: (StoreFault, "cannot open the database file; check the path and permissions"),  # CANTOPEN
    26: (StoreCorrupt, "the file is not a SQLite database"),                           # NOTADB
}


def translate(url: str, e: sqlite3.Error) -> DataopsError:
    """The error of ours that a driver error means (see :data:`ERRORS`)."""
    code = getattr(e, "sqlite_errorcode", None)
    cls, text = ERRORS.get(code & 0xFF if isinstance(code, int) else -1,
                           (StoreFault, "unexpected database error"))
    detail = f"{text} ({e})"
    if cls is ThrottledError:
        return ThrottledError(f"{url}: {detail}")
    return cls(url, detail)


def columns_of(rec: Record) -> dict[str, object]:
    """The indexed columns of a record, besides its ID, version and doc."""
    match rec:
        case Bundle():
            return {"template_id": rec.template_id, "status": str(rec.status),
                    "next_reminder_us": micros(rec.next_reminder_at)}
        case Task():
            return {"bundle_id": rec.bundle_id, "position": rec.position, "status": str(rec.status),
                    "assignee": rec.assignee, "next_reminder_us": micros(rec.next_reminder_at)}
        case Artifact():
            return {"task_id": rec.task_id, "bundle_id": rec.bundle_id}
        case AssistantJob():
            return {"bundle_id": rec.bundle_id, "task_id": rec.task_id, "kind": rec.kind,
                    "status": str(rec.status), "claimable_us": micros(rec.claimable_at)}
        case Reminder():
            return {"entity_id": rec.entity_id, "fire_at_us": micros(rec.fire_at),
                    "deliver_after_us": micros(rec.deliver_after),
                    "digest_after_us": micros(rec.digest_after)}
        case Digest():
            return {"person_id": rec.person_id, "deliver_after_us": micros(rec.deliver_after)}
        case AuditEvent():
            return {"entity_id": rec.entity_id, "seq": rec.seq, "at_us": micros(rec.at)}
        case Seal():
            return {"at_us": micros(rec.at)}
        case ApiToken():
            return {}
        case IdempotencyKey():
            return {"expires_us": micros(rec.expires_at)}
    raise InputError(f"the sqlite store cannot hold a {type(rec).__name__}")
