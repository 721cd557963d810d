"""The reminder sweep: record what is due exactly once, deliver what is pending at least once.

* **Finding** is indexed: ``store.due_for_reminders(now)`` returns only tasks and bundles whose
  ``next_reminder_at`` has come, so a sweep costs what is due, not what exists.
* **Recording** is exactly-once: a reminder's ID is derived from (kind, entity, instant) and is
  inserted conditionally; when two daemons race, the first insert wins and the other skips.
  The record's reminder cursor moves in the same write (conditional on its version; the cursor
  is index bookkeeping and does not bump the version, so an operator's command never conflicts
  with the daemon).
* **Delivery** is at-least-once: a pending reminder is claimed (a conditional write that leases
  it), handed to every sink with its ID as idempotency key, then marked delivered. A failed
  delivery is retried with backoff; when it keeps failing it is marked failed and an
  ``automation_failure`` reminder is recorded (one, never for a failed automation_failure).
  A daemon killed between recording and delivery loses nothing: the next sweep finds the
  reminder pending; one killed after claiming finds it again when the lease runs out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from runtime.engine import Services, build_bundle, create_bundle, event_for, reminder_from
from runtime.errors import ConflictError, DataopsError, NotFoundError
from runtime.model import (
    Bundle,
    DeliveryStatus,
    Reminder,
    ReminderKind,
    ScheduleTrigger,
    Task,
)
from runtime.notify import DeliveryError, Sink, payload_of
from runtime.reminders import Firing, due_between, firings_of, next_after
from runtime.store import MAX_ITEMS_PER_COMMIT, Changes


@dataclass(frozen=True)
class RetryPolicy:
    """How deliveries are retried: attempt n waits ``base * factor**(n-1)``, capped."""

    max_attempts: int = 5
    base: timedelta = timedelta(minutes=1)
    factor: float = 4.0
    cap: timedelta = timedelta(hours=2)
    lease: timedelta = timedelta(minutes=5)

    def backoff(self, attempts: int) -> timedelta:
        return min(self.cap, self.base * (self.factor ** max(0, attempts - 1)))




@dataclass
class SweepReport:
    found: int = 0
    recorded: list[Reminder] = field(default_factory=list)
    skipped: int = 0
    delivered: list[Reminder] = field(default_factory=list)
    retried: list[Reminder] = field(default_factory=list)
    failed: list[Reminder] = field(default_factory=list)
    bundles_created: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (f"found {self.found} records with reminders due, recorded {len(self.recorded)} "
                f"(skipped {self.skipped} already recorded), delivered {len(self.delivered)}, "
                f"retrying {len(self.retried)}, failed {len(self.failed)}"
                + (f", created bundles {', '.join(self.bundles_created)}" if self.bundles_created else ""))


# ---- preview ---------------------------------------------------------------------------------


class _Bundles:
    """Bundles looked up once per sweep."""

    def __init__(self, svc: Services) -> None:
        self.svc = svc
        self.cache: dict[str, Bundle] = {}

    def of(self, rec: Task | Bundle) -> Bundle:
        if isinstance(rec, Bundle):
            return rec
        if rec.bundle_id not in self.cache:
            self.cache[rec.bundle_id] = self.svc.store.get(Bundle, rec.bundle_id)
        return self.cache[rec.bundle_id]


def _due_firings(rec: Task | Bundle, bundle: Bundle, now: datetime) -> tuple[list[Firing], datetime | None]:
    firings = firings_of(rec, bundle.timezone, bundle.reminder_settings)
    return due_between(firings, rec.reminder_cursor, now), next_after(firings, now)


def preview_due(svc: Services, at: datetime, limit: int = 100_000) -> list[Firing]:
    """Every reminder whose instant is at or before ``at`` and that is not recorded yet.
    Records nothing."""
    bundles = _Bundles(svc)
    out: list[Firing] = []
    for rec in svc.store.due_for_reminders(at, limit):
        due, _ = _due_firings(rec, bundles.of(rec), at)
        out += [f for f in due if svc.store.find(Reminder, f.reminder_id) is None]
    for firing in _schedule_firings(svc, at):
        if svc.store.find(Bundle, firing.bundle_id or "") is None:
            out.append(firing)
            out += _firings_of_new_bundle(svc, firing, at)
    out.sort(key=lambda f: (f.fire_at, f.kind, f.entity_id))
    return out


def _firings_of_new_bundle(svc: Services, recurring: Firing, at: datetime) -> list[Firing]:
    """What the bundle a schedule firing creates would have due at ``at`` (a preview)."""
    template_id, _, anchor = recurring.entity_id.rpartition("/")
    bundle, tasks = build_bundle(svc.content.workflow(template_id), date.fromisoformat(anchor), at)
    records: list[Task | Bundle] = [bundle, *tasks]
    return [f for rec in records for f in _due_firings(rec, bundle, at)[0]]


# ---- recording -------------------------------------------------------------------------------


def record_due(svc: Services, now: datetime, *, limit: int = 1_000,
               report: SweepReport | None = None) -> SweepReport:
    """Record every reminder due at ``now`` exactly once and advance each record's cursor.
    Reads the due-time index ``limit`` records at a time until nothing more is due."""
    report = report or SweepReport()
    bundles = _Bundles(svc)
    seen: set[str] = set()  # a record that lost every retry is left for the next sweep
    while True:
        page = svc.store.due_for_reminders(now, limit)
        records = [r for r in page if r.id not in seen]
        seen.update(r.id for r in records)
        report.found += len(records)
        batch = [_record_changes(svc, rec, bundles.of(rec), now, report) for rec in records]
        _commit_recorded(svc, batch, now, report, bundles)
        if len(page) < limit or not records:
            return report


def _record_changes(svc: Services, rec: Task | Bundle, bundle: Bundle, now: datetime,
                    report: SweepReport) -> tuple[Task | Bundle, Changes, list[Reminder]]:
    due, nxt = _due_firings(rec, bundle, now)
    changes = Changes()
    created: list[Reminder] = []
    for firing in due:
        if svc.store.find(Reminder, firing.reminder_id) is not None:
            report.skipped += 1
            continue
        reminder = reminder_from(firing, now)
        changes.creates.append(reminder)
        changes.events.append(event_for(svc.actor, now, "record",
                                        firing.summary + (" (late)" if reminder.late else ""),
                                        None, reminder))
        created.append(reminder)
    moved = rec.model_copy(update={"reminder_cursor": now, "next_reminder_at": nxt})
    changes.updates.append((moved, rec.version))  # same version: bookkeeping, see module doc
    return rec, changes, created


def commit_batched(svc: Services, items: Sequence[Changes]) -> list[bool]:
    """Commit independent changes in as few atomic writes as fit (each write at most
    MAX_ITEMS_PER_COMMIT items); when a merged write conflicts, its parts are retried one by
    one. Returns, per item, whether it was written."""
    done = [False] * len(items)
    group: list[int] = []
    size = 0

    def flush() -> None:
        nonlocal group, size
        if not group:
            return
        merged = Changes()
        for i in group:
            merged.creates += items[i].creates
            merged.updates += items[i].updates
            merged.events += items[i].events
        try:
            svc.store.commit(merged)
            for i in group:
                done[i] = True
        except (ConflictError, NotFoundError):
            if len(group) > 1:
                for i in group:
                    try:
                        svc.store.commit(items[i])
                        done[i] = True
                    except (ConflictError, NotFoundError):
                        pass
        group, size = [], 0

    for i, item in enumerate(items):
        if size + item.size() > MAX_ITEMS_PER_COMMIT:
            flush()
        group.append(i)
        size += item.size()
    flush()
    return done


def _commit_recorded(svc: Services, batch: list[tuple[Task | Bundle, Changes, list[Reminder]]],
                     now: datetime, report: SweepReport, bundles: _Bundles) -> None:
    """Commit the sweep's writes in batches; a record that lost a race is re-read and retried."""
    written = commit_batched(svc, [changes for _, changes, _ in batch])
    for ok, (rec, _, created) in zip(written, batch, strict=True):
        if ok:
            report.recorded += created
        else:
            _retry_record(svc, rec, now, report, bundles)


