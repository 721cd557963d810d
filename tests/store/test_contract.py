"""The store contract: one suite, every adapter (the ``store`` fixture is parametrized).

What every adapter must do (DESIGN.md, "Concurrency and atomicity", "Stable IDs"): round-trip
every field of every record kind; refuse a create whose ID exists and an update whose version
moved on, writing nothing of that command; chain the audit log; answer the ID, bundle and time
index queries; keep a deterministic-ID insert idempotent (the first one wins); cap a command at
MAX_ITEMS_PER_COMMIT items; let exactly one of several racing writers win.

The SQLite-only facts (WAL, synchronous, URL parsing, driver error translation, two real
processes racing) are in :class:`TestSqlite` at the end.
"""

from __future__ import annotations

import multiprocessing
import queue
import sqlite3
import threading
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest

from runtime.errors import ConflictError, InputError, NotFoundError, ThrottledError
from runtime.model import (
    GENESIS_HASH,
    Artifact,
    ArtifactProof,
    AssistantJob,
    AssistantJobStatus,
    AuditEvent,
    Bundle,
    BundleLink,
    BundleStatus,
    Comment,
    CommentProof,
    DeliveryStatus,
    ExternalStatusProof,
    PhaseRef,
    ProofEntry,
    ProofKind,
    Reference,
    Reminder,
    ReminderKind,
    ReminderSettings,
    Task,
    TaskStatus,
    UrlProof,
    record_id,
    reminder_id_for,
)
from runtime.model.common import Record, utc
from runtime.store import MAX_ITEMS_PER_COMMIT, Changes, Store, open_store

T0 = utc(2026, 11, 25, 8, 0)
KINDS: tuple[type[Record], ...] = (Bundle, Task, Artifact, AssistantJob, Reminder)


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
        phases=[PhaseRef(phase_id="prep", title="Preparation"),
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
        next_reminder_at=at(200, us=3),
        reminder_cursor=at(10),
        created_at=at(us=2),
        updated_at=at(120, us=999_999),
        version=7,
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
        version=5,
    ).model_copy(update={"kind": ReminderKind.OVERDUE, "fire_at": at(-30)})


def event(event_id: str, entity_id: str = "podcast/2026-12-01/book-guest", **kw: Any) -> AuditEvent:
    fields: dict[str, Any] = {
        "event_id": event_id,
        "actor": "tester",
        "entity_type": "task",
        "entity_id": entity_id,
        "action": "update",
        "before": {"status": "todo", "n": 1},
        "after": {"status": "in_progress", "n": [1, 2]},
        "summary": f"{event_id} on {entity_id}",
        "at": T0,
    }
    fields.update(kw)
    return AuditEvent(**fields)


def bump(rec: Record, **update: Any) -> Record:
    """The next version of ``rec`` (what a command writes after reading it)."""
    return rec.model_copy(update={"version": rec.version + 1, **update})  # type: ignore[attr-defined]


# ---- inspection helpers -------------------------------------------------------------------


def snapshot(store: Store) -> dict[str, Any]:
    """Everything in the store, comparable with ==: records by kind and ID, the audit log."""
    snap: dict[str, Any] = {
        kind.record_kind: {record_id(r): r.to_json() for r in store.scan(kind)}  # type: ignore[attr-defined]
        for kind in KINDS
    }
    snap["audit"] = [e.to_json() for e in store.audit_events()]
    return snap


def assert_chain(events: list[AuditEvent]) -> None:
    """seq 1..n, each prev_hash is the previous hash (GENESIS first), each hash recomputes."""
    prev = GENESIS_HASH
    for n, e in enumerate(events, start=1):
        assert e.seq == n, f"event {e.event_id} has seq {e.seq}, expected {n}"
        assert e.prev_hash == prev, f"event #{n} does not link to the previous hash"
        assert e.hash == e.content_hash(prev), f"event #{n}'s hash does not recompute"
        prev = e.hash


def ids(records: list[Any]) -> list[tuple[str, str]]:
    return [(type(r).__name__, record_id(r)) for r in records]


def seeded(store: Store) -> tuple[Bundle, Task]:
    """A bundle and one of its tasks, committed with one audit event."""
    b, t = bundle(), task()
    store.commit(Changes(creates=[b, t], events=[event("ev-seed", b.bundle_id)]))
    return b, t


