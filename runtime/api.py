"""The library facade for a worker process: ``rt = runtime.open(store=..., content=...)``."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Any

from runtime import engine
from runtime.artifacts import ArtifactStore, artifacts_for_store, read_upload
from runtime.clock import Clock, SystemClock
from runtime.content import Content, load_content
from runtime.errors import InputError
from runtime.model import Artifact, AuditEvent, Bundle, Task, parse_day
from runtime.store import Store, open_store


class Runtime:
    """The use cases as methods, bound to one store, content folder, clock and actor.

    Every mutating method is one atomic write with its audit event, and raises the errors of
    :mod:`runtime.errors` (``TransitionRejected``, ``ConflictError``, ``NotFoundError``,
    ``InputError``).
    """

    def __init__(self, services: engine.Services) -> None:
        self.services = services

    # lifecycle
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
        svc = engine.Services(self.services.store, self.services.clock, actor,
                              self.services.artifacts, self.services.content_loader,
                              self.services._content)
        return Runtime(svc)

    # bundles
    def create_bundle(self, template_id: str, anchor: date | str, title: str | None = None) -> engine.BundleView:
        day = parse_day(anchor, "anchor") if isinstance(anchor, str) else anchor
        return engine.create_bundle(self.services, template_id, day, title)

    def bundle(self, bundle_id: str) -> engine.BundleView:
        return engine.get_bundle(self.services, bundle_id)

    def bundles(self, template_id: str | None = None, status: str | None = None) -> list[Bundle]:
        return engine.list_bundles(self.services, template_id, status)

    def link(self, bundle_id: str, key: str, url: str) -> engine.BundleView:
        return engine.link_bundle(self.services, bundle_id, key, url)

    def cancel_bundle(self, bundle_id: str, reason: str) -> engine.BundleView:
        return engine.cancel_bundle(self.services, bundle_id, reason)

    # tasks
    def task(self, task_id: str) -> Task:
        return engine.get_task(self.services, task_id)

    def tasks(self, bundle_id: str | None = None, status: str | None = None,
              assignee: str | None = None) -> list[Task]:
        return engine.list_tasks(self.services, bundle_id, status, assignee)

    def check(self, task_id: str, trigger: str, **args: Any) -> list[str]:
        """What stands in the way of ``trigger`` now (empty: it would be accepted)."""
        return engine.check_task(self.services, task_id, trigger, **args)

    def allowed(self, task_id: str) -> list[str]:
        return engine.allowed_triggers(self.services, self.task(task_id))

    def start(self, task_id: str) -> Task:
        return engine.fire_task(self.services, task_id, "start")

    def wait(self, task_id: str, waiting_for: str, follow_up_at: datetime) -> Task:
        return engine.fire_task(self.services, task_id, "wait", waiting_for=waiting_for,
                                follow_up_at=follow_up_at)

    def resume(self, task_id: str) -> Task:
        return engine.fire_task(self.services, task_id, "resume")

    def complete(self, task_id: str) -> Task:
        return engine.fire_task(self.services, task_id, "complete")

    done = complete

    def cancel(self, task_id: str, reason: str) -> Task:
        return engine.fire_task(self.services, task_id, "cancel", reason=reason)

    def reopen(self, task_id: str, reason: str) -> Task:
        return engine.fire_task(self.services, task_id, "reopen", reason=reason)

    def assign(self, task_id: str, assignee: str) -> Task:
        return engine.assign_task(self.services, task_id, assignee)

    def comment(self, task_id: str, text: str) -> Task:
        return engine.comment_task(self.services, task_id, text)

    def attach_url(self, task_id: str, url: str) -> Task:
        return engine.attach_url(self.services, task_id, url)

    def attach_comment(self, task_id: str, text: str) -> Task:
        return engine.attach_comment(self.services, task_id, text)

    def attach_external_status(self, task_id: str, system: str, value: str) -> Task:
        return engine.attach_external_status(self.services, task_id, system, value)

    def attach_file(self, task_id: str, path: str | Path | None = None, *, data: bytes | None = None,
                    filename: str | None = None, content_type: str | None = None) -> tuple[Task, Artifact]:
        """Attach a file by path, or raw ``data`` with a ``filename``."""
        if path is not None:
            data, name, ctype = read_upload(str(path))
            filename, content_type = filename or name, content_type or ctype
        if data is None or not filename:
            raise InputError("attach_file needs a path, or data and a filename")
        return engine.attach_file(self.services, task_id, data, filename,
                                  content_type or "application/octet-stream")

    # audit
    def audit_log(self, entity_id: str | None = None) -> list[AuditEvent]:
        return self.services.store.audit_events(entity_id=entity_id)

    def verify_audit(self) -> int:
        """Check the hash chain; return the number of events.

        :raises AuditChainBroken: naming the first broken event.
        """
        from runtime.audit import verify_chain

        return verify_chain(self.services.store.audit_events())


def open(
    store: str | Store = "sqlite:///dataops.db",
    content: str | Path | Content = "content",
    *,
    clock: Clock | None = None,
    actor: str = "runtime",
    artifacts: ArtifactStore | None = None,
) -> Runtime:
    """Open a runtime on a store URL (or Store) and a content folder (loaded on first use)."""
    st = open_store(store) if isinstance(store, str) else store
    if isinstance(content, Content):
        loaded: Content = content
        loader = lambda: loaded  # noqa: E731
    else:
        root = Path(content)
        loader = lambda: load_content(root)  # noqa: E731
    art = artifacts or artifacts_for_store(st.url)
    return Runtime(engine.Services(st, clock or SystemClock(), actor, art, loader))
