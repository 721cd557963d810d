"""The PostgreSQL store's schema (versioned migrations), its typed columns per record kind, and
its one driver-error table, by SQLSTATE.

Every table keeps the record's JSON (``doc jsonb``: the export shape) beside typed columns for
its ID, its parents, its version and the instants its indexes sort by. The foreign keys are the
relationship list of the export manifest (:data:`runtime.export.RELATIONSHIPS`); they are
``DEFERRABLE INITIALLY DEFERRED`` so that one command's writes may come in any order and are
checked at commit. ``reminder.entity_id`` and ``audit_event.entity_id`` point at the entity
their ``entity_type`` names (polymorphic): they are indexed, not constrained.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from runtime.errors import (
    DataopsError,
    InputError,
    StoreCorrupt,
    StoreFault,
    StoreFull,
    StoreReadOnly,
    StoreUnreachable,
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
from runtime.store.base import TABLES  # noqa: F401  (re-exported for the adapter)

DEFERRED = "DEFERRABLE INITIALLY DEFERRED"
ID = 'text COLLATE "C"'
"""IDs compare byte by byte (the C collation), whatever the database's default: scans, lists and
cursors are in the same order as on SQLite and in an export, on any server."""

MIGRATIONS: list[tuple[int, str]] = [
    (1, f"""
CREATE TABLE IF NOT EXISTS {{s}}.meta (key text PRIMARY KEY, value text NOT NULL);
CREATE TABLE {{s}}.bundles (
    bundle_id {ID} PRIMARY KEY,
    template_id {ID} NOT NULL,
    status text NOT NULL,
    next_reminder_at timestamptz,
    version integer NOT NULL,
    doc jsonb NOT NULL
);
CREATE INDEX bundles_template ON {{s}}.bundles (template_id, bundle_id);
CREATE INDEX bundles_due ON {{s}}.bundles (next_reminder_at, bundle_id)
    WHERE next_reminder_at IS NOT NULL;
CREATE TABLE {{s}}.tasks (
    task_id {ID} PRIMARY KEY,
    bundle_id {ID} NOT NULL REFERENCES {{s}}.bundles (bundle_id) {DEFERRED},
    position integer NOT NULL,
    status text NOT NULL,
    assignee {ID},
    next_reminder_at timestamptz,
    version integer NOT NULL,
    doc jsonb NOT NULL
);
CREATE INDEX tasks_bundle ON {{s}}.tasks (bundle_id, position, task_id);
CREATE INDEX tasks_due ON {{s}}.tasks (next_reminder_at, task_id)
    WHERE next_reminder_at IS NOT NULL;
CREATE TABLE {{s}}.artifacts (
    artifact_id {ID} PRIMARY KEY,
    task_id {ID} NOT NULL REFERENCES {{s}}.tasks (task_id) {DEFERRED},
    bundle_id {ID} NOT NULL REFERENCES {{s}}.bundles (bundle_id) {DEFERRED},
    version integer NOT NULL,
    doc jsonb NOT NULL
);
CREATE INDEX artifacts_task ON {{s}}.artifacts (task_id);
CREATE TABLE {{s}}.assistant_jobs (
    assistant_job_id {ID} PRIMARY KEY,
    bundle_id {ID} NOT NULL REFERENCES {{s}}.bundles (bundle_id) {DEFERRED},
    task_id {ID} REFERENCES {{s}}.tasks (task_id) {DEFERRED},
    output_artifact_id {ID} REFERENCES {{s}}.artifacts (artifact_id) {DEFERRED},
    version integer NOT NULL,
    doc jsonb NOT NULL
);
CREATE TABLE {{s}}.reminders (
    reminder_id {ID} PRIMARY KEY,
    entity_type {ID} NOT NULL,
    entity_id {ID} NOT NULL,
    bundle_id {ID} REFERENCES {{s}}.bundles (bundle_id) {DEFERRED},
    task_id {ID} REFERENCES {{s}}.tasks (task_id) {DEFERRED},
    fire_at timestamptz NOT NULL,
    deliver_after timestamptz,
    version integer NOT NULL,
    doc jsonb NOT NULL
);
CREATE INDEX reminders_list ON {{s}}.reminders (fire_at, reminder_id);
CREATE INDEX reminders_entity ON {{s}}.reminders (entity_id, fire_at, reminder_id);
CREATE INDEX reminders_pending ON {{s}}.reminders (deliver_after, reminder_id)
    WHERE deliver_after IS NOT NULL;