# ---- create, get, find --------------------------------------------------------------------


class TestRoundTrip:
    @pytest.mark.parametrize(
        "build", [full_bundle, full_task, full_artifact, full_job, full_reminder],
        ids=["bundle", "task", "artifact", "assistant_job", "reminder"],
    )
    def test_create_then_get_and_find_round_trip_every_field(self, store: Store, build):
        rec = build()
        # the builder really sets every field, so a dropped column cannot hide behind a default
        unset = set(type(rec).model_fields) - rec.model_fields_set
        assert not unset, f"test builder leaves {unset} at the default"

        store.commit(Changes(creates=[rec]))

        kind = type(rec)
        for got in (store.get(kind, record_id(rec)), store.find(kind, record_id(rec))):
            assert type(got) is kind
            assert got == rec
            assert got.to_json() == rec.to_json()

    def test_instants_come_back_as_aware_utc_with_microseconds(self, store: Store):
        t = full_task()
        store.commit(Changes(creates=[t]))
        got = store.get(Task, t.task_id)
        assert got.completed_at == at(120, us=999_999)
        assert got.completed_at.utcoffset() == timedelta(0)
        assert got.comments[0].created_at.microsecond == 42

    def test_find_of_an_unknown_id_is_none(self, store: Store):
        seeded(store)
        for kind in KINDS:
            assert store.find(kind, "no-such-id") is None

    @pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.record_kind)
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


# ---- creates: conflicts --------------------------------------------------------------------


class TestCreateConflict:
    def test_create_of_an_existing_id_is_a_conflict_and_writes_nothing(self, store: Store):
        b, t = seeded(store)
        before = snapshot(store)
        other = task("podcast/2026-12-01/other")
        dup = t.model_copy(update={"title": "a second writer's title"})

        with pytest.raises(ConflictError) as err:
            store.commit(Changes(creates=[other, dup], events=[event("ev-x"), event("ev-y")]))

        assert t.task_id in str(err.value)
        assert snapshot(store) == before
        assert store.find(Task, other.task_id) is None
        assert store.get(Task, t.task_id) == t
        assert len(store.audit_events()) == 1

    def test_the_same_id_twice_in_one_command_is_a_conflict(self, store: Store):
        first = task("podcast/2026-12-01/x", title="first")
        second = task("podcast/2026-12-01/x", title="second")
        with pytest.raises(ConflictError):
            store.commit(Changes(creates=[first, second], events=[event("ev-1")]))
        assert store.find(Task, first.task_id) is None
        assert store.tasks_of(first.bundle_id) == []
        assert store.audit_events() == []

    def test_an_audit_event_whose_id_exists_is_a_conflict_and_writes_nothing(self, store: Store):
        seeded(store)
        before = snapshot(store)
        with pytest.raises(ConflictError):
            store.commit(Changes(creates=[task("podcast/2026-12-01/new")],
                                 events=[event("ev-seed")]))
        assert snapshot(store) == before


# ---- updates: optimistic concurrency and atomicity ---------------------------------------


