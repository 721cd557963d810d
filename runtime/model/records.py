"""The store's records: the mutable state of runs. Their JSON is the portable export shape."""

from __future__ import annotations

from datetime import time
from enum import StrEnum
from typing import Annotated, Any, ClassVar

from pydantic import Field, WithJsonSchema

from runtime.model.common import Day, FreeForm, Instant, Record, sorted_keys
from runtime.model.definitions import AssistantJobSpec, ProofKind, ProofRequirement, Reference


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
    CREATING = "creating"
    """Being instantiated in several writes (a store with a per-write limit); not yet active."""
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


class RecipientStatus(StrEnum):
    PENDING = "pending"
    """Not sent to them yet (a digest recipient: until their next digest gathers it)."""
    SENT = "sent"
    DIGESTED = "digested"
    """Gathered into the digest ``digest_id`` (which is sent on its own)."""
    FAILED = "failed"
    SKIPPED = "skipped"
    """No address for any channel the daemon sends on (no email, no chat webhook)."""


class AssistantJobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class TokenRole(StrEnum):
    """What an API token may do (DESIGN.md "HTTP API"); each role includes the ones before."""

    VIEWER = "viewer"        # GET only
    OPERATOR = "operator"    # also bundle and task commands
    ADMIN = "admin"          # also tokens, import and export

    @property
    def rank(self) -> int:
        return list(TokenRole).index(self)


class BundleLink(Record):
    key: str
    label: str
    required: bool = True
    url: str | None = None


class PhaseRef(Record):
    """A phase of the definition, copied onto the bundle in definition order (for its stage)."""

    phase_id: str
    title: str
    open_tasks: int = Field(default=0, ge=0)
    """How many of the bundle's tasks in this phase are open: every task command that opens or
    closes a task writes it, so two tasks closing at once conflict on the bundle (no write skew)
    and the stage is known without reading the tasks."""


class ReminderSettings(Record):
    """The definition's reminder policy, copied onto the bundle so rules need no content."""

    at: Annotated[time, WithJsonSchema({  # a wall-clock time in the bundle's zone, no offset
        "type": "string", "pattern": r"^([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]+)?)?$"})
    ] = time(9, 0)
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

    audit_seq: int = Field(default=0, ge=0)
    audit_hash: str = ""
    @property
    def id(self) -> str:
        return self.bundle_id


class Task(Record):
    record_kind: ClassVar[str] = "task"
    task_id: str
    bundle_id: str
    template_id: str
    template_task_ref: str
    position: int = Field(default=0, ge=0)
    """The task's place in its definition: a bundle lists its tasks in this order (an explicit
    field, so the order survives export and import into any store)."""
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
    assistant_jobs: list[AssistantJobSpec] = []
    """The definition's jobs for this task, copied like its proof requirements, so that starting
    it enqueues them without reading content/."""
    next_reminder_at: Instant | None = None
    reminder_cursor: Instant | None = None
    created_at: Instant
    updated_at: Instant
    version: int = Field(ge=1)

    audit_seq: int = Field(default=0, ge=0)
    audit_hash: str = ""
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

    audit_seq: int = Field(default=0, ge=0)
    audit_hash: str = ""
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
    input: FreeForm = {}
    output_artifact_id: str | None = None
    error: str | None = None
    created_at: Instant
    updated_at: Instant
    version: int = 1
    trigger: str = "manual"
    """What enqueued it: ``create`` or ``start`` (its task's definition) or ``manual``."""
    output: FreeForm | None = None
    attempts: int = Field(default=0, ge=0)
    """Claims so far (a claim whose lease ran out counts)."""
    max_attempts: int = Field(default=3, ge=1)
    worker: str | None = None
    """Who holds it while running (a worker's name)."""
    started_at: Instant | None = None
    finished_at: Instant | None = None
    lease_expires_at: Instant | None = None
    claimable_at: Instant | None = None
    """When a worker may claim it (indexed): a queued job's, after any backoff; a running
    job's lease end (it comes back if no heartbeat moves it); None once it is over."""

    audit_seq: int = Field(default=0, ge=0)
    audit_hash: str = ""
    @property
    def id(self) -> str:
        return self.assistant_job_id


def _empty(value: object) -> bool:
    return not value


class Recipient(Record):
    """Who a reminder is for (routing, decided when it is recorded) and what was sent to them:
    the store's record of who received what, kept on the reminder itself (no extra item)."""

    person_id: str
    reason: str
    delivery: Annotated[str, Field(pattern=r"^(immediate|digest)$")] = "immediate"
    digest_at: Instant | None = None
    """A digest recipient's digest that gathers this reminder (their local digest time)."""
    status: RecipientStatus = RecipientStatus.PENDING
    channels: list[str] = Field(default_factory=list)  # (a plain [] is deep-copied each time)
    """The channels it was sent on (``email``, ``chat``)."""
    attempts: int = 0
    sent_at: Instant | None = None
    digest_id: str | None = None
    error: str | None = None


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
    recipients: list[Recipient] = Field(default_factory=list, exclude_if=_empty)
    """Left out of the JSON when empty (routing off): a reminder recorded before routing
    existed keeps its bytes and its state hash."""
    digest_after: Instant | None = Field(default=None, exclude_if=_empty)
    """The earliest digest that still has to gather this reminder (indexed; None: none)."""
    version: int = 1

    audit_seq: int = Field(default=0, ge=0)
    audit_hash: str = ""
    @property
    def id(self) -> str:
        return self.reminder_id


