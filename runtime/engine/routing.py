"""Routing at record time: the recipients a reminder is recorded with (who it is for, from the
people directory and the definition's owner and escalation), and when a digest gathers it.

Decided once, in the write that records the reminder, so that every daemon sends the same
reminder to the same people; a directory edited later routes the reminders recorded after it.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from runtime.errors import DataopsError
from runtime.model import Bundle, Recipient, Task
from runtime.model.people import Directory
from runtime.rules.reminders import Firing
from runtime.rules.routing import Facts, next_digest_at, routes

if TYPE_CHECKING:
    from runtime.content import Content
    from runtime.engine.services import Services


def content_of(svc: Services) -> Content | None:
    """The content the services have, or None (no content folder, or it cannot be read)."""
    if svc.content_loader is None:
        return None
    try:
        return svc.content
    except DataopsError:
        return None


def directory_of(svc: Services) -> Directory:
    content = content_of(svc)
    return content.directory if content is not None else Directory()


def facts_of(svc: Services, firing: Firing, task: Task | None, bundle: Bundle | None) -> Facts:
    content = content_of(svc)
    wf = content.workflows.get(bundle.template_id) if content is not None and bundle else None
    return Facts(
        kind=firing.kind, entity_type=firing.entity_type,
        assignee=task.assignee if task is not None else None,
        owner=(wf.owner or wf.default_assignee) if wf is not None else None,
        overdue_n=firing.occurrence,
        escalate_after=wf.reminders.escalate_after_overdue if wf is not None else None,
    )


def recipients_for(svc: Services, firing: Firing, now: datetime, *, task: Task | None = None,
                   bundle: Bundle | None = None) -> list[Recipient]:
    """The recipients ``firing`` is recorded with at ``now``: empty when there is no directory
    (routing is off). A digest recipient's reminder waits for their next digest time."""
    directory = directory_of(svc)
    if not directory:
        return []
    facts = facts_of(svc, firing, task, bundle)
    memo = directory.memo
    key = (facts, now)  # records are immutable: the same answer serves every reminder asking
    known = memo.get(key)
    if known is not None:
        return list(known)
    if len(memo) >= MEMO_SIZE:
        memo.clear()
    memo[key] = out = _recipients(facts, directory, now)
    return list(out)


MEMO_SIZE = 4096


def _recipients(facts: Facts, directory: Directory, now: datetime) -> list[Recipient]:
    out = []
    for route in routes(facts, directory):
        person = directory.people[route.person_id]
        at = person.digest_at
        if at is None:
            out.append(Recipient(person_id=route.person_id, reason=route.reason))
        else:
            out.append(Recipient(person_id=route.person_id, reason=route.reason, delivery="digest",
                                 digest_at=next_digest_at(now, at, person.timezone)))
    return out
