"""Assistant jobs: work a worker process does for a task (DESIGN.md "Assistant jobs").

A job is queued by its task's definition (``assistant_jobs`` on a task: when the bundle is
created, or when the task starts; a deterministic ID, so a second enqueue of the same
definition's job for one task creates nothing) or by hand. A worker claims it under a lease
(``claimable_at`` is the index: a queued job's "from when", a running job's lease end), extends
the lease with heartbeats, and completes it with an output and maybe a file (an artifact of the
task, which can satisfy its artifact proof), or fails it: retried with backoff until
``max_attempts``, then ``failed`` with one automation_failure reminder in the same write. A
lease that runs out puts the job back: the next claim counts it. Every change but a heartbeat is
an audited, version-checked write through the unit of work; the lifecycle is
``machines/assistant_job.yaml``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from runtime.engine.services import Services
from runtime.engine.uow import UnitOfWork, retrying
from runtime.errors import ConflictError, InputError, NotFoundError, TransitionRejected
from runtime.machines import Context, machine
from runtime.model import (
    Artifact,
    AssistantJob,
    AssistantJobStatus,
    Bundle,
    BundleStatus,
    ProofEntry,
    ProofKind,
    ReminderKind,
    Task,
    new_id,
)
from runtime.model.commands import (
    CancelJob,
    ClaimJob,
    CompleteJob,
    EnqueueJob,
    FailJob,
    HeartbeatJob,
)
from runtime.rules.reminders import Firing
from runtime.store.base import Changes

BACKOFF = timedelta(seconds=30)
"""A failed attempt is retried after 30 s, doubling per attempt, at most an hour."""
CLAIM_PAGE = 20
OPEN = (AssistantJobStatus.QUEUED, AssistantJobStatus.RUNNING)


def job_id_for(task_id: str, index: int, kind: str) -> str:
    """The ID of a task definition's ``index``-th job: the same for every enqueue."""
    key = f"{task_id}|{index}|{kind}"
    return "job-" + hashlib.sha256(key.encode()).hexdigest()[:32]


def _new(task: Task, *, job_id: str, kind: str, inputs: dict[str, Any], trigger: str,
         max_attempts: int, now: datetime) -> AssistantJob:
    return AssistantJob(
        assistant_job_id=job_id, bundle_id=task.bundle_id, task_id=task.task_id, kind=kind,
        input=inputs, created_at=now, updated_at=now, trigger=trigger,
        max_attempts=max_attempts, claimable_at=now)


def definition_jobs(task: Task, on: str, now: datetime) -> list[AssistantJob]:
    """The jobs ``task``'s definition asks for ``on`` create or start."""
    return [_new(task, job_id=job_id_for(task.task_id, i, spec.kind), kind=spec.kind,
                 inputs=dict(spec.input), trigger=on, max_attempts=spec.max_attempts, now=now)
            for i, spec in enumerate(task.assistant_jobs) if spec.on == on]


def add_definition_jobs(uow: UnitOfWork, task: Task, on: str, *, check_existing: bool) -> None:
    """Enqueue ``task``'s ``on`` jobs in ``uow`` (skipping those that exist, when asked)."""
    for job in definition_jobs(task, on, uow.now):
        if check_existing and uow.store.find(AssistantJob, job.assistant_job_id) is not None:
            continue
        uow.create(job, f"job {job.assistant_job_id} ({job.kind}) queued for task "
                        f"{task.task_id} on {on}")


def cancel_open_jobs(uow: UnitOfWork, task_id: str, why: str) -> None:
    """Cancel, in ``uow``, every queued or running job of the task (its task was closed)."""
    for job in jobs_of(uow.store, task_id):
        if job.status in OPEN:
            _fire(uow, job, "cancel", _over(uow), f"job {job.assistant_job_id} cancelled: {why}")


def jobs_of(store: Any, task_id: str) -> list[AssistantJob]:
    jobs: list[AssistantJob] = []
    cursor = None
    while True:
        page = store.page(AssistantJob, where={"task_id": task_id}, limit=500, cursor=cursor)
        jobs += page.items
        if page.next_cursor is None:
            return jobs
        cursor = page.next_cursor