def _retry_record(svc: Services, rec: Task | Bundle, now: datetime, report: SweepReport,
                  bundles: _Bundles, attempts: int = 3) -> None:
    for _ in range(attempts):
        fresh = svc.store.find(type(rec), rec.id)
        if fresh is None or fresh.next_reminder_at is None or fresh.next_reminder_at > now:
            return  # another sweep recorded it (or the record is gone)
        _, changes, created = _record_changes(svc, fresh, bundles.of(fresh), now, report)
        try:
            svc.store.commit(changes)
            report.recorded += created
            return
        except (ConflictError, NotFoundError):
            rec = fresh


# ---- recurring -------------------------------------------------------------------------------


def _anchor_for(trigger: ScheduleTrigger, fire_at: datetime, zone: str) -> date:
    return fire_at.astimezone(ZoneInfo(zone)).date() + timedelta(days=trigger.anchor_offset_days)


CATCH_UP = timedelta(days=8)
"""How far back a sweep looks for a schedule's latest firing (a week and a day, so a daemon
that was down for a whole week still creates last week's bundle). Only the latest firing is
caught up: a daemon down across two firings creates the newer bundle only (documented in
docs/reminders.md); older ones can be created with `dataops bundle create`."""


def _schedule_firings(svc: Services, now: datetime, catch_up: timedelta = CATCH_UP) -> list[Firing]:
    """For each schedule-triggered definition, its latest cron firing at or before ``now``
    (within ``catch_up``), as the ``recurring`` reminder it gives."""
    from runtime.schedule import firings

    if svc.content_loader is None:
        return []
    out = []
    for wf in svc.content.workflows.values():
        if not isinstance(wf.trigger, ScheduleTrigger):
            continue
        times = firings(wf.trigger.cron, wf.timezone, now - catch_up, now)
        if not times:
            continue
        fire_at = times[-1].astimezone(UTC)
        bundle_id = f"{wf.template_id}/{_anchor_for(wf.trigger, fire_at, wf.timezone).isoformat()}"
        out.append(Firing(ReminderKind.RECURRING, "bundle", bundle_id, bundle_id, None, fire_at,
                          f"schedule {wf.trigger.cron!r} of {wf.template_id} created bundle {bundle_id}"))
    return out


