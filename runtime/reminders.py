"""Reminder rules: pure functions from records and a time to the reminders that fire. No I/O.

A record's reminders in its current state are its *candidates*; each has a deterministic ID
from (kind, entity ID, firing instant). A record keeps ``reminder_cursor`` (the instant up to
which its reminders have been recorded) and ``next_reminder_at`` (the first candidate after the
cursor), which the store indexes, so a sweep only reads records with something due.
Local times come from the definition's zone and ``reminders.at``: a DST change between two
dates moves the UTC instant, never the local time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from runtime.model import (
    Bundle,
    BundleStatus,
    ReminderKind,
    ReminderSettings,
    Task,
    TaskStatus,
    reminder_id_for,
)
from runtime.proof import missing_proof

LATE_AFTER = timedelta(minutes=5)
"""A reminder recorded more than this after its instant is marked ``late``."""


@dataclass(frozen=True)
class Firing:
    """A reminder that fires (or fired) at ``fire_at``; recorded as a Reminder record."""

    kind: ReminderKind
    entity_type: str
    entity_id: str
    bundle_id: str | None
    task_id: str | None
    fire_at: datetime
    summary: str
    discriminator: str = ""
    """Set where one entity can fire the same kind twice at one instant (a stage change is
    keyed by the bundle version it produced)."""

    @property
    def reminder_id(self) -> str:
        key = f"{self.entity_id}#{self.discriminator}" if self.discriminator else self.entity_id
        return reminder_id_for(self.kind, key, self.fire_at)


@lru_cache(maxsize=4096)
def local_instant(day: date, at: time, zone: str) -> datetime:
    """``day`` at local time ``at`` in ``zone``, as a UTC instant (fold=0 in a DST overlap,
    the pre-transition offset in a gap)."""
    return datetime.combine(day, at, tzinfo=ZoneInfo(zone)).astimezone(UTC)


def task_firings(task: Task, zone: str, policy: ReminderSettings) -> list[Firing]:
    """Every reminder ``task`` has in its current state, oldest first."""
    if not task.status.is_open:
        return []
    out: list[Firing] = []
    label = f"task {task.task_id} ({task.title!r}, {task.assignee or 'unassigned'})"

    def firing(kind: ReminderKind, at: datetime, summary: str) -> None:
        out.append(Firing(kind, "task", task.task_id, task.bundle_id, task.task_id, at, summary))

    due_at = local_instant(task.due_date, policy.at, zone)
    firing(ReminderKind.DUE, due_at, f"{label} is due today ({task.due_date.isoformat()})")
    missing = missing_proof(task)
    if missing:
        firing(
            ReminderKind.MISSING_EVIDENCE,
            due_at,
            f"{label} is due today and misses proof: {', '.join(missing)}",
        )
    for n in range(1, policy.overdue_repeats + 1):
        day = task.due_date + timedelta(days=n)
        firing(
            ReminderKind.OVERDUE,
            local_instant(day, policy.at, zone),
            f"{label} is overdue by {n} day{'s' if n > 1 else ''} (due {task.due_date.isoformat()})",
        )
    if task.status == TaskStatus.WAITING and task.follow_up_at is not None:
        firing(
            ReminderKind.FOLLOW_UP_DUE,
            task.follow_up_at,
            f"{label} is waiting for {task.waiting_for!r}: follow up now",
        )
    out.sort(key=lambda f: (f.fire_at, f.kind))
    return out


def first_task_reminder(due: date, zone: str, policy: ReminderSettings) -> datetime:
    """``next_reminder_at`` of a new task (open, not waiting, nothing swept): its ``due``
    reminder, which no other reminder of a new task precedes. A shortcut of
    ``next_after(task_firings(task), None)`` for instantiation's hot path (a test pins them equal)."""
    return local_instant(due, policy.at, zone)


def bundle_firings(bundle: Bundle) -> list[Firing]:
    """A bundle's own reminders: missing required links on its anchor date."""
    if bundle.status != BundleStatus.ACTIVE:
        return []
    empty = [link.key for link in bundle.required_bundle_links if link.required and not link.url]
    if not empty:
        return []
    at = local_instant(bundle.anchor_date, bundle.reminder_settings.at, bundle.timezone)
    return [
        Firing(
            ReminderKind.MISSING_EVIDENCE, "bundle", bundle.bundle_id, bundle.bundle_id, None, at,
            f"bundle {bundle.bundle_id} ({bundle.title!r}) has empty required links: {', '.join(empty)}",
        )
    ]


def firings_of(record: Task | Bundle, zone: str, policy: ReminderSettings) -> list[Firing]:
    return task_firings(record, zone, policy) if isinstance(record, Task) else bundle_firings(record)


def next_after(firings: list[Firing], cursor: datetime | None) -> datetime | None:
    """The first firing after ``cursor`` (after nothing if None): the record's index value."""
    times = [f.fire_at for f in firings if cursor is None or f.fire_at > cursor]
    return min(times) if times else None


def due_between(firings: list[Firing], cursor: datetime | None, now: datetime) -> list[Firing]:
    """The firings in (cursor, now]: due now and not yet swept."""
    return [f for f in firings if (cursor is None or f.fire_at > cursor) and f.fire_at <= now]


def task_instants(task: Task, zone: str, policy: ReminderSettings) -> list[datetime]:
    """The instants of :func:`task_firings`, without building their summaries (the write path
    only needs the next one; ``missing_evidence`` shares the ``due`` instant)."""
    if not task.status.is_open:
        return []
    out = [local_instant(task.due_date + timedelta(days=n), policy.at, zone)
           for n in range(policy.overdue_repeats + 1)]
    if task.status == TaskStatus.WAITING and task.follow_up_at is not None:
        out.append(task.follow_up_at)
    return out


def schedule_fields(
    record: Task | Bundle, zone: str, policy: ReminderSettings
) -> dict[str, datetime | None]:
    """The index field a write must store with ``record`` (its cursor unchanged)."""
    cursor = record.reminder_cursor
    if isinstance(record, Task):
        times = [t for t in task_instants(record, zone, policy) if cursor is None or t > cursor]
        return {"next_reminder_at": min(times) if times else None}
    return {"next_reminder_at": next_after(bundle_firings(record), cursor)}
