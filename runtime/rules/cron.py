"""Cron expressions of schedule triggers (APScheduler's CronTrigger, imported on use)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo


def cron_trigger(cron: str, timezone: str) -> Any:
    from apscheduler.triggers.cron import CronTrigger

    return CronTrigger.from_crontab(cron, timezone=ZoneInfo(timezone))


def check_cron(cron: str, timezone: str) -> str | None:
    """None if ``cron`` is a valid 5-field crontab expression, else what is wrong."""
    fields = cron.split()
    if len(fields) != 5:
        return (
            f"cron {cron!r} has {len(fields)} fields; write 5 (minute hour day month weekday), "
            "e.g. '0 9 * * MON'"
        )
    try:
        cron_trigger(cron, timezone)
    except ValueError as e:
        return f"cron {cron!r} is not valid: {e}"
    return None


def never_fires(cron: str, timezone: str, now: datetime) -> str | None:
    """A warning if a valid ``cron`` has no firing after ``now`` (e.g. ``0 0 31 2 *``), else None."""
    try:
        nxt = cron_trigger(cron, timezone).get_next_fire_time(None, now)
    except (ValueError, OverflowError):
        return None  # check_cron names an invalid expression
    if nxt is None:
        return (f"cron {cron!r} never fires (no such date after {now.date()}); the schedule "
                "will create no bundle, fix the day or month")
    return None


def firings(cron: str, timezone: str, after: datetime, until: datetime) -> list[datetime]:
    """The cron's firing instants in (after, until], oldest first."""
    trigger = cron_trigger(cron, timezone)
    out: list[datetime] = []
    previous = None
    current = after
    while True:
        nxt = trigger.get_next_fire_time(previous, current)
        if nxt is None or nxt > until:
            return out
        if nxt > after:
            out.append(nxt)
        previous = nxt
        current = nxt


def latest_firing(cron: str, timezone: str, now: datetime, window: timedelta) -> datetime | None:
    """The cron's latest firing in (now - window, now], in UTC; None if there is none."""
    times = firings(cron, timezone, now - window, now)
    return times[-1].astimezone(UTC) if times else None


def anchor_for(anchor_offset_days: int, fire_at: datetime, timezone: str) -> date:
    """The anchor date of the bundle a firing creates: its local date plus the offset."""
    return fire_at.astimezone(ZoneInfo(timezone)).date() + timedelta(days=anchor_offset_days)