class TestUpdate:
    def test_update_with_the_expected_version_succeeds(self, store: Store):
        b, t = seeded(store)
        t2 = bump(t, status=TaskStatus.IN_PROGRESS, updated_at=at(1))
        b2 = bump(b, stage="publish")
        store.commit(Changes(updates=[(t2, 1), (b2, 1)], events=[event("ev-2")]))
        assert store.get(Task, t.task_id) == t2
        assert store.get(Task, t.task_id).version == 2
        assert store.get(Bundle, b.bundle_id).stage == "publish"

        t3 = bump(t2, status=TaskStatus.DONE)
        store.commit(Changes(updates=[(t3, 2)]))
        assert store.get(Task, t.task_id).version == 3
        assert store.get(Task, t.task_id).status == TaskStatus.DONE

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
        before = snapshot(store)
        audit_len = len(store.audit_events())

        good_create = task("podcast/2026-12-01/new")
        good_update = bump(b, title="changed")  # b is still at version 1: this part is fine
        stale = bump(t, title="stale")          # expects version 1, the store has 2
        with pytest.raises(ConflictError):
            store.commit(Changes(creates=[good_create], updates=[(good_update, 1), (stale, 1)],
                                 events=[event("ev-a"), event("ev-b")]))

        assert snapshot(store) == before
        assert len(store.audit_events()) == audit_len
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
        before = snapshot(store)
        ghost = task("podcast/2026-12-01/ghost", version=2)
        with pytest.raises(NotFoundError) as err:
            store.commit(Changes(creates=[task("podcast/2026-12-01/new")],
                                 updates=[(ghost, 1)], events=[event("ev-g")]))
        assert "podcast/2026-12-01/ghost" in str(err.value)
        assert snapshot(store) == before

    def test_updates_of_every_kind_check_versions(self, store: Store):
        recs = [full_bundle(), full_task(), full_artifact(), full_job(), full_reminder()]
        store.commit(Changes(creates=recs))
        for rec in recs:
            v = rec.version  # type: ignore[attr-defined]
            with pytest.raises(ConflictError):
                store.commit(Changes(updates=[(bump(rec), v - 1)]))
            store.commit(Changes(updates=[(bump(rec), v)]))
            assert store.get(type(rec), record_id(rec)).version == v + 1  # type: ignore[attr-defined]


# ---- the audit chain ------------------------------------------------------------------------


class TestAuditChain:
    def test_events_get_seq_and_hashes_chained_from_genesis(self, store: Store):
        placed = store.commit(Changes(creates=[bundle()],
                                      events=[event("ev-1"), event("ev-2"), event("ev-3")]))
        assert [e.event_id for e in placed] == ["ev-1", "ev-2", "ev-3"]
        assert placed[0].prev_hash == GENESIS_HASH
        assert_chain(placed)
        assert store.audit_events() == placed

    def test_the_chain_continues_across_commits_in_order(self, store: Store):
        first = store.commit(Changes(events=[event("ev-1"), event("ev-2")]))
        second = store.commit(Changes(creates=[bundle()], events=[event("ev-3")]))
        store.commit(Changes(creates=[task()]))  # a command without events leaves no gap
        third = store.commit(Changes(events=[event("ev-4"), event("ev-5")]))
        assert second[0].seq == 3 and second[0].prev_hash == first[-1].hash
        assert third[0].prev_hash == second[0].hash
        log = store.audit_events()
        assert [e.event_id for e in log] == ["ev-1", "ev-2", "ev-3", "ev-4", "ev-5"]
        assert log == first + second + third
        assert_chain(log)

    def test_events_keep_every_field(self, store: Store):
        ev = event("ev-1", before=None, after={"deep": {"list": [1, "two", None]}},
                   at=at(3, us=123))
        [placed] = store.commit(Changes(events=[ev]))
        [got] = store.audit_events()
        assert got == placed
        assert got.to_json() == {**ev.to_json(), "seq": 1, "prev_hash": GENESIS_HASH,
                                 "hash": placed.hash}

    def test_a_failed_command_leaves_no_gap_in_the_chain(self, store: Store):
        _, t = seeded(store)
        with pytest.raises(ConflictError):
            store.commit(Changes(creates=[t], events=[event("ev-lost")]))
        store.commit(Changes(events=[event("ev-next")]))
        log = store.audit_events()
        assert [e.event_id for e in log] == ["ev-seed", "ev-next"]
        assert_chain(log)

    def test_audit_events_filter_by_entity(self, store: Store):
        store.commit(Changes(events=[event("ev-1", "a"), event("ev-2", "b"), event("ev-3", "a")]))
        store.commit(Changes(events=[event("ev-4", "b"), event("ev-5", "a")]))
        assert [e.event_id for e in store.audit_events(entity_id="a")] == ["ev-1", "ev-3", "ev-5"]
        assert [e.event_id for e in store.audit_events(entity_id="b")] == ["ev-2", "ev-4"]
        assert store.audit_events(entity_id="nobody") == []
        assert [e.seq for e in store.audit_events(entity_id="a")] == [1, 3, 5]


# ---- queries -------------------------------------------------------------------------------


