"""Digests: a person with ``delivery: {digest: "HH:MM"}`` gets one message a local day at that
time, listing the reminders recorded for them since their last digest, grouped by bundle.

* Each such reminder is recorded with the recipient's ``digest_at`` (their next digest time)
  and indexed by ``digest_after`` (:mod:`runtime.engine.routing`).
* **Gathering**: when a digest time has come, one write per person creates the
  :class:`~runtime.model.Digest` of that person and local day (a deterministic ID: the
  conditional create makes it once across daemons) and marks each gathered recipient
  ``digested``. A daemon that was down gathers everything since the last digest into one.
* **Sending** is a delivery like a reminder's: leased, retried with backoff, failed with one
  ``automation_failure`` to operators and the log.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from runtime.engine.services import Services
from runtime.engine.uow import UnitOfWork, commit_batched
from runtime.model import (
    DeliveryStatus,
    Digest,
    Recipient,
    RecipientStatus,
    Reminder,
    ReminderKind,
    digest_id_for,
)
from runtime.rules.reminders import Firing, digest_after
from runtime.rules.routing import local_day, next_digest_at

GATHER_LIMIT = 50_000
"""The most reminders one sweep reads from the digest index: a day's reminders of every digest
person at once, so that each person's digest is gathered whole (beyond it, what is not read
waits for the person's next digest)."""
MAX_ITEMS = 200
"""Reminders one digest write gathers at most (the rest wait for the person's next digest), and
fewer on a store with a per-write limit (two items each: the reminder and its event)."""


def _due_items(reminder: Reminder, now: datetime) -> list[Recipient]:
    return [r for r in reminder.recipients if r.delivery == "digest"
            and r.status == RecipientStatus.PENDING and r.digest_at is not None and r.digest_at <= now]


