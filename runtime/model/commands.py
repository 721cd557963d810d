"""Typed commands: what the CLI, the library facade and the HTTP API ask the engine to do.

A command is validated once, where it is built (:func:`build` turns a pydantic error into an
:class:`~runtime.errors.InputError` naming the field); the engine trusts its types. Commands
judge their own fields (an instant is aware, a URL is http(s)); guards judge the record's state
and what a trigger needs (a reason, waiting fields, proof).
"""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Any, ClassVar, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from runtime.errors import InputError
from runtime.model.common import Instant
from runtime.model.records import TokenRole

_URL = re.compile(r"^https?://[^\s/$.?#][^\s]*$", re.IGNORECASE)


def _http_url(value: str) -> str:
    if not _URL.match(value):
        raise ValueError(f"{value!r} is not an http(s) URL; give e.g. https://example.com/x")
    return value


def _not_blank(value: str) -> str:
    if not value:
        raise ValueError("is empty; give a value")
    return value


HttpUrl = Annotated[str, AfterValidator(_http_url)]
Text = Annotated[str, AfterValidator(_not_blank)]


class Command(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)
    name: ClassVar[str]


class Versioned(Command):
    """A command on one record that the caller may make conditional on the version it saw
    (HTTP ``If-Match``): a different current version is a VersionMismatch, never retried."""

    expected_version: int | None = Field(default=None, ge=1)


class CreateBundle(Command):
    name = "create_bundle"
    template_id: Text
    anchor_date: date
    title: str | None = None


class LinkBundle(Versioned):
    name = "link_bundle"
    bundle_id: Text
    key: Text
    url: HttpUrl


class CancelBundle(Versioned):
    name = "cancel_bundle"
    bundle_id: Text
    reason: str | None = None


class TaskCommand(Versioned):
    task_id: Text


class FireTask(TaskCommand):
    """A lifecycle trigger of the task machine; subclasses name it."""

    trigger: ClassVar[str]

    def guard_args(self) -> dict[str, Any]:
        """The fields the trigger's guards judge."""
        return {name: getattr(self, name) for name in type(self).model_fields
                if name not in ("task_id", "expected_version")}


class StartTask(FireTask):
    name = trigger = "start"


class ResumeTask(FireTask):
    name = trigger = "resume"


class CompleteTask(FireTask):
    name, trigger = "complete", "complete"


class WaitTask(FireTask):
    name = trigger = "wait"
    waiting_for: str | None = None
    follow_up_at: Instant | None = None


class CancelTask(FireTask):
    name = trigger = "cancel"
    reason: str | None = None


class ReopenTask(FireTask):
    name = trigger = "reopen"
    reason: str | None = None


class AssignTask(TaskCommand):
    name = "assign"
    assignee: Text


class CommentTask(TaskCommand):
    name = "comment"
    body: Text


class AttachUrl(TaskCommand):
    name = "attach_url"
    url: HttpUrl


class AttachComment(TaskCommand):
    name = "attach_comment"
    body: Text


class AttachExternalStatus(TaskCommand):
    name = "attach_external_status"
    system: Text
    value: Text


class AttachFile(TaskCommand):
    name = "attach_file"
    data: bytes = Field(repr=False)
    filename: Text
    content_type: str = "application/octet-stream"


class EnqueueJob(Command):
    name = "enqueue_job"
    task_id: Text
    kind: Text = Field(max_length=80)
    input: dict[str, Any] = {}
    max_attempts: int = Field(default=3, ge=1, le=100)


class ClaimJob(Command):
    name = "claim_job"
    kinds: list[str] = []
    """Which kinds the worker handles (empty: any)."""
    worker: Text = Field(max_length=200)
    lease_seconds: float = Field(default=300.0, ge=1, le=86_400)


class JobCommand(Command):
    assistant_job_id: Text
    worker: str | None = None
    """The worker that holds the job (checked when given: a worker whose lease ran out and
    whose job was claimed again is refused)."""


class HeartbeatJob(JobCommand):
    name = "heartbeat_job"
    lease_seconds: float = Field(default=300.0, ge=1, le=86_400)


class CompleteJob(JobCommand):
    name = "complete_job"
    output: dict[str, Any] = {}
    data: bytes | None = Field(default=None, repr=False)
    filename: str | None = None
    content_type: str | None = None


class FailJob(JobCommand):
    name = "fail_job"
    error: Text = Field(max_length=2000)


class CancelJob(JobCommand):
    name = "cancel_job"


class CreateToken(Command):
    name = "create_token"
    actor: Text = Field(max_length=200)
    role: TokenRole


class RevokeToken(Command):
    name = "revoke_token"
    token_id: Text


TRIGGER_COMMANDS: dict[str, type[FireTask]] = {
    c.trigger: c for c in (StartTask, ResumeTask, CompleteTask, WaitTask, CancelTask, ReopenTask)
}

C = TypeVar("C", bound=Command)


def build(cls: type[C], **fields: Any) -> C:
    """``cls(**fields)``, with a validation error turned into one InputError naming each field.

    :raises InputError: a field is missing, of the wrong type or out of range.
    """
    try:
        return cls(**fields)
    except ValidationError as e:
        problems = []
        for err in e.errors():
            field = ".".join(str(p) for p in err["loc"]) or "(command)"
            msg = str(err["msg"]).removeprefix("Value error, ")
            problems.append(f"{field}: {msg}")
        raise InputError(f"{cls.name}: " + "; ".join(problems)) from None
