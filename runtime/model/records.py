"""The store's records: the mutable state of runs. Their JSON is the portable export shape."""

from __future__ import annotations

import hashlib
from datetime import time
from enum import StrEnum
from typing import Any, ClassVar

import orjson
from pydantic import Field

from runtime.model.common import Day, Instant, Record, format_instant
from runtime.model.definitions import ProofKind, ProofRequirement, Reference


class TaskStatus(StrEnum):
    TODO = "todo"
    IN_PROGRESS = "in_progress"
    WAITING = "waiting"
    DONE = "done"
    CANCELLED = "cancelled"

    @property
    def is_open(self) -> bool:
        return self in OPEN_TASK_STATES


OPEN_TASK_STATES = frozenset({TaskStatus.TODO, TaskStatus.IN_PROGRESS, TaskStatus.WAITING})


class BundleStatus(StrEnum):
    ACTIVE = "active"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class ReminderKind(StrEnum):
    DUE = "due"
    OVERDUE = "overdue"
    FOLLOW_UP_DUE = "follow_up_due"
    MISSING_EVIDENCE = "missing_evidence"
    STAGE_CHANGE = "stage_change"
    RECURRING = "recurring"
    AUTOMATION_FAILURE = "automation_failure"


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


class AssistantJobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class BundleLink(Record):
    key: str
    label: str
    required: bool = True
    url: str | None = None


class PhaseRef(Record):
    """A phase of the definition, copied onto the bundle in definition order (for its stage)."""

    phase_id: str
    title: str


class ReminderSettings(Record):
    """The definition's reminder policy, copied onto the bundle so rules need no content."""

    at: time = time(9, 0)
    overdue_repeats: int = 3


class ProofEntry(Record):
    """One piece of proof attached to a task."""

    kind: ProofKind
    value: str | None = None
    artifact_id: str | None = None
    system: str | None = None
    content_type: str | None = None
    by: str
    at: Instant


class Comment(Record):
    comment_id: str
    author: str
    body: str
    created_at: Instant


class Bundle(Record):
    record_kind: ClassVar[str] = "bundle"
    bundle_id: str
    template_id: str
    template_version: int
    title: str
    anchor_date: Day
    timezone: str
    stage: str | None
    status: BundleStatus = BundleStatus.ACTIVE
    phases: list[PhaseRef] = []
    references: list[Reference] = []
    required_bundle_links: list[BundleLink] = []
    source_doc_ids: list[str] = []
    tags: list[str] = []
    reminder_settings: ReminderSettings = ReminderSettings()
    next_reminder_at: Instant | None = None
    reminder_cursor: Instant | None = None
    created_at: Instant
    updated_at: Instant
    version: int = Field(ge=1)

    @property
    def id(self) -> str:
        return self.bundle_id


class Task(Record):
    record_kind: ClassVar[str] = "task"
    task_id: str
    bundle_id: str
    template_id: str
    template_task_ref: str
    title: str
    phase: str
    assignee: str | None
    due_date: Day
    status: TaskStatus = TaskStatus.TODO
    waiting_for: str | None = None
    follow_up_at: Instant | None = None
    completed_at: Instant | None = None
    completed_by: str | None = None
    proof_requirements: list[ProofRequirement] = []
    proof: list[ProofEntry] = []
    instruction_doc_id: str | None = None
    instruction_step_id: str | None = None
    systems: list[str] = []
    validation: str | None = None
    instructions_url: str | None = None
    comments: list[Comment] = []
    tags: list[str] = []
    next_reminder_at: Instant | None = None
    reminder_cursor: Instant | None = None
    created_at: Instant
    updated_at: Instant
    version: int = Field(ge=1)

    @property
    def id(self) -> str:
        return self.task_id


class Artifact(Record):
    record_kind: ClassVar[str] = "artifact"
    artifact_id: str
    task_id: str
    bundle_id: str
    filename: str
    content_type: str
    size_bytes: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    location: str
    created_by: str
    created_at: Instant
    version: int = 1

    @property
    def id(self) -> str:
        return self.artifact_id


class AssistantJob(Record):
    record_kind: ClassVar[str] = "assistant_job"
    assistant_job_id: str
    bundle_id: str
    task_id: str | None = None
    kind: str
    status: AssistantJobStatus = AssistantJobStatus.QUEUED
    input: dict[str, Any] = {}
    output_artifact_id: str | None = None
    error: str | None = None
    created_at: Instant
    updated_at: Instant
    version: int = 1

    @property
    def id(self) -> str:
        return self.assistant_job_id


class Reminder(Record):
    record_kind: ClassVar[str] = "reminder"
    reminder_id: str
    kind: ReminderKind
    entity_type: str
    entity_id: str
    bundle_id: str | None
    task_id: str | None = None
    fire_at: Instant
    recorded_at: Instant
    late: bool = False
    delivery_status: DeliveryStatus = DeliveryStatus.PENDING
    attempts: int = 0
    deliver_after: Instant | None = None
    last_error: str | None = None
    summary: str
    version: int = 1

    @property
    def id(self) -> str:
        return self.reminder_id


class AuditEvent(Record):
    """An append-only, hash-chained event. ``seq``, ``prev_hash`` and ``hash`` are assigned by
    the store when it appends the event (see :func:`chain`)."""

    record_kind: ClassVar[str] = "audit_event"
    event_id: str
    seq: int = 0
    actor: str
    entity_type: str
    entity_id: str
    action: str
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    summary: str
    at: Instant
    prev_hash: str = ""
    hash: str = ""

    @property
    def id(self) -> str:
        return self.event_id

    def content_hash(self, prev_hash: str) -> str:
        """sha256 of the canonical JSON (sorted keys) of every field but ``hash``, with
        ``prev_hash``: editing any field, or linking the event elsewhere, changes it."""
        body = {
            "event_id": self.event_id, "seq": self.seq, "actor": self.actor,
            "entity_type": self.entity_type, "entity_id": self.entity_id, "action": self.action,
            "before": self.before, "after": self.after, "summary": self.summary,
            "at": format_instant(self.at), "prev_hash": prev_hash,
        }
        # orjson: sorted keys, compact, UTF-8; ~10x faster than json.dumps on the write path
        return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()

GENESIS_HASH = "0" * 64


def chain(event: AuditEvent, prev_seq: int, prev_hash: str) -> AuditEvent:
    """Give ``event`` its place after the event ``prev_seq`` (0 and GENESIS_HASH for the first)."""
    placed = event.model_copy(update={"seq": prev_seq + 1, "prev_hash": prev_hash})
    object.__setattr__(placed, "hash", placed.content_hash(prev_hash))  # a fresh private copy
    return placed



def record_id(record: Record) -> str:
    return record.id  # type: ignore[attr-defined]


def record_version(record: Record) -> int:
    return getattr(record, "version", 1)


def kind_of(record: Record) -> str:
    return type(record).record_kind  # type: ignore[attr-defined]
