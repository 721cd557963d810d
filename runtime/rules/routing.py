"""Routing: who a reminder is for. Pure: a reminder's facts and the directory give its
recipients, each once, each with the reason (DESIGN.md "People and routing").

* due, overdue, follow_up_due and a task's missing_evidence: the task's assignee (a person, or
  every member of a group);
* a bundle's missing_evidence, stage_change and recurring: the definition's ``owner`` (default
  ``default_assignee``);
* automation_failure: the ``operators`` group (the log gets it too: that is the sinks' part);
* ``reminders.escalate_after_overdue: N``: the Nth and later overdue reminders also go to the
  manager of each person the assignee stands for;
* a name that resolves to nobody: ``operators``, saying so.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from runtime.model import ReminderKind
from runtime.model.people import OPERATORS, Directory

TASK_KINDS = frozenset({ReminderKind.DUE, ReminderKind.OVERDUE, ReminderKind.FOLLOW_UP_DUE,
                        ReminderKind.MISSING_EVIDENCE})


@dataclass(frozen=True)
class Route:
    """One recipient of a reminder and why they receive it."""

    person_id: str
    reason: str


@dataclass(frozen=True)
class Facts:
    """What routing needs to know of a reminder."""

    kind: ReminderKind
    entity_type: str
    assignee: str | None = None
    """The task's assignee (task reminders)."""
    owner: str | None = None
    """The definition's owner, or its default_assignee (bundle reminders)."""
    overdue_n: int = 0
    """Which overdue reminder this is (1 for the first day after the due date)."""
    escalate_after: int | None = None


def routes(facts: Facts, directory: Directory) -> list[Route]:
    """The recipients of a reminder, each person once (the first reason wins), in a stable
    order: the people it is for, then escalations. Empty when the directory is empty (routing
    is off) or when nobody, not even operators, can be found."""
    if not directory:
        return []
    out: dict[str, Route] = {}

    def add(person_ids: list[str], reason: str) -> None:
        for pid in person_ids:
            out.setdefault(pid, Route(pid, reason))

    def to_operators(why: str) -> None:
        add(directory.resolve(OPERATORS), why)

    if facts.kind == ReminderKind.AUTOMATION_FAILURE:
        to_operators(OPERATORS)
        return list(out.values())
    if facts.kind in TASK_KINDS and facts.entity_type == "task":
        role, name = "assignee", facts.assignee
    else:
        role, name = "owner", facts.owner
    people = directory.resolve(name)
    if not people:
        to_operators(f"{OPERATORS}: the {role} {name!r} resolves to nobody" if name else
                     f"{OPERATORS}: there is no {role}")
        return list(out.values())
    add(people, role if name in directory.people else f"{role} (member of {name})")
    if (facts.kind == ReminderKind.OVERDUE and facts.escalate_after is not None
            and facts.overdue_n >= facts.escalate_after):
        for pid in people:
            manager = directory.people[pid].manager
            if manager is not None and manager in directory.people:
                add([manager], f"escalation: manager of {pid} (overdue reminder {facts.overdue_n}, "
                               f"escalates from {facts.escalate_after})")
    return list(out.values())


def next_digest_at(after: datetime, at: time, zone: str) -> datetime:
    """The first instant at or after ``after`` that is local time ``at`` in ``zone`` (a day
    whose ``at`` falls in a DST gap gets the instant the gap's offset gives)."""
    tz = ZoneInfo(zone)
    day: date = after.astimezone(tz).date()
    for _ in range(3):
        candidate = datetime.combine(day, at, tzinfo=tz).astimezone(UTC)
        if candidate >= after:
            return candidate
        day += timedelta(days=1)
    raise AssertionError("unreachable: a local time recurs every day")


def local_day(instant: datetime, zone: str) -> date:
    return instant.astimezone(ZoneInfo(zone)).date()
