"""The engine: use cases over a unit of work.

:func:`handle` runs a typed command (:mod:`runtime.model.commands`) through its use case; the
CLI, the library facade and the HTTP API all build commands and call it. The keyword
functions below (``fire_task(svc, task_id, "start")``, ...) build the same commands, for
scripts and tests.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

from runtime.engine import bundles, jobs, tasks, tokens
from runtime.engine.bundles import build_bundle, stage_of
from runtime.engine.services import Services
from runtime.engine.views import (
    BundleView,
    allowed_triggers,
    audit_log,
    check_task,
    get_bundle,
    get_task,
    list_bundles,
    list_reminders,
    list_tasks,
)
from runtime.errors import InputError
from runtime.model.commands import (
    TRIGGER_COMMANDS,
    AssignTask,
    AttachComment,
    AttachExternalStatus,
    AttachFile,
    AttachUrl,
    CancelBundle,
    CancelJob,
    ClaimJob,
    Command,
    CommentTask,
    CompleteJob,
    CreateBundle,
    CreateToken,
    EnqueueJob,
    FailJob,
    FireTask,
    HeartbeatJob,
    LinkBundle,
    RevokeToken,
    build,
)

_HANDLERS: dict[type[Command], Callable[[Services, Any], Any]] = {
    CreateBundle: bundles.create_bundle,
    LinkBundle: bundles.link_bundle,
    CancelBundle: bundles.cancel_bundle,
    AssignTask: tasks.assign,
    CommentTask: tasks.comment,
    AttachUrl: tasks.attach_url,
    AttachComment: tasks.attach_comment,
    AttachExternalStatus: tasks.attach_external_status,
    AttachFile: tasks.attach_file,
    CreateToken: tokens.create_token,
    RevokeToken: tokens.revoke_token,
    EnqueueJob: jobs.enqueue,
    ClaimJob: jobs.claim,
    HeartbeatJob: jobs.heartbeat,
    CompleteJob: jobs.complete,
    FailJob: jobs.fail,
    CancelJob: jobs.cancel,
    **{cls: tasks.fire for cls in TRIGGER_COMMANDS.values()},
}


def handle(svc: Services, cmd: Command) -> Any:
    """Run ``cmd``: a BundleView for bundle commands, the task after a task command
    (``(task, artifact)`` for AttachFile), ``(record, token)`` for CreateToken, the job for a
    job command (None for a ClaimJob that found nothing).

    :raises InputError, TransitionRejected, ConflictError, VersionMismatch, NotFoundError,
        RecordUnreadable, ThrottledError, StoreFault: see each use case.
    """
    handler = _HANDLERS.get(type(cmd))
    if handler is None:
        raise InputError(f"no use case handles {type(cmd).__name__}")
    return handler(svc, cmd)


# ---- keyword conveniences (each builds the typed command) -------------------------------------


def create_bundle(svc: Services, template_id: str, anchor: date, title: str | None = None,
                  **extra: Any) -> BundleView:
    cmd = build(CreateBundle, template_id=template_id, anchor_date=anchor, title=title)
    return bundles.create_bundle(svc, cmd, **extra)


def fire_task(svc: Services, task_id: str, trigger: str, **args: Any) -> Any:
    cls: type[FireTask] | None = TRIGGER_COMMANDS.get(trigger)
    if cls is None:
        raise InputError(f"unknown trigger {trigger!r} (known: {', '.join(TRIGGER_COMMANDS)})")
    return handle(svc, build(cls, task_id=task_id, **args))


def assign_task(svc: Services, task_id: str, assignee: str) -> Any:
    return handle(svc, build(AssignTask, task_id=task_id, assignee=assignee))


def comment_task(svc: Services, task_id: str, body: str) -> Any:
    return handle(svc, build(CommentTask, task_id=task_id, body=body))


def attach_url(svc: Services, task_id: str, url: str) -> Any:
    return handle(svc, build(AttachUrl, task_id=task_id, url=url))


def attach_comment(svc: Services, task_id: str, text: str) -> Any:
    return handle(svc, build(AttachComment, task_id=task_id, body=text))


def attach_external_status(svc: Services, task_id: str, system: str, value: str) -> Any:
    return handle(svc, build(AttachExternalStatus, task_id=task_id, system=system, value=value))


def attach_file(svc: Services, task_id: str, data: bytes, filename: str,
                content_type: str = "application/octet-stream") -> Any:
    return handle(svc, build(AttachFile, task_id=task_id, data=data, filename=filename,
                             content_type=content_type))


def link_bundle(svc: Services, bundle_id: str, key: str, url: str) -> BundleView:
    return handle(svc, build(LinkBundle, bundle_id=bundle_id, key=key, url=url))


def cancel_bundle(svc: Services, bundle_id: str, reason: str) -> BundleView:
    return handle(svc, build(CancelBundle, bundle_id=bundle_id, reason=reason))


__all__ = [
    "BundleView", "Services", "allowed_triggers", "assign_task", "attach_comment",
    "attach_external_status", "attach_file", "attach_url", "audit_log", "build_bundle",
    "cancel_bundle", "check_task", "comment_task", "create_bundle", "fire_task", "get_bundle",
    "get_task", "handle", "link_bundle", "list_bundles", "list_reminders", "list_tasks",
    "stage_of",
]
