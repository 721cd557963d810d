"""Task use cases: one function per command type, each one unit of work, re-run on a lost race.

A task command reads the task and its bundle, decides (machine guards, the command's fields),
and writes the task; when the task opens or closes it also writes the bundle (see
:mod:`runtime.engine.bundles`), in the same atomic write.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from runtime.engine.bundles import settle
from runtime.engine.jobs import add_definition_jobs, cancel_open_jobs
from runtime.engine.services import Services
from runtime.engine.uow import UnitOfWork, check_version, retrying
from runtime.errors import InputError, TransitionRejected
from runtime.machines import Context, machine
from runtime.model import (
    Artifact,
    Bundle,
    BundleStatus,
    Comment,
    ProofEntry,
    ProofKind,
    Task,
    TaskStatus,
    new_id,
)
from runtime.model.commands import (
    AssignTask,
    AttachComment,
    AttachExternalStatus,
    AttachFile,
    AttachUrl,
    CancelTask,
    CommentTask,
    FireTask,
    StartTask,
    TaskCommand,
)

Decision = tuple[dict[str, Any], str, str]  # (fields, action, summary)
Decide = Callable[[UnitOfWork, Task, Bundle], Decision]


def _run(svc: Services, cmd: TaskCommand, decide: Decide) -> Task:
    def attempt() -> Task:
        uow = UnitOfWork(svc)
        task, bundle = uow.task_and_bundle(cmd.task_id)
        check_version(task, cmd.expected_version)
        if bundle.status == BundleStatus.CREATING:
            raise TransitionRejected(cmd.task_id, cmd.name, [
                f"its bundle {bundle.bundle_id} is still being created; create it again to "
                "complete it"], state=task.status)
        fields, action, summary = decide(uow, task, bundle)
        new = uow.update(task, fields, summary, action=action)
        if task.status.is_open != new.status.is_open:
            settle(uow, bundle, delta={task.phase: 1 if new.status.is_open else -1})
        if isinstance(cmd, StartTask):  # the definition's jobs for a started task, once
            add_definition_jobs(uow, new, "start", check_existing=True)
        elif isinstance(cmd, CancelTask):
            cancel_open_jobs(uow, task.task_id, f"its task {task.task_id} was cancelled")
        uow.commit()
        return new

    return retrying(attempt)


def fire(svc: Services, cmd: FireTask) -> Task:
    """Run a lifecycle trigger (start, wait, resume, complete, cancel, reopen).

    :raises TransitionRejected: naming every unmet requirement; nothing was written.
    :raises NotFoundError, ConflictError (retries spent), RecordUnreadable:
    """

    def decide(uow: UnitOfWork, task: Task, bundle: Bundle) -> Decision:
        if cmd.trigger == "reopen" and bundle.status == BundleStatus.CANCELLED:
            raise TransitionRejected(task.task_id, cmd.trigger,
                                     [f"its bundle {task.bundle_id} is cancelled"], state=task.status)
        ctx = Context(record=task, now=uow.now, actor=uow.actor, args=cmd.guard_args())
        state = machine("task").fire(task.status, cmd.trigger, ctx, task.task_id)
        summary = f"task {task.task_id}: {cmd.trigger} ({task.status} -> {state})"
        reason = getattr(cmd, "reason", "")
        if reason:
            summary += f"; reason: {reason}"
        if cmd.trigger == "wait":
            summary += (f"; waiting for {ctx.changes['waiting_for']!r} until "
                        f"{ctx.changes['follow_up_at'].isoformat()}")
        return {"status": TaskStatus(state), **ctx.changes}, cmd.trigger, summary

    return _run(svc, cmd, decide)


def assign(svc: Services, cmd: AssignTask) -> Task:
    return _run(svc, cmd, lambda uow, task, _: (
        {"assignee": cmd.assignee}, "assign",
        f"task {task.task_id} assigned to {cmd.assignee} (was {task.assignee or 'unassigned'})"))


def comment(svc: Services, cmd: CommentTask) -> Task:
    def decide(uow: UnitOfWork, task: Task, _: Bundle) -> Decision:
        note = Comment(comment_id=new_id("cmt"), author=uow.actor, body=cmd.body, created_at=uow.now)
        return ({"comments": [*task.comments, note]}, "comment",
                f"{uow.actor} commented on task {task.task_id}")

    return _run(svc, cmd, decide)


def _open_for_proof(task: Task) -> None:
    """Proof goes to an open task only: a closed one is reopened first (a comment is not proof
    and stays allowed)."""
    if not task.status.is_open:
        raise TransitionRejected(task.task_id, "attach", [
            f"it is {task.status}; reopen it first to attach proof"], state=task.status)


def _attach(svc: Services, cmd: TaskCommand, what: str, **entry: Any) -> Task:
    def decide(uow: UnitOfWork, task: Task, _: Bundle) -> Decision:
        _open_for_proof(task)
        proof = ProofEntry(**entry, by=uow.actor, at=uow.now)
        return ({"proof": [*task.proof, proof]}, "attach",
                f"{uow.actor} attached {what} to task {task.task_id}")

    return _run(svc, cmd, decide)


def attach_url(svc: Services, cmd: AttachUrl) -> Task:
    return _attach(svc, cmd, f"url {cmd.url}", kind=ProofKind.URL, value=cmd.url)


def attach_comment(svc: Services, cmd: AttachComment) -> Task:
    return _attach(svc, cmd, "a comment", kind=ProofKind.COMMENT, value=cmd.body)


def attach_external_status(svc: Services, cmd: AttachExternalStatus) -> Task:
    return _attach(svc, cmd, f"external status {cmd.system}={cmd.value}",
                   kind=ProofKind.EXTERNAL_STATUS, system=cmd.system, value=cmd.value)


def attach_file(svc: Services, cmd: AttachFile) -> tuple[Task, Artifact]:
    """Store the binary in the artifact store, then its metadata record and the proof entry in
    one write (the binary is content-addressed: a retried or lost write leaves at most an
    unreferenced blob, never a record without its binary)."""
    if svc.artifacts is None:
        raise InputError("no artifact store configured")
    before = svc.store.get(Task, cmd.task_id)  # fail before writing any binary
    check_version(before, cmd.expected_version)
    _open_for_proof(before)
    from runtime.artifacts import content_type_of

    ctype = content_type_of(cmd.data, cmd.filename, cmd.content_type)
    blob = svc.artifacts.put(cmd.data)
    made: list[Artifact] = []

    def decide(uow: UnitOfWork, task: Task, _: Bundle) -> Decision:
        _open_for_proof(task)  # closed since the check: the blob stays unreferenced
        artifact = uow.create(Artifact(
            artifact_id=new_id("art"), task_id=task.task_id, bundle_id=task.bundle_id,
            filename=cmd.filename, content_type=ctype, size_bytes=blob.size_bytes,
            sha256=blob.sha256, location=blob.location, created_by=uow.actor, created_at=uow.now,
        ), f"artifact {cmd.filename} ({blob.size_bytes} bytes) for task {task.task_id}")
        made[:] = [artifact]
        proof = ProofEntry(kind=ProofKind.ARTIFACT, artifact_id=artifact.artifact_id,
                           value=cmd.filename, content_type=ctype, by=uow.actor,
                           at=uow.now)
        return ({"proof": [*task.proof, proof]}, "attach",
                f"{uow.actor} attached file {cmd.filename} to task {task.task_id}")

    task = _run(svc, cmd, decide)
    return task, made[0]
