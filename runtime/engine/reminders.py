"""Reminder use cases: record what is due exactly once, deliver what is pending at least once,
fire schedule triggers, report automation failures. The scheduler only calls these.

* **Finding** is indexed: ``store.due_for_reminders(now)`` returns only tasks and bundles whose
  ``next_reminder_at`` has come, so a sweep costs what is due, not what exists.
* **Recording** is exactly-once: a reminder's ID is derived from (kind, entity, instant) and is
  created conditionally; when two daemons race, the first write wins and the other skips. The
  record's reminder cursor moves in the same write (bookkeeping: no version bump, so an
  operator's command never conflicts with the daemon).
* **Delivery** is at-least-once (:mod:`runtime.engine.delivery`).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from runtime.engine.bundles import build_bundle, create_bundle
from runtime.engine.delivery import RetryPolicy, deliver_pending, is_channel
from runtime.engine.digests import deliver_digests, gather_digests
from runtime.engine.services import Services
from runtime.engine.uow import UnitOfWork, commit_batched
from runtime.engine.views import BundleView
from runtime.errors import ConflictError, DataopsError, NotFoundError
from runtime.model import (
    Bundle,
    BundleStatus,
    Digest,
    Recipient,
    Reminder,
    ReminderKind,
    ScheduleTrigger,
    Task,
    WorkflowDefinition,
    bundle_id_for,
)
from runtime.model.commands import CreateBundle
from runtime.rules.cron import anchor_for, latest_firing
from runtime.rules.reminders import Firing, due_between, firings_of, is_late

CATCH_UP = timedelta(days=8)
"""How far back a sweep looks for a schedule's latest firing (a week and a day, so a daemon
that was down for a whole week still creates last week's bundle). Only the latest firing is
caught up (docs/reminders.md); older ones can be created with `dataops bundle create`."""


@dataclass
class SweepReport:
    found: int = 0
    recorded: list[Reminder] = field(default_factory=list)
    skipped: int = 0
    delivered: list[Reminder] = field(default_factory=list)
    retried: list[Reminder] = field(default_factory=list)
    failed: list[Reminder] = field(default_factory=list)
    bundles_created: list[str] = field(default_factory=list)
    keys_purged: int = 0
    digests_gathered: list[Digest] = field(default_factory=list)
    digests_sent: list[Digest] = field(default_factory=list)

    def line(self) -> str:
        return (f"found {self.found} records with reminders due, recorded {len(self.recorded)} "
                f"(skipped {self.skipped} already recorded), delivered {len(self.delivered)}, "
                f"retrying {len(self.retried)}, failed {len(self.failed)}"
                + (f", digests sent {len(self.digests_sent)}" if self.digests_sent else "")
                + (f", created bundles {', '.join(self.bundles_created)}" if self.bundles_created else ""))


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


def _due(rec: Task | Bundle, bundle: Bundle, now: datetime) -> list[Firing]:
    return due_between(firings_of(rec, bundle.timezone, bundle.reminder_settings),
                       rec.reminder_cursor, now)


# ---- preview ---------------------------------------------------------------------------------


def preview_due(svc: Services, at: datetime, limit: int = 100_000) -> list[Firing]:
    """Every reminder whose instant is at or before ``at`` and that is not recorded yet,
    including those of bundles a schedule would create. Records nothing."""
    return [firing for firing, _ in preview_routed(svc, at, limit)]


def preview_routed(svc: Services, at: datetime, limit: int = 100_000
                   ) -> list[tuple[Firing, list[Recipient]]]:
    """:func:`preview_due`, each firing with the recipients it would be recorded with at
    ``at`` (the people directory; empty when there is none)."""
    from runtime.engine.routing import recipients_for

    bundles = _Bundles(svc)
    out: list[tuple[Firing, list[Recipient]]] = []

    def add(firing: Firing, rec: Task | Bundle | None, bundle: Bundle) -> None:
        task = rec if isinstance(rec, Task) else None
        out.append((firing, recipients_for(svc, firing, at, task=task, bundle=bundle)))

    for rec in svc.store.due_for_reminders(at, limit).items:
        bundle = bundles.of(rec)
        if bundle.status == BundleStatus.CREATING:
            continue
        for f in _due(rec, bundle, at):
            if svc.store.find(Reminder, f.reminder_id) is None:
                add(f, rec, bundle)
    for wf, firing, anchor in _schedule_firings(svc, at):
        if svc.store.find(Bundle, firing.entity_id) is None:
            bundle, tasks = build_bundle(wf, anchor, at)
            add(firing, None, bundle)
            records: list[Task | Bundle] = [bundle, *tasks]
            for new in records:
                for f in _due(new, bundle, at):
                    add(f, new, bundle)
    out.sort(key=lambda pair: (pair[0].fire_at, pair[0].kind, pair[0].entity_id))
    return out


# ---- recording -------------------------------------------------------------------------------


def record_due(svc: Services, now: datetime, *, limit: int = 1_000,
               report: SweepReport | None = None) -> SweepReport:
    """Record every reminder due at ``now`` exactly once and advance each record's cursor.
    Reads the due index ``limit`` records at a time until nothing more is due."""
    report = report or SweepReport()
    bundles = _Bundles(svc)
    seen: set[str] = set()  # a record that lost every retry is left for the next sweep
    cursor: str | None = None  # pages on past what was skipped: nothing starves behind it
    while True:
        page = svc.store.due_for_reminders(now, limit, cursor=cursor)
        cursor = page.next_cursor
        records = [r for r in page.items if r.id not in seen]
        seen.update(r.id for r in records)
        report.found += len(records)
        units = [u for rec in records if (u := _record_unit(svc, rec, bundles, now, report))]
        for ok, (rec, uow) in zip(commit_batched(svc, [u for _, u in units]), units, strict=True):
            if ok:
                report.recorded += [r for r in uow.changes.creates if isinstance(r, Reminder)]
            else:
                _retry_record(svc, rec, now, report, bundles)
        if page.next_cursor is None:  # the cursor moves on: every page is read once
            return report


def _record_unit(svc: Services, rec: Task | Bundle, bundles: _Bundles, now: datetime,
                 report: SweepReport) -> tuple[Task | Bundle, UnitOfWork] | None:
    try:
        bundle = bundles.of(rec)
    except DataopsError:  # its bundle is gone or quarantined: leave the task for an operator
        return None
    if bundle.status == BundleStatus.CREATING:
        _resume_creation(svc, bundle)
        return None
    uow = UnitOfWork(svc, now)
    uow.remember(bundle)
    due, upto = _within_limit(_due(rec, bundle, now), now, svc.store.max_items)
    for firing in due:
        if svc.store.find(Reminder, firing.reminder_id) is not None:
            report.skipped += 1
            continue
        late = is_late(firing.fire_at, now)
        uow.record(firing, task=rec if isinstance(rec, Task) else None, bundle=bundle,
                   summary=firing.summary + (" (late)" if late else ""))
    uow.touch(rec, {"reminder_cursor": upto})
    return rec, uow


def _within_limit(due: list[Firing], now: datetime, limit: int | None
                  ) -> tuple[list[Firing], datetime]:
    """The firings one write can record (each a reminder and its event, plus the cursor) and
    the cursor that write may move to: all of them and ``now``, or the oldest instants that fit
    and the last of those (the rest go in the next sweep, never skipped)."""
    room = (limit - 1) // 2 if limit else len(due)
    if len(due) <= room:
        return due, now
    due = sorted(due, key=lambda f: f.fire_at)
    cut = due[room].fire_at  # never split one instant's firings across two writes
    # one instant's firings (at most 3) always fit: stores refuse a limit below MIN_ITEMS
    taken = [f for f in due if f.fire_at < cut] or [f for f in due if f.fire_at == cut]
    return taken, taken[-1].fire_at


def _resume_creation(svc: Services, bundle: Bundle) -> None:
    """A bundle left ``creating`` by a crash: complete it if its definition is still there."""
    with contextlib.suppress(DataopsError):  # gone or broken: the next bundle create completes it
        create_bundle(svc, CreateBundle(template_id=bundle.template_id,
                                        anchor_date=bundle.anchor_date))


def _retry_record(svc: Services, rec: Task | Bundle, now: datetime, report: SweepReport,
                  bundles: _Bundles, attempts: int = 3) -> None:
    for _ in range(attempts):
        fresh = svc.store.find(type(rec), rec.id)
        if fresh is None or fresh.next_reminder_at is None or fresh.next_reminder_at > now:
            return  # another sweep recorded it (or the record is gone)
        unit = _record_unit(svc, fresh, bundles, now, report)
        if unit is None:
            return
        try:
            unit[1].commit()
            report.recorded += [r for r in unit[1].changes.creates if isinstance(r, Reminder)]
            return
        except (ConflictError, NotFoundError):
            continue


# ---- recurring -------------------------------------------------------------------------------


def _schedule_firings(svc: Services, now: datetime
                      ) -> list[tuple[WorkflowDefinition, Firing, Any]]:
    """For each schedule-triggered definition, its latest cron firing at or before ``now``
    (within :data:`CATCH_UP`), as the ``recurring`` reminder it gives and the anchor."""
    if svc.content_loader is None:
        return []
    out = []
    for wf in svc.content.workflows.values():
        if isinstance(wf.trigger, ScheduleTrigger):
            fire_at = latest_firing(wf.trigger.cron, wf.timezone, now, CATCH_UP)
            if fire_at is not None:
                out.append(_recurring(wf, fire_at))
    return out


def _recurring(wf: WorkflowDefinition, fire_at: datetime) -> tuple[WorkflowDefinition, Firing, Any]:
    assert isinstance(wf.trigger, ScheduleTrigger)
    anchor = anchor_for(wf.trigger.anchor_offset_days, fire_at, wf.timezone)
    bundle_id = bundle_id_for(wf.template_id, anchor)
    firing = Firing(ReminderKind.RECURRING, "bundle", bundle_id, bundle_id, None, fire_at,
                    f"schedule {wf.trigger.cron!r} of {wf.template_id} created bundle {bundle_id}")
    return wf, firing, anchor


def fire_schedule(svc: Services, template_id: str, fire_at: datetime) -> BundleView:
    """The bundle one cron firing of ``template_id`` gives, created once (idempotent across
    daemons: same template and anchor, same bundle) with its ``recurring`` reminder. The one
    path for the sweep's catch-up and the daemon's cron jobs."""
    wf = svc.content.workflow(template_id)
    if not isinstance(wf.trigger, ScheduleTrigger):
        raise DataopsError(f"template {template_id} has no schedule trigger")
    _, firing, anchor = _recurring(wf, fire_at.astimezone(UTC))
    return create_bundle(svc, CreateBundle(template_id=template_id, anchor_date=anchor),
                         extra_reminders=[firing])


def fire_schedules(svc: Services, now: datetime, report: SweepReport | None = None) -> SweepReport:
    """Instantiate the bundle of each schedule trigger's latest firing, once. A schedule that
    cannot fire (a damaged record in its way, say) is reported once and stops no other."""
    report = report or SweepReport()
    for wf, firing, _ in _schedule_firings(svc, now):
        try:
            existing = svc.store.find(Bundle, firing.entity_id)
            if existing is None or existing.status == BundleStatus.CREATING:  # new, or a crash's
                view = fire_schedule(svc, wf.template_id, firing.fire_at)
                if view.created:
                    report.bundles_created.append(view.bundle.bundle_id)
        except DataopsError as e:
            record_failure(svc, f"schedule:{wf.template_id}", now,
                           f"schedule of {wf.template_id} could not create {firing.entity_id}: {e}",
                           bundle_id=firing.entity_id, entity_type="schedule",
                           once_per=_fingerprint(firing.entity_id, [str(e)]))
    return report


# ---- automation failures ---------------------------------------------------------------------


def record_failure(svc: Services, entity_id: str, at: datetime, summary: str,
                   bundle_id: str | None = None, task_id: str | None = None,
                   entity_type: str = "job", *, once_per: str = "") -> Reminder | None:
    """Record an ``automation_failure`` reminder once (None if it was recorded already).
    ``once_per`` keys a failure that is noticed again and again (a broken file, a quarantined
    record) by its cause rather than by ``at``."""
    firing = Firing(ReminderKind.AUTOMATION_FAILURE, entity_type, entity_id, bundle_id, task_id,
                    at, summary, discriminator=once_per,
                    key_at=datetime(1970, 1, 1, tzinfo=UTC) if once_per else None)
    uow = UnitOfWork(svc)
    reminder = uow.record(firing, summary=summary)
    try:
        uow.commit()
    except ConflictError:
        return None
    return reminder


# ---- the whole sweep -------------------------------------------------------------------------


def sweep(svc: Services, sinks: Sequence[Any], *, now: datetime | None = None,
          policy: RetryPolicy | None = None, schedules: bool = True,
          stop: threading.Event | None = None) -> SweepReport:
    """One whole sweep: recurring triggers, record what is due, report what could not be read,
    deliver what is pending (until ``stop`` is set: checked between pages of deliveries)."""
    now = now or svc.now()
    report = SweepReport()
    if schedules:
        fire_schedules(svc, now, report)
    record_due(svc, now, report=report)
    report_unreadable(svc, now)
    channels = [s for s in sinks if is_channel(s)]
    if channels:  # digests are gathered by a daemon that can send them
        report.digests_gathered = gather_digests(svc, now)
    deliver_pending(svc, sinks, now, policy=policy, report=report, stop=stop)
    if channels and not (stop and stop.is_set()):
        report.digests_sent = deliver_digests(svc, channels, now, policy or RetryPolicy())
    report.keys_purged = purge_idempotency_keys(svc, now)
    return report


def purge_idempotency_keys(svc: Services, now: datetime, batch: int = 1000) -> int:
    """Remove the HTTP API's idempotency keys that expired (24 hours after their request), in
    batches so that no write grows with the backlog."""
    purged = 0
    while (n := svc.store.purge_idempotency_keys(now, batch)) > 0:
        purged += n
        if n < batch:
            break
    return purged


def report_unreadable(svc: Services, now: datetime) -> None:
    """One automation_failure per broken definition file (per version of the file) and per
    quarantined record (per damage), however many sweeps notice it."""
    if svc.content_loader is not None:
        broken = getattr(svc.content, "broken", {}) or {}
        for path, problems in broken.items():
            record_failure(svc, f"content:{path}", now,
                           f"definition {path} is broken and is not served: {'; '.join(problems)}",
                           entity_type="content", once_per=_fingerprint(path, problems))
    for rid, reason in list(svc.store.quarantined.items()):
        record_failure(svc, rid, now, f"record {rid} cannot be read and is quarantined: {reason}",
                       entity_type="record", once_per=_fingerprint(rid, [reason]))


def _fingerprint(what: object, problems: Sequence[str]) -> str:
    """What makes a failure new: the problems and, for a file, its bytes (an edit that leaves
    it broken is reported again)."""
    import hashlib
    from pathlib import Path

    digest = hashlib.sha256(f"{what}|{'|'.join(problems)}".encode())
    path = Path(str(what))
    if path.is_file():
        with contextlib.suppress(OSError):
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]