def fire_schedules(svc: Services, now: datetime, report: SweepReport | None = None) -> SweepReport:
    """Instantiate the bundle of each schedule trigger's latest firing, once (idempotent across
    daemons: same template and anchor, same bundle), recording a ``recurring`` reminder with it."""
    report = report or SweepReport()
    for firing in _schedule_firings(svc, now):
        template_id, _, anchor = firing.entity_id.rpartition("/")
        view = create_bundle(svc, template_id, date.fromisoformat(anchor),
                             extra_reminders=[firing])
        if view.created:
            report.bundles_created.append(view.bundle.bundle_id)
    return report


def fire_schedule(svc: Services, template_id: str, fire_at: datetime) -> Bundle:
    """The bundle one cron firing of ``template_id`` gives (created once)."""
    wf = svc.content.workflow(template_id)
    if not isinstance(wf.trigger, ScheduleTrigger):
        raise DataopsError(f"template {template_id} has no schedule trigger")
    fire_at = fire_at.astimezone(UTC)
    anchor = _anchor_for(wf.trigger, fire_at, wf.timezone)
    bundle_id = f"{template_id}/{anchor.isoformat()}"
    firing = Firing(ReminderKind.RECURRING, "bundle", bundle_id, bundle_id, None, fire_at,
                    f"schedule {wf.trigger.cron!r} of {template_id} created bundle {bundle_id}")
    return create_bundle(svc, template_id, anchor, extra_reminders=[firing]).bundle


# ---- automation failures ---------------------------------------------------------------------


def record_failure(svc: Services, entity_id: str, at: datetime, summary: str,
                   bundle_id: str | None = None, task_id: str | None = None,
                   entity_type: str = "job") -> Reminder | None:
    """Record an ``automation_failure`` reminder once (None if it was recorded already)."""
    firing = Firing(ReminderKind.AUTOMATION_FAILURE, entity_type, entity_id, bundle_id, task_id,
                    at, summary)
    reminder = reminder_from(firing, svc.now())
    changes = Changes(creates=[reminder])
    changes.events.append(event_for(svc.actor, svc.now(), "record", summary, None, reminder))
    try:
        svc.store.commit(changes)
    except ConflictError:
        return None
    return reminder


# ---- delivery --------------------------------------------------------------------------------