class TestQueries:
    def test_tasks_of_a_bundle_in_creation_order(self, store: Store):
        b1, b2 = bundle("b1"), bundle("b2")
        # IDs deliberately not in alphabetical order, and interleaved with another bundle
        store.commit(Changes(creates=[b1, b2, task("b1/zeta", bundle_id="b1"),
                                      task("b2/x", bundle_id="b2"),
                                      task("b1/alpha", bundle_id="b1")]))
        store.commit(Changes(creates=[task("b1/mid", bundle_id="b1")]))
        # an update does not move a task to the end
        zeta = store.get(Task, "b1/zeta")
        store.commit(Changes(updates=[(bump(zeta, title="renamed"), 1)]))

        assert [t.task_id for t in store.tasks_of("b1")] == ["b1/zeta", "b1/alpha", "b1/mid"]
        assert [t.task_id for t in store.tasks_of("b2")] == ["b2/x"]
        assert store.tasks_of("b1")[0].title == "renamed"
        assert store.tasks_of("no-such-bundle") == []

    def test_bundles_oldest_first(self, store: Store):
        # inserted newest first, and the IDs sort the other way round from the times
        store.commit(Changes(creates=[bundle("a", created_at=at(30))]))
        store.commit(Changes(creates=[bundle("b", created_at=at(10, us=500))]))
        store.commit(Changes(creates=[bundle("c", created_at=at(10))]))
        store.commit(Changes(creates=[bundle("d", created_at=at(-1000))]))
        assert [b.bundle_id for b in store.bundles()] == ["d", "c", "b", "a"]

    def test_bundles_created_at_the_same_instant_are_ordered_by_id(self, store: Store):
        store.commit(Changes(creates=[bundle("z", created_at=T0), bundle("m", created_at=T0)]))
        store.commit(Changes(creates=[bundle("a", created_at=T0)]))
        assert [b.bundle_id for b in store.bundles()] == ["a", "m", "z"]

    def test_no_bundles(self, store: Store):
        assert store.bundles() == []

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
        assert ids(store.due_for_reminders(cut, limit=100)) == expected
        for n in range(1, 6):
            assert ids(store.due_for_reminders(cut, limit=n)) == expected[:n]
        assert store.due_for_reminders(at(0), limit=100) == []
        assert ids(store.due_for_reminders(at(1), limit=100)) == [("Bundle", "b-01")]

    def test_due_for_reminders_returns_whole_records(self, store: Store):
        t = full_task()
        store.commit(Changes(creates=[t]))
        [got] = store.due_for_reminders(t.next_reminder_at, limit=10)  # type: ignore[arg-type]
        assert got == t

    def test_due_for_reminders_limit_across_kinds(self, store: Store):
        # many bundles early, tasks later: a limit must be applied to the merged order
        store.commit(Changes(
            creates=[bundle(f"b{i}", next_reminder_at=at(i)) for i in range(0, 10, 2)]
            + [task(f"t{i}", next_reminder_at=at(i)) for i in range(1, 10, 2)]))
        got = store.due_for_reminders(at(100), limit=4)
        assert ids(got) == [("Bundle", "b0"), ("Task", "t1"), ("Bundle", "b2"), ("Task", "t3")]

    def test_due_for_reminders_follows_updates(self, store: Store):
        b = bundle("b", next_reminder_at=at(1))
        t = task("t", next_reminder_at=at(50))
        store.commit(Changes(creates=[b, t]))
        store.commit(Changes(updates=[(bump(b, next_reminder_at=None), 1),
                                      (bump(t, next_reminder_at=at(0)), 1)]))
        assert ids(store.due_for_reminders(at(10), limit=10)) == [("Task", "t")]
        assert store.due_for_reminders(at(10), limit=10)[0].version == 2

    def test_pending_deliveries_is_inclusive_sorted_and_limited(self, store: Store):
        cut = at(20)
        store.commit(Changes(creates=[
            reminder("r-03", deliver_after=at(3), recorded_at=at(0)),
            reminder("r-01", deliver_after=at(1), recorded_at=at(0, us=1)),
            reminder("r-20", deliver_after=cut, recorded_at=at(0, us=2)),
            reminder("r-later", deliver_after=at(20, us=1), recorded_at=at(0, us=3)),
            reminder("r-none", deliver_after=None, recorded_at=at(0, us=4)),
        ]))
        expected = ["r-01", "r-03", "r-20"]
        assert [r.reminder_id for r in store.pending_deliveries(cut, limit=100)] == expected
        for n in range(1, 4):
            assert [r.reminder_id for r in store.pending_deliveries(cut, limit=n)] == expected[:n]
        assert store.pending_deliveries(at(0), limit=10) == []

        # delivered: no longer pending
        r1 = store.get(Reminder, "r-01")
        store.commit(Changes(updates=[(bump(r1, deliver_after=None,
                                            delivery_status=DeliveryStatus.DELIVERED,
                                            attempts=1), 1)]))
        assert [r.reminder_id for r in store.pending_deliveries(cut, limit=100)] == ["r-03", "r-20"]

    def test_reminders_all_and_by_entity(self, store: Store):
        store.commit(Changes(creates=[
            reminder("r-a1", entity_id="a", recorded_at=at(1)),
            reminder("r-b1", entity_id="b", recorded_at=at(2)),
        ]))
        store.commit(Changes(creates=[reminder("r-a2", entity_id="a", recorded_at=at(3))]))
        assert [r.reminder_id for r in store.reminders()] == ["r-a1", "r-b1", "r-a2"]
        assert [r.reminder_id for r in store.reminders(entity_id="a")] == ["r-a1", "r-a2"]
        assert [r.reminder_id for r in store.reminders(entity_id="b")] == ["r-b1"]
        assert store.reminders(entity_id="c") == []

    def test_scan_yields_every_record_of_a_kind(self, store: Store):
        recs: list[Record] = [full_bundle(), bundle("b2"), full_task(), task("t2"), task("t3"),
                              full_artifact(), full_job(), full_reminder(), reminder("r2")]
        store.commit(Changes(creates=recs, events=[event("ev-1"), event("ev-2")]))
        for kind in KINDS:
            mine = {record_id(r): r for r in recs if type(r) is kind}
            scanned = list(store.scan(kind))
            assert len(scanned) == len(mine)
            assert {record_id(r): r for r in scanned} == mine
        assert list(store.scan(AuditEvent)) == store.audit_events()
        assert [e.event_id for e in store.scan(AuditEvent)] == ["ev-1", "ev-2"]

    def test_scan_of_an_empty_store(self, store: Store):
        for kind in (*KINDS, AuditEvent):
            assert list(store.scan(kind)) == []


