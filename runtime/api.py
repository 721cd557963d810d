"""The library facade for a worker process: ``rt = runtime.open(store=..., content=...)``."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Any

from runtime import engine
from runtime.artifacts import ArtifactStore, read_upload
from runtime.clock import Clock
from runtime.content import Content
from runtime.engine import views
from runtime.engine.audit import VerifyReport, verify
from runtime.errors import InputError
from runtime.model import Artifact, AssistantJob, AuditEvent, Bundle, Task
from runtime.model import commands as c
from runtime.store import Store
from runtime.wiring import open_services


class Runtime:
    """The use cases as methods, bound to one store, content folder, clock and actor.

    Every mutating method builds a typed command (validated there: a bad field is an
    ``InputError`` naming it) and runs it as one atomic write with its audit events, re-run
    when it lost a race; it raises the errors of :mod:`runtime.errors`
    (``TransitionRejected``, ``ConflictError``, ``NotFoundError``, ``InputError``, ...).
    """

    def __init__(self, services: engine.Services) -> None:
        self.services = services

    def close(self) -> None:
        self.services.store.close()

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def store(self) -> Store:
        return self.services.store

    @property
    def content(self) -> Content:
        return self.services.content

    def as_actor(self, actor: str) -> Runtime:
        """The same runtime acting as someone else (shares the store)."""
        return Runtime(self.services.as_actor(actor))

    def run(self, command: c.Command) -> Any:
        """Run any typed command."""
        return engine.handle(self.services, command)

    def _do(self, cls: type[c.Command], **fields: Any) -> Any:
        return engine.handle(self.services, c.build(cls, **fields))

    # bundles
    def create_bundle(self, template_id: str, anchor: date | str, title: str | None = None) -> views.BundleView:
        return self._do(c.CreateBundle, template_id=template_id, anchor_date=anchor, title=title)

    def bundle(self, bundle_id: str) -> views.BundleView:
        return views.get_bundle(self.services, bundle_id)

    def bundles(self, template_id: str | None = None, status: str | None = None, *,
                limit: int = 100, cursor: str | None = None) -> list[Bundle]:
        return views.list_bundles(self.services, template_id, status, limit=limit, cursor=cursor).items

    def link(self, bundle_id: str, key: str, url: str) -> views.BundleView:
        return self._do(c.LinkBundle, bundle_id=bundle_id, key=key, url=url)

    def cancel_bundle(self, bundle_id: str, reason: str) -> views.BundleView:
        return self._do(c.CancelBundle, bundle_id=bundle_id, reason=reason)

    # tasks
    def task(self, task_id: str) -> Task:
        return views.get_task(self.services, task_id)

    def tasks(self, bundle_id: str | None = None, status: str | None = None,
              assignee: str | None = None, *, limit: int = 100, cursor: str | None = None) -> list[Task]:
        return views.list_tasks(self.services, bundle_id, status, assignee, limit=limit,
                                cursor=cursor).items

    def check(self, task_id: str, trigger: str, **args: Any) -> list[str]:
        """What stands in the way of ``trigger`` now (empty: it would be accepted)."""
        return views.check_task(self.services, task_id, trigger, **args)

    def allowed(self, task_id: str) -> list[str]:
        return views.allowed_triggers(self.services, self.task(task_id))

    def start(self, task_id: str) -> Task:
        return self._do(c.StartTask, task_id=task_id)

    def wait(self, task_id: str, waiting_for: str, follow_up_at: datetime | str) -> Task:
        return self._do(c.WaitTask, task_id=task_id, waiting_for=waiting_for,
                        follow_up_at=follow_up_at)

    def resume(self, task_id: str) -> Task:
        return self._do(c.ResumeTask, task_id=task_id)

    def complete(self, task_id: str) -> Task:
        return self._do(c.CompleteTask, task_id=task_id)

    done = complete

    def cancel(self, task_id: str, reason: str) -> Task:
        return self._do(c.CancelTask, task_id=task_id, reason=reason)

    def reopen(self, task_id: str, reason: str) -> Task:
        return self._do(c.ReopenTask, task_id=task_id, reason=reason)

    def assign(self, task_id: str, assignee: str) -> Task:
        return self._do(c.AssignTask, task_id=task_id, assignee=assignee)

    def comment(self, task_id: str, text: str) -> Task:
        return self._do(c.CommentTask, task_id=task_id, body=text)

    def attach_url(self, task_id: str, url: str) -> Task:
        return self._do(c.AttachUrl, task_id=task_id, url=url)

    def attach_comment(self, task_id: str, text: str) -> Task:
        return self._do(c.AttachComment, task_id=task_id, body=text)

    def attach_external_status(self, task_id: str, system: str, value: str) -> Task:
        return self._do(c.AttachExternalStatus, task_id=task_id, system=system, value=value)

    def attach_file(self, task_id: str, path: str | Path | None = None, *, data: bytes | None = None,
                    filename: str | None = None, content_type: str | None = None) -> tuple[Task, Artifact]:
        """Attach a file by path, or raw ``data`` with a ``filename``."""
        if path is not None:
            data, name, ctype = read_upload(str(path))
            filename, content_type = filename or name, content_type or ctype
        if data is None or not filename:
            raise InputError("attach_file needs a path, or data and a filename")
        return self._do(c.AttachFile, task_id=task_id, data=data, filename=filename,
                        content_type=content_type or "application/octet-stream")

    # assistant jobs
    def enqueue_job(self, task_id: str, kind: str, input: dict[str, Any] | None = None, *,
                    max_attempts: int = 3) -> AssistantJob:
        return self._do(c.EnqueueJob, task_id=task_id, kind=kind, input=input or {},
                        max_attempts=max_attempts)

    def claim_job(self, kinds: list[str] | None = None, *, worker: str,
                  lease_seconds: float = 300.0) -> AssistantJob | None:
        """The oldest claimable job of ``kinds`` (any kind if None), now held by ``worker``."""
        return self._do(c.ClaimJob, kinds=kinds or [], worker=worker,
                        lease_seconds=lease_seconds)

    def heartbeat_job(self, job_id: str, *, worker: str | None = None,
                      lease_seconds: float = 300.0) -> AssistantJob:
        return self._do(c.HeartbeatJob, assistant_job_id=job_id, worker=worker,
                        lease_seconds=lease_seconds)

    def complete_job(self, job_id: str, output: dict[str, Any] | None = None, *,
                     worker: str | None = None, data: bytes | None = None,
                     filename: str | None = None, content_type: str | None = None) -> AssistantJob:
        return self._do(c.CompleteJob, assistant_job_id=job_id, worker=worker,
                        output=output or {}, data=data, filename=filename,
                        content_type=content_type)

    def fail_job(self, job_id: str, error: str, *, worker: str | None = None) -> AssistantJob:
        return self._do(c.FailJob, assistant_job_id=job_id, worker=worker, error=error)

    def cancel_job(self, job_id: str) -> AssistantJob:
        return self._do(c.CancelJob, assistant_job_id=job_id)

    def job(self, job_id: str) -> AssistantJob:
        return self.store.get(AssistantJob, job_id)

    def jobs(self, task_id: str | None = None, status: str | None = None,
             kind: str | None = None, *, limit: int = 100,
             cursor: str | None = None) -> list[AssistantJob]:
        from runtime.engine.jobs import list_jobs

        return list(list_jobs(self.services, task_id, status, kind, limit=limit,
                              cursor=cursor).items)

    # audit
    def audit_log(self, entity_id: str | None = None, *, limit: int = 100,
                  cursor: str | None = None) -> list[AuditEvent]:
        return views.audit_log(self.services, entity_id, limit=limit, cursor=cursor).items

    def verify_audit(self) -> int:
        """Check every entity's chain against its record; return the number of events.

        :raises AuditChainBroken: naming every broken entity and event.
        """
        report: VerifyReport = verify(self.services.store)
        return report.events


def open(
    store: str | Store = "sqlite:///dataops.db",
    content: str | Path | Content = "content",
    *,
    clock: Clock | None = None,
    actor: str = "runtime",
    artifacts: str | ArtifactStore | None = None,
) -> Runtime:
    """Open a runtime on a store URL (or Store) and a content folder (loaded on first use)."""
    return Runtime(open_services(store, content, clock=clock, actor=actor, artifacts=artifacts))