def _fire(uow: UnitOfWork, job: AssistantJob, trigger: str, fields: dict[str, Any],
          summary: str) -> AssistantJob:
    ctx = Context(record=job, now=uow.now, actor=uow.actor)
    state = machine("assistant_job").fire(job.status, trigger, ctx, job.assistant_job_id)
    return uow.update(job, {"status": AssistantJobStatus(state), **fields}, summary,
                      action=trigger)


def _over(uow: UnitOfWork, **fields: Any) -> dict[str, Any]:
    """The fields of a job that ends unsucceeded (cancelled, failed): out of the claim index,
    no lease, no holder."""
    return {"claimable_at": None, "lease_expires_at": None, "finished_at": uow.now,
            "worker": None, **fields}


def _failure(uow: UnitOfWork, job: AssistantJob, why: str) -> None:
    """The one automation_failure of a job that ran out of attempts (same write)."""
    summary = f"assistant job {job.assistant_job_id} ({job.kind}) failed: {why}"
    firing = Firing(ReminderKind.AUTOMATION_FAILURE, "assistant_job", job.assistant_job_id,
                    job.bundle_id, job.task_id, uow.now, summary)
    uow.record(firing)


# ---- use cases -------------------------------------------------------------------------------


def enqueue(svc: Services, cmd: EnqueueJob) -> AssistantJob:
    """Queue a job for an open task by hand (a new job each time).

    :raises NotFoundError: no such task. :raises TransitionRejected: the task is closed or its
        bundle is not active.
    """
    task_id, kind, inputs, max_attempts = cmd.task_id, cmd.kind, cmd.input, cmd.max_attempts

    def attempt() -> AssistantJob:
        uow = UnitOfWork(svc)
        task, bundle = uow.task_and_bundle(task_id)
        if not task.status.is_open or bundle.status != BundleStatus.ACTIVE:
            raise TransitionRejected(task_id, "enqueue", [
                f"the task is {task.status} and its bundle {bundle.status}; jobs are for open "
                "tasks of active bundles"], state=task.status)
        job = uow.create(_new(task, job_id=new_id("job"), kind=kind.strip(),
                              inputs=dict(inputs or {}), trigger="manual",
                              max_attempts=max_attempts, now=uow.now),
                         f"job ({kind}) queued by hand for task {task_id}")
        uow.commit()
        return job

    return retrying(attempt)


def claim(svc: Services, cmd: ClaimJob) -> AssistantJob | None:
    """Claim the oldest claimable job of ``cmd.kinds`` for ``cmd.worker``, or None. No two
    workers ever hold one job: the claim is a version-checked write. A store that can read and
    write in one locked transaction claims there (PostgreSQL: the job locked ``FOR UPDATE SKIP
    LOCKED``, so racing workers take different jobs; SQLite: under its write lock, so racing
    workers never lose a claim to each other)."""
    worker, lease = cmd.worker, timedelta(seconds=cmd.lease_seconds)
    kinds: list[str] | None = [k for k in cmd.kinds if k] or None
    locking = getattr(svc.store, "claim_jobs", None)
    for _ in range(50):  # bounded: each pass claims, settles or loses a job
        now = svc.now()
        if locking is not None:
            won: list[AssistantJob] = []
            page = locking(now, kinds, 1, lambda jobs, find, won=won: _claim_changes(
                svc, jobs, worker, lease, won, find))
            if not page:
                return None
            if won:
                return won[0]
            continue  # the locked job was settled (cancelled, failed): look again
        candidates = svc.store.claimable_jobs(now, kinds, CLAIM_PAGE)
        if not candidates:
            return None
        for job in candidates:
            got: list[AssistantJob] = []
            changes = _claim_changes(svc, [job], worker, lease, got)
            try:
                svc.store.commit(changes)
            except (ConflictError, NotFoundError):
                continue  # another worker took (or settled) it first
            if got:
                return got[0]
    return None