# ---- deterministic IDs, size limit --------------------------------------------------------


class TestIdempotentInsert:
    def test_a_reminder_with_an_existing_id_is_a_conflict_and_the_first_wins(self, store: Store):
        rid = reminder_id_for("due", "podcast/2026-12-01/book-guest", at(60))
        first = reminder(rid, summary="first daemon", recorded_at=at(60))
        store.commit(Changes(creates=[first], events=[event("ev-1")]))

        second = reminder(rid, summary="second daemon", recorded_at=at(61), late=True)
        with pytest.raises(ConflictError) as err:
            store.commit(Changes(creates=[second], events=[event("ev-2")]))
        assert rid in str(err.value)

        assert store.get(Reminder, rid) == first
        assert store.reminders() == [first]
        assert [e.event_id for e in store.audit_events()] == ["ev-1"]

    def test_the_same_deterministic_id_from_two_runs_is_one_record(self, store: Store):
        rid_a = reminder_id_for("overdue", "t", at(24 * 60))
        rid_b = reminder_id_for("overdue", "t", at(24 * 60).astimezone())  # same instant
        assert rid_a == rid_b
        store.commit(Changes(creates=[reminder(rid_a, entity_id="t")]))
        with pytest.raises(ConflictError):
            store.commit(Changes(creates=[reminder(rid_b, entity_id="t")]))
        assert len(store.reminders(entity_id="t")) == 1