CREATE TABLE {{s}}.audit_events (
    event_id {ID} PRIMARY KEY,
    entity_type {ID} NOT NULL,
    entity_id {ID} NOT NULL,
    seq integer NOT NULL,
    at timestamptz NOT NULL,
    version integer NOT NULL,
    doc jsonb NOT NULL,
    UNIQUE (entity_id, seq)
);
CREATE INDEX audit_list ON {{s}}.audit_events (at, entity_id, seq);
CREATE TABLE {{s}}.seals (
    seal_id {ID} PRIMARY KEY,
    at timestamptz NOT NULL,
    version integer NOT NULL,
    doc jsonb NOT NULL
);
CREATE INDEX seals_at ON {{s}}.seals (at, seal_id);
"""),
    (2, f"""
CREATE TABLE {{s}}.api_tokens (
    token_id {ID} PRIMARY KEY,
    version integer NOT NULL,
    doc jsonb NOT NULL
);
CREATE TABLE {{s}}.idempotency_keys (
    key_id {ID} PRIMARY KEY,
    expires_at timestamptz NOT NULL,
    version integer NOT NULL,
    doc jsonb NOT NULL
);
CREATE INDEX idempotency_expiry ON {{s}}.idempotency_keys (expires_at);
ALTER TABLE {{s}}.assistant_jobs ADD COLUMN kind {ID} NOT NULL DEFAULT '',
    ADD COLUMN status text NOT NULL DEFAULT 'queued', ADD COLUMN claimable_at timestamptz;
CREATE INDEX assistant_jobs_task ON {{s}}.assistant_jobs (task_id, assistant_job_id);
CREATE INDEX assistant_jobs_claimable ON {{s}}.assistant_jobs (claimable_at, assistant_job_id)
    WHERE claimable_at IS NOT NULL;
"""),
    (3, f"""
ALTER TABLE {{s}}.reminders ADD COLUMN digest_after timestamptz;
CREATE INDEX reminders_digest ON {{s}}.reminders (digest_after, reminder_id)
    WHERE digest_after IS NOT NULL;
CREATE TABLE {{s}}.digests (
    digest_id {ID} PRIMARY KEY,
    person_id {ID} NOT NULL,
    deliver_after timestamptz,
    version integer NOT NULL,
    doc jsonb NOT NULL
);
CREATE INDEX digests_pending ON {{s}}.digests (deliver_after, digest_id)
    WHERE deliver_after IS NOT NULL;
CREATE INDEX tasks_assignee ON {{s}}.tasks (assignee, status, task_id);
"""),
]
"""(version, DDL) in order; ``{s}`` is the quoted schema name. ``store init`` and the first use
apply every step to an empty schema, ``store migrate`` the steps after the stored version."""

SCHEMA_VERSION = MIGRATIONS[-1][0]

LIST_ORDER = {"reminder": ("fire_at", "reminder_id"), "audit_event": ("at", "entity_id", "seq")}
"""The columns a paged list sorts by (and its cursor carries); by ID otherwise."""
SCAN_ORDER = {"audit_event": "entity_id, seq"}
INSTANT_COLUMNS = frozenset({"fire_at", "at"})
"""List-order columns that are instants: a cursor carries them as integer microseconds."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def from_micros(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def columns_of(rec: Record) -> dict[str, object]:
    """The typed columns of a record, besides its ID, version and doc."""
    match rec:
        case Bundle():
            return {"template_id": rec.template_id, "status": str(rec.status),
                    "next_reminder_at": rec.next_reminder_at}
        case Task():
            return {"bundle_id": rec.bundle_id, "position": rec.position, "status": str(rec.status),
                    "assignee": rec.assignee, "next_reminder_at": rec.next_reminder_at}
        case Artifact():
            return {"task_id": rec.task_id, "bundle_id": rec.bundle_id}
        case AssistantJob():
            return {"bundle_id": rec.bundle_id, "task_id": rec.task_id,
                    "output_artifact_id": rec.output_artifact_id, "kind": rec.kind,
                    "status": str(rec.status), "claimable_at": rec.claimable_at}
        case Reminder():
            return {"entity_type": rec.entity_type, "entity_id": rec.entity_id,
                    "bundle_id": rec.bundle_id, "task_id": rec.task_id, "fire_at": rec.fire_at,
                    "deliver_after": rec.deliver_after, "digest_after": rec.digest_after}
        case Digest():
            return {"person_id": rec.person_id, "deliver_after": rec.deliver_after}
        case AuditEvent():
            return {"entity_type": rec.entity_type, "entity_id": rec.entity_id, "seq": rec.seq,
                    "at": rec.at}
        case Seal():
            return {"at": rec.at}
        case ApiToken():
            return {}
        case IdempotencyKey():
            return {"expires_at": rec.expires_at}
    raise InputError(f"the postgresql store cannot hold a {type(rec).__name__}")