def deliver_pending(svc: Services, sinks: Sequence[Sink], now: datetime, *,
                    policy: RetryPolicy | None = None, limit: int = 50,
                    report: SweepReport | None = None) -> SweepReport:
    """Deliver every pending reminder whose time has come to every sink: claim a page of
    ``limit`` (one conditional write), deliver them, settle the outcomes (batched), repeat.
    A daemon that dies mid-page leaves at most ``limit`` reminders leased until the lease
    runs out; they are delivered then, none lost."""
    report = report or SweepReport()
    policy = policy or RetryPolicy()
    while True:
        page = svc.store.pending_deliveries(now, limit)
        claims = [
            r.model_copy(update={"attempts": r.attempts + 1, "deliver_after": now + policy.lease,
                                 "version": r.version + 1})
            for r in page
        ]
        won = commit_batched(svc, [Changes(updates=[(c, r.version)]) for c, r in zip(claims, page, strict=True)])
        claimed = [c for c, ok in zip(claims, won, strict=True) if ok]  # others: another daemon's
        outcomes = [_settle_delivery(svc, c, _deliver(sinks, payload_of(c)), now, policy) for c in claimed]
        written = commit_batched(svc, [changes for changes, _, _ in outcomes])
        for ok, (_, bucket, done) in zip(written, outcomes, strict=True):
            if ok:  # else the lease ran out and another daemon settles it
                getattr(report, bucket).append(done)
        if len(page) < limit or not claimed:
            return report


def _deliver(sinks: Sequence[Sink], payload: dict[str, Any]) -> str | None:
    errors = []
    for sink in sinks:
        try:
            sink.deliver(payload)
        except DeliveryError as e:
            errors.append(str(e))
        except Exception as e:  # a sink bug must not stop the sweep; it is retried and reported
            errors.append(f"{sink.url}: {type(e).__name__}: {e}")
    return "; ".join(errors) or None


def _settle_delivery(svc: Services, claimed: Reminder, error: str | None, now: datetime,
                     policy: RetryPolicy) -> tuple[Changes, str, Reminder]:
    """The writes that record a delivery's outcome, the report bucket, the settled reminder."""
    rid = claimed.reminder_id
    update: dict[str, Any]
    if error is None:
        bucket, action, summary = "delivered", "deliver", f"delivered {claimed.kind} reminder {rid}"
        update = {"delivery_status": DeliveryStatus.DELIVERED, "deliver_after": None,
                  "last_error": None}
    elif claimed.attempts < policy.max_attempts:
        bucket, action = "retried", "retry"
        summary = f"delivery attempt {claimed.attempts} of {rid} failed: {error}"
        update = {"deliver_after": now + policy.backoff(claimed.attempts), "last_error": error}
    else:
        bucket, action = "failed", "fail"
        summary = f"delivery of {rid} failed {claimed.attempts} times: {error}"
        update = {"delivery_status": DeliveryStatus.FAILED, "deliver_after": None,
                  "last_error": error}
    done = claimed.model_copy(update={**update, "version": claimed.version + 1})
    changes = Changes(updates=[(done, claimed.version)])
    changes.events.append(event_for(svc.actor, now, action, summary, claimed, done, set(update)))
    if bucket == "failed" and claimed.kind != ReminderKind.AUTOMATION_FAILURE:
        # one automation_failure per failed reminder; never one about a failed failure
        firing = Firing(
            ReminderKind.AUTOMATION_FAILURE, "reminder", rid, claimed.bundle_id, claimed.task_id,
            now, f"could not deliver {claimed.kind} reminder {rid} after {claimed.attempts} "
            f"attempts: {error}",
        )
        failure = reminder_from(firing, now)
        changes.creates.append(failure)
        changes.events.append(event_for(svc.actor, now, "record", firing.summary, None, failure))
    return changes, bucket, done


def sweep(svc: Services, sinks: Sequence[Sink], *, now: datetime | None = None,
          policy: RetryPolicy | None = None, schedules: bool = True) -> SweepReport:
    """One whole sweep: recurring triggers, record what is due, deliver what is pending."""
    now = now or svc.now()
    report = SweepReport()
    if schedules:
        fire_schedules(svc, now, report)
    record_due(svc, now, report=report)
    deliver_pending(svc, sinks, now, policy=policy, report=report)
    return report