class TestSizeLimit:
    def test_more_than_the_limit_is_input_error_and_writes_nothing(self, store: Store):
        seeded(store)
        before = snapshot(store)
        too_many = Changes(creates=[task(f"b/t{i:03}", bundle_id="b")
                                    for i in range(MAX_ITEMS_PER_COMMIT + 1)])
        with pytest.raises(InputError) as err:
            store.commit(too_many)
        assert str(MAX_ITEMS_PER_COMMIT) in str(err.value)
        assert snapshot(store) == before

    def test_events_count_toward_the_limit(self, store: Store):
        half = MAX_ITEMS_PER_COMMIT // 2
        changes = Changes(creates=[task(f"b/t{i:03}", bundle_id="b") for i in range(half)],
                          events=[event(f"ev-{i}") for i in range(MAX_ITEMS_PER_COMMIT - half + 1)])
        assert changes.size() == MAX_ITEMS_PER_COMMIT + 1
        with pytest.raises(InputError):
            store.commit(changes)
        assert store.tasks_of("b") == [] and store.audit_events() == []

    def test_exactly_the_limit_is_fine(self, store: Store):
        changes = Changes(creates=[task(f"b/t{i:03}", bundle_id="b")
                                   for i in range(MAX_ITEMS_PER_COMMIT - 1)],
                          events=[event("ev-1")])
        store.commit(changes)
        assert len(store.tasks_of("b")) == MAX_ITEMS_PER_COMMIT - 1
        assert len(store.audit_events()) == 1


# ---- two writers racing --------------------------------------------------------------------


def _thread_race(stores: list[Store], task_id: str, round_no: int) -> list[bool]:
    """Each store (one per thread) loads the task, all wait, then all try the same update."""
    n = len(stores)
    barrier = threading.Barrier(n, timeout=10)
    outcome: list[bool | BaseException | None] = [None] * n

    def writer(i: int) -> None:
        try:
            current = stores[i].get(Task, task_id)
            barrier.wait()
            try:
                stores[i].commit(Changes(
                    updates=[(bump(current, title=f"writer {i} round {round_no}"),
                              current.version)],
                    events=[event(f"ev-{round_no}-{i}", task_id)]))
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
    return outcome  # type: ignore[return-value]


class TestRacingWriters:
    THREADS = 8
    ROUNDS = 5

    def test_threads_racing_on_one_version_exactly_one_wins(self, store: Store):
        _, t = seeded(store)
        for rnd in range(self.ROUNDS):
            before = store.get(Task, t.task_id).version
            outcome = _thread_race([store] * self.THREADS, t.task_id, rnd)
            assert outcome.count(True) == 1, outcome
            assert outcome.count(False) == self.THREADS - 1
            after = store.get(Task, t.task_id)
            assert after.version == before + 1
            assert after.title == f"writer {outcome.index(True)} round {rnd}"
        log = store.audit_events()
        assert len(log) == 1 + self.ROUNDS
        assert_chain(log)


# ---- SQLite specifics -------------------------------------------------------------------------


def _race_worker(url: str, task_id: str, name: str, rounds: int, barrier: Any, out: Any) -> None:
    """One process of the SQLite race: its own store; per round read, wait, try the update."""
    from runtime.store.sqlite import SqliteStore

    results: list[bool] = []
    try:
        store = SqliteStore(url)
        try:
            for rnd in range(rounds):
                barrier.wait(timeout=10)
                current = store.get(Task, task_id)
                barrier.wait(timeout=10)  # both have read the same version before either writes
                try:
                    store.commit(Changes(
                        updates=[(bump(current, title=f"{name}-{rnd}"), current.version)],
                        events=[event(f"{name}-{rnd}", task_id)]))
                    results.append(True)
                except ThrottledError:
                    raise
                except ConflictError:
                    results.append(False)
        finally:
            store.close()
    except BaseException as e:  # noqa: BLE001 - reported to the parent
        barrier.abort()
        out.put((name, results, f"{type(e).__name__}: {e}"))
        return
    out.put((name, results, None))


