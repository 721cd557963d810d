"""Use cases: instantiate a definition, run task and bundle commands.

Each command loads what it needs, decides (machines, proof, reminder rules), and writes once:
the records it changed, their audit events and any reminder it records commit together in one
:class:`~runtime.store.Changes` or not at all.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from runtime.artifacts import ArtifactStore
from runtime.clock import Clock
from runtime.dates import Holidays, due_date
from runtime.errors import ConflictError, InputError, TransitionRejected
from runtime.machines import Context, machine
from runtime.model import (
    Artifact,
    AuditEvent,
    Bundle,
    BundleLink,
    BundleStatus,
    Comment,
    PhaseRef,
    ProofEntry,
    ProofKind,
    Record,
    Reminder,
    ReminderKind,
    ReminderSettings,
    Task,
    TaskStatus,
    WorkflowDefinition,
    bundle_id_for,
    kind_of,
    new_id,
    record_id,
    task_id_for,
)
from runtime.reminders import LATE_AFTER, Firing, first_task_reminder, schedule_fields
from runtime.store import Changes, Store

if TYPE_CHECKING:  # content (yaml, difflib) is imported only by the commands that load it
    from runtime.content import Content

BOOKKEEPING = frozenset({"updated_at", "version", "next_reminder_at", "reminder_cursor"})


@dataclass
class Services:
    """What a use case runs against. ``content`` is loaded on first use only."""

    store: Store
    clock: Clock
    actor: str
    artifacts: ArtifactStore | None = None
    content_loader: Callable[[], Content] | None = None
    _content: Content | None = field(default=None, repr=False)

    @property
    def content(self) -> Content:
        if self._content is None:
            if self.content_loader is None:
                raise InputError("no content folder configured; pass --content DIR")
            self._content = self.content_loader()
        return self._content

    def now(self) -> datetime:
        at = self.clock.now()
        if at.tzinfo is None:
            raise InputError("the clock returned a naive datetime; clocks must be timezone-aware")
        return at


@dataclass
class BundleView:
    bundle: Bundle
    tasks: list[Task]
    created: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"bundle": self.bundle.to_json(), "tasks": [t.to_json() for t in self.tasks]}


# ---- audit helpers ---------------------------------------------------------------------------


def _visible(rec: Record, fields: set[str] | None = None) -> dict[str, Any]:
    # with ``fields``, serialise only the fields a command touched
    data = rec.to_json() if fields is None else rec.model_dump(mode="json", include=fields)
    return {k: v for k, v in data.items() if k not in BOOKKEEPING}


def event_for(
    actor: str, at: datetime, action: str, summary: str, before: Record | None, after: Record | None,
    fields: set[str] | None = None,
) -> AuditEvent:
    """An audit event with the before/after of the fields that changed (of ``fields`` only,
    when the caller knows which fields it touched)."""
    rec = after or before
    assert rec is not None
    old = _visible(before, fields) if before is not None else None
    new = _visible(after, fields) if after is not None else None
    if old is not None and new is not None:
        changed = sorted(k for k in new.keys() | old.keys() if old.get(k) != new.get(k))
        old = {k: old.get(k) for k in changed}
        new = {k: new.get(k) for k in changed}
    if at.tzinfo is None:
        raise InputError("audit events need an aware instant")
    # Every field is built here from validated records and an aware clock, so the event skips
    # re-validating its (large) before/after dicts; a test pins it equal to a validated one.
    return AuditEvent.model_construct(
        event_id=new_id("evt"),
        seq=0,
        actor=actor,
        entity_type=kind_of(rec),
        entity_id=record_id(rec),
        action=action,
        before=old,
        after=new,
        summary=summary,
        at=at.astimezone(UTC),
        prev_hash="",
        hash="",
    )


def reminder_from(firing: Firing, recorded_at: datetime) -> Reminder:
    """The record of ``firing``, recorded at ``recorded_at`` (late if well after its instant)."""
    return Reminder(
        reminder_id=firing.reminder_id,
        kind=firing.kind,
        entity_type=firing.entity_type,
        entity_id=firing.entity_id,
        bundle_id=firing.bundle_id,
        task_id=firing.task_id,
        fire_at=firing.fire_at,
        recorded_at=recorded_at,
        late=recorded_at - firing.fire_at > LATE_AFTER,
        deliver_after=recorded_at,
        summary=firing.summary,
    )


def with_schedule(rec: Task | Bundle, bundle: Bundle) -> Any:
    """``rec`` with its reminder index recomputed for its current state."""
    return rec.model_copy(
        update=schedule_fields(rec, bundle.timezone, bundle.reminder_settings)
    )


# ---- instantiation ---------------------------------------------------------------------------


def build_bundle(
    wf: WorkflowDefinition, anchor: date, now: datetime, title: str | None = None
) -> tuple[Bundle, list[Task]]:
    """The bundle and tasks a definition gives at ``anchor``. Pure."""
    bundle_id = bundle_id_for(wf.template_id, anchor)
    holidays = Holidays(wf.business_calendar)
    bundle = Bundle(
        bundle_id=bundle_id,
        template_id=wf.template_id,
        template_version=wf.version,
        title=title or f"{wf.title} {anchor.isoformat()}",
        anchor_date=anchor,
        timezone=wf.timezone,
        stage=None,
        phases=[PhaseRef(phase_id=p.phase_id, title=p.title) for p in wf.phases],
        references=list(wf.references),
        required_bundle_links=[
            BundleLink(key=link.key, label=link.label, required=link.required, url=None)
            for link in wf.required_bundle_links
        ],
        source_doc_ids=list(wf.source_doc_ids),
        tags=list(wf.tags),
        reminder_settings=ReminderSettings(
            at=wf.reminders.at, overdue_repeats=wf.reminders.overdue_repeats
        ),
        created_at=now,
        updated_at=now,
        version=1,
    )
    tasks = []
    policy = bundle.reminder_settings
    for td in wf.tasks:
        due = due_date(anchor, offset_days=td.offset_days,
                       offset_business_days=td.offset_business_days, holidays=holidays)
        tasks.append(Task(
            task_id=task_id_for(bundle_id, td.task_ref),
            bundle_id=bundle_id,
            template_id=wf.template_id,
            template_task_ref=td.task_ref,
            title=td.title,
            phase=td.phase,
            assignee=td.assignee or wf.default_assignee,
            due_date=due,
            proof_requirements=list(td.proof),
            instruction_doc_id=td.instruction_doc_id,
            instruction_step_id=td.instruction_step_id,
            systems=list(td.systems),
            validation=td.validation,
            instructions_url=td.instructions_url,
            tags=list(td.tags),
            next_reminder_at=first_task_reminder(due, wf.timezone, policy),
            created_at=now,
            updated_at=now,
            version=1,
        ))
    bundle = with_schedule(bundle.model_copy(update={"stage": stage_of(bundle, tasks)}), bundle)
    return bundle, tasks


def create_bundle(
    svc: Services,
    template_id: str,
    anchor: date,
    title: str | None = None,
    *,
    extra_reminders: Sequence[Firing] = (),
) -> BundleView:
    """Instantiate ``template_id`` at ``anchor``; idempotent: the same template and anchor give
    the same bundle, and the second call writes nothing (also when two processes race).
    ``extra_reminders`` (a schedule's ``recurring``) are recorded in the same write.

    :raises NotFoundError: no such template.
    """
    wf = svc.content.workflow(template_id)
    bundle_id = bundle_id_for(template_id, anchor)
    existing = svc.store.find(Bundle, bundle_id)
    if existing is not None:
        return BundleView(existing, svc.store.tasks_of(bundle_id), created=False)
    now = svc.now()
    bundle, tasks = build_bundle(wf, anchor, now, title)
    changes = Changes(creates=[bundle, *tasks])
    changes.events.append(
        event_for(svc.actor, now, "create", f"created bundle {bundle_id} from {template_id} "
                  f"v{wf.version} with {len(tasks)} tasks", None, bundle)
    )
    changes.events += [
        event_for(svc.actor, now, "create", f"created task {t.task_id} due {t.due_date}", None, t)
        for t in tasks
    ]
    for firing in extra_reminders:
        reminder = reminder_from(firing, now)
        changes.creates.append(reminder)
        changes.events.append(
            event_for(svc.actor, now, "record", firing.summary, None, reminder)
        )
    try:
        svc.store.commit(changes)
    except ConflictError:
        raced = svc.store.find(Bundle, bundle_id)
        if raced is None:
            raise
        return BundleView(raced, svc.store.tasks_of(bundle_id), created=False)
    return BundleView(bundle, tasks, created=True)


# ---- bundle state ----------------------------------------------------------------------------


def stage_of(bundle: Bundle, tasks: list[Task]) -> str | None:
    """The first phase, in definition order, that still has an open task (None if none has)."""
    open_phases = {t.phase for t in tasks if t.status.is_open}
    for phase in bundle.phases:
        if phase.phase_id in open_phases:
            return phase.phase_id
    return None


def _settle_bundle(
    svc: Services,
    stored: Bundle,
    tasks: list[Task],
    now: datetime,
    changes: Changes,
    *,
    current: Bundle | None = None,
    action: str | None = None,
    summary: str | None = None,
) -> Bundle:
    """Recompute stage and status of ``current`` (``stored`` plus a command's edits) after
    ``tasks`` changed, and add the bundle's writes, conditional on ``stored.version``, to
    ``changes`` (with a stage_change reminder if the stage moved). Returns the bundle as it
    will be."""
    spec = machine("bundle")
    updated = current or stored
    ctx = Context(record=updated, now=now, actor=svc.actor, args={"tasks": tasks})
    for trigger in ("complete", "reactivate"):
        if trigger in spec.triggers_from(updated.status) and not spec.check(updated.status, trigger, ctx):
            state = spec.fire(updated.status, trigger, ctx, stored.bundle_id)
            updated = updated.model_copy(update={"status": BundleStatus(state)})
    stage = stage_of(stored, tasks)
    if stage != stored.stage:
        updated = updated.model_copy(update={"stage": stage})
        firing = Firing(
            ReminderKind.STAGE_CHANGE, "bundle", stored.bundle_id, stored.bundle_id, None, now,
            f"bundle {stored.bundle_id} moved from stage {stored.stage or 'none'} "
            f"to {stage or 'none (no open tasks)'}",
            discriminator=f"v{stored.version + 1}",
        )
        reminder = reminder_from(firing, now)
        changes.creates.append(reminder)
        changes.events.append(event_for(svc.actor, now, "record", firing.summary, None, reminder))
    if updated is stored:
        return stored
    updated = updated.model_copy(update={"updated_at": now, "version": stored.version + 1})
    updated = with_schedule(updated, updated)
    changes.updates.append((updated, stored.version))
    if action is None:
        action = "status" if updated.status != stored.status else "stage"
    changes.events.append(
        event_for(svc.actor, now, action, summary or f"bundle {stored.bundle_id} is "
                  f"{updated.status} at stage {updated.stage or 'none'}", stored, updated)
    )
    return updated


# ---- task commands ---------------------------------------------------------------------------


@dataclass
class _Loaded:
    task: Task
    bundle: Bundle


def _load(svc: Services, task_id: str) -> _Loaded:
    task = svc.store.get(Task, task_id)
    return _Loaded(task, svc.store.get(Bundle, task.bundle_id))


def _write_task(
    svc: Services,
    loaded: _Loaded,
    updates: dict[str, Any],
    action: str,
    summary: str,
    extra: Changes | None = None,
) -> Task:
    """Commit the task with ``updates`` (version + 1), its audit event and the bundle's reaction."""
    now = svc.now()
    old = loaded.task
    new = old.model_copy(update={**updates, "updated_at": now, "version": old.version + 1})
    new = with_schedule(new, loaded.bundle)
    changes = extra or Changes()
    changes.updates.append((new, old.version))
    changes.events.append(event_for(svc.actor, now, action, summary, old, new, set(updates)))
    if old.status.is_open != new.status.is_open:
        # a bundle's stage and status depend only on which of its tasks are open: read the
        # siblings only when this task opened or closed (the bundle write is version-checked,
        # so two tasks closing at once cannot both settle it from a stale view)
        tasks = [new if t.task_id == new.task_id else t for t in svc.store.tasks_of(old.bundle_id)]
        _settle_bundle(svc, loaded.bundle, tasks, now, changes)
    svc.store.commit(changes)
    return new


def check_task(svc: Services, task_id: str, trigger: str, **args: Any) -> list[str]:
    """What stands in the way of ``trigger`` on the task now; changes nothing."""
    task = svc.store.get(Task, task_id)
    ctx = Context(record=task, now=svc.now(), actor=svc.actor, args=args)
    return machine("task").check(task.status, trigger, ctx)


def allowed_triggers(svc: Services, task: Task) -> list[str]:
    """The triggers the task accepts now, given the arguments an operator supplies (a reason,
    waiting fields); proof is judged as it is."""
    args = {"reason": "given", "waiting_for": "given",
            "follow_up_at": datetime.max.replace(tzinfo=UTC)}
    ctx = Context(record=task, now=svc.now(), actor=svc.actor, args=args)
    return machine("task").allowed(task.status, ctx)


def fire_task(svc: Services, task_id: str, trigger: str, **args: Any) -> Task:
    """Run a lifecycle trigger (start, wait, resume, complete, cancel, reopen) on a task.

    :raises TransitionRejected: naming every unmet requirement; nothing was written.
    :raises NotFoundError, ConflictError:
    """
    loaded = _load(svc, task_id)
    task = loaded.task
    if trigger == "reopen" and loaded.bundle.status == BundleStatus.CANCELLED:
        raise TransitionRejected(
            task_id, trigger, [f"its bundle {task.bundle_id} is cancelled"], state=task.status
        )
    now = svc.now()
    ctx = Context(record=task, now=now, actor=svc.actor, args=args)
    new_state = machine("task").fire(task.status, trigger, ctx, task_id)
    reason = (args.get("reason") or "").strip()
    summary = f"task {task_id}: {trigger} ({task.status} -> {new_state})" + (
        f"; reason: {reason}" if reason else ""
    )
    if trigger == "wait":
        summary += f"; waiting for {ctx.changes['waiting_for']!r} until {ctx.changes['follow_up_at'].isoformat()}"
    return _write_task(
        svc, loaded, {"status": TaskStatus(new_state), **ctx.changes}, trigger, summary
    )


def assign_task(svc: Services, task_id: str, assignee: str) -> Task:
    assignee = assignee.strip()
    if not assignee:
        raise InputError("assignee is empty; give a name, e.g. dataops task assign TASK_ID alice")
    loaded = _load(svc, task_id)
    return _write_task(
        svc, loaded, {"assignee": assignee}, "assign",
        f"task {task_id} assigned to {assignee} (was {loaded.task.assignee or 'unassigned'})",
    )


def comment_task(svc: Services, task_id: str, body: str) -> Task:
    body = body.strip()
    if not body:
        raise InputError("comment is empty; give the text to add")
    loaded = _load(svc, task_id)
    comment = Comment(
        comment_id=new_id("cmt"), author=svc.actor, body=body, created_at=svc.now()
    )
    return _write_task(
        svc, loaded, {"comments": [*loaded.task.comments, comment]}, "comment",
        f"{svc.actor} commented on task {task_id}",
    )


_URL = re.compile(r"^https?://[^\s/$.?#][^\s]*$", re.IGNORECASE)


def attach_url(svc: Services, task_id: str, url: str) -> Task:
    url = url.strip()
    if not _URL.match(url):
        raise InputError(f"--url {url!r} is not an http(s) URL; give e.g. https://example.com/x")
    return _attach(svc, task_id, ProofEntry(kind=ProofKind.URL, value=url, by=svc.actor, at=svc.now()),
                   f"url {url}")


def attach_comment(svc: Services, task_id: str, text: str) -> Task:
    text = text.strip()
    if not text:
        raise InputError("--comment is empty; give the text that proves the work")
    return _attach(svc, task_id, ProofEntry(kind=ProofKind.COMMENT, value=text, by=svc.actor,
                                            at=svc.now()), "a comment")


def attach_external_status(svc: Services, task_id: str, system: str, value: str) -> Task:
    system, value = system.strip(), value.strip()
    if not system or not value:
        raise InputError("--external-status needs SYSTEM=VALUE, e.g. youtube=published")
    return _attach(
        svc, task_id,
        ProofEntry(kind=ProofKind.EXTERNAL_STATUS, system=system, value=value, by=svc.actor,
                   at=svc.now()),
        f"external status {system}={value}",
    )


def attach_file(
    svc: Services, task_id: str, data: bytes, filename: str, content_type: str
) -> tuple[Task, Artifact]:
    """Store the binary in the artifact store and its metadata record in the store."""
    if svc.artifacts is None:
        raise InputError("no artifact store configured")
    loaded = _load(svc, task_id)  # fail on a bad ID before writing any binary
    blob = svc.artifacts.put(data)
    now = svc.now()
    artifact = Artifact(
        artifact_id=new_id("art"),
        task_id=task_id,
        bundle_id=loaded.task.bundle_id,
        filename=filename,
        content_type=content_type,
        size_bytes=blob.size_bytes,
        sha256=blob.sha256,
        location=blob.location,
        created_by=svc.actor,
        created_at=now,
    )
    extra = Changes(creates=[artifact])
    extra.events.append(event_for(svc.actor, now, "create", f"artifact {filename} "
                                  f"({blob.size_bytes} bytes) for task {task_id}", None, artifact))
    entry = ProofEntry(kind=ProofKind.ARTIFACT, artifact_id=artifact.artifact_id,
                       value=filename, content_type=content_type, by=svc.actor, at=now)
    task = _attach(svc, task_id, entry, f"file {filename}", extra=extra, loaded=loaded)
    return task, artifact


def _attach(
    svc: Services, task_id: str, entry: ProofEntry, what: str, *,
    extra: Changes | None = None, loaded: _Loaded | None = None,
) -> Task:
    loaded = loaded or _load(svc, task_id)
    return _write_task(
        svc, loaded, {"proof": [*loaded.task.proof, entry]}, "attach",
        f"{svc.actor} attached {what} to task {task_id}", extra,
    )


# ---- bundle commands -------------------------------------------------------------------------


def get_bundle(svc: Services, bundle_id: str) -> BundleView:
    return BundleView(svc.store.get(Bundle, bundle_id), svc.store.tasks_of(bundle_id))


def link_bundle(svc: Services, bundle_id: str, key: str, url: str) -> BundleView:
    bundle = svc.store.get(Bundle, bundle_id)
    url = url.strip()
    keys = [link.key for link in bundle.required_bundle_links]
    if key not in keys:
        raise InputError(
            f"bundle {bundle_id} has no link {key!r}; its links are: {', '.join(keys) or 'none'}"
        )
    if not _URL.match(url):
        raise InputError(f"link {key}: {url!r} is not an http(s) URL")
    if bundle.status == BundleStatus.CANCELLED:
        raise TransitionRejected(bundle_id, "link", ["the bundle is cancelled"], state=bundle.status)
    now = svc.now()
    links = [lk.model_copy(update={"url": url}) if lk.key == key else lk
             for lk in bundle.required_bundle_links]
    changes = Changes()
    tasks = svc.store.tasks_of(bundle_id)
    new = _settle_bundle(
        svc, bundle, tasks, now, changes,
        current=bundle.model_copy(update={"required_bundle_links": links}),
        action="link", summary=f"bundle {bundle_id}: {key} = {url}",
    )
    svc.store.commit(changes)
    return BundleView(new, tasks)


def cancel_bundle(svc: Services, bundle_id: str, reason: str) -> BundleView:
    """Cancel a bundle and every open task of it, in one write."""
    bundle = svc.store.get(Bundle, bundle_id)
    tasks = svc.store.tasks_of(bundle_id)
    now = svc.now()
    ctx = Context(record=bundle, now=now, actor=svc.actor, args={"reason": reason, "tasks": tasks})
    status = machine("bundle").fire(bundle.status, "cancel", ctx, bundle_id)
    changes = Changes()
    new_tasks = []
    for task in tasks:
        if task.status.is_open:
            tctx = Context(record=task, now=now, actor=svc.actor, args={"reason": reason})
            state = machine("task").fire(task.status, "cancel", tctx, task.task_id)
            new = task.model_copy(update={"status": TaskStatus(state), **tctx.changes,
                                          "updated_at": now, "version": task.version + 1})
            new = with_schedule(new, bundle)
            changes.updates.append((new, task.version))
            changes.events.append(event_for(svc.actor, now, "cancel",
                                            f"task {task.task_id} cancelled with its bundle; reason: {reason}", task, new))
            task = new
        new_tasks.append(task)
    new_bundle = _settle_bundle(
        svc, bundle, new_tasks, now, changes,
        current=bundle.model_copy(update={"status": BundleStatus(status)}),
        action="cancel", summary=f"bundle {bundle_id} cancelled; reason: {reason}",
    )
    svc.store.commit(changes)
    return BundleView(new_bundle, new_tasks)


def list_bundles(svc: Services, template_id: str | None = None, status: str | None = None) -> list[Bundle]:
    if status is not None and status not in {s.value for s in BundleStatus}:
        raise InputError(f"--status {status!r}: use one of {', '.join(s.value for s in BundleStatus)}")
    return [b for b in svc.store.bundles()
            if (template_id is None or b.template_id == template_id)
            and (status is None or b.status == status)]


def list_tasks(svc: Services, bundle_id: str | None = None, status: str | None = None,
               assignee: str | None = None) -> list[Task]:
    if status is not None and status not in {s.value for s in TaskStatus}:
        raise InputError(f"--status {status!r}: use one of {', '.join(s.value for s in TaskStatus)}")
    if bundle_id is not None:
        svc.store.get(Bundle, bundle_id)
        tasks = svc.store.tasks_of(bundle_id)
    else:
        tasks = [t for b in svc.store.bundles() for t in svc.store.tasks_of(b.bundle_id)]
    return [t for t in tasks if (status is None or t.status == status)
            and (assignee is None or t.assignee == assignee)]


def get_task(svc: Services, task_id: str) -> Task:
    return svc.store.get(Task, task_id)


__all__ = [
    "BundleView", "Services", "allowed_triggers", "assign_task", "attach_comment",
    "attach_external_status", "attach_file", "attach_url", "build_bundle", "cancel_bundle",
    "check_task", "comment_task", "create_bundle", "fire_task", "get_bundle", "get_task",
    "link_bundle", "list_bundles", "list_tasks", "stage_of",
]