def _claim_changes(svc: Services, jobs: list[AssistantJob], worker: str, lease: timedelta,
                   won: list[AssistantJob], find: Callable[[type[Any], str], Any] | None = None,
                   ) -> Changes:
    """What claiming the first of ``jobs`` writes: the claim, or (its task closed, or its lease
    ran out on its last attempt) the job settled instead. ``find`` reads inside a locking
    store's claim transaction (its own connection)."""
    uow = UnitOfWork(svc)
    if not jobs:
        return uow.changes
    job = jobs[0]
    find = find or svc.store.find
    task = find(Task, job.task_id) if job.task_id else None
    bundle = find(Bundle, job.bundle_id)
    if task is None or not task.status.is_open or bundle is None \
            or bundle.status == BundleStatus.CANCELLED:
        _fire(uow, job, "cancel", _over(uow), f"job {job.assistant_job_id} cancelled: its task is "
              f"{task.status if task else 'gone'}")
        return uow.changes
    if bundle.status == BundleStatus.CREATING:
        return uow.changes  # not yet: the bundle is still being created
    if job.attempts >= job.max_attempts:  # its last lease ran out
        why = (f"{job.attempts} attempts, the last lease (held by {job.worker}) ran out "
               "without an answer")
        _fire(uow, job, "fail", _over(uow, error=why), f"job {job.assistant_job_id} failed: {why}")
        _failure(uow, job, why)
        return uow.changes
    came_back = job.status == AssistantJobStatus.RUNNING
    until = uow.now + lease
    new = _fire(uow, job, "claim", {
        "attempts": job.attempts + 1, "worker": worker, "lease_expires_at": until,
        "claimable_at": until, "started_at": uow.now},
        f"job {job.assistant_job_id} ({job.kind}) claimed by {worker}, attempt "
        f"{job.attempts + 1} of {job.max_attempts}"
        + (f" (the lease of {job.worker} ran out)" if came_back else ""))
    won.append(new)
    return uow.changes


def _held(job: AssistantJob, worker: str | None, what: str) -> None:
    """:raises TransitionRejected: the job is not running, or another worker holds it."""
    if job.status != AssistantJobStatus.RUNNING:
        raise TransitionRejected(job.assistant_job_id, what, [f"it is {job.status}"],
                                 state=job.status, entity_type="assistant job")
    if worker is not None and job.worker != worker:
        raise TransitionRejected(job.assistant_job_id, what, [
            f"it is held by {job.worker}, not {worker} (its lease ran out and it was claimed "
            "again)"], state=job.status, entity_type="assistant job")


def heartbeat(svc: Services, cmd: HeartbeatJob) -> AssistantJob:
    """Extend a running job's lease (bookkeeping: version-checked, no audit event).

    :raises TransitionRejected: it is not running (cancelled, say), or another worker holds it.
    """
    job_id, worker, lease = cmd.assistant_job_id, cmd.worker, timedelta(seconds=cmd.lease_seconds)

    def attempt() -> AssistantJob:
        uow = UnitOfWork(svc)
        job = uow.get(AssistantJob, job_id)
        _held(job, worker, "heartbeat")
        until = uow.now + lease
        new = uow.touch(job, {"lease_expires_at": until, "claimable_at": until}, bump=True)
        uow.commit()
        return new

    return retrying(attempt)


