"""The store contract (store port v2): one suite, every adapter (``store`` is parametrized).

What every adapter must do (DESIGN.md "Concurrency and atomicity", "Audit chains", "Errors";
runtime/store/base.py): round-trip every field of every record kind, instants included;
refuse a create whose ID exists and an update whose version moved on, writing nothing of that
command; insert audit events as they are (no global chain: unique by event_id and by
(entity_id, seq)); answer the ID, bundle, due and delivery index queries; page with an opaque
cursor; scan in ID order inside one consistent snapshot; quarantine a record that does not
decode; keep a deterministic-ID insert idempotent (the first one wins); honour a declared
``max_items``; let exactly one of several racing writers win, and never make writers of
different records contend.

The SQLite-only facts (WAL, synchronous, URL parsing, schema version, each driver-error mapping
made for real, several real processes) are in the ``TestSqlite*`` classes at the end.
"""

from __future__ import annotations

import json
import multiprocessing
import queue
import random
import sqlite3
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from runtime.errors import (
    ConflictError,
    DataopsError,
    InputError,
    NotFoundError,
    RecordUnreadable,
    StoreCorrupt,
    StoreFault,
    StoreFull,
    StoreReadOnly,
    ThrottledError,
)
from runtime.model import (
    GENESIS_HASH,
    KIND_BY_NAME,
    ApiToken,
    Artifact,
    ArtifactProof,
    AssistantJob,
    AssistantJobSpec,
    AssistantJobStatus,
    AuditEvent,
    Bundle,
    BundleLink,
    BundleStatus,
    Comment,
    CommentProof,
    DeliveryStatus,
    Digest,
    ExternalStatusProof,
    IdempotencyKey,
    PhaseRef,
    ProofEntry,
    ProofKind,
    Recipient,
    RecipientStatus,
    Reference,
    Reminder,
    ReminderKind,
    ReminderSettings,
    Seal,
    Task,
    TaskStatus,
    TokenRole,
    UrlProof,
    kind_of,
    record_id,
    reminder_id_for,
)
from runtime.model.common import Record, utc
from runtime.rules.audit import event_hash, state_hash, verify_entity
from runtime.store import Changes, Page, Store, open_store
from runtime.store.base import encode_cursor
from runtime.store.dynamodb import DynamoStore
from runtime.store.memory import MemoryStore
from runtime.store.postgres import PostgresStore
from runtime.store.sqlite import SqliteStore, path_from_url
from runtime.store.sqlite_schema import ERRORS, SCHEMA_VERSION, translate
from tests.conftest import SHARED_KINDS, STORE_KINDS, drop, make_store, need_server
from tests.helpers import bundles, every, reminders

# The contract suite tests the port with synthetic records, many without their parents (a task
# whose bundle was never written). On PostgreSQL it therefore runs with
# session_replication_role=replica, which skips the foreign-key triggers for its connections;
# the foreign keys themselves are tested in tests/store/test_postgres.py, and every engine test
# (realistic data, written by the engine) runs on PostgreSQL with them enforced.
NO_FK_TRIGGERS = "&options=-c%20session_replication_role%3Dreplica"


