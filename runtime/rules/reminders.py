"""Reminder rules: pure functions from records and a time to the reminders that fire. No I/O.

A record's reminders in its current state are its *candidates*; each has a deterministic ID
from (kind, entity ID, firing instant). A record keeps ``reminder_cursor`` (the instant up to
which its reminders have been recorded) and ``next_reminder_at`` (the first candidate after the
cursor), which the store indexes, so a sweep only reads records with something due.
Local times come from the definition's zone and ``reminders.at``: a DST change between two
dates moves the UTC instant, never the local time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from runtime.model import (
    Bundle,
    BundleStatus,
    Recipient,
    RecipientStatus,
    Reminder,
    ReminderKind,
    ReminderSettings,
    Task,
    TaskStatus,
    reminder_id_for,
)
from runtime.rules.proof import missing_proof

LATE_AFTER = timedelta(minutes=5)
"""A reminder recorded more than this after its instant is marked ``late``."""


def is_late(fire_at: datetime, recorded_at: datetime) -> bool:
    """The one lateness rule: recorded (or previewed) more than :data:`LATE_AFTER` after its
    instant."""
    return recorded_at - fire_at > LATE_AFTER


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
    key_at: datetime | None = None
    """The instant the ID is derived from, when it is not ``fire_at``: a failure that is
    reported once per cause (a broken file, a quarantined record) whenever it is noticed."""
    occurrence: int = 0
    """Which overdue reminder this is (1: the first day after the due date); 0 otherwise."""

    @property
    def reminder_id(self) -> str:
        key = f"{self.entity_id}#{self.discriminator}" if self.discriminator else self.entity_id
        return reminder_id_for(self.kind, key, self.key_at or self.fire_at)


@lru_cache(maxsize=4096)
def local_instant(day: date, at: time, zone: str) -> datetime:
    """``day`` at local time ``at`` in ``zone``, as a UTC instant (fold=0 in a DST overlap,
    the pre-transition offset in a gap)."""
    return datetime.combine(day, at, tzinfo=ZoneInfo(zone)).astimezone(UTC)


def task_schedule(task: Task, zone: str, policy: ReminderSettings) -> list[tuple[ReminderKind, datetime, int]]:
    """The one schedule rule for a task: ``(kind, instant, n)`` of every reminder it has in
    its current state (``n``: the day of an overdue reminder), oldest first. Missing evidence
    shares the due instant; whether it fires depends on the proof (:func:`task_firings`)."""
    if not task.status.is_open:
        return []
    due_at = local_instant(task.due_date, policy.at, zone)
    out = [(ReminderKind.DUE, due_at, 0), (ReminderKind.MISSING_EVIDENCE, due_at, 0)]
    out += [(ReminderKind.OVERDUE, local_instant(task.due_date + timedelta(days=n), policy.at, zone), n)
            for n in range(1, policy.overdue_repeats + 1)]
    if task.status == TaskStatus.WAITING and task.follow_up_at is not None:
        out.append((ReminderKind.FOLLOW_UP_DUE, task.follow_up_at, 0))
    out.sort(key=lambda s: (s[1], s[0]))
    return out


def task_firings(task: Task, zone: str, policy: ReminderSettings) -> list[Firing]:
    """Every reminder ``task`` has in its current state, oldest first, with its summary."""
    label = f"task {task.task_id} ({task.title!r}, {task.assignee or 'unassigned'})"
    due = task.due_date.isoformat()
    out: list[Firing] = []
    for kind, at, n in task_schedule(task, zone, policy):
        if kind == ReminderKind.DUE:
            summary = f"{label} is due today ({due})"
        elif kind == ReminderKind.MISSING_EVIDENCE:
            missing = missing_proof(task)
            if not missing:
                continue
            summary = f"{label} is due today and misses proof: {', '.join(missing)}"
        elif kind == ReminderKind.OVERDUE:
            summary = f"{label} is overdue by {n} day{'s' if n > 1 else ''} (due {due})"
        else:
            summary = f"{label} is waiting for {task.waiting_for!r}: follow up now"
        out.append(Firing(kind, "task", task.task_id, task.bundle_id, task.task_id, at, summary,
                          occurrence=n))
    return out


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


def next_reminder_at(record: Task | Bundle, zone: str, policy: ReminderSettings) -> datetime | None:
    """The index value a write stores with ``record``: its first reminder after its cursor. A
    bundle still ``creating`` (a creation a crash interrupted) is due at once, so that the
    sweep finds it and completes it."""
    cursor = record.reminder_cursor
    if isinstance(record, Task):  # instants only: no summaries on the write path
        times = [at for _, at, _ in task_schedule(record, zone, policy) if cursor is None or at > cursor]
        return min(times) if times else None
    if record.status == BundleStatus.CREATING:
        return record.created_at
    return next_after(bundle_firings(record), cursor)


def reminder_of(firing: Firing, recorded_at: datetime,
                recipients: Sequence[Recipient] = ()) -> Reminder:
    """The record of ``firing`` as recorded at ``recorded_at`` (late by :func:`is_late`), for
    ``recipients``."""
    return Reminder(
        reminder_id=firing.reminder_id, kind=firing.kind, entity_type=firing.entity_type,
        entity_id=firing.entity_id, bundle_id=firing.bundle_id, task_id=firing.task_id,
        fire_at=firing.fire_at, recorded_at=recorded_at,
        late=is_late(firing.fire_at, recorded_at), deliver_after=recorded_at,
        summary=firing.summary, recipients=list(recipients),
        digest_after=digest_after(recipients),
    )


def digest_after(recipients: Sequence[Recipient]) -> datetime | None:
    """The earliest digest that still has to gather a reminder for ``recipients`` (its index
    value), or None."""
    times = [r.digest_at for r in recipients
             if r.delivery == "digest" and r.status == RecipientStatus.PENDING and r.digest_at]
    return min(times) if times else None