def gather_digests(svc: Services, now: datetime, rounds: int = 3) -> list[Digest]:
    """Create the digest of every person whose digest time has come and who has reminders
    waiting for it; each once (a digest another daemon created first is left to it). A
    reminder for several digest people is written once per person: when their writes meet in
    one batch the later ones lose on its version and are gathered again, from a fresh read,
    in the next round."""
    from runtime.engine.routing import directory_of

    directory = directory_of(svc)
    limit = svc.store.max_items
    most = MAX_ITEMS if limit is None else max(1, min(MAX_ITEMS, (limit - 2) // 2))
    made: list[Digest] = []
    only: set[str] | None = None
    for _ in range(rounds):
        waiting: dict[str, list[Reminder]] = defaultdict(list)
        for reminder in svc.store.pending_digests(now, GATHER_LIMIT):
            for rcpt in _due_items(reminder, now):
                if only is None or rcpt.person_id in only:
                    waiting[rcpt.person_id].append(reminder)
        people = sorted(waiting)
        units = []
        for person_id in people:
            found = sorted({r.reminder_id: r for r in waiting[person_id]}.values(),
                           key=lambda r: (r.recorded_at, r.reminder_id))
            units.append(_gather_one(svc, person_id, found[:most], directory, now))
        written = commit_batched(svc, [u for u, _ in units])
        made += [d for ok, (_, d) in zip(written, units, strict=True) if ok and d is not None]
        only = {pid for ok, pid in zip(written, people, strict=True) if not ok}
        if not only:
            break
    return made


def _gather_one(svc: Services, person_id: str, found: list[Reminder], directory: Any,
                now: datetime) -> tuple[UnitOfWork, Digest | None]:
    uow = UnitOfWork(svc, now)
    person = directory.people.get(person_id)
    if person is None:  # left the directory since: their reminders are not sent to them
        for reminder in found:
            _mark(uow, reminder, person_id, {"status": RecipientStatus.SKIPPED,
                                             "error": "no longer in the people directory"},
                  f"{person_id} left the people directory: {reminder.reminder_id} is not sent")
        return uow, None
    at = max(r.digest_at for rem in found for r in _due_items(rem, now)
             if r.person_id == person_id and r.digest_at is not None)
    day = local_day(at, person.timezone)
    digest_id = digest_id_for(person_id, day)
    if svc.store.find(Digest, digest_id) is not None:
        # this day's digest went out already (another daemon gathered it just before these
        # were recorded): they wait for the next one
        later = next_digest_at(at + timedelta(seconds=1), person.digest_at or at.time(), person.timezone)
        for reminder in found:
            _mark(uow, reminder, person_id, {"digest_at": later},
                  f"digest of {person_id} for {reminder.reminder_id} moved to {later.isoformat()}: "
                  f"their digest of {day} was sent already")
        return uow, None
    digest = Digest(
        digest_id=digest_id, person_id=person_id, local_date=day, timezone=person.timezone,
        digest_at=at, reminder_ids=[r.reminder_id for r in found], created_at=now,
        updated_at=now, deliver_after=now, version=1,
    )
    created = uow.create(digest, f"digest {digest_id} for {person_id} on {day}: "
                                 f"{len(found)} reminder{'s' if len(found) != 1 else ''}")
    for reminder in found:
        _mark(uow, reminder, person_id, {"status": RecipientStatus.DIGESTED, "digest_id": digest_id},
              f"{reminder.reminder_id} gathered into digest {digest_id} for {person_id}")
    return uow, created


def _mark(uow: UnitOfWork, reminder: Reminder, person_id: str, fields: dict[str, Any],
          summary: str) -> None:
    """Change the pending digest entry of ``person_id`` on ``reminder`` (an audited update)."""
    recipients = [r.model_copy(update=fields) if r.person_id == person_id and r.delivery == "digest"
                  and r.status == RecipientStatus.PENDING else r for r in reminder.recipients]
    change = {"recipients": recipients, "digest_after": digest_after(recipients)}
    uow.update(reminder, change, summary, action="digest")


# ---- sending ---------------------------------------------------------------------------------


def deliver_digests(svc: Services, channels: Sequence[Any], now: datetime, policy: Any,
                    limit: int = 50) -> list[Digest]:
    """Send every pending digest on every channel not yet sent on (concurrently, bounded by
    the policy's workers; a page is cut to fit its lease like a reminder page), leased and
    retried like a reminder's delivery; returns the digests settled as sent."""
    from concurrent.futures import ThreadPoolExecutor

    from runtime.engine.delivery import PersonOutcome, _leases, _send_one
    from runtime.engine.routing import directory_of

    if not channels:
        return []
    directory = directory_of(svc)
    limit = policy.page_size(list(channels), limit)
    sent: list[Digest] = []
    with ThreadPoolExecutor(max_workers=max(1, policy.workers),
                            thread_name_prefix="dataops-digest") as pool:
        while True:
            page = svc.store.pending_digest_deliveries(now, limit)
            spent, units, leased = _leases(svc, page, now, policy)
            won = commit_batched(svc, units)
            # a digest whose attempts are spent without one finishing fails now, as a reminder does
            never = "sending attempts never finished (did a daemon die while sending it?)"
            jobs: list[tuple[Digest, Any, list[Any]]] = [
                (d, PersonOutcome(retry=[f"{d.attempts} {never}"]), []) for d in spent]
            for digest in [d for d, ok in zip(leased, won, strict=True) if ok]:
                outcome = PersonOutcome()
                person = directory.people.get(digest.person_id)
                futures = []
                if person is None:
                    outcome.skipped = "no longer in the people directory"
                else:
                    todo = [c for c in channels if c.channel not in digest.channels]
                    reachable = [c for c in todo if c.address(person)]
                    if todo and not reachable:
                        outcome.skipped = f"no address for {', '.join(c.channel for c in todo)}"
                    if reachable:
                        try:
                            message = digest_message_of(svc, digest)
                        except Exception as e:  # noqa: BLE001 - this digest's failed attempt
                            outcome.retry.append(f"could not render the digest: "
                                                 f"{type(e).__name__}: {e}")
                            reachable = []
                        futures = [(c.channel, pool.submit(_send_one, c, person, message, None))
                                   for c in reachable]
                jobs.append((digest, outcome, futures))
            settled = []
            for digest, outcome, futures in jobs:
                for channel, future in futures:
                    outcome.take(channel, future.result())
                settled.append(_settle(svc, digest, outcome, now, policy))
            written = commit_batched(svc, [u for u, _ in settled])
            sent += [done for ok, (_, done) in zip(written, settled, strict=True)
                     if ok and done.delivery_status == DeliveryStatus.DELIVERED]
            if len(page) < limit or not (any(won) or spent):
                return sent


def _settle(svc: Services, digest: Digest, outcome: Any, now: datetime, policy: Any
            ) -> tuple[UnitOfWork, Digest]:
    uow = UnitOfWork(svc, now)
    channels = [*digest.channels, *outcome.sent]
    error = "; ".join([*outcome.retry, *outcome.refused]) or outcome.skipped
    if not outcome.retry and not outcome.refused:
        fields: dict[str, Any] = {"delivery_status": DeliveryStatus.DELIVERED, "deliver_after": None,
                                  "channels": channels, "sent_at": now, "last_error": outcome.skipped}
        summary = (f"digest {digest.digest_id} not sent to {digest.person_id}: {outcome.skipped}"
                   if outcome.skipped else f"sent digest {digest.digest_id} to {digest.person_id} "
                   f"({', '.join(outcome.sent)})")
        return uow, uow.update(digest, fields, summary, action="deliver")
    if outcome.retry and digest.attempts < policy.max_attempts:
        fields = {"deliver_after": now + policy.backoff(digest.attempts), "channels": channels,
                  "last_error": error}
        return uow, uow.update(digest, fields, f"sending digest {digest.digest_id} failed "
                               f"(attempt {digest.attempts}): {error}", action="retry")
    fields = {"delivery_status": DeliveryStatus.FAILED, "deliver_after": None, "channels": channels,
              "last_error": error}
    done = uow.update(digest, fields, f"digest {digest.digest_id} failed: {error}", action="fail")
    uow.record(Firing(ReminderKind.AUTOMATION_FAILURE, "digest", digest.digest_id, None, None, now,
                      f"could not send digest {digest.digest_id} to {digest.person_id} after "
                      f"{digest.attempts} attempts: {error}"))
    return uow, done


def digest_message_of(svc: Services, digest: Digest) -> Any:
    """The digest's message: its reminders as they read now, grouped by bundle (in the order
    their first reminder was recorded)."""
    from runtime.channels import DigestGroup, digest_message
    from runtime.engine.messages import Reads, facts_for

    reads = Reads(svc)
    groups: dict[str, DigestGroup] = {}
    for rid in digest.reminder_ids:
        reminder = reads.of(Reminder, rid)
        if reminder is None:
            continue
        rcpt = next((r for r in reminder.recipients if r.person_id == digest.person_id), None)
        facts = facts_for(svc, reminder, rcpt, reads)
        key = reminder.bundle_id or ""
        title = facts.bundle_title or ("Automation" if reminder.kind == ReminderKind.AUTOMATION_FAILURE
                                       else "Other")
        groups.setdefault(key, DigestGroup(title + (f" ({key})" if key else ""), [])).items.append(facts)
    return digest_message(digest.digest_id, digest.local_date.isoformat(), list(groups.values()))
