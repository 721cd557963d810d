"""Bundle use cases: instantiate a definition, fill a link, cancel; the bundle's reaction to its
tasks opening and closing.

A bundle carries how many of its tasks are open per phase (``phases[].open_tasks``). Every
command that opens or closes a task writes the bundle, conditional on its version, so two tasks
closing at once conflict on the bundle and one re-runs: the bundle completes every time, and the
stage is known without reading the tasks.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from runtime.engine.jobs import add_definition_jobs
from runtime.engine.services import Services
from runtime.engine.uow import UnitOfWork, check_version, retrying
from runtime.engine.views import BundleView
from runtime.errors import ConflictError, InputError, TransitionRejected
from runtime.machines import Context, machine
from runtime.model import (
    Bundle,
    BundleLink,
    BundleStatus,
    PhaseRef,
    ReminderKind,
    ReminderSettings,
    Task,
    TaskStatus,
    WorkflowDefinition,
    bundle_id_for,
    task_id_for,
)
from runtime.model.commands import CancelBundle, CreateBundle, LinkBundle
from runtime.rules.calendar import Holidays, due_date
from runtime.rules.reminders import Firing

# ---- instantiation ---------------------------------------------------------------------------


def build_bundle(
    wf: WorkflowDefinition, anchor: date, now: datetime, title: str | None = None
) -> tuple[Bundle, list[Task]]:
    """The bundle and tasks a definition gives at ``anchor``, active and unstamped. Pure."""
    bundle_id = bundle_id_for(wf.template_id, anchor)
    holidays = Holidays(wf.business_calendar)
    tasks = [
        Task(
            task_id=task_id_for(bundle_id, td.task_ref), bundle_id=bundle_id,
            template_id=wf.template_id, template_task_ref=td.task_ref, position=i, title=td.title,
            phase=td.phase, assignee=td.assignee or wf.default_assignee,
            due_date=due_date(anchor, offset_days=td.offset_days,
                              offset_business_days=td.offset_business_days, holidays=holidays),
            proof_requirements=list(td.proof), instruction_doc_id=td.instruction_doc_id,
            instruction_step_id=td.instruction_step_id, systems=list(td.systems),
            validation=td.validation, instructions_url=td.instructions_url, tags=list(td.tags),
            assistant_jobs=list(td.assistant_jobs),
            created_at=now, updated_at=now, version=1,
        )
        for i, td in enumerate(wf.tasks)
    ]
    per_phase = {p.phase_id: 0 for p in wf.phases}
    for td in wf.tasks:
        per_phase[td.phase] += 1
    phases = [PhaseRef(phase_id=p.phase_id, title=p.title, open_tasks=per_phase[p.phase_id])
              for p in wf.phases]
    bundle = Bundle(
        bundle_id=bundle_id, template_id=wf.template_id, template_version=wf.version,
        title=title or f"{wf.title} {anchor.isoformat()}", anchor_date=anchor,
        timezone=wf.timezone, stage=stage_of(phases), phases=phases,
        references=list(wf.references),
        required_bundle_links=[BundleLink(key=lk.key, label=lk.label, required=lk.required)
                               for lk in wf.required_bundle_links],
        source_doc_ids=list(wf.source_doc_ids), tags=list(wf.tags),
        reminder_settings=ReminderSettings(at=wf.reminders.at,
                                           overdue_repeats=wf.reminders.overdue_repeats),
        created_at=now, updated_at=now, version=1,
    )
    return bundle, tasks


def create_bundle(svc: Services, cmd: CreateBundle, *,
                  extra_reminders: Sequence[Firing] = ()) -> BundleView:
    """Instantiate a definition at an anchor; idempotent: the same template and anchor give the
    same bundle, and a second call writes nothing (also when two processes race).

    On a store that caps one write (``max_items``) a definition too large for one write is
    created in steps (:func:`_create_in_steps`); a creation a crash interrupted is completed by
    the next call. ``extra_reminders`` (a schedule's ``recurring``) are recorded with it.

    :raises NotFoundError: no such template. :raises DefinitionError: its file is broken.
    """
    wf = svc.content.workflow(cmd.template_id)
    bundle_id = bundle_id_for(wf.template_id, cmd.anchor_date)
    existing = svc.store.find(Bundle, bundle_id)
    if existing is not None and existing.status != BundleStatus.CREATING:
        return BundleView(existing, svc.store.tasks_of(bundle_id))
    now = existing.created_at if existing else svc.now()
    bundle, tasks = build_bundle(wf, cmd.anchor_date, now,
                                 existing.title if existing else cmd.title)
    limit = svc.store.max_items
    items = 2 * (1 + len(extra_reminders)) + sum(_items_of(t) for t in tasks)
    if existing is None and (limit is None or items <= limit):
        uow = UnitOfWork(svc)
        view = _add_all(uow, bundle, tasks, extra_reminders, wf)
        try:
            uow.commit()
        except ConflictError:  # another process created it first: show theirs
            if svc.store.find(Bundle, bundle_id) is None:
                raise
            return create_bundle(svc, cmd, extra_reminders=extra_reminders)
        return view
    return _create_in_steps(svc, wf, bundle, tasks, extra_reminders, limit or 100)


def _add_all(uow: UnitOfWork, bundle: Bundle, tasks: list[Task], extra: Sequence[Firing],
             wf: WorkflowDefinition) -> BundleView:
    created = uow.create(bundle, f"created bundle {bundle.bundle_id} from {wf.template_id} "
                         f"v{wf.version} with {len(tasks)} tasks")
    stamped = [uow.create(t, f"created task {t.task_id} due {t.due_date}") for t in tasks]
    for task in stamped:
        add_definition_jobs(uow, task, "create", check_existing=False)
    for firing in extra:
        uow.record(firing, bundle=created)
    return BundleView(created, stamped, created=True)


def _create_in_steps(svc: Services, wf: WorkflowDefinition, bundle: Bundle, tasks: list[Task],
                     extra: Sequence[Firing], limit: int) -> BundleView:
    """The resumable protocol: (1) the bundle in state ``creating``, which no reader takes for
    active and which has no reminders; (2) its tasks, ``limit // 2`` per write (a task and its
    event), skipping those a previous run wrote; (3) ``publish``: the bundle becomes active
    with its stage and reminders. Each step is idempotent, so any crash is completed by
    running it again."""
    uow = UnitOfWork(svc)
    creating = uow.create(bundle.model_copy(update={"status": BundleStatus.CREATING, "stage": None}),
                          f"creating bundle {bundle.bundle_id} from {wf.template_id} "
                          f"v{wf.version} with {len(tasks)} tasks, in steps")
    try:
        uow.commit()
    except ConflictError:
        creating = svc.store.get(Bundle, bundle.bundle_id)
        if creating.status != BundleStatus.CREATING:
            return BundleView(creating, svc.store.tasks_of(bundle.bundle_id))
    for _ in range(len(tasks) + 2):  # bounded: each pass writes a chunk or meets its writer
        have = {t.task_id for t in svc.store.tasks_of(bundle.bundle_id)}
        missing = [t for t in tasks if t.task_id not in have]
        if not missing:
            break
        uow = UnitOfWork(svc)
        uow.remember(creating)
        room = limit
        for task in missing:  # a task with the jobs it queues on create, in one write
            if uow.changes and _items_of(task) > room:
                break
            room -= _items_of(task)
            made = uow.create(task, f"created task {task.task_id} due {task.due_date}")
            add_definition_jobs(uow, made, "create", check_existing=False)
        try:
            uow.commit()
        except ConflictError:
            continue  # a concurrent creator wrote this chunk; re-read and go on
    return retrying(lambda: _publish(svc, bundle, extra))


def _items_of(task: Task) -> int:
    """What creating ``task`` writes: it and its event, and each job it queues on create."""
    return 2 * (1 + sum(1 for spec in task.assistant_jobs if spec.on == "create"))


def _publish(svc: Services, planned: Bundle, extra: Sequence[Firing]) -> BundleView:
    stored = svc.store.get(Bundle, planned.bundle_id)
    tasks = svc.store.tasks_of(planned.bundle_id)
    if stored.status != BundleStatus.CREATING:
        return BundleView(stored, tasks)
    if len(tasks) != sum(p.open_tasks for p in planned.phases):
        raise ConflictError(planned.bundle_id, f"{len(tasks)} of its tasks are written; "
                            "creating it again completes it")
    uow = UnitOfWork(svc)
    ctx = Context(record=stored, now=uow.now, actor=uow.actor)
    state = machine("bundle").fire(stored.status, "publish", ctx, stored.bundle_id)
    new = uow.update(stored, {"status": BundleStatus(state), "stage": planned.stage},
                     f"published bundle {stored.bundle_id}: {len(tasks)} tasks",
                     action="publish")
    for firing in extra:
        uow.record(firing, bundle=new)
    uow.commit()
    return BundleView(new, tasks, created=True)


# ---- the bundle's reaction to its tasks ------------------------------------------------------


def stage_of(phases: Sequence[PhaseRef]) -> str | None:
    """The first phase, in definition order, that still has an open task (None if none has)."""
    return next((p.phase_id for p in phases if p.open_tasks > 0), None)


def settle(uow: UnitOfWork, bundle: Bundle, *, delta: dict[str, int] | None = None,
           fields: dict[str, Any] | None = None, action: str | None = None,
           summary: str | None = None, auto: bool = True) -> Bundle:
    """Write ``bundle`` after its tasks opened or closed (``delta``: phase -> change in open
    tasks) and with ``fields`` changed; recompute its stage (recording a stage_change) and, if
    ``auto``, let the machine complete or reactivate it. Conditional on the version read."""
    fields = dict(fields or {})
    if delta:
        fields["phases"] = [p.model_copy(update={"open_tasks": p.open_tasks + delta.get(p.phase_id, 0)})
                            for p in bundle.phases]
    current = bundle.model_copy(update=fields)
    spec = machine("bundle")
    ctx = Context(record=current, now=uow.now, actor=uow.actor)
    for trigger in ("complete", "reactivate") if auto else ():
        if trigger in spec.triggers_from(current.status) and not spec.check(current.status, trigger, ctx):
            fields["status"] = BundleStatus(spec.fire(current.status, trigger, ctx, bundle.bundle_id))
            current = current.model_copy(update={"status": fields["status"]})
    stage = stage_of(current.phases)
    if stage != bundle.stage:
        fields["stage"] = stage
        firing = Firing(
            ReminderKind.STAGE_CHANGE, "bundle", bundle.bundle_id, bundle.bundle_id, None, uow.now,
            f"bundle {bundle.bundle_id} moved from stage {bundle.stage or 'none'} "
            f"to {stage or 'none (no open tasks)'}", discriminator=f"v{bundle.version + 1}",
        )
        uow.record(firing, bundle=current)
    status = fields.get("status", bundle.status)
    open_now = sum(p.open_tasks for p in current.phases)
    return uow.update(
        bundle, fields,
        summary or f"bundle {bundle.bundle_id} is {status} at stage {stage or 'none'} "
        f"({open_now} open tasks)",
        action=action or ("status" if status != bundle.status else "tasks"),
    )


# ---- bundle commands -------------------------------------------------------------------------


def link_bundle(svc: Services, cmd: LinkBundle) -> BundleView:
    """Fill a required bundle link (the bundle completes if that was all it waited for)."""

    def attempt() -> BundleView:
        uow = UnitOfWork(svc)
        bundle = uow.get(Bundle, cmd.bundle_id)
        check_version(bundle, cmd.expected_version)
        keys = [link.key for link in bundle.required_bundle_links]
        if cmd.key not in keys:
            raise InputError(f"bundle {cmd.bundle_id} has no link {cmd.key!r}; its links are: "
                             f"{', '.join(keys) or 'none'}")
        if bundle.status in (BundleStatus.CANCELLED, BundleStatus.CREATING):
            raise TransitionRejected(cmd.bundle_id, "link", [f"the bundle is {bundle.status}"],
                                     state=bundle.status, entity_type="bundle")
        links = [lk.model_copy(update={"url": cmd.url}) if lk.key == cmd.key else lk
                 for lk in bundle.required_bundle_links]
        new = settle(uow, bundle, fields={"required_bundle_links": links}, action="link",
                     summary=f"bundle {cmd.bundle_id}: {cmd.key} = {cmd.url}")
        uow.commit()
        return BundleView(new, svc.store.tasks_of(cmd.bundle_id))

    return retrying(attempt)


def cancel_bundle(svc: Services, cmd: CancelBundle) -> BundleView:
    """Cancel a bundle and every open task of it. Where one write cannot hold them all, open
    tasks are cancelled in chunks, each written with the bundle; the last chunk cancels the
    bundle, so every state in between is one a user could have made (re-running completes it).
    """
    expected = cmd.expected_version  # the caller's condition holds for the first chunk only
    while True:
        view = retrying(lambda: _cancel_chunk(svc, cmd, expected))  # noqa: B023  (run here)
        if view.bundle.status == BundleStatus.CANCELLED:
            _cancel_jobs(svc, view.tasks)
            return view
        expected = None


def _cancel_jobs(svc: Services, tasks: Sequence[Task]) -> None:
    """Cancel the open jobs of a cancelled bundle's tasks, a task at a time (a crash before
    this leaves them to the claim, which cancels a job whose task is closed)."""
    from runtime.engine.jobs import cancel_open_jobs

    for task in tasks:
        def attempt(task_id: str = task.task_id) -> None:
            uow = UnitOfWork(svc)
            cancel_open_jobs(uow, task_id, "its bundle was cancelled")
            uow.commit()
        retrying(attempt)


def _cancel_chunk(svc: Services, cmd: CancelBundle, expected: int | None) -> BundleView:
    uow = UnitOfWork(svc)
    bundle = uow.get(Bundle, cmd.bundle_id)
    check_version(bundle, expected)
    ctx = Context(record=bundle, now=uow.now, actor=uow.actor, args={"reason": cmd.reason})
    machine("bundle").fire(bundle.status, "cancel", ctx, cmd.bundle_id)  # raises if refused
    tasks = svc.store.tasks_of(cmd.bundle_id)
    open_tasks = [t for t in tasks if t.status.is_open]
    # a chunk: per task its update and event; the bundle's update and event; a stage_change
    room = max(1, (svc.store.max_items - 4) // 2) if svc.store.max_items else len(open_tasks)
    chunk, last = open_tasks[:room], len(open_tasks) <= room
    delta: dict[str, int] = {}
    done = {}
    for task in chunk:
        tctx = Context(record=task, now=uow.now, actor=uow.actor, args={"reason": cmd.reason})
        state = machine("task").fire(task.status, "cancel", tctx, task.task_id)
        done[task.task_id] = uow.update(
            task, {"status": TaskStatus(state), **tctx.changes},
            f"task {task.task_id} cancelled with its bundle; reason: {cmd.reason}", action="cancel")
        delta[task.phase] = delta.get(task.phase, 0) - 1
    new = settle(uow, bundle, delta=delta,
                 fields={"status": BundleStatus.CANCELLED} if last else None,
                 action="cancel" if last else "tasks", auto=False,
                 summary=f"bundle {cmd.bundle_id} cancelled; reason: {cmd.reason}" if last
                 else f"bundle {cmd.bundle_id}: cancelled {len(chunk)} of its open tasks")
    uow.commit()
    return BundleView(new, [done.get(t.task_id, t) for t in tasks])