# SQLSTATE (the whole code, else its two-character class) -> (our error, what to tell the
# operator). One table; 23505 (unique) and 23503 (foreign key) are handled where they arise.
# 40001 and 40P01 are retried by the adapter before they come here.
ERRORS: dict[str, tuple[type[DataopsError], str]] = {
    "08": (StoreUnreachable, "the connection to the database server failed or broke; check "
                             "that the server runs and the URL (host, port, sslmode)"),
    "28": (StoreFault, "the server refused the login; check the user and password in the URL"),
    "3D000": (StoreFault, "the database does not exist; create it (createdb) or fix the URL"),
    "3F000": (StoreFault, "the schema does not exist; run dataops store init"),
    "42P01": (StoreFault, "a table of the store is missing; run dataops store init"),
    "42501": (StoreReadOnly, "permission denied; grant the user rights on the schema"),
    "25006": (StoreReadOnly, "the server is read-only (a standby, or default_transaction_read_only)"),
    "40": (ThrottledError, "a transaction was rolled back by the server (serialization or "
                           "deadlock) after the adapter's retries"),
    "53100": (StoreFull, "the server's disk is full; free space and retry"),
    "53200": (StoreFault, "the server is out of memory"),
    "53300": (ThrottledError, "the server has too many connections"),
    "53": (ThrottledError, "the server is out of resources"),
    "55P03": (ThrottledError, "a lock could not be taken in time (lock_timeout)"),
    "57014": (ThrottledError, "a statement was cancelled (statement_timeout)"),
    "57P01": (StoreUnreachable, "the server is shutting down"),
    "57P02": (StoreUnreachable, "the server crashed (crash shutdown)"),
    "57P03": (StoreUnreachable, "the server is starting up or not accepting connections yet"),
    "57": (StoreFault, "the operator intervened (the statement or connection was stopped)"),
    "22": (InputError, "the database refused a value"),
    "XX001": (StoreCorrupt, "the database reports damaged data; restore it from an export"),
    "XX002": (StoreCorrupt, "the database reports a damaged index; REINDEX it"),
    "XX": (StoreFault, "internal error of the database server"),
}


def translate(url: str, e: Exception) -> DataopsError:
    """The error of ours a driver error means (see :data:`ERRORS`)."""
    state = getattr(e, "sqlstate", None)
    cls: type[DataopsError]
    first_line = (str(e).strip().splitlines() or [type(e).__name__])[0]
    if state is None:  # a connection attempt that failed: libpq gives no SQLSTATE for it
        state = _connect_state(str(e))
    if state is None:  # no answer from a server at all
        cls, text = StoreUnreachable, "cannot reach the database server; check that it runs " \
                                      "and the URL (host, port, sslmode)"
    else:
        cls, text = ERRORS.get(state) or ERRORS.get(state[:2]) or (
            StoreFault, f"unexpected database error (SQLSTATE {state})")
    detail = f"{text} ({first_line})"
    if cls is ThrottledError:
        return ThrottledError(f"{url}: {detail}")
    if cls is InputError:
        return InputError(f"store {url}: {detail}")
    assert issubclass(cls, StoreFault)
    return cls(url, detail)


_CONNECT_FAILURES = [
    ("does not exist", "3D000"),  # FATAL:  database "x" does not exist (checked after roles)
    ("authentication failed", "28P01"),
    ("no pg_hba.conf entry", "28000"),
    ("not permitted to log in", "28000"),
    ("too many clients", "53300"),
    ("the database system is starting up", "57P03"),
    ("the database system is shutting down", "57P01"),
]


def _connect_state(message: str) -> str | None:
    """The SQLSTATE a failed connection attempt stands for, read off the server's FATAL line
    (libpq reports a refused connection without its code); None when no server answered."""
    if "FATAL:" not in message:
        return None
    fatal = message.split("FATAL:", 1)[1]
    if "role" in fatal and "does not exist" in fatal:
        return "28000"
    return next((state for phrase, state in _CONNECT_FAILURES if phrase in fatal), "08006")
