"""Read models: a bundle with its tasks, pages of lists, what a task accepts now."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from runtime.engine.services import Services
from runtime.errors import InputError
from runtime.machines import Context, machine
from runtime.model import AuditEvent, Bundle, BundleStatus, Reminder, Task, TaskStatus
from runtime.store.base import Page, R, decode_cursor, encode_cursor


@dataclass
class BundleView:
    bundle: Bundle
    tasks: list[Task]
    created: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"bundle": self.bundle.to_json(), "tasks": [t.to_json() for t in self.tasks]}


def get_bundle(svc: Services, bundle_id: str) -> BundleView:
    """:raises NotFoundError, RecordUnreadable:"""
    return BundleView(svc.store.get(Bundle, bundle_id), svc.store.tasks_of(bundle_id))


def get_task(svc: Services, task_id: str) -> Task:
    return svc.store.get(Task, task_id)


def _status(value: str | None, enum: Any, what: str) -> None:
    if value is not None and value not in {s.value for s in enum}:
        raise InputError(f"{what} status {value!r}: use one of {', '.join(s.value for s in enum)}")


def _offset(cursor: str | None) -> int:
    """The position an offset cursor (of a list paged in memory) names.

    :raises InputError: a cursor this list did not give.
    """
    if cursor is None:
        return 0
    key = decode_cursor(cursor)
    if len(key) != 1 or not isinstance(key[0], int) or key[0] < 0:
        raise InputError(f"cursor {cursor!r} is not a cursor of this list; start again without one")
    return int(key[0])


def _page_of(items: list[R], limit: int, cursor: str | None) -> Page[R]:
    """One page of a list already in memory (one bundle's tasks, one entity's chain)."""
    start = _offset(cursor)
    end = start + limit
    return Page(items[start:end], encode_cursor([end]) if end < len(items) else None)


def _where(**fields: str | None) -> dict[str, str]:
    return {k: v for k, v in fields.items() if v is not None}


def list_bundles(svc: Services, template_id: str | None = None, status: str | None = None,
                 *, limit: int = 100, cursor: str | None = None) -> Page[Bundle]:
    """One page of bundles in ID order."""
    _status(status, BundleStatus, "bundle")
    return svc.store.page(Bundle, where=_where(template_id=template_id, status=status),
                          limit=limit, cursor=cursor)


def list_tasks(svc: Services, bundle_id: str | None = None, status: str | None = None,
               assignee: str | None = None, *, limit: int = 100,
               cursor: str | None = None) -> Page[Task]:
    """One page of tasks: a bundle's in definition order, else every bundle's in ID order
    (one indexed query, not one per bundle)."""
    _status(status, TaskStatus, "task")
    if bundle_id is None:
        return svc.store.page(Task, where=_where(status=status, assignee=assignee),
                              limit=limit, cursor=cursor)
    svc.store.get(Bundle, bundle_id)
    tasks = [t for t in svc.store.tasks_of(bundle_id)
             if (status is None or t.status == status) and (assignee is None or t.assignee == assignee)]
    return _page_of(tasks, limit, cursor)


def list_reminders(svc: Services, entity_id: str | None = None, *, limit: int = 100,
                   cursor: str | None = None) -> Page[Reminder]:
    return svc.store.page(Reminder, where=_where(entity_id=entity_id), limit=limit, cursor=cursor)


def audit_log(svc: Services, entity_id: str | None = None, *, limit: int = 100,
              cursor: str | None = None) -> Page[AuditEvent]:
    """One entity's chain in order, or every event by time."""
    if entity_id is None:
        return svc.store.page(AuditEvent, limit=limit, cursor=cursor)
    return _page_of(svc.store.audit_events(entity_id), limit, cursor)


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


OPEN_TASKS_SHOWN = 1000


def open_tasks_of(svc: Services, names: list[str], limit: int = OPEN_TASKS_SHOWN) -> list[Task]:
    """The open tasks assigned to any of ``names`` (a person and their groups), by task ID; at
    most ``limit`` (read through the tasks' assignee index)."""
    found: dict[str, Task] = {}
    for name in names:
        for status in (TaskStatus.TODO, TaskStatus.IN_PROGRESS, TaskStatus.WAITING):
            cursor = None
            while len(found) < limit:
                page = svc.store.page(Task, where={"assignee": name, "status": str(status)},
                                      limit=min(500, limit), cursor=cursor)
                found.update((t.task_id, t) for t in page.items)
                cursor = page.next_cursor
                if cursor is None:
                    break
    return [found[k] for k in sorted(found)][:limit]


def person_json(person: Any, groups: list[str]) -> dict[str, Any]:
    """A person of the directory as the CLI's --json and the HTTP API show it: its fields,
    ``delivery`` as written in YAML (``immediate`` or ``{"digest": "HH:MM"}``), its groups."""
    body: dict[str, Any] = person.model_dump(mode="json")
    body["delivery"] = "immediate" if person.digest_at is None else {
        "digest": person.digest_at.strftime("%H:%M")}
    body["groups"] = groups
    return body


def directory_or_raise(svc: Services) -> Any:
    """The people directory. :raises InputError: there is none (content/people is missing or
    every file of it is broken)."""
    content = svc.content
    if not content.directory:
        problems = [p for path, ps in content.broken.items() if "people" in path.parts for p in ps]
        hint = f"; {problems[0]}" if problems else ""
        raise InputError(f"no people in {content.root / 'people'}; add people/*.yaml (see "
                         f"docs/people.md){hint}")
    return content.directory


def person_view(svc: Services, person_id: str) -> tuple[dict[str, Any], list[Task]]:
    """One person (:func:`person_json`) and their open tasks (:func:`open_tasks_of`).

    :raises NotFoundError: no such person (a group is named as such)."""
    from runtime.errors import NotFoundError

    directory = directory_or_raise(svc)
    person = directory.people.get(person_id)
    if person is None:
        group = directory.groups.get(person_id)
        hint = (f"{person_id!r} is a group ({', '.join(group.members)}); show one of its members"
                if group else f"people: {', '.join(sorted(directory.people))}")
        raise NotFoundError("person", person_id, hint)
    groups = directory.groups_of(person_id)
    return person_json(person, groups), open_tasks_of(svc, [person_id, *groups])