@pytest.fixture
def sqlite_store(tmp_path: Path):
    s = open_store(f"sqlite:///{tmp_path / 'store.db'}")
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
        from runtime.store.sqlite import SqliteStore

        with pytest.raises(InputError) as err:
            open_store(url)
        assert url in str(err.value)
        with pytest.raises(InputError):
            SqliteStore(url)

    def test_a_folder_that_does_not_exist_is_input_error(self, tmp_path: Path):
        missing = tmp_path / "nope" / "deeper"
        with pytest.raises(InputError) as err:
            open_store(f"sqlite:///{missing / 'store.db'}")
        assert str(missing) in str(err.value)
        assert not missing.exists()

    def test_a_file_that_is_not_a_database_is_input_error(self, tmp_path: Path):
        junk = tmp_path / "junk.db"
        junk.write_bytes(b"this is not a sqlite database, just some text " * 100)
        with pytest.raises(InputError):
            open_store(f"sqlite:///{junk}")

    def test_the_store_reopens_with_its_data(self, tmp_path: Path):
        url = f"sqlite:///{tmp_path / 'store.db'}"
        s = open_store(url)
        recs = [full_bundle(), full_task(), full_artifact(), full_job(), full_reminder()]
        s.commit(Changes(creates=recs, events=[event("ev-1"), event("ev-2")]))
        before = snapshot(s)
        s.close()
        s2 = open_store(url)
        try:
            assert snapshot(s2) == before
            s2.commit(Changes(events=[event("ev-3")]))
            assert_chain(s2.audit_events())
        finally:
            s2.close()

    def test_a_driver_integrity_error_surfaces_as_conflict(self, sqlite_store):
        _, t = seeded(sqlite_store)
        with pytest.raises(ConflictError) as err:
            sqlite_store.commit(Changes(creates=[t]))
        assert not isinstance(err.value, ThrottledError)
        assert isinstance(err.value.__cause__, sqlite3.IntegrityError)

    def test_a_busy_database_is_throttled_not_a_conflict(self, sqlite_store, tmp_path: Path):
        seeded(sqlite_store)
        before = snapshot(sqlite_store)
        sqlite_store._raw().execute("PRAGMA busy_timeout=0")
        holder = sqlite3.connect(tmp_path / "store.db", isolation_level=None, timeout=0)
        try:
            holder.execute("BEGIN IMMEDIATE")  # another process holds the write lock
            with pytest.raises(ThrottledError) as err:
                sqlite_store.commit(Changes(creates=[task("b/new", bundle_id="b")]))
            assert isinstance(err.value.__cause__, sqlite3.OperationalError)
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert snapshot(sqlite_store) == before
        sqlite_store.commit(Changes(creates=[task("b/new", bundle_id="b")]))  # usable again

    def test_threads_with_their_own_connections_race_one_winner(self, tmp_path: Path):
        url = f"sqlite:///{tmp_path / 'race.db'}"
        stores = [open_store(url) for _ in range(4)]
        try:
            _, t = seeded(stores[0])
            for rnd in range(5):
                outcome = _thread_race(stores, t.task_id, rnd)
                assert outcome.count(True) == 1, outcome
            final = stores[1].get(Task, t.task_id)
            assert final.version == 1 + 5
            log = stores[2].audit_events()
            assert len(log) == 1 + 5
            assert_chain(log)
        finally:
            for s in stores:
                s.close()

    @pytest.mark.slow
    def test_two_processes_racing_one_winner_per_round(self, tmp_path: Path):
        rounds = 40
        url = f"sqlite:///{tmp_path / 'race.db'}"
        setup = open_store(url)
        _, t = seeded(setup)
        setup.close()

        ctx = multiprocessing.get_context("spawn")
        barrier = ctx.Barrier(2)
        out = ctx.Queue()
        procs = [ctx.Process(target=_race_worker, args=(url, t.task_id, name, rounds, barrier, out))
                 for name in ("p1", "p2")]
        for p in procs:
            p.start()
        try:
            reports = {}
            for _ in procs:
                name, results, error = out.get(timeout=60)
                reports[name] = (results, error)
        except queue.Empty:
            pytest.fail("a racing process did not report back")
        finally:
            for p in procs:
                p.join(timeout=30)
                if p.is_alive():
                    p.kill()
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
            log = check.audit_events()
            assert len(log) == 1 + wins
            assert_chain(log)
            winners = {f"p1-{i}" for i, w in enumerate(r1) if w} | {f"p2-{i}" for i, w in enumerate(r2) if w}
            assert {e.event_id for e in log[1:]} == winners  # no loser's event was written
        finally:
            check.close()