def complete(svc: Services, cmd: CompleteJob) -> AssistantJob:
    """Finish a running job with ``output`` and maybe a file: stored as an artifact of its task
    with a proof entry (so it can satisfy the task's artifact proof), in the same write."""
    job_id, worker, output = cmd.assistant_job_id, cmd.worker, cmd.output
    data, filename, content_type = cmd.data, cmd.filename, cmd.content_type
    if data is not None and not filename:
        raise InputError("a job's file needs a filename")
    blob = ctype = None
    if data is not None:
        if svc.artifacts is None:
            raise InputError("no artifact store configured")
        from runtime.artifacts import content_type_of

        ctype = content_type_of(data, filename or "", content_type)
        _held(svc.store.get(AssistantJob, job_id), worker, "complete")  # before any binary
        blob = svc.artifacts.put(data)

    def attempt() -> AssistantJob:
        uow = UnitOfWork(svc)
        job = uow.get(AssistantJob, job_id)
        _held(job, worker, "complete")
        fields: dict[str, Any] = {"output": dict(output or {}), "finished_at": uow.now,
                                  "claimable_at": None, "lease_expires_at": None}
        if blob is not None and job.task_id is not None:
            task = uow.get(Task, job.task_id)
            artifact = uow.create(Artifact(
                artifact_id=new_id("art"), task_id=task.task_id, bundle_id=task.bundle_id,
                filename=filename or "output", content_type=ctype or "application/octet-stream",
                size_bytes=blob.size_bytes, sha256=blob.sha256, location=blob.location,
                created_by=uow.actor, created_at=uow.now,
            ), f"artifact {filename} ({blob.size_bytes} bytes) from job {job_id}")
            fields["output_artifact_id"] = artifact.artifact_id
            if task.status.is_open:  # a closed task keeps its proof as it was
                proof = ProofEntry(kind=ProofKind.ARTIFACT, artifact_id=artifact.artifact_id,
                                   value=filename, content_type=ctype, by=uow.actor, at=uow.now)
                uow.update(task, {"proof": [*task.proof, proof]},
                           f"job {job_id} attached file {filename} to task {task.task_id}",
                           action="attach")
        new = _fire(uow, job, "complete", fields,
                    f"job {job_id} ({job.kind}) succeeded on attempt {job.attempts}")
        uow.commit()
        return new

    return retrying(attempt)


def backoff(attempts: int) -> timedelta:
    return min(BACKOFF * 2 ** max(0, attempts - 1), timedelta(hours=1))


def fail(svc: Services, cmd: FailJob) -> AssistantJob:
    """A failed attempt: queued again after a backoff, or, out of attempts, ``failed`` with one
    automation_failure reminder (same write)."""
    job_id, worker, error = cmd.assistant_job_id, cmd.worker, cmd.error

    def attempt() -> AssistantJob:
        uow = UnitOfWork(svc)
        job = uow.get(AssistantJob, job_id)
        _held(job, worker, "fail")
        if job.attempts < job.max_attempts:
            at = uow.now + backoff(job.attempts)
            new = _fire(uow, job, "retry", {"error": error, "worker": None,
                                            "lease_expires_at": None, "claimable_at": at},
                        f"job {job_id} attempt {job.attempts} failed ({error}); retried from "
                        f"{at.isoformat()}")
        else:
            new = _fire(uow, job, "fail", _over(uow, error=error),
                        f"job {job_id} failed after {job.attempts} attempts: {error}")
            _failure(uow, job, f"{job.attempts} attempts; the last: {error}")
        uow.commit()
        return new

    return retrying(attempt)


def cancel(svc: Services, cmd: CancelJob) -> AssistantJob:
    """Cancel a queued or running job (a worker holding it learns so at its next heartbeat)."""
    job_id = cmd.assistant_job_id

    def attempt() -> AssistantJob:
        uow = UnitOfWork(svc)
        job = uow.get(AssistantJob, job_id)
        new = _fire(uow, job, "cancel", _over(uow), f"job {job_id} cancelled by {uow.actor}")
        uow.commit()
        return new

    return retrying(attempt)


def list_jobs(svc: Services, task_id: str | None = None, status: str | None = None,
              kind: str | None = None, *, limit: int = 100, cursor: str | None = None) -> Any:
    if status is not None and status not in {s.value for s in AssistantJobStatus}:
        raise InputError(f"job status {status!r}: use one of "
                         f"{', '.join(s.value for s in AssistantJobStatus)}")
    where = {k: v for k, v in (("task_id", task_id), ("status", status), ("kind", kind))
             if v is not None}
    return svc.store.page(AssistantJob, where=where, limit=limit, cursor=cursor)