@pytest.fixture(params=STORE_KINDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """The contract suite's stores: every adapter (PostgreSQL without its foreign-key checks)."""
    if request.param == "postgres":
        s = open_store(request.getfixturevalue("pg_server").new_url() + NO_FK_TRIGGERS)
    else:
        need_server(request, request.param)
        s = make_store(request.param, tmp_path)
    yield s
    drop(s)

T0 = utc(2026, 11, 25, 8, 0)
KINDS: tuple[type[Record], ...] = (Bundle, Task, Artifact, AssistantJob, Reminder)
ALL_KINDS: tuple[type[Record], ...] = tuple(KIND_BY_NAME.values())  # + AuditEvent, Seal


def at(minutes: float = 0, us: int = 0) -> datetime:
    """An instant ``minutes`` (plus ``us`` microseconds) after T0."""
    return T0 + timedelta(minutes=minutes, microseconds=us)


# ---- record builders ----------------------------------------------------------------------


def bundle(bundle_id: str = "podcast/2026-12-01", *, created_at: datetime = T0,
           next_reminder_at: datetime | None = None, version: int = 1, **kw: Any) -> Bundle:
    fields: dict[str, Any] = dict(
        bundle_id=bundle_id,
        template_id="podcast",
        template_version=3,
        title=f"Podcast {bundle_id}",
        anchor_date=date(2026, 12, 1),
        timezone="Europe/Berlin",
        stage="prep",
        created_at=created_at,
        updated_at=created_at,
        next_reminder_at=next_reminder_at,
        version=version,
    )
    return Bundle(**{**fields, **kw})


def full_bundle() -> Bundle:
    """A bundle with every field set to something other than its default."""
    return bundle(
        "podcast/2026-12-01",
        status=BundleStatus.COMPLETED,
        phases=[PhaseRef(phase_id="prep", title="Preparation", open_tasks=2),
                PhaseRef(phase_id="publish", title="Publishing")],
        references=[Reference(label="Show notes template", url="https://example.com/notes")],
        required_bundle_links=[
            BundleLink(key="recording_folder", label="Recording folder", required=True,
                       url="https://drive.example.com/rec"),
            BundleLink(key="thumbnail", label="Thumbnail", required=False, url=None),
        ],
        source_doc_ids=["doc-podcast-sop", "doc-brand"],
        tags=["audio", "weekly"],
        reminder_settings=ReminderSettings(at=time(7, 30), overdue_repeats=5),
        next_reminder_at=at(60, us=123_456),
        reminder_cursor=at(-60, us=654_321),
        created_at=at(us=1),
        version=4,
        audit_seq=9,
        audit_hash="b" * 64,
    ).model_copy(update={"updated_at": at(30, us=7)})


def task(task_id: str = "podcast/2026-12-01/book-guest", *,
         bundle_id: str = "podcast/2026-12-01", next_reminder_at: datetime | None = None,
         version: int = 1, **kw: Any) -> Task:
    fields: dict[str, Any] = dict(
        task_id=task_id,
        bundle_id=bundle_id,
        template_id="podcast",
        template_task_ref=task_id.rsplit("/", 1)[-1],
        title=f"Task {task_id}",
        phase="prep",
        assignee="host",
        due_date=date(2026, 11, 17),
        created_at=T0,
        updated_at=T0,
        next_reminder_at=next_reminder_at,
        version=version,
    )
    return Task(**{**fields, **kw})


def full_task() -> Task:
    """A task with every field set, including proof requirements, proof and comments."""
    return Task(
        task_id="podcast/2026-12-01/publish",
        bundle_id="podcast/2026-12-01",
        template_id="podcast",
        template_task_ref="publish",
        position=7,
        title="Publish the episode",
        phase="publish",
        assignee="producer",
        due_date=date(2026, 12, 1),
        status=TaskStatus.DONE,
        waiting_for="the editor's final cut",
        follow_up_at=at(24 * 60, us=5),
        completed_at=at(120, us=999_999),
        completed_by="producer",
        proof_requirements=[
            UrlProof(kind="url", label="Episode page", pattern=r"^https://"),
            ArtifactProof(kind="artifact", label="Master file", content_types=["audio/mpeg"]),
            CommentProof(kind="comment", label="Sign-off"),
            ExternalStatusProof(kind="external_status", system="youtube", expected="published",
                                label="YouTube"),
        ],
        proof=[
            ProofEntry(kind=ProofKind.URL, value="https://example.com/ep/1", by="producer",
                       at=at(100)),
            ProofEntry(kind=ProofKind.ARTIFACT, artifact_id="art-1", content_type="audio/mpeg",
                       by="producer", at=at(101, us=1)),
            ProofEntry(kind=ProofKind.COMMENT, value="Looks good", by="host", at=at(102)),
            ProofEntry(kind=ProofKind.EXTERNAL_STATUS, value="published", system="youtube",
                       by="bot", at=at(103)),
        ],
        instruction_doc_id="doc-podcast-sop",
        instruction_step_id="publishing",
        systems=["youtube", "wordpress"],
        validation="Episode is public",
        instructions_url="https://wiki.example.com/legacy",
        comments=[
            Comment(comment_id="c-1", author="host", body="Ünïcödé and \"quotes\"\nnewline",
                    created_at=at(50, us=42)),
            Comment(comment_id="c-2", author="producer", body="done", created_at=at(51)),
        ],
        tags=["publish"],
        assistant_jobs=[AssistantJobSpec(kind="draft-notes", input={"tone": "dry"}, on="start",
                                         max_attempts=5)],
        next_reminder_at=at(200, us=3),
        reminder_cursor=at(10),
        created_at=at(us=2),
        updated_at=at(120, us=999_999),
        version=7,
        audit_seq=6,
        audit_hash="c" * 64,
    )


def full_artifact() -> Artifact:
    return Artifact(
        artifact_id="art-1",
        task_id="podcast/2026-12-01/publish",
        bundle_id="podcast/2026-12-01",
        filename="master.mp3",
        content_type="audio/mpeg",
        size_bytes=123_456_789,
        sha256="ab" * 32,
        location="s3://bucket/artifacts/art-1",
        created_by="producer",
        created_at=at(101, us=1),
        version=2,
        audit_seq=1,
        audit_hash="d" * 64,
    )


def full_job() -> AssistantJob:
    return AssistantJob(
        assistant_job_id="job-1",
        bundle_id="podcast/2026-12-01",
        task_id="podcast/2026-12-01/publish",
        kind="transcribe",
        status=AssistantJobStatus.FAILED,
        input={"language": "de", "speakers": [1, 2], "nested": {"ok": True, "none": None}},
        output_artifact_id="art-1",
        error="model timed out",
        created_at=at(1),
        updated_at=at(2, us=77),
        version=3,
        trigger="start",
        output={"words": 1200, "draft": {"title": "x"}},
        attempts=3,
        max_attempts=3,
        worker="host-1:77",
        started_at=at(1, us=5),
        finished_at=at(2, us=77),
        lease_expires_at=at(6),
        claimable_at=at(6),
        audit_seq=3,
        audit_hash="e" * 64,
    )


def reminder(reminder_id: str = "rem-1", *, entity_id: str = "podcast/2026-12-01/book-guest",
             recorded_at: datetime = T0, deliver_after: datetime | None = None,
             summary: str = "due today", **kw: Any) -> Reminder:
    fields: dict[str, Any] = dict(
        reminder_id=reminder_id,
        kind=ReminderKind.DUE,
        entity_type="task",
        entity_id=entity_id,
        bundle_id="podcast/2026-12-01",
        task_id=entity_id,
        fire_at=at(-60),
        recorded_at=recorded_at,
        deliver_after=deliver_after,
        summary=summary,
    )
    return Reminder(**{**fields, **kw})


def full_reminder() -> Reminder:
    return reminder(
        reminder_id_for("overdue", "podcast/2026-12-01/publish", at(-30)),
        entity_id="podcast/2026-12-01/publish",
        recorded_at=at(5, us=5),
        deliver_after=at(6, us=6),
        summary="overdue: Publish the episode",
        late=True,
        delivery_status=DeliveryStatus.FAILED,
        attempts=4,
        last_error="webhook returned 502",
        recipients=[
            Recipient(person_id="ada", reason="assignee", status=RecipientStatus.SENT,
                      channels=["email", "chat"], attempts=2, sent_at=at(7, us=7),
                      error=None),
            Recipient(person_id="bob", reason="escalation: manager of ada", delivery="digest",
                      digest_at=at(8, us=8), status=RecipientStatus.PENDING, error="451 later"),
        ],
        digest_after=at(8, us=8),
        version=5,
        audit_seq=2,
        audit_hash="f" * 64,
    ).model_copy(update={"kind": ReminderKind.OVERDUE, "fire_at": at(-30)})


def event(event_id: str, entity_id: str = "podcast/2026-12-01/book-guest", seq: int = 1,
          **kw: Any) -> AuditEvent:
    """An event at ``seq`` of ``entity_id``'s chain; its hashes are any strings (the store does
    not check them; :func:`link` builds real ones)."""
    fields: dict[str, Any] = {
        "event_id": event_id,
        "seq": seq,
        "actor": "tester",
        "entity_type": "task",
        "entity_id": entity_id,
        "action": "update",
        "before": {"status": "todo", "n": 1},
        "after": {"status": "in_progress", "n": [1, 2]},
        "summary": f"{event_id} on {entity_id}",
        "at": T0,
        "prev_hash": f"prev of {event_id}",
        "hash": f"hash of {event_id}",
        "state_hash": f"state after {event_id}",
    }
    fields.update(kw)
    return AuditEvent(**fields)


def full_event() -> AuditEvent:
    return event("ev-full", "podcast/2026-12-01/publish", seq=12, actor="producer",
                 entity_type="task", action="complete", before={"status": "in_progress"},
                 after={"deep": {"list": [1, "two", None, 3.5, True]}, "ü": "ß"},
                 summary="completed \"Publish\"\nwith a newline", at=at(3, us=123),
                 prev_hash="1" * 64, hash="2" * 64, state_hash="3" * 64)


def api_token(token_id: str = "tok-1", **kw: Any) -> ApiToken:
    fields: dict[str, Any] = dict(
        token_id=token_id, actor="ada", role=TokenRole.OPERATOR, token_sha256="c" * 64,
        created_by="admin", created_at=at(3, us=5), updated_at=at(4), version=2,
        revoked_at=at(4), revoked_by="admin", audit_seq=2, audit_hash="f" * 64,
    )
    return ApiToken(**{**fields, **kw})


def digest(digest_id: str = "dig-1", **kw: Any) -> Digest:
    fields: dict[str, Any] = dict(
        digest_id=digest_id, person_id="ada", local_date=date(2026, 12, 1),
        timezone="Europe/London", digest_at=at(8, us=30), reminder_ids=["rem-b", "rem-a"],
        created_at=at(8, us=31), delivery_status=DeliveryStatus.DELIVERED, attempts=2,
        deliver_after=at(9, us=1), last_error="451 try later", channels=["email"],
        sent_at=at(9, us=2), updated_at=at(9, us=3), version=3, audit_seq=3,
        audit_hash="e" * 64,
    )
    return Digest(**{**fields, **kw})


def idem(key_id: str = "idem-1", expires: datetime | None = None, **kw: Any) -> IdempotencyKey:
    fields: dict[str, Any] = dict(
        key_id=key_id, actor="ada", method="POST", path="/v1/tasks/x/start",
        request_sha256="1" * 64, state="done", status_code=200, response='{"a": 1}',
        headers={"etag": '"2"'}, created_at=T0, expires_at=expires or at(24 * 60), version=2,
    )
    return IdempotencyKey(**{**fields, **kw})


def seal(seal_id: str = "seal-1", when: datetime = T0, **kw: Any) -> Seal:
    fields: dict[str, Any] = dict(
        seal_id=seal_id, at=when, root="9" * 64, count=2,
        heads=[("bundle", "podcast/2026-12-01", 3, "a" * 64), ("task", "t", 1, "b" * 64)],
        created_by="scheduler",
    )
    return Seal(**{**fields, **kw})


def bump(rec: Any, **update: Any) -> Any:
    """The next version of ``rec`` (what a command writes after reading it)."""
    return rec.model_copy(update={"version": rec.version + 1, **update})


# ---- audit chains built with the real hashing (what the unit of work does) -----------------


def link(rec: Any, event_id: str, action: str = "update", *, when: datetime = T0,
         **kw: Any) -> tuple[Any, AuditEvent]:
    """``rec`` one step further along its own chain: the record carries the new head
    (``audit_seq``, ``audit_hash``), the event links to the previous head."""
    seq = rec.audit_seq + 1
    head = rec.model_copy(update={"audit_seq": seq})
    draft = AuditEvent(
        event_id=event_id, seq=seq, actor=kw.pop("actor", "tester"), entity_type=kind_of(rec),
        entity_id=record_id(rec), action=action, summary=f"{action} {record_id(rec)}", at=when,
        prev_hash=rec.audit_hash or GENESIS_HASH, hash="", state_hash=state_hash(head), **kw,
    )
    ev = draft.model_copy(update={"hash": event_hash(draft)})
    return head.model_copy(update={"audit_hash": ev.hash}), ev


def step(rec: Any, event_id: str, **update: Any) -> tuple[Any, AuditEvent]:
    """The next version of ``rec`` and the event that records it."""
    return link(bump(rec, **update), event_id)


def created(*recs: Any) -> Changes:
    """A command creating ``recs``, each with its first audit event."""
    changes = Changes()
    for rec in recs:
        head, ev = link(rec, f"ev-create-{record_id(rec)}", "create")
        changes.creates.append(head)
        changes.events.append(ev)
    return changes


def chain_problems(store: Store, kind: type[Any], rid: str) -> list[str]:
    """What ``audit verify`` would say of one entity: its chain against its record."""
    rec = store.get(kind, rid)
    return verify_entity(kind.record_kind, rid, (rec.audit_seq, rec.audit_hash, state_hash(rec)),
                         store.audit_events(rid))


# ---- inspection helpers -------------------------------------------------------------------


def dump(store: Store) -> dict[str, Any]:
    """Everything in the store, comparable with ==: every kind by ID (audit events and seals
    included), and the chains in scan order."""
    snap: dict[str, Any] = {
        kind.record_kind: {record_id(r): r.to_json() for r in every(store, kind)}  # type: ignore[attr-defined]
        for kind in ALL_KINDS
    }
    snap["chains"] = [(e.entity_id, e.seq, e.event_id) for e in every(store, AuditEvent)]
    return snap


def applied(before: dict[str, Any], changes: Changes) -> dict[str, Any]:
    """``before`` with ``changes`` written (what a store must hold after a winning commit)."""
    after = {k: dict(v) for k, v in before.items() if k != "chains"}
    for rec in (*changes.creates, *(r for r, _ in changes.updates), *changes.events):
        after[kind_of(rec)][record_id(rec)] = rec.to_json()
    after["chains"] = sorted([*before["chains"],
                              *((e.entity_id, e.seq, e.event_id) for e in changes.events)])
    return after


def ids(records: list[Any] | Page[Any]) -> list[tuple[str, str]]:
    items = records.items if isinstance(records, Page) else records
    return [(type(r).__name__, record_id(r)) for r in items]


def page_all(store: Store, kind: type[Any], limit: int, **where: str) -> list[Page[Any]]:
    """Every page of a list, following the cursors."""
    pages = [store.page(kind, where=where or None, limit=limit)]
    while pages[-1].next_cursor is not None:
        assert len(pages) < 100, "the cursor does not advance"
        pages.append(store.page(kind, where=where or None, limit=limit,
                                cursor=pages[-1].next_cursor))
    return pages


def listed(store: Store, kind: type[Any], limit: int = 3, **where: str) -> list[str]:
    return [record_id(r) for p in page_all(store, kind, limit, **where) for r in p.items]


def write_all(store: Store, changes: Changes) -> None:
    """``changes`` in one write, or in writes of ``store.max_items`` where the store has a limit."""
    step = store.max_items
    if step is None:
        store.commit(changes)
        return
    items: list[Any] = [*changes.creates, *changes.events]
    for start in range(0, len(items), step):
        chunk = items[start:start + step]
        store.commit(Changes(creates=[r for r in chunk if not isinstance(r, AuditEvent)],
                             events=[r for r in chunk if isinstance(r, AuditEvent)]))


def seeded(store: Store) -> tuple[Bundle, Task]:
    """A bundle and one of its tasks, committed with their creation events."""
    changes = created(bundle(), task())
    store.commit(changes)
    b, t = changes.creates
    return b, t  # type: ignore[return-value]


def damage(store: Store, kind: str, rid: str, doc: bytes = b'{"garbage": 1}') -> None:
    """Overwrite a stored record's JSON, as a damaged disk or a newer version would."""
    if isinstance(store, MemoryStore):
        version = getattr(store.find(KIND_BY_NAME[kind], rid), "version", 1)
        store._put_raw(kind, rid, doc, version)
        return
    if isinstance(store, DynamoStore):
        store._put_raw(kind, rid, doc)
        return
    table, key = {"task": ("tasks", "task_id"), "bundle": ("bundles", "bundle_id"),
                  "reminder": ("reminders", "reminder_id")}[kind]
    if isinstance(store, PostgresStore):
        # jsonb keeps only JSON: text that is not JSON is stored as a JSON string, which does
        # not decode as a record either
        try:
            json.loads(doc)
            value = doc.decode()
        except ValueError:
            value = json.dumps(doc.decode(errors="replace"))
        assert store._execute(f"UPDATE {{s}}.{table} SET doc = %s::jsonb WHERE {key} = %s",
                              (value, rid)) == 1
        return
    assert isinstance(store, SqliteStore)
    cur = store._raw().execute(f"UPDATE {table} SET doc = ? WHERE {key} = ?", (doc.decode(), rid))
    assert cur.rowcount == 1


@pytest.fixture
def both(tmp_path: Path) -> Iterator[tuple[Store, Store]]:
    """A memory and a SQLite store, to compare what each gives back."""
    m, s = open_store("memory://"), open_store(f"sqlite:///{tmp_path / 'both.db'}")
    yield m, s
    m.close()
    s.close()


# ---- create, get, find --------------------------------------------------------------------


FULL_BUILDERS = [full_bundle, full_task, full_artifact, full_job, full_reminder, full_event,
                 lambda: seal("seal-full", at(7, us=1)), digest]
FULL_IDS = ["bundle", "task", "artifact", "assistant_job", "reminder", "audit_event", "seal",
            "digest"]


class TestRoundTrip:
    @pytest.mark.parametrize("build", FULL_BUILDERS, ids=FULL_IDS)
    def test_create_then_get_and_find_round_trip_every_field(self, store: Store, build):
        rec = build()
        # the builder really sets every field, so a dropped column cannot hide behind a default
        unset = set(type(rec).model_fields) - rec.model_fields_set
        assert not unset, f"test builder leaves {unset} at the default"

        if isinstance(rec, AuditEvent):
            assert store.commit(Changes(events=[rec])) is None
        else:
            assert store.commit(Changes(creates=[rec])) is None

        kind = type(rec)
        for got in (store.get(kind, record_id(rec)), store.find(kind, record_id(rec))):
            assert type(got) is kind
            assert got == rec
            assert got.to_json() == rec.to_json()
        [scanned] = every(store, kind)
        assert scanned == rec

    def test_instants_come_back_as_aware_utc_with_microseconds(self, store: Store):
        t = full_task()
        store.commit(Changes(creates=[t]))
        got = store.get(Task, t.task_id)
        assert got.completed_at == at(120, us=999_999)
        assert got.completed_at.utcoffset() == timedelta(0)
        assert got.comments[0].created_at.microsecond == 42

    def test_find_of_an_unknown_id_is_none(self, store: Store):
        seeded(store)
        for kind in ALL_KINDS:
            assert store.find(kind, "no-such-id") is None

    @pytest.mark.parametrize("kind", ALL_KINDS, ids=lambda k: k.record_kind)
    def test_get_of_an_unknown_id_raises_not_found_naming_the_id(self, store: Store, kind):
        seeded(store)
        with pytest.raises(NotFoundError) as err:
            store.get(kind, "missing/2026-01-01")
        assert isinstance(err.value, LookupError)
        assert "missing/2026-01-01" in str(err.value)
        assert err.value.entity_id == "missing/2026-01-01"

    def test_a_record_of_one_kind_is_not_found_as_another(self, store: Store):
        b, t = seeded(store)
        assert store.find(Task, b.bundle_id) is None
        assert store.find(Bundle, t.task_id) is None
        assert store.find(AuditEvent, t.task_id) is None

    def test_an_empty_command_is_fine(self, store: Store):
        assert store.commit(Changes()) is None
        assert store.is_empty()


class TestInstants:
    """Instants given with any offset are stored and come back as the same UTC instant, with
    identical JSON from every adapter (records are kept as their JSON)."""

    RAW = {
        "task_id": "b/t", "bundle_id": "b", "template_id": "podcast", "template_task_ref": "t",
        "title": "T", "phase": "prep", "assignee": "host", "due_date": "2026-11-26",
        "follow_up_at": "2026-11-25T10:00:00.123456+02:00",
        "completed_at": "2026-11-24T23:30:00.000001-08:30",
        "next_reminder_at": "2026-11-25T13:45:00.5+05:45",
        "created_at": "2026-11-25T08:00:00Z",
        "updated_at": "2026-11-25T09:00:00+01:00",
        "version": 1,
    }
    UTC_JSON = {
        "follow_up_at": "2026-11-25T08:00:00.123456+00:00",
        "completed_at": "2026-11-25T08:00:00.000001+00:00",
        "next_reminder_at": "2026-11-25T08:00:00.500000+00:00",
        "created_at": "2026-11-25T08:00:00+00:00",
        "updated_at": "2026-11-25T08:00:00+00:00",
    }

    def test_an_offset_instant_comes_back_as_the_same_utc_instant(self, store: Store):
        t = Task.model_validate(self.RAW)
        store.commit(Changes(creates=[t]))
        got = store.get(Task, "b/t")
        assert got.follow_up_at == datetime(2026, 11, 25, 8, 0, 0, 123_456, tzinfo=UTC)
        for name, text in self.UTC_JSON.items():
            value = getattr(got, name)
            assert value.utcoffset() == timedelta(0), name
            assert value == datetime.fromisoformat(self.RAW[name].replace("Z", "+00:00")), name
            assert got.to_json()[name] == text
        # and the due index holds the instant itself, to the microsecond
        due = got.next_reminder_at
        assert ids(store.due_for_reminders(due, limit=5)) == [("Task", "b/t")]
        assert store.due_for_reminders(due - timedelta(microseconds=1), limit=5).items == []

    def test_every_adapter_gives_back_identical_json(self, both):
        rem = Reminder.model_validate({
            "reminder_id": "r", "kind": "due", "entity_type": "task", "entity_id": "b/t",
            "bundle_id": "b", "fire_at": "2026-11-25T10:00:00.123456+02:00",
            "recorded_at": "2026-11-25T03:00:00-05:00",
            "deliver_after": "2026-11-25T09:00:00.999999+01:00", "summary": "s"})
        ev = AuditEvent.model_validate({**event("ev").to_json(),
                                        "at": "2026-11-25T10:00:00.123456+02:00"})
        t = Task.model_validate(self.RAW)
        got = []
        for s in both:
            s.commit(Changes(creates=[t, rem], events=[ev]))
            got.append([s.get(Task, "b/t").to_json(), s.get(Reminder, "r").to_json(),
                        s.get(AuditEvent, "ev").to_json(),
                        [r.to_json() for r in s.pending_deliveries(at(60), limit=5)]])
        assert got[0] == got[1]
        assert got[0][1]["fire_at"] == "2026-11-25T08:00:00.123456+00:00"
        assert got[0][2]["at"] == "2026-11-25T08:00:00.123456+00:00"
        assert [r["reminder_id"] for r in got[0][3]] == ["r"]


# ---- creates: conflicts --------------------------------------------------------------------


class TestCreateConflict:
    def test_create_of_an_existing_id_is_a_conflict_and_writes_nothing(self, store: Store):
        b, t = seeded(store)
        before = dump(store)
        other = task("podcast/2026-12-01/other")
        dup = t.model_copy(update={"title": "a second writer's title"})

        with pytest.raises(ConflictError) as err:
            store.commit(Changes(creates=[other, dup],
                                 events=[event("ev-x", other.task_id), event("ev-y", "z")]))

        assert t.task_id in str(err.value)
        assert dump(store) == before
        assert store.find(Task, other.task_id) is None
        assert store.get(Task, t.task_id) == t
        assert [x.task_id for x in store.tasks_of(b.bundle_id)] == [t.task_id]

    @pytest.mark.parametrize("build", FULL_BUILDERS[:5] + FULL_BUILDERS[6:],
                             ids=FULL_IDS[:5] + FULL_IDS[6:])
    def test_every_kind_refuses_a_second_create(self, store: Store, build):
        rec = build()
        store.commit(Changes(creates=[rec]))
        before = dump(store)
        with pytest.raises(ConflictError) as err:
            store.commit(Changes(creates=[reminder("r-new"), rec]))
        assert record_id(rec) in str(err.value)
        assert dump(store) == before

    def test_the_same_id_twice_in_one_command_is_a_conflict(self, store: Store):
        first = task("podcast/2026-12-01/x", title="first")
        second = task("podcast/2026-12-01/x", title="second")
        with pytest.raises(ConflictError):
            store.commit(Changes(creates=[first, second], events=[event("ev-1")]))
        assert store.find(Task, first.task_id) is None
        assert store.tasks_of(first.bundle_id) == []
        assert store.is_empty()


# ---- updates: optimistic concurrency and atomicity ---------------------------------------


class TestUpdate:
    def test_update_with_the_expected_version_succeeds(self, store: Store):
        b, t = seeded(store)
        t2, e2 = step(t, "ev-t2", status=TaskStatus.IN_PROGRESS, updated_at=at(1))
        b2, e3 = step(b, "ev-b2", stage="publish")
        store.commit(Changes(updates=[(t2, 1), (b2, 1)], events=[e2, e3]))
        assert store.get(Task, t.task_id) == t2
        assert store.get(Task, t.task_id).version == 2
        assert store.get(Bundle, b.bundle_id).stage == "publish"

        t3, e4 = step(t2, "ev-t3", status=TaskStatus.DONE)
        store.commit(Changes(updates=[(t3, 2)], events=[e4]))
        got = store.get(Task, t.task_id)
        assert (got.version, got.status, got.audit_seq) == (3, TaskStatus.DONE, 3)
        assert chain_problems(store, Task, t.task_id) == []
        assert chain_problems(store, Bundle, b.bundle_id) == []

    def test_update_with_a_stale_version_is_a_conflict(self, store: Store):
        b, t = seeded(store)
        store.commit(Changes(updates=[(bump(t, title="winner"), 1)]))
        with pytest.raises(ConflictError) as err:
            store.commit(Changes(updates=[(bump(t, title="loser"), 1)]))
        assert t.task_id in str(err.value)
        assert store.get(Task, t.task_id).title == "winner"
        assert store.get(Task, t.task_id).version == 2

    def test_a_stale_update_writes_nothing_of_the_whole_command(self, store: Store):
        b, t = seeded(store)
        store.commit(Changes(updates=[(bump(t), 1)]))  # someone else moved the task to v2
        before = dump(store)

        good_create = task("podcast/2026-12-01/new")
        good_update, ev_b = step(b, "ev-a", title="changed")  # b is still at v1: fine
        stale, ev_t = step(t, "ev-b", title="stale")          # expects v1, the store has v2
        with pytest.raises(ConflictError):
            store.commit(Changes(creates=[good_create, reminder("r-new")],
                                 updates=[(good_update, 1), (stale, 1)], events=[ev_b, ev_t]))

        assert dump(store) == before
        assert store.find(Task, good_create.task_id) is None
        assert store.get(Bundle, b.bundle_id).title == b.title
        assert [x.task_id for x in store.tasks_of(b.bundle_id)] == [t.task_id]

    def test_an_update_ahead_of_the_stored_version_is_a_conflict(self, store: Store):
        _, t = seeded(store)
        with pytest.raises(ConflictError):
            store.commit(Changes(updates=[(bump(t, version=5), 4)]))
        assert store.get(Task, t.task_id) == t

    def test_update_of_a_missing_record_is_not_found_and_writes_nothing(self, store: Store):
        seeded(store)
        before = dump(store)
        ghost = task("podcast/2026-12-01/ghost", version=2)
        with pytest.raises(NotFoundError) as err:
            store.commit(Changes(creates=[task("podcast/2026-12-01/new")],
                                 updates=[(ghost, 1)], events=[event("ev-g", ghost.task_id)]))
        assert "podcast/2026-12-01/ghost" in str(err.value)
        assert err.value.entity_type == "task"
        assert dump(store) == before

    def test_updates_of_every_kind_check_versions(self, store: Store):
        recs = [full_bundle(), full_task(), full_artifact(), full_job(), full_reminder()]
        store.commit(Changes(creates=recs))
        for rec in recs:
            v = rec.version  # type: ignore[attr-defined]
            with pytest.raises(ConflictError):
                store.commit(Changes(updates=[(bump(rec), v - 1)]))
            with pytest.raises(NotFoundError):
                store.commit(Changes(updates=[(bump(rec).model_copy(
                    update={f"{rec.record_kind}_id": "ghost"}), v)]))  # type: ignore[attr-defined]
            store.commit(Changes(updates=[(bump(rec, audit_seq=99), v)]))
            got = store.get(type(rec), record_id(rec))
            assert (got.version, got.audit_seq) == (v + 1, 99)  # type: ignore[attr-defined]


# ---- audit events: plain inserts, one chain per entity ----------------------------------


class TestAuditEvents:
    def test_events_are_stored_exactly_as_given(self, store: Store):
        b = bundle()
        changes = created(b)
        changes.events.append(event("ev-other", "someone-else", seq=7, prev_hash="x",
                                    hash="y", state_hash="z"))
        store.commit(changes)
        assert store.get(AuditEvent, "ev-other").to_json() == changes.events[1].to_json()
        [first] = store.audit_events(b.bundle_id)
        assert first == changes.events[0]
        assert (first.seq, first.prev_hash) == (1, GENESIS_HASH)
        assert first.hash == event_hash(first)  # the store assigned and changed nothing
        assert store.get(Bundle, b.bundle_id).audit_hash == first.hash
        assert chain_problems(store, Bundle, b.bundle_id) == []

    def test_an_event_whose_id_exists_is_a_conflict_and_writes_nothing(self, store: Store):
        seeded(store)
        before = dump(store)
        with pytest.raises(ConflictError):
            store.commit(Changes(creates=[task("podcast/2026-12-01/new")],
                                 events=[event("ev-create-podcast/2026-12-01", "other", seq=1)]))
        assert dump(store) == before

    def test_a_second_event_at_one_place_of_a_chain_is_a_conflict(self, store: Store):
        _, t = seeded(store)  # the task's chain has event #1
        before = dump(store)
        with pytest.raises(ConflictError):
            store.commit(Changes(creates=[reminder("r-new")],
                                 events=[event("ev-fork", t.task_id, seq=1)]))
        assert dump(store) == before

    def test_two_events_at_one_place_in_one_command_is_a_conflict(self, store: Store):
        with pytest.raises(ConflictError):
            store.commit(Changes(creates=[reminder("r-new")],
                                 events=[event("ev-a", "x", seq=1), event("ev-b", "x", seq=1)]))
        assert store.is_empty()

    def test_the_same_seq_on_different_entities_is_fine(self, store: Store):
        store.commit(Changes(events=[event("ev-a", "a", seq=1), event("ev-b", "b", seq=1)]))
        store.commit(Changes(events=[event("ev-c", "c", seq=1)]))
        assert len(every(store, AuditEvent)) == 3

    def test_audit_events_are_one_chain_in_seq_order(self, store: Store):
        # written out of order and interleaved with another entity
        store.commit(Changes(events=[event("ev-a3", "a", 3), event("ev-b1", "b", 1)]))
        store.commit(Changes(events=[event("ev-a1", "a", 1), event("ev-a10", "a", 10)]))
        store.commit(Changes(events=[event("ev-a2", "a", 2), event("ev-b2", "b", 2)]))
        assert [e.seq for e in store.audit_events("a")] == [1, 2, 3, 10]
        assert [e.event_id for e in store.audit_events("b")] == ["ev-b1", "ev-b2"]
        assert store.audit_events("nobody") == []

    def test_a_failed_command_leaves_the_chain_as_it_was(self, store: Store):
        _, t = seeded(store)
        lost, ev_lost = step(t, "ev-lost", title="lost")
        with pytest.raises(ConflictError):
            store.commit(Changes(creates=[t], updates=[(lost, 1)], events=[ev_lost]))
        nxt, ev_next = step(t, "ev-next", title="next")
        store.commit(Changes(updates=[(nxt, 1)], events=[ev_next]))
        assert [e.event_id for e in store.audit_events(t.task_id)] == [
            f"ev-create-{t.task_id}", "ev-next"]
        assert chain_problems(store, Task, t.task_id) == []


# ---- reads: tasks of a bundle, paged lists, counts ----------------------------------------


class TestTasksOf:
    def test_tasks_of_a_bundle_in_definition_order(self, store: Store):
        b1, b2 = bundle("b1"), bundle("b2")
        # IDs deliberately not in alphabetical order, and interleaved with another bundle
        # positions (the definition's order) not in ID order and not in write order
        store.commit(Changes(creates=[b1, b2, task("b1/zeta", bundle_id="b1", position=0),
                                      task("b2/x", bundle_id="b2", position=0),
                                      task("b1/mid", bundle_id="b1", position=2)]))
        store.commit(Changes(creates=[task("b1/alpha", bundle_id="b1", position=1)]))
        # an update does not move a task to the end
        zeta = store.get(Task, "b1/zeta")
        store.commit(Changes(updates=[(bump(zeta, title="renamed"), 1)]))

        assert [t.task_id for t in store.tasks_of("b1")] == ["b1/zeta", "b1/alpha", "b1/mid"]
        assert [t.position for t in store.tasks_of("b1")] == [0, 1, 2]
        assert [t.task_id for t in store.tasks_of("b2")] == ["b2/x"]
        assert store.tasks_of("b1")[0].title == "renamed"
        assert store.tasks_of("no-such-bundle") == []


def _listable(store: Store) -> dict[str, list[Any]]:
    """Bundles, tasks, reminders and events for the list tests, written in shuffled order."""
    rng = random.Random(7)
    bs = [bundle(f"b-{i:02}", template_id="podcast" if i % 3 else "newsletter",
                 status=BundleStatus.COMPLETED if i % 4 == 0 else BundleStatus.ACTIVE)
          for i in range(25)]
    ts = [task(f"b-0{i % 2}/t{i:02}", bundle_id=f"b-0{i % 2}",
               status=[TaskStatus.TODO, TaskStatus.DONE, TaskStatus.WAITING][i % 3],
               assignee=["host", "producer"][i % 2 if i < 8 else 0])
          for i in range(14)]
    rs = [reminder(f"r-{i:02}", entity_id=f"b-0{i % 2}/t00",
                   fire_at=at(i // 3))  # three at each instant: the ID breaks the tie
          for i in range(11)]
    es = [event(f"ev-{i:02}", f"e{i % 3}", seq=i // 3 + 1, at=at(-(i // 2))) for i in range(13)]
    recs: list[Any] = [*bs, *ts, *rs]
    rng.shuffle(recs)
    rng.shuffle(es)
    for k in range(0, len(recs), 9):
        store.commit(Changes(creates=recs[k:k + 9], events=es[k // 9 * 3:k // 9 * 3 + 3]))
    assert len(every(store, AuditEvent)) == len(es)
    return {"bundle": bs, "task": ts, "reminder": rs, "audit_event": es}


class TestPaging:
    def test_25_bundles_in_pages_of_10(self, store: Store):
        made = _listable(store)
        pages = page_all(store, Bundle, 10)
        assert [len(p.items) for p in pages] == [10, 10, 5]
        assert [p.next_cursor is None for p in pages] == [False, False, True]
        assert [b.bundle_id for p in pages for b in p.items] == sorted(
            b.bundle_id for b in made["bundle"])
        assert [b for p in pages for b in p.items] == sorted(made["bundle"], key=record_id)

    def test_a_last_full_page_has_no_cursor(self, store: Store):
        _listable(store)
        pages = page_all(store, Bundle, 5)
        assert [len(p.items) for p in pages] == [5] * 5
        assert pages[-1].next_cursor is None
        assert store.page(Bundle, limit=100).next_cursor is None
        assert store.page(Bundle, where={"template_id": "nobody"}) == Page([], None)

    def test_list_orders(self, store: Store):
        made = _listable(store)
        assert listed(store, Task) == sorted(t.task_id for t in made["task"])
        assert listed(store, Reminder, limit=2) == [
            r.reminder_id for r in sorted(made["reminder"], key=_list_order)]
        assert listed(store, AuditEvent, limit=4) == [
            e.event_id for e in sorted(made["audit_event"], key=_list_order)]

    @pytest.mark.parametrize("kind, where", [
        (Task, {"status": "done"}),
        (Task, {"assignee": "producer"}),
        (Task, {"bundle_id": "b-01"}),
        (Task, {"bundle_id": "b-00", "status": "todo", "assignee": "host"}),
        (Bundle, {"template_id": "newsletter"}),
        (Bundle, {"status": "completed"}),
        (Bundle, {"template_id": "podcast", "status": "active"}),
        (Reminder, {"entity_id": "b-01/t00"}),
        (AuditEvent, {"entity_id": "e1"}),
    ], ids=lambda v: v.record_kind if isinstance(v, type) else ",".join(v))
    def test_filters(self, store: Store, kind, where):
        made = _listable(store)[kind.record_kind]
        expected = sorted((r for r in made if all(str(getattr(r, k)) == v
                                                  for k, v in where.items())),
                          key=_list_order)
        assert expected, "the filter should match something"
        assert len(expected) < len(made), "the filter should leave something out"
        assert listed(store, kind, 2, **where) == [record_id(r) for r in expected]
        assert store.count(kind, where=where) == len(expected)

    def test_count(self, store: Store):
        assert store.count(Bundle) == 0
        made = _listable(store)
        for kind in (Bundle, Task, Reminder, AuditEvent):
            assert store.count(kind) == len(made[kind.record_kind])

    @pytest.mark.parametrize("kind, where", [(Task, {"title": "x"}), (Bundle, {"assignee": "x"}),
                                             (Reminder, {"status": "x"})],
                             ids=["task", "bundle", "reminder"])
    def test_an_unknown_filter_is_input_error(self, store: Store, kind, where):
        _listable(store)
        with pytest.raises(InputError, match=next(iter(where))):
            store.page(kind, where=where)
        with pytest.raises(InputError):
            store.count(kind, where=where)

    def test_a_cursor_of_another_list_or_garbage_is_input_error(self, store: Store):
        _listable(store)
        bundle_cursor = store.page(Bundle, limit=2).next_cursor
        reminder_cursor = store.page(Reminder, limit=2).next_cursor
        assert bundle_cursor and reminder_cursor
        bad = [
            (Bundle, reminder_cursor), (Task, reminder_cursor), (Reminder, bundle_cursor),
            (AuditEvent, bundle_cursor),
            (Bundle, "not a cursor!"), (Reminder, "%%%"), (Task, "eyJh"),
            (Bundle, encode_cursor([{"a": 1}])), (Reminder, encode_cursor(["x", "y"])),
            (Bundle, encode_cursor([])), (Task, encode_cursor([1])),
            (Bundle, "e30"),  # a JSON object, not a list
        ]
        for kind, cursor in bad:
            with pytest.raises(InputError):
                store.page(kind, cursor=cursor)

    def test_a_cursor_survives_writes_between_pages(self, store: Store):
        _listable(store)
        first = store.page(Bundle, limit=10)
        assert first.items[-1].bundle_id == "b-09"
        store.commit(Changes(creates=[bundle("a-first"), bundle("b-09x"), bundle("z-last")]))
        second = store.page(Bundle, limit=100, cursor=first.next_cursor)
        # what sorts after the cursor's position is shown, what sorts before it is not
        assert [b.bundle_id for b in second.items] == [
            "b-09x", *(f"b-{i}" for i in range(10, 25)), "z-last"]
        assert second.next_cursor is None


def _list_order(rec: Any) -> tuple[Any, ...]:
    if isinstance(rec, Reminder):
        return (rec.fire_at, rec.reminder_id)
    if isinstance(rec, AuditEvent):
        return (rec.at, rec.entity_id, rec.seq)
    return (record_id(rec),)


# ---- the due and delivery indexes -----------------------------------------------------------


class TestDueIndex:
    def test_due_for_reminders_is_inclusive_sorted_and_limited(self, store: Store):
        cut = at(20)
        store.commit(Changes(creates=[
            bundle("b-10", next_reminder_at=at(10)),
            bundle("b-01", next_reminder_at=at(1)),
            bundle("b-none"),
            bundle("b-later", next_reminder_at=at(20, us=1)),
            task("t-05", next_reminder_at=at(5)),
            task("t-20", next_reminder_at=cut),            # exactly at the cut: included
            task("t-later", next_reminder_at=at(20, us=1)),  # one microsecond later: not
            task("t-none"),
            task("t-15", next_reminder_at=at(15, us=999_999)),
        ]))
        expected = [("Bundle", "b-01"), ("Task", "t-05"), ("Bundle", "b-10"),
                    ("Task", "t-15"), ("Task", "t-20")]
        page = store.due_for_reminders(cut, limit=100)
        assert ids(page) == expected and page.next_cursor is None
        for n in range(1, 5):
            page = store.due_for_reminders(cut, limit=n)
            assert ids(page) == expected[:n]
            assert page.next_cursor is not None, f"limit {n}: more were due"
        assert store.due_for_reminders(cut, limit=5).next_cursor is None  # exactly all
        assert store.due_for_reminders(at(0), limit=100) == Page([], None)
        assert ids(store.due_for_reminders(at(1), limit=100)) == [("Bundle", "b-01")]

    def test_due_ties_are_broken_by_id(self, store: Store):
        # inserted in reverse ID order, all due at one instant
        store.commit(Changes(creates=[task(f"t-{c}", next_reminder_at=at(5)) for c in "edcba"]
                             + [bundle(f"b-{c}", next_reminder_at=at(5)) for c in "zyx"]))
        assert ids(store.due_for_reminders(at(5), limit=2)) == [("Bundle", "b-x"),
                                                                 ("Bundle", "b-y")]
        assert ids(store.due_for_reminders(at(5), limit=5)) == [
            ("Bundle", "b-x"), ("Bundle", "b-y"), ("Bundle", "b-z"), ("Task", "t-a"),
            ("Task", "t-b")]
        store.commit(Changes(creates=[task(f"u-{c}", next_reminder_at=at(1)) for c in "dcba"]))
        assert ids(store.due_for_reminders(at(5), limit=2)) == [("Task", "u-a"), ("Task", "u-b")]

    def test_due_for_reminders_returns_whole_records(self, store: Store):
        t = full_task()
        store.commit(Changes(creates=[t]))
        [got] = store.due_for_reminders(t.next_reminder_at, limit=10).items  # type: ignore[arg-type]
        assert got == t

    def test_due_for_reminders_limit_across_kinds(self, store: Store):
        # many bundles early, tasks later: a limit must be applied to the merged order
        store.commit(Changes(
            creates=[bundle(f"b{i}", next_reminder_at=at(i)) for i in range(0, 10, 2)]
            + [task(f"t{i}", next_reminder_at=at(i)) for i in range(1, 10, 2)]))
        got = store.due_for_reminders(at(100), limit=4)
        assert ids(got) == [("Bundle", "b0"), ("Task", "t1"), ("Bundle", "b2"), ("Task", "t3")]
        assert got.next_cursor is not None

    def test_a_walk_of_small_pages_gives_each_due_record_once_in_order(self, store: Store):
        """Two walks at once, pages of 2 and of 3; between pages a record not yet reached
        stops being due (it is left out) and one already given is moved past the walk's
        instant (as a sweep moves what it reminded of: not given again)."""
        recs = [task(f"t-{i:02d}", next_reminder_at=at(i)) for i in range(9)] + [
            bundle(f"b-{i:02d}", next_reminder_at=at(i, us=1)) for i in range(0, 9, 3)]
        store.commit(Changes(creates=recs))
        order = sorted((r.next_reminder_at, r.id) for r in recs)
        expected = [rid for _, rid in order]
        walks: dict[int, tuple[list[str], str | None]] = {2: ([], None), 3: ([], None)}
        first = True
        while any(c is not None or not got for got, c in walks.values()):
            for limit, (got, cursor) in walks.items():
                if got and cursor is None:
                    continue
                page = store.due_for_reminders(at(100), limit=limit, cursor=cursor)
                assert len(page.items) <= limit
                got += [r.id for r in page.items]
                walks[limit] = (got, page.next_cursor)
            if first:  # after the first pages: t-07 is no longer due, t-00 is reminded of
                first = False
                t7, t0 = store.get(Task, "t-07"), store.get(Task, "t-00")
                store.commit(Changes(updates=[(bump(t7, next_reminder_at=None), 1),
                                              (bump(t0, next_reminder_at=at(200)), 1)]))
        for limit, (got, _) in walks.items():
            assert got == [r for r in expected if r != "t-07"], limit

    def test_due_for_reminders_follows_updates(self, store: Store):
        b = bundle("b", next_reminder_at=at(1))
        t = task("t", next_reminder_at=at(50))
        store.commit(Changes(creates=[b, t]))
        store.commit(Changes(updates=[(bump(b, next_reminder_at=None), 1),
                                      (bump(t, next_reminder_at=at(0)), 1)]))
        due = store.due_for_reminders(at(10), limit=10)
        assert ids(due) == [("Task", "t")]
        assert due.items[0].version == 2

    def test_pending_deliveries_is_inclusive_sorted_and_limited(self, store: Store):
        cut = at(20)
        store.commit(Changes(creates=[
            reminder("r-03", deliver_after=at(3), recorded_at=at(0)),
            reminder("r-01", deliver_after=at(1), recorded_at=at(0, us=1)),
            reminder("r-20", deliver_after=cut, recorded_at=at(0, us=2)),
            reminder("r-02b", deliver_after=at(2), recorded_at=at(0, us=5)),
            reminder("r-02a", deliver_after=at(2), recorded_at=at(0, us=6)),
            reminder("r-later", deliver_after=at(20, us=1), recorded_at=at(0, us=3)),
            reminder("r-none", deliver_after=None, recorded_at=at(0, us=4)),
        ]))
        expected = ["r-01", "r-02a", "r-02b", "r-03", "r-20"]
        assert [r.reminder_id for r in store.pending_deliveries(cut, limit=100)] == expected
        for n in range(1, 6):
            assert [r.reminder_id for r in store.pending_deliveries(cut, limit=n)] == expected[:n]
        assert store.pending_deliveries(at(0), limit=10) == []

        # delivered: no longer pending
        r1 = store.get(Reminder, "r-01")
        store.commit(Changes(updates=[(bump(r1, deliver_after=None,
                                            delivery_status=DeliveryStatus.DELIVERED,
                                            attempts=1), 1)]))
        assert [r.reminder_id for r in store.pending_deliveries(cut, limit=100)] == expected[1:]

    def test_reminders_all_and_by_entity(self, store: Store):
        store.commit(Changes(creates=[
            reminder("r-a1", entity_id="a", recorded_at=at(1)),
            reminder("r-b1", entity_id="b", recorded_at=at(2)),
        ]))
        store.commit(Changes(creates=[reminder("r-a2", entity_id="a", recorded_at=at(3))]))
        assert [r.reminder_id for r in reminders(store)] == ["r-a1", "r-b1", "r-a2"]
        assert [r.reminder_id for r in reminders(store, entity_id="a")] == ["r-a1", "r-a2"]
        assert [r.reminder_id for r in reminders(store, entity_id="b")] == ["r-b1"]
        assert reminders(store, entity_id="c") == []


# ---- scans and snapshots ----------------------------------------------------------------------


def _scannable() -> list[Changes]:
    """Records of every kind with IDs that sort in interesting ways, written out of order, and
    event chains of several entities written out of seq order."""
    names = ["b/ä", "B", "b-1", "b/1", "b10", "b2", "a", "Z/z", "b/1/x"]
    rng = random.Random(11)
    rng.shuffle(names)
    recs: list[Any] = []
    for n in names:
        recs += [bundle(f"bundle {n}"), task(f"{n}/t", bundle_id=f"bundle {n}"),
                 full_artifact().model_copy(update={"artifact_id": f"art {n}"}),
                 full_job().model_copy(update={"assistant_job_id": f"job {n}"}),
                 reminder(f"rem {n}", entity_id=n), seal(f"seal {n}", at(len(n))),
                 api_token(f"tok {n}"), idem(f"idem {n}"), digest(f"dig {n}")]
    evs = [event(f"ev-{e}-{s}", e, seq=s, at=at(-s)) for e in ("b", "a", "B", "ä") for s in
           (3, 12, 1, 10, 2, 11)]
    rng.shuffle(evs)
    return [Changes(creates=recs[k:k + 9], events=evs[k // 9 * 4:k // 9 * 4 + 4])
            for k in range(0, len(recs), 9)]


class TestTwoUpdatesInOneWrite:
    def test_two_updates_of_one_record_from_one_version_conflict_and_write_nothing(
            self, store: Store):
        r = reminder("r-twice")
        store.commit(Changes(creates=[r]))
        a = r.model_copy(update={"summary": "a", "version": 2})
        b = r.model_copy(update={"summary": "b", "version": 2})
        with pytest.raises(ConflictError):
            store.commit(Changes(updates=[(a, 1), (b, 1)]))
        assert store.get(Reminder, "r-twice") == r
        # one after the other (the second from the first's version) is a write
        c = a.model_copy(update={"summary": "c", "version": 3})
        store.commit(Changes(updates=[(a, 1), (c, 2)]))
        assert store.get(Reminder, "r-twice").summary == "c"


class TestDigestIndexes:
    """The two indexes digests are found by: reminders by ``digest_after`` (the earliest digest
    still to gather them) and digests by ``deliver_after`` (to send)."""

    def test_pending_digests_and_their_deliveries_are_indexed_oldest_first(self, store: Store):
        rems = [reminder(f"r{i}", digest_after=at(i)) for i in (3, 1, 2)] + [reminder("r-none")]
        digs = [digest(f"d{i}", deliver_after=at(i)) for i in (2, 1)] + [
            digest("d-none", deliver_after=None)]
        store.commit(Changes(creates=[*rems, *digs]))
        assert [r.reminder_id for r in store.pending_digests(at(2), 10)] == ["r1", "r2"]
        assert [r.reminder_id for r in store.pending_digests(at(9), 2)] == ["r1", "r2"]
        assert [d.digest_id for d in store.pending_digest_deliveries(at(9), 10)] == ["d1", "d2"]
        # an update moves the index with the record
        r1 = store.get(Reminder, "r1")
        store.commit(Changes(updates=[(r1.model_copy(update={"digest_after": None, "version": 2}), 1)]))
        assert [r.reminder_id for r in store.pending_digests(at(9), 10)] == ["r2", "r3"]


class TestClaimableJobs:
    """The index workers claim by: ``claimable_at`` at or before the instant, by kind, oldest
    first; a job with none (finished) is never listed."""

    def test_claimable_jobs_in_order_filtered_by_kind(self, store: Store):
        b = bundle()
        t = task("podcast/2026-12-01/publish", bundle_id=b.bundle_id)
        base = full_job().model_copy(update={"task_id": t.task_id, "output_artifact_id": None})
        jobs = [base.model_copy(update={"assistant_job_id": f"job-{i}", "kind": kind,
                                        "claimable_at": when})
                for i, (kind, when) in enumerate([("a", at(5)), ("b", at(1)), ("a", at(1)),
                                                  ("a", None), ("a", at(30))])]
        store.commit(Changes(creates=[b, t, *jobs]))
        assert [j.assistant_job_id for j in store.claimable_jobs(at(10), None, 10)] == [
            "job-1", "job-2", "job-0"]
        assert [j.assistant_job_id for j in store.claimable_jobs(at(10), ["a"], 10)] == [
            "job-2", "job-0"]
        assert [j.assistant_job_id for j in store.claimable_jobs(at(10), ["a", "b"], 1)] == [
            "job-1"]
        assert store.claimable_jobs(at(0), None, 10) == []
        moved = bump(jobs[2], claimable_at=None)
        store.commit(Changes(updates=[(moved, jobs[2].version)]))
        assert [j.assistant_job_id for j in store.claimable_jobs(at(10), ["a"], 10)] == ["job-0"]
        listed = store.page(AssistantJob, where={"task_id": t.task_id, "kind": "a"})
        assert [j.assistant_job_id for j in listed.items] == ["job-0", "job-2", "job-3", "job-4"]


class TestIdempotencyKeys:
    """Request state of the HTTP API: a conditional create and update like any record, purged
    by expiry in bounded batches, and not something that makes a store non-empty."""

    def test_a_key_is_created_once_and_updated_conditionally(self, store: Store):
        pending = idem("k", state="pending", status_code=None, response=None, version=1)
        store.commit(Changes(creates=[pending]))
        with pytest.raises(ConflictError):
            store.commit(Changes(creates=[pending]))
        done = idem("k", version=2)
        store.commit(Changes(updates=[(done, 1)]))
        with pytest.raises(ConflictError):
            store.commit(Changes(updates=[(idem("k", version=2), 1)]))
        assert store.get(IdempotencyKey, "k") == done

    def test_purge_removes_only_expired_keys_at_most_limit_at_a_time(self, store: Store):
        store.commit(Changes(creates=[idem(f"old{i}", expires=at(i)) for i in range(5)]
                             + [idem("new", expires=at(100))]))
        assert store.purge_idempotency_keys(at(10), limit=3) == 3
        assert store.purge_idempotency_keys(at(10), limit=3) == 2
        assert store.purge_idempotency_keys(at(10)) == 0
        assert store.find(IdempotencyKey, "new") is not None
        assert store.purge_idempotency_keys(at(100)) == 1

    def test_keys_alone_leave_a_store_empty_tokens_do_not(self, store: Store):
        store.commit(Changes(creates=[idem("k")]))
        assert store.is_empty()
        store.commit(Changes(creates=[api_token("t")]))
        assert not store.is_empty()


class TestScans:
    def test_scan_yields_every_record_of_a_kind_in_id_order(self, store: Store):
        commands = _scannable()
        for c in commands:
            store.commit(c)
        written = [r for c in commands for r in (*c.creates, *c.events)]
        for kind in ALL_KINDS:
            mine = [r for r in written if type(r) is kind]
            scanned = every(store, kind)
            if kind is AuditEvent:
                assert scanned == sorted(mine, key=lambda e: (e.entity_id, e.seq))
                assert [e.seq for e in scanned if e.entity_id == "a"] == [1, 2, 3, 10, 11, 12]
            else:
                assert scanned == sorted(mine, key=record_id)

    def test_scans_are_identical_on_every_adapter(self, both):
        for s in both:
            for c in _scannable():
                s.commit(c)
        memory, sqlite = both
        for kind in ALL_KINDS:
            a, b = every(memory, kind), every(sqlite, kind)
            assert len(a) > 1
            assert [r.to_json() for r in a] == [r.to_json() for r in b], kind.record_kind
        assert dump(memory) == dump(sqlite)
        for kind in (Bundle, Task, Reminder, AuditEvent):
            assert [p.items for p in page_all(memory, kind, 4)] == [
                p.items for p in page_all(sqlite, kind, 4)]
        assert memory.tasks_of("bundle b/ä") == sqlite.tasks_of("bundle b/ä")

    def test_scan_of_an_empty_store(self, store: Store):
        for kind in ALL_KINDS:
            assert every(store, kind) == []

    def test_bundles_helper_is_oldest_first_then_by_id(self, store: Store):
        store.commit(Changes(creates=[bundle("a", created_at=at(30))]))
        store.commit(Changes(creates=[bundle("b", created_at=at(10, us=500))]))
        store.commit(Changes(creates=[bundle("c", created_at=at(10)), bundle("z"),
                                      bundle("m")]))
        store.commit(Changes(creates=[bundle("d", created_at=at(-1000))]))
        assert [b.bundle_id for b in bundles(store)] == ["d", "m", "z", "c", "b", "a"]

    def test_a_snapshot_does_not_see_a_write_made_while_it_is_read(self, store: Store):
        tasks = [task(f"b/t{i:04}", bundle_id="b") for i in range(600)]
        write_all(store, Changes(creates=[bundle("b"), *tasks], events=[event("ev-1", "b")]))
        with store.snapshot() as snap:
            scan = snap.scan(Task)
            first = next(scan)  # the snapshot's read has begun
            store.commit(Changes(creates=[task("b/zzzz", bundle_id="b"), bundle("zz-new")],
                                 updates=[(bump(first, title="moved on"), 1),
                                          (bump(tasks[-1], title="moved on"), 1)],
                                 events=[event("ev-2", "b", seq=2)]))
            seen = [first, *scan]
            again = list(snap.scan(Task))
            seen_bundles = [b.bundle_id for b in snap.scan(Bundle)]
            seen_events = [e.event_id for e in snap.scan(AuditEvent)]
        assert seen == tasks
        assert again == tasks
        assert seen_bundles == ["b"]
        assert seen_events == ["ev-1"]
        # outside the snapshot the write is there
        assert len(every(store, Task)) == 601
        assert store.get(Task, tasks[-1].task_id).title == "moved on"
        assert len(every(store, AuditEvent)) == 2

    def test_two_snapshots_at_once(self, store: Store):
        seeded(store)
        with store.snapshot() as one, store.snapshot() as two:
            assert list(one.scan(Task)) == list(two.scan(Task))


# ---- quarantine ------------------------------------------------------------------------------


class TestQuarantine:
    @pytest.mark.parametrize("doc", [b'{"garbage": 1}', b"not json at all", b'{"taskId": 5}'],
                             ids=["wrong-shape", "not-json", "bad-field"])
    def test_an_unreadable_task_is_quarantined_and_the_others_still_read(self, store: Store,
                                                                         doc):
        b = bundle("b")
        ts = [task(f"b/t{i}", bundle_id="b", next_reminder_at=at(i)) for i in range(5)]
        store.commit(Changes(creates=[b, *ts], events=[event("ev-1", "b/t2")]))
        bad = "b/t2"
        damage(store, "task", bad, doc)

        with pytest.raises(RecordUnreadable) as err:
            store.get(Task, bad)
        assert bad in str(err.value)
        assert (err.value.entity_type, err.value.entity_id) == ("task", bad)
        with pytest.raises(RecordUnreadable):
            store.find(Task, bad)
        assert bad in store.quarantined and store.quarantined[bad]

        good = [t.task_id for t in ts if t.task_id != bad]
        assert [t.task_id for t in store.tasks_of("b")] == good
        assert listed(store, Task, 2) == good
        assert listed(store, Task, 2, bundle_id="b") == good
        assert [t.task_id for t in every(store, Task)] == good
        assert [r.id for r in store.due_for_reminders(at(100), limit=10).items] == good
        for rid in good:
            assert store.get(Task, rid) == ts[int(rid[-1])]
        assert store.get(Bundle, "b") == b
        assert [e.event_id for e in store.audit_events(bad)] == ["ev-1"]
        assert list(store.quarantined) == [bad]

    def test_an_unreadable_reminder_is_skipped_by_deliveries(self, store: Store):
        store.commit(Changes(creates=[reminder(f"r-{i}", deliver_after=at(i)) for i in range(3)]))
        damage(store, "reminder", "r-1")
        assert [r.reminder_id for r in store.pending_deliveries(at(10), limit=10)] == ["r-0", "r-2"]
        assert [r.reminder_id for r in every(store, Reminder)] == ["r-0", "r-2"]
        assert "r-1" in store.quarantined


# ---- deterministic IDs, size limit --------------------------------------------------------


class TestIdempotentInsert:
    def test_a_reminder_with_an_existing_id_is_a_conflict_and_the_first_wins(self, store: Store):
        rid = reminder_id_for("due", "podcast/2026-12-01/book-guest", at(60))
        first = created(reminder(rid, summary="first daemon", recorded_at=at(60)))
        store.commit(first)

        second = reminder(rid, summary="second daemon", recorded_at=at(61), late=True)
        with pytest.raises(ConflictError) as err:
            store.commit(Changes(creates=[second], events=[event("ev-2", "x")]))
        assert rid in str(err.value)

        assert store.get(Reminder, rid) == first.creates[0]
        assert reminders(store) == first.creates
        assert [e.event_id for e in every(store, AuditEvent)] == [f"ev-create-{rid}"]

    def test_the_same_deterministic_id_from_two_runs_is_one_record(self, store: Store):
        rid_a = reminder_id_for("overdue", "t", at(24 * 60))
        rid_b = reminder_id_for("overdue", "t", at(24 * 60).astimezone(
            timezone(timedelta(hours=-7))))  # the same instant in another zone
        assert rid_a == rid_b
        store.commit(created(reminder(rid_a, entity_id="t")))
        with pytest.raises(ConflictError):
            store.commit(created(reminder(rid_b, entity_id="t")))
        assert len(reminders(store, entity_id="t")) == 1


@pytest.fixture(params=["url", "argument"])
def limited(request: pytest.FixtureRequest) -> Store:
    """A memory store declaring a per-write limit of 10 items, as DynamoDB would (100)."""
    if request.param == "url":
        return open_store("memory://?max_items=10")
    return MemoryStore(max_items=10)


class TestSizeLimit:
    def test_the_limit_is_declared(self, limited: Store):
        assert limited.max_items == 10

    def test_more_than_the_limit_is_input_error_and_writes_nothing(self, limited: Store):
        seeded(limited)
        before = dump(limited)
        too_many = Changes(creates=[task(f"b/t{i:03}", bundle_id="b") for i in range(11)])
        with pytest.raises(InputError) as err:
            limited.commit(too_many)
        assert "10" in str(err.value) and "11" in str(err.value)
        assert dump(limited) == before

    def test_events_and_updates_count_toward_the_limit(self, limited: Store):
        _, t = seeded(limited)
        before = dump(limited)
        changes = Changes(creates=[task(f"b/t{i:03}", bundle_id="b") for i in range(4)],
                          updates=[(bump(t), 1)],
                          events=[event(f"ev-{i}", "b") for i in range(6)])
        assert changes.size() == 11
        with pytest.raises(InputError):
            limited.commit(changes)
        assert dump(limited) == before

    def test_exactly_the_limit_is_fine(self, limited: Store):
        changes = Changes(creates=[task(f"b/t{i:03}", bundle_id="b") for i in range(9)],
                          events=[event("ev-1", "b")])
        limited.commit(changes)
        assert len(limited.tasks_of("b")) == 9
        assert len(every(limited, AuditEvent)) == 1

    @pytest.mark.parametrize("url", ["memory://?max_items=1", "memory://?max_items=0",
                                     "memory://?max_items=many", "memory://?max_items=-5"])
    def test_a_bad_limit_is_input_error(self, url):
        with pytest.raises(InputError, match="max_items"):
            open_store(url)

    def test_no_limit_by_default_and_a_500_task_write_is_one_command(self, store: Store):
        b = bundle("big")
        # in reverse ID order: tasks_of keeps definition order, not ID order
        ts = [task(f"big/t{i:03}", bundle_id="big", position=n)
              for n, i in enumerate(reversed(range(500)))]
        changes = created(b, *ts)
        assert changes.size() == 1002
        if isinstance(store, DynamoStore):  # the one adapter with a limit: 100 items a write
            assert store.max_items == 50
            with pytest.raises(InputError, match="at most 50"):
                store.commit(changes)
            assert store.is_empty()
            for start in range(0, len(changes.creates), 25):  # the same, 25 records a write
                store.commit(Changes(creates=changes.creates[start:start + 25],
                                     events=changes.events[start:start + 25]))
        else:
            assert store.max_items is None
            store.commit(changes)
        assert [t.task_id for t in store.tasks_of("big")] == [t.task_id for t in ts]
        assert store.count(Task, where={"bundle_id": "big"}) == 500
        assert len(every(store, AuditEvent)) == 501


# ---- empty, seals -------------------------------------------------------------------------


class TestEmptyAndSeals:
    @pytest.mark.parametrize("build", FULL_BUILDERS, ids=FULL_IDS)
    def test_is_empty_until_the_first_write(self, store: Store, build):
        assert store.is_empty()
        rec = build()
        store.commit(Changes(events=[rec]) if isinstance(rec, AuditEvent)
                     else Changes(creates=[rec]))
        assert not store.is_empty()

    def test_latest_seal_is_the_newest_by_time(self, store: Store):
        assert store.latest_seal() is None
        store.commit(Changes(creates=[seal("s-m", at(20))]))
        assert store.latest_seal() == seal("s-m", at(20))
        # newest by `at`, whatever the IDs and the order of writing
        store.commit(Changes(creates=[seal("s-a", at(30, us=1)), seal("s-z", at(10))]))
        store.commit(Changes(creates=[seal("s-b", at(30))]))
        latest = store.latest_seal()
        assert isinstance(latest, Seal)
        assert latest == seal("s-a", at(30, us=1))


# ---- writers: races and independence ------------------------------------------------------


def _thread_race(stores: list[Store], task_id: str, round_no: int
                 ) -> list[tuple[bool | BaseException | None, Changes]]:
    """Each store (one per thread) loads the task, all wait, then all try the same update, each
    with its own new reminder and its event at the same place of the task's chain."""
    n = len(stores)
    barrier = threading.Barrier(n, timeout=10)
    outcome: list[bool | BaseException | None] = [None] * n
    commands: list[Changes] = [Changes()] * n

    def writer(i: int) -> None:
        try:
            current = stores[i].get(Task, task_id)
            new, ev = step(current, f"ev-{round_no}-{i}", title=f"writer {i} round {round_no}")
            commands[i] = Changes(creates=[reminder(f"rem-{round_no}-{i}")],
                                  updates=[(new, current.version)], events=[ev])
            barrier.wait()
            try:
                stores[i].commit(commands[i])
                outcome[i] = True
            except ThrottledError as e:  # a capacity refusal is not a lost race
                outcome[i] = e
            except ConflictError:
                outcome[i] = False
        except BaseException as e:  # noqa: BLE001 - reported below
            outcome[i] = e
            barrier.abort()

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(n)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=30)
    errors = [o for o in outcome if isinstance(o, BaseException) or o is None]
    assert not errors, errors
    return list(zip(outcome, commands, strict=True))


def _own_writes(stores: list[Store], task_ids: list[str], rounds: int) -> list[list[str]]:
    """Thread i updates its own task (and appends to its own chain) ``rounds`` times, all
    released together; the problems each met (a conflict, a throttle, anything)."""
    barrier = threading.Barrier(len(stores), timeout=10)
    problems: list[list[str]] = [[] for _ in stores]

    def writer(i: int) -> None:
        try:
            barrier.wait()
            for rnd in range(rounds):
                current = stores[i].get(Task, task_ids[i])
                new, ev = step(current, f"{task_ids[i]}-ev-{rnd}", title=f"round {rnd}")
                try:
                    stores[i].commit(Changes(updates=[(new, current.version)], events=[ev]))
                except (ConflictError, ThrottledError) as e:
                    problems[i].append(f"round {rnd}: {type(e).__name__}: {e}")
        except BaseException as e:  # noqa: BLE001 - reported below
            problems[i].append(f"{type(e).__name__}: {e}")
            barrier.abort()

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(len(stores))]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=60)
    assert not any(th.is_alive() for th in threads)
    return problems


def _check_own_writes(store: Store, task_ids: list[str], rounds: int) -> None:
    for tid in task_ids:
        t = store.get(Task, tid)
        assert (t.version, t.audit_seq, t.title) == (1 + rounds, 1 + rounds, f"round {rounds - 1}")
        assert len(store.audit_events(tid)) == 1 + rounds
        assert chain_problems(store, Task, tid) == []


class TestRacingWriters:
    THREADS = 8
    ROUNDS = 5

    def test_threads_racing_on_one_version_exactly_one_wins(self, store: Store):
        _, t = seeded(store)
        for rnd in range(self.ROUNDS):
            before_version = store.get(Task, t.task_id).version
            before = dump(store)
            results = _thread_race([store] * self.THREADS, t.task_id, rnd)
            outcome = [o for o, _ in results]
            assert outcome.count(True) == 1, outcome
            assert outcome.count(False) == self.THREADS - 1
            winner = outcome.index(True)
            after = store.get(Task, t.task_id)
            assert after.version == before_version + 1
            assert after.title == f"writer {winner} round {rnd}"
            # the losers wrote nothing at all: not their reminder, not their event
            assert dump(store) == applied(before, results[winner][1])
        assert len(store.audit_events(t.task_id)) == 1 + self.ROUNDS
        assert chain_problems(store, Task, t.task_id) == []

    def test_a_lost_race_changes_nothing(self, store: Store):
        b, t = seeded(store)
        mine = store.get(Task, t.task_id)
        theirs, ev = step(t, "ev-theirs", title="theirs")
        store.commit(Changes(updates=[(theirs, 1)], events=[ev]))  # the other writer won
        before = dump(store)
        lost, ev_lost = step(mine, "ev-mine", title="mine")
        b2, ev_b = step(b, "ev-bundle", stage="publish")
        with pytest.raises(ConflictError):
            store.commit(Changes(creates=[task("podcast/2026-12-01/new"), reminder("r-mine"),
                                          seal("seal-mine")],
                                 updates=[(b2, 1), (lost, mine.version)], events=[ev_b, ev_lost]))
        assert dump(store) == before
        assert store.tasks_of(b.bundle_id) == [theirs]


class TestIndependentWriters:
    """DESIGN.md: writers on different records never contend (no global counter or chain)."""

    THREADS = 8
    ROUNDS = 20

    def test_threads_on_their_own_records_never_conflict(self, store: Store):
        tids = [f"b/t{i}" for i in range(self.THREADS)]
        store.commit(created(bundle("b"), *(task(tid, bundle_id="b") for tid in tids)))
        problems = _own_writes([store] * self.THREADS, tids, self.ROUNDS)
        assert problems == [[]] * self.THREADS
        _check_own_writes(store, tids, self.ROUNDS)
        assert len(every(store, AuditEvent)) == 1 + self.THREADS * (1 + self.ROUNDS)


# ---- SQLite specifics -------------------------------------------------------------------------


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[SqliteStore]:
    s = SqliteStore(f"sqlite:///{tmp_path / 'store.db'}")
    yield s
    s.close()


class TestSqlite:
    def test_the_file_uses_wal(self, sqlite_store, tmp_path: Path):
        seeded(sqlite_store)
        other = sqlite3.connect(tmp_path / "store.db")
        try:
            assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        finally:
            other.close()

    def test_synchronous_defaults_to_full(self, sqlite_store):
        assert sqlite_store.synchronous == "FULL"
        assert sqlite_store._raw().execute("PRAGMA synchronous").fetchone()[0] == 2

    @pytest.mark.parametrize("given, name, level", [("NORMAL", "NORMAL", 1), ("normal", "NORMAL", 1),
                                                   ("EXTRA", "EXTRA", 3)])
    def test_synchronous_from_the_url_is_honoured(self, tmp_path: Path, given, name, level):
        s = open_store(f"sqlite:///{tmp_path / 'n.db'}?synchronous={given}")
        try:
            assert s.synchronous == name
            assert s._raw().execute("PRAGMA synchronous").fetchone()[0] == level
            assert s.path == tmp_path / "n.db"  # the query is not part of the file name
            seeded(s)
        finally:
            s.close()
        assert (tmp_path / "n.db").exists()

    def test_a_bad_synchronous_value_is_input_error(self, tmp_path: Path):
        with pytest.raises(InputError, match="synchronous"):
            open_store(f"sqlite:///{tmp_path / 'n.db'}?synchronous=SOMETIMES")

    @pytest.mark.parametrize("url", ["sqlite://x", "sqlite:x.db", "sqlite:///", "sqlite://"])
    def test_a_bad_url_is_input_error(self, url):
        with pytest.raises(InputError) as err:
            open_store(url)
        assert url in str(err.value)
        with pytest.raises(InputError):
            SqliteStore(url)

    @pytest.mark.parametrize("url, path, options", [
        ("sqlite:///rel.db", "rel.db", {}),
        ("sqlite:///sub/rel.db?synchronous=NORMAL", "sub/rel.db", {"synchronous": "NORMAL"}),
        ("sqlite:////abs/x.db", "/abs/x.db", {}),
        ("sqlite:////abs/x.db?synchronous=EXTRA&synchronous=FULL", "/abs/x.db",
         {"synchronous": "FULL"}),
    ])
    def test_url_parsing(self, url, path, options):
        assert path_from_url(url) == (path, options)

    def test_a_relative_path_is_relative_to_the_working_folder(self, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch):
        monkeypatch.chdir(tmp_path)
        s = open_store("sqlite:///rel.db")
        try:
            seeded(s)
        finally:
            s.close()
        assert (tmp_path / "rel.db").exists()

    @pytest.mark.parametrize("scheme", ["memory", "sqlite"])
    def test_open_store_picks_the_adapter(self, tmp_path: Path, scheme):
        s = open_store("memory://" if scheme == "memory" else f"sqlite:///{tmp_path / 'x.db'}")
        try:
            assert isinstance(s, MemoryStore if scheme == "memory" else SqliteStore)
            assert isinstance(s, Store)
        finally:
            s.close()

    def test_a_folder_that_does_not_exist_is_input_error(self, tmp_path: Path):
        missing = tmp_path / "nope" / "deeper"
        with pytest.raises(InputError) as err:
            open_store(f"sqlite:///{missing / 'store.db'}")
        assert str(missing) in str(err.value)
        assert not missing.exists()

    def test_a_schema_2_file_is_upgraded_in_place_when_opened(self, tmp_path: Path):
        path = tmp_path / "v2.db"
        first = SqliteStore(f"sqlite:///{path}")
        b = bundle()
        first.commit(Changes(creates=[b]))
        first.close()
        db = sqlite3.connect(path)  # what a schema-2 file is: no token or idempotency tables
        db.execute("DROP TABLE digests")  # (nor what schema 4 adds)
        db.execute("DROP INDEX reminders_digest_after")
        db.execute("ALTER TABLE reminders DROP COLUMN digest_after_us")
        db.execute("DROP TABLE api_tokens")
        db.execute("DROP TABLE idempotency_keys")
        db.execute("DROP TABLE assistant_jobs")
        db.execute("CREATE TABLE assistant_jobs (assistant_job_id TEXT PRIMARY KEY, bundle_id "
                   "TEXT NOT NULL, task_id TEXT, version INTEGER NOT NULL, doc TEXT NOT NULL)")
        db.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
        db.commit()
        db.close()
        again = SqliteStore(f"sqlite:///{path}")
        assert again.schema_version() == SCHEMA_VERSION
        assert again.get(Bundle, b.bundle_id) == b
        job = full_job().model_copy(update={"task_id": None, "output_artifact_id": None})
        again.commit(Changes(creates=[api_token(), idem(), job, digest(),
                                      reminder("r-d", digest_after=at(1))]))
        assert again.claimable_jobs(at(10), None, 5) == [job]
        assert [r.reminder_id for r in again.pending_digests(at(10), 5)] == ["r-d"]
        again.close()

    def test_a_schema_3_file_is_upgraded_in_place_when_opened(self, tmp_path: Path):
        path = tmp_path / "v3.db"
        first = SqliteStore(f"sqlite:///{path}")
        old = reminder("r-old")
        first.commit(Changes(creates=[old]))
        first.close()
        db = sqlite3.connect(path)  # what a schema-3 file is: no digests, no digest index
        db.execute("DROP TABLE digests")
        db.execute("DROP INDEX reminders_digest_after")
        db.execute("ALTER TABLE reminders DROP COLUMN digest_after_us")
        db.execute("UPDATE meta SET value = '3' WHERE key = 'schema_version'")
        db.commit()
        db.close()
        again = SqliteStore(f"sqlite:///{path}")
        assert again.schema_version() == SCHEMA_VERSION
        assert again.get(Reminder, "r-old") == old
        again.commit(Changes(creates=[digest(), reminder("r-d", digest_after=at(1))]))
        assert [r.reminder_id for r in again.pending_digests(at(10), 5)] == ["r-d"]
        assert again.get(Digest, "dig-1") == digest()
        again.close()

    @pytest.mark.parametrize("version, hint", [("1", "keep using 0.1"), ("5", "upgrade")])
    def test_another_schema_version_is_input_error(self, tmp_path: Path, version, hint):
        path = tmp_path / "old.db"
        db = sqlite3.connect(path)
        db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        db.execute("INSERT INTO meta VALUES ('schema_version', ?)", (version,))
        db.commit()
        db.close()
        with pytest.raises(InputError, match=hint) as err:
            open_store(f"sqlite:///{path}")
        assert f"schema {version}" in str(err.value)

    def test_the_store_reopens_with_its_data(self, tmp_path: Path):
        url = f"sqlite:///{tmp_path / 'store.db'}"
        s = open_store(url)
        recs = [full_bundle(), full_task(), full_artifact(), full_job(), full_reminder(),
                seal()]
        s.commit(Changes(creates=recs, events=[full_event(), event("ev-2")]))
        before = dump(s)
        s.close()
        s2 = open_store(url)
        try:
            assert dump(s2) == before
            assert not s2.is_empty()
            s2.commit(Changes(events=[event("ev-3", seq=2)]))
            assert [e.seq for e in s2.audit_events("podcast/2026-12-01/book-guest")] == [1, 2]
        finally:
            s2.close()

    def test_reads_do_not_wait_for_a_writer(self, sqlite_store, tmp_path: Path):
        b, t = seeded(sqlite_store)
        holder = sqlite3.connect(tmp_path / "store.db", isolation_level=None)
        try:
            holder.execute("BEGIN IMMEDIATE")
            holder.execute("UPDATE tasks SET status = 'done'")  # not committed
            sqlite_store._raw().execute("PRAGMA busy_timeout=50")
            assert sqlite_store.get(Task, t.task_id) == t
            assert sqlite_store.tasks_of(b.bundle_id) == [t]
            assert every(sqlite_store, Task) == [t]
        finally:
            holder.execute("ROLLBACK")
            holder.close()

    def test_threads_with_their_own_connections_race_one_winner(self, tmp_path: Path):
        url = f"sqlite:///{tmp_path / 'race.db'}"
        stores = [open_store(url) for _ in range(4)]
        try:
            _, t = seeded(stores[0])
            for rnd in range(5):
                outcome = [o for o, _ in _thread_race(stores, t.task_id, rnd)]
                assert outcome.count(True) == 1, outcome
            final = stores[1].get(Task, t.task_id)
            assert final.version == 1 + 5
            assert len(stores[2].audit_events(t.task_id)) == 1 + 5
            assert chain_problems(stores[3], Task, t.task_id) == []
            assert len(every(stores[3], Reminder)) == 5
        finally:
            for s in stores:
                s.close()

    def test_threads_with_their_own_connections_on_their_own_records_never_conflict(
            self, tmp_path: Path):
        url = f"sqlite:///{tmp_path / 'own.db'}"
        stores = [open_store(url) for _ in range(8)]
        try:
            tids = [f"b/t{i}" for i in range(len(stores))]
            stores[0].commit(created(bundle("b"), *(task(tid, bundle_id="b") for tid in tids)))
            problems = _own_writes(stores, tids, 10)
            assert problems == [[]] * len(stores)
            _check_own_writes(stores[0], tids, 10)
        finally:
            for s in stores:
                s.close()


class TestSqliteDriverErrors:
    """Each mapping of :data:`runtime.store.sqlite.ERRORS`, made for real."""

    def test_translate_maps_every_code_of_the_table(self):
        assert {5, 6, 8, 10, 11, 13, 14, 26} <= set(ERRORS)
        url = "sqlite:///x.db"
        for code, (cls, text) in ERRORS.items():
            assert issubclass(cls, DataopsError)
            for extended in (code, code | (1 << 8), code | (2 << 8)):  # e.g. BUSY_RECOVERY
                e = sqlite3.OperationalError("driver says no")
                e.sqlite_errorcode = extended  # type: ignore[attr-defined]
                got = translate(url, e)
                assert type(got) is cls, (extended, got)
                assert not isinstance(got, ConflictError)
                assert url in str(got) and text in str(got) and "driver says no" in str(got)
        e = sqlite3.OperationalError("something else")
        e.sqlite_errorcode = 1  # type: ignore[attr-defined]  # SQLITE_ERROR: not in the table
        assert type(translate(url, e)) is StoreFault
        assert type(translate(url, sqlite3.DatabaseError("no code at all"))) is StoreFault

    def test_a_driver_integrity_error_on_a_create_is_a_conflict(self, sqlite_store):
        _, t = seeded(sqlite_store)
        with pytest.raises(ConflictError) as err:
            sqlite_store.commit(Changes(creates=[t]))
        assert not isinstance(err.value, ThrottledError)
        assert isinstance(err.value.__cause__, sqlite3.IntegrityError)
        assert t.task_id in str(err.value)

    def test_a_busy_database_is_throttled_not_a_conflict(self, sqlite_store, tmp_path: Path):
        seeded(sqlite_store)
        before = dump(sqlite_store)
        sqlite_store._raw().execute("PRAGMA busy_timeout=50")
        holder = sqlite3.connect(tmp_path / "store.db", isolation_level=None, timeout=0)
        try:
            holder.execute("BEGIN IMMEDIATE")  # another process holds the write lock
            with pytest.raises(ThrottledError) as err:
                sqlite_store.commit(Changes(creates=[task("b/new", bundle_id="b")]))
            assert not isinstance(err.value, ConflictError)
            assert isinstance(err.value.__cause__, sqlite3.OperationalError)
            assert err.value.__cause__.sqlite_errorcode & 0xFF == 5  # SQLITE_BUSY
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert dump(sqlite_store) == before
        sqlite_store.commit(Changes(creates=[task("b/new", bundle_id="b")]))  # usable again

    def test_a_read_only_database_is_store_read_only(self, sqlite_store):
        b, t = seeded(sqlite_store)
        before = dump(sqlite_store)
        # The tests run as root, which ignores chmod 0o444 on the file, so the database is made
        # read-only with PRAGMA query_only: SQLite then refuses writes with SQLITE_READONLY,
        # the same result code a read-only file gives.
        sqlite_store._raw().execute("PRAGMA query_only=1")
        with pytest.raises(StoreReadOnly) as err:
            sqlite_store.commit(Changes(creates=[task("b/new", bundle_id="b")],
                                        updates=[(bump(t), 1)]))
        assert sqlite_store.url in str(err.value)
        assert err.value.__cause__.sqlite_errorcode & 0xFF == 8  # type: ignore[union-attr]
        assert sqlite_store.get(Task, t.task_id) == t  # still readable
        sqlite_store._raw().execute("PRAGMA query_only=0")
        assert dump(sqlite_store) == before

    def test_a_full_database_is_store_full_and_writes_nothing(self, sqlite_store):
        seeded(sqlite_store)
        before = dump(sqlite_store)
        db = sqlite_store._raw()
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        db.execute(f"PRAGMA max_page_count={pages + 1}")
        big = [task(f"b/big{i}", bundle_id="b", title="x" * 50_000) for i in range(4)]
        with pytest.raises(StoreFull) as err:
            sqlite_store.commit(Changes(creates=big, events=[event("ev-big", "b/big0")]))
        assert err.value.__cause__.sqlite_errorcode & 0xFF == 13  # type: ignore[union-attr]
        assert dump(sqlite_store) == before
        db.execute("PRAGMA max_page_count=1073741823")
        sqlite_store.commit(Changes(creates=big))  # room again: the same write goes through
        assert len(sqlite_store.tasks_of("b")) == 4

    def test_a_file_of_garbage_is_store_corrupt(self, tmp_path: Path):
        junk = tmp_path / "junk.db"
        junk.write_bytes(bytes(random.Random(3).getrandbits(8) for _ in range(8192)))
        with pytest.raises(StoreCorrupt) as err:
            open_store(f"sqlite:///{junk}")
        assert str(junk) in str(err.value)
        text = tmp_path / "text.db"
        text.write_bytes(b"this is not a sqlite database, just some text " * 100)
        with pytest.raises(StoreCorrupt):
            open_store(f"sqlite:///{text}")


# ---- several real processes on one SQLite file ----------------------------------------------


def _race_worker(url: str, task_id: str, name: str, rounds: int, barrier: Any, out: Any) -> None:
    """One process of the one-record race: per round read, wait, try the same update."""
    results: list[bool] = []
    try:
        store = open_store(url)
        try:
            for rnd in range(rounds):
                barrier.wait(timeout=60)
                current = store.get(Task, task_id)
                new, ev = step(current, f"{name}-{rnd}", title=f"{name}-{rnd}")
                barrier.wait(timeout=60)  # both have read the same version before either writes
                try:
                    store.commit(Changes(updates=[(new, current.version)], events=[ev]))
                    results.append(True)
                except ConflictError:
                    results.append(False)
        finally:
            store.close()
    except BaseException as e:  # noqa: BLE001 - reported to the parent
        barrier.abort()
        out.put((name, results, f"{type(e).__name__}: {e}"))
        return
    out.put((name, results, None))


def _own_task_worker(url: str, task_id: str, rounds: int, barrier: Any, out: Any) -> None:
    """One process of the independent writers: updates its own task ``rounds`` times."""
    problems: list[str] = []
    try:
        store = open_store(url)
        try:
            barrier.wait(timeout=60)  # every process is up: go together
            for rnd in range(rounds):
                current = store.get(Task, task_id)
                new, ev = step(current, f"{task_id}-ev-{rnd}", title=f"round {rnd}")
                try:
                    store.commit(Changes(updates=[(new, current.version)], events=[ev]))
                except (ConflictError, ThrottledError) as e:
                    problems.append(f"round {rnd}: {type(e).__name__}: {e}")
        finally:
            store.close()
    except BaseException as e:  # noqa: BLE001 - reported to the parent
        barrier.abort()
        problems.append(f"{type(e).__name__}: {e}")
    out.put((task_id, problems))


def _run_processes(target: Callable[..., None], args: list[tuple[Any, ...]]) -> list[Any]:
    """Start one spawned process per ``args`` (each gets a shared Barrier and a Queue appended),
    and collect what each puts on the queue."""
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(len(args))
    out = ctx.Queue()
    procs = [ctx.Process(target=target, args=(*a, barrier, out)) for a in args]
    for p in procs:
        p.start()
    try:
        return [out.get(timeout=120) for _ in procs]
    except queue.Empty:
        pytest.fail("a process did not report back")
    finally:
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()


@pytest.fixture(params=SHARED_KINDS)
def shared_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A store URL several processes can share: a SQLite file, a PostgreSQL schema."""
    from tests.conftest import store_url

    need_server(request, request.param)
    return store_url(request.param, tmp_path, "shared")


@pytest.mark.slow
class TestProcesses:
    def test_two_processes_racing_one_winner_per_round(self, shared_url: str):
        rounds = 40
        url = shared_url
        setup = open_store(url)
        _, t = seeded(setup)
        setup.close()

        reports = {name: (results, error) for name, results, error in _run_processes(
            _race_worker, [(url, t.task_id, name, rounds) for name in ("p1", "p2")])}
        assert all(error is None for _, error in reports.values()), reports
        r1, r2 = reports["p1"][0], reports["p2"][0]
        assert len(r1) == len(r2) == rounds
        for rnd, (a, b) in enumerate(zip(r1, r2, strict=True)):
            assert a != b, f"round {rnd}: p1 {'won' if a else 'lost'}, p2 {'won' if b else 'lost'}"
        wins = r1.count(True) + r2.count(True)
        assert wins == rounds

        check = open_store(url)
        try:
            final = check.get(Task, t.task_id)
            assert final.version - t.version == wins
            last_winner = "p1" if r1[-1] else "p2"
            assert final.title == f"{last_winner}-{rounds - 1}"
            log = check.audit_events(t.task_id)
            assert len(log) == 1 + wins
            assert chain_problems(check, Task, t.task_id) == []
            winners = ({f"p1-{i}" for i, w in enumerate(r1) if w}
                       | {f"p2-{i}" for i, w in enumerate(r2) if w})
            assert {e.event_id for e in log[1:]} == winners  # no loser's event was written
        finally:
            check.close()

    def test_processes_on_their_own_records_never_conflict(self, shared_url: str):
        n, rounds = 4, 40
        url = shared_url
        tids = [f"b/t{i}" for i in range(n)]
        setup = open_store(url)
        setup.commit(created(bundle("b"), *(task(tid, bundle_id="b") for tid in tids)))
        setup.close()

        reports = dict(_run_processes(_own_task_worker, [(url, tid, rounds) for tid in tids]))
        assert reports == {tid: [] for tid in tids}  # zero conflicts, zero throttles

        check = open_store(url)
        try:
            _check_own_writes(check, tids, rounds)
            assert len(every(check, AuditEvent)) == 1 + n * (1 + rounds)
            assert check.get(Bundle, "b").version == 1
        finally:
            check.close()
