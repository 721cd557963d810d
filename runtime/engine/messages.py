"""What a reminder message says to a person: the task, its due date, the proof still missing,
the instruction document's title and location, a link to the task (``DATAOPS_BASE_URL``), and
why they receive it. Read once per reminder (a delivery page shares its bundles)."""

from __future__ import annotations

import os
from typing import Any

from runtime.channels import Facts
from runtime.engine.routing import content_of
from runtime.engine.services import Services
from runtime.errors import DataopsError
from runtime.model import Bundle, Recipient, Reminder, ReminderKind, Task
from runtime.rules.proof import missing_proof


class Reads:
    """Tasks and bundles read once for a page of messages (a vanished one is None)."""

    def __init__(self, svc: Services) -> None:
        self.svc = svc
        self.cache: dict[tuple[type, str], Any] = {}

    def of(self, kind: type, rid: str | None) -> Any:
        if rid is None:
            return None
        key = (kind, rid)
        if key not in self.cache:
            try:
                self.cache[key] = self.svc.store.find(kind, rid)
            except DataopsError:
                self.cache[key] = None
        return self.cache[key]


def _link(task_id: str | None, bundle_id: str | None) -> str | None:
    from urllib.parse import quote

    base = os.environ.get("DATAOPS_BASE_URL", "").rstrip("/")
    if not base:
        return None
    if task_id:
        return f"{base}/v1/tasks/{quote(task_id, safe='')}"
    if bundle_id:
        return f"{base}/v1/bundles/{quote(bundle_id, safe='')}"
    return None


def _headline(r: Reminder, task: Task | None, bundle: Bundle | None) -> str:
    where = f" ({bundle.title})" if bundle is not None else ""
    title = task.title if task is not None else None
    match r.kind:
        case ReminderKind.DUE if title:
            return f"Due today: {title}{where}"
        case ReminderKind.OVERDUE if title and task is not None:
            days = (r.fire_at.date() - task.due_date).days
            return f"Overdue by {days} day{'s' if days != 1 else ''}: {title}{where}"
        case ReminderKind.FOLLOW_UP_DUE if title:
            return f"Follow up now: {title}{where}"
        case ReminderKind.MISSING_EVIDENCE if title:
            return f"Proof missing: {title}{where}"
        case ReminderKind.MISSING_EVIDENCE if bundle is not None:
            return f"Required links missing: {bundle.title}"
        case ReminderKind.STAGE_CHANGE if bundle is not None:
            return f"Stage changed: {bundle.title}"  # from what to what: the summary says
        case ReminderKind.RECURRING if bundle is not None:
            return f"New bundle: {bundle.title}"
        case ReminderKind.AUTOMATION_FAILURE:
            return "Automation failure: " + _short(r.summary)
    return _short(r.summary)


def _short(text: str, limit: int = 120) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def facts_for(svc: Services, reminder: Reminder, recipient: Recipient | None,
              reads: Reads) -> Facts:
    """The message facts of ``reminder`` for ``recipient`` (their reason; an escalation says
    so in the subject)."""
    task = reads.of(Task, reminder.task_id) if reminder.entity_type == "task" else None
    bundle = reads.of(Bundle, reminder.bundle_id)
    headline = _headline(reminder, task, bundle)
    reason = recipient.reason if recipient is not None else "a recipient"
    subject = ("Escalation: " + headline) if reason.startswith("escalation") else headline
    facts = Facts(reminder_id=reminder.reminder_id, kind=str(reminder.kind), headline=headline,
                  subject=subject, summary=reminder.summary, reason=reason,
                  bundle_id=reminder.bundle_id, bundle_title=bundle.title if bundle else None,
                  link=_link(reminder.task_id, reminder.bundle_id), fire_at=reminder.fire_at)
    if task is not None:
        facts.task_title, facts.due_date = task.title, task.due_date.isoformat()
        facts.assignee, facts.waiting_for = task.assignee, task.waiting_for
        facts.missing = missing_proof(task) if task.status.is_open else []
        content = content_of(svc)
        doc = content.documents.get(task.instruction_doc_id or "") if content is not None else None
        if doc is not None:
            facts.doc_title, facts.doc_location = doc.title, doc.location
            facts.doc_url = doc.location if doc.location.startswith(("https://", "http://")) else None
            step = next((s for s in doc.steps if s.step_id == task.instruction_step_id), None)
            facts.step_title = step.title if step is not None else None
        elif task.instructions_url:
            facts.doc_title = facts.doc_location = facts.doc_url = task.instructions_url
    return facts