class Digest(Record):
    """One message gathering a person's reminders (their ``delivery: {digest: "HH:MM"}``):
    at most one per person and local day (a deterministic ID), delivered like a reminder."""

    record_kind: ClassVar[str] = "digest"
    digest_id: str
    person_id: str
    local_date: Day
    timezone: str
    digest_at: Instant
    """The person's digest time it was gathered for."""
    reminder_ids: list[str]
    created_at: Instant
    delivery_status: DeliveryStatus = DeliveryStatus.PENDING
    attempts: int = 0
    deliver_after: Instant | None = None
    last_error: str | None = None
    channels: list[str] = []
    """The channels it was sent on."""
    sent_at: Instant | None = None
    updated_at: Instant
    version: int = Field(ge=1)

    audit_seq: int = Field(default=0, ge=0)
    audit_hash: str = ""
    @property
    def id(self) -> str:
        return self.digest_id


class AuditEvent(Record):
    """An append-only event in its entity's own hash chain (DESIGN.md "Audit chains").

    ``seq`` is the event's place in the chain of ``entity_id`` (from 1), ``prev_hash`` the hash
    of the event before it (:data:`GENESIS_HASH` for the first), ``state_hash`` the hash of the
    record's visible fields after the event and ``hash`` the hash of all of it. The record
    carries the head (``audit_seq``, ``audit_hash``); the unit of work builds both together.
    """

    record_kind: ClassVar[str] = "audit_event"
    event_id: str
    seq: int = Field(ge=1)
    actor: str
    entity_type: str
    entity_id: str
    action: str
    before: FreeForm | None = None
    after: FreeForm | None = None
    summary: str
    at: Instant
    prev_hash: str
    hash: str
    state_hash: str

    @property
    def id(self) -> str:
        return self.event_id

    @classmethod
    def trusted(cls, *, presorted: bool = False, **values: Any) -> AuditEvent:
        """An event from fields the unit of work built from validated records and an aware
        clock, every field given: ``model_construct`` without its per-field alias lookups,
        which cost more than the rest of an event (a test pins it equal to validation).
        ``presorted``: ``before`` and ``after`` have their keys sorted already."""
        if values.keys() != cls.model_fields.keys():
            raise ValueError(f"a trusted event needs exactly the fields {sorted(cls.model_fields)}")
        for side in ("before", "after") if not presorted else ():
            if values[side] is not None:  # FreeForm: keys sorted, as validation gives them
                values[side] = sorted_keys(values[side])
        event = cls.__new__(cls)
        object.__setattr__(event, "__dict__", values)
        object.__setattr__(event, "__pydantic_fields_set__", set(values))
        object.__setattr__(event, "__pydantic_extra__", None)
        object.__setattr__(event, "__pydantic_private__", None)
        return event


class ApiToken(Record):
    """An HTTP API token: who acts (``actor``) with which ``role``. The store keeps only the
    sha256 of the secret, so every API server shares the tokens and none can show one again;
    creating and revoking a token are audited like every other change."""

    record_kind: ClassVar[str] = "api_token"
    token_id: str
    actor: str
    role: TokenRole
    token_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    created_by: str
    created_at: Instant
    revoked_at: Instant | None = None
    revoked_by: str | None = None
    updated_at: Instant
    version: int = Field(ge=1)

    audit_seq: int = Field(default=0, ge=0)
    audit_hash: str = ""
    @property
    def id(self) -> str:
        return self.token_id


class IdempotencyKey(Record):
    """What an HTTP API server answered to a POST with an ``Idempotency-Key`` (kept in the store
    so every server replays it; removed by the sweep after ``expires_at``). Request state, not
    a record of work: no audit chain, not exported. ``key_id`` is the sha256 of the actor and
    the client's key, so one client can never replay another's answer."""

    record_kind: ClassVar[str] = "idempotency_key"
    key_id: str
    actor: str
    method: str
    path: str
    request_sha256: str
    state: str = Field(pattern=r"^(pending|done)$")
    status_code: int | None = None
    response: str | None = None
    """The response body as sent (JSON text)."""
    headers: dict[str, str] = {}
    created_at: Instant
    expires_at: Instant
    version: int = Field(ge=1)

    @property
    def id(self) -> str:
        return self.key_id


class Seal(Record):
    """A Merkle root over every chain head at ``at`` (``audit seal``; the scheduler seals daily).
    ``heads`` keeps each sealed ``[entity_type, entity_id, audit_seq, audit_hash]`` so that
    ``audit verify`` can name an entity removed with all its events."""

    record_kind: ClassVar[str] = "seal"
    seal_id: str
    at: Instant
    root: str
    count: int = Field(ge=0)
    heads: list[tuple[str, str, int, str]] = []
    created_by: str

    @property
    def id(self) -> str:
        return self.seal_id


GENESIS_HASH = "0" * 64


def record_id(record: Record) -> str:
    return record.id  # type: ignore[attr-defined]


def record_version(record: Record) -> int:
    """Its ``version`` (1 for a kind without one: an audit event, a seal). Read from the
    fields (pydantic keeps them in ``__dict__``): ``getattr`` with a default goes through
    pydantic's ``__getattr__`` and an exception for a kind without the field, ~1 us a call."""
    version: int = record.__dict__.get("version", 1)
    return version


def kind_of(record: Record) -> str:
    return type(record).record_kind  # type: ignore[attr-defined]


ENTITY_KINDS: tuple[type[Record], ...] = (Bundle, Task, Artifact, AssistantJob, Reminder, ApiToken,
                                          Digest)
"""The records that carry their own audit chain."""
KIND_BY_NAME: dict[str, type[Record]] = {
    k.record_kind: k  # type: ignore[attr-defined, misc]
    for k in (*ENTITY_KINDS, AuditEvent, Seal, IdempotencyKey)
}
