"""Workflow definitions and the document registry: the Git-backed content under content/."""

from __future__ import annotations

from datetime import time
from enum import StrEnum
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BeforeValidator, Field, field_validator, model_validator

from runtime.limits import MAX_OFFSET_DAYS
from runtime.model.common import Definition, FreeForm

Slug = Annotated[str, Field(min_length=1, max_length=80, pattern=r"^[a-z0-9][a-z0-9_.-]*$")]


class ProofKind(StrEnum):
    URL = "url"
    ARTIFACT = "artifact"
    COMMENT = "comment"
    EXTERNAL_STATUS = "external_status"


class UrlProof(Definition):
    """An http(s) URL attached, matching ``pattern`` if given."""

    kind: Literal["url"]
    label: str | None = None
    pattern: str | None = None

    @field_validator("pattern")
    @classmethod
    def _regex(cls, v: str | None) -> str | None:
        if v is not None:
            from runtime.rules.pattern import compile_pattern  # imports re2 only when needed

            compile_pattern(v)  # a ValueError names the pattern and why RE2 refuses it
        return v


class ArtifactProof(Definition):
    """A file attached (its binary in the artifact store, its metadata in the store)."""

    kind: Literal["artifact"]
    label: str | None = None
    content_types: list[str] | None = None


class CommentProof(Definition):
    """A comment attached as proof."""

    kind: Literal["comment"]
    label: str | None = None


class ExternalStatusProof(Definition):
    """A status reported for ``system`` that equals ``expected``."""

    kind: Literal["external_status"]
    system: Slug
    expected: str = Field(min_length=1)
    label: str | None = None


ProofRequirement = Annotated[
    UrlProof | ArtifactProof | CommentProof | ExternalStatusProof, Field(discriminator="kind")
]


def describe_requirement(req: UrlProof | ArtifactProof | CommentProof | ExternalStatusProof) -> str:
    """A short human name for a requirement, used in guard messages and reminders."""
    label = f" {req.label!r}" if req.label else ""
    match req:
        case UrlProof():
            return f"url{label}" + (f" (pattern {req.pattern})" if req.pattern else "")
        case ArtifactProof():
            types = f" ({', '.join(req.content_types)})" if req.content_types else ""
            return f"artifact{label}{types}"
        case CommentProof():
            return f"comment{label}"
        case ExternalStatusProof():
            return f"external_status {req.system}={req.expected}"
    raise AssertionError(req)  # pragma: no cover


class Reference(Definition):
    label: str = Field(min_length=1)
    url: str = Field(min_length=1)


class BundleLinkSpec(Definition):
    key: Slug
    label: str = Field(min_length=1)
    required: bool = True


def _bounded_offset(v: int | None) -> int | None:
    if v is not None and abs(v) > MAX_OFFSET_DAYS:
        raise ValueError(f"offset {v} days leaves the representable date range; offsets are "
                         f"limited to ±{MAX_OFFSET_DAYS} days (calendar or business)")
    return v


class ManualTrigger(Definition):
    type: Literal["manual"]


class ScheduleTrigger(Definition):
    """A cron schedule (5 fields, the definition's zone); each firing instantiates a bundle whose
    anchor is the firing date plus ``anchor_offset_days``."""

    type: Literal["schedule"]
    cron: str = Field(min_length=9)
    anchor_offset_days: int = 0

    @field_validator("anchor_offset_days")
    @classmethod
    def _bounded(cls, v: int) -> int:
        return _bounded_offset(v) or 0


Trigger = Annotated[ManualTrigger | ScheduleTrigger, Field(discriminator="type")]


def _sexagesimal(v: object) -> object:
    if isinstance(v, int) and not isinstance(v, bool):  # YAML 1.1 reads 09:00 unquoted as 540
        return time(v // 60, v % 60)
    return v


LocalTime = Annotated[time, BeforeValidator(_sexagesimal)]
"""A wall-clock time written HH:MM (quoted or not)."""


def _iana(v: str) -> str:
    try:
        ZoneInfo(v)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"{v!r} is not an IANA time zone; use a name like Europe/Berlin or America/New_York"
        ) from None
    return v


Zone = Annotated[str, AfterValidator(_iana)]
"""An IANA time zone name."""


class ReminderPolicy(Definition):
    at: LocalTime = time(9, 0)
    overdue_repeats: int = Field(default=3, ge=0, le=365)
    escalate_after_overdue: int | None = Field(default=None, ge=1, le=365)
    """From the Nth overdue reminder on, the assignee's manager receives it too."""


class BusinessCalendar(Definition):
    country: str = Field(min_length=2, max_length=3)
    subdivision: str | None = None


class Phase(Definition):
    phase_id: Slug
    title: str = Field(min_length=1)


class AssistantJobSpec(Definition):
    """A job a task definition asks for: enqueued when the bundle is created (``on: create``) or
    when the task starts (``on: start``), once per task (a deterministic ID)."""

    kind: Slug
    input: FreeForm = {}
    on: Literal["create", "start"] = "start"
    max_attempts: int = Field(default=3, ge=1, le=100)


class TaskDefinition(Definition):
    task_ref: Slug
    title: str = Field(min_length=1)
    phase: Slug
    offset_days: int | None = None
    offset_business_days: int | None = None
    assignee: str | None = None
    proof: list[ProofRequirement] = []
    instruction_doc_id: str | None = None
    instruction_step_id: str | None = None
    systems: list[str] = []
    validation: str | None = None
    instructions_url: str | None = None
    tags: list[str] = []
    description: str | None = None
    assistant_jobs: list[AssistantJobSpec] = []

    @field_validator("offset_days", "offset_business_days")
    @classmethod
    def _bounded(cls, v: int | None) -> int | None:
        return _bounded_offset(v)

    @model_validator(mode="after")
    def _one_offset(self) -> TaskDefinition:
        if self.offset_days is not None and self.offset_business_days is not None:
            raise ValueError(
                "give either offset_days or offset_business_days, not both"
            )
        if self.instruction_step_id and not self.instruction_doc_id:
            raise ValueError("instruction_step_id needs instruction_doc_id (the doc it is a step of)")
        return self


class WorkflowDefinition(Definition):
    template_id: Slug
    version: int = Field(ge=1)
    title: str = Field(min_length=1)
    description: str | None = None
    timezone: Zone
    default_assignee: str | None = None
    owner: str | None = None
    """Receives the bundle's own reminders (missing links, stage changes, recurring); default
    ``default_assignee``."""
    source_doc_ids: list[str] = []
    references: list[Reference] = []
    required_bundle_links: list[BundleLinkSpec] = []
    trigger: Trigger = ManualTrigger(type="manual")
    reminders: ReminderPolicy = ReminderPolicy()
    business_calendar: BusinessCalendar | None = None
    phases: list[Phase] = Field(min_length=1)
    tasks: list[TaskDefinition] = Field(min_length=1)
    tags: list[str] = []

    def task(self, task_ref: str) -> TaskDefinition:
        for t in self.tasks:
            if t.task_ref == task_ref:
                return t
        raise KeyError(task_ref)


class DocStep(Definition):
    step_id: Slug
    title: str = Field(min_length=1)


class Document(Definition):
    doc_id: Slug
    title: str = Field(min_length=1)
    location: str = Field(min_length=1)
    steps: list[DocStep] = []
    tags: list[str] = []
