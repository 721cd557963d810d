"""Delivery: every pending reminder to every sink, at least once.

A pending reminder is leased (a version-bumping bookkeeping write that also counts the
attempt), handed to every sink with its ID as idempotency key, then settled: delivered, retried
with backoff, or failed with one ``automation_failure`` (never one about a failed failure). A
daemon killed mid-page leaves at most one page leased until the lease runs out.

The deliveries of a page run concurrently on a bounded thread pool, each bounded by its sink's
timeout, and the page is cut so that its worst case fits in the lease. A stop event (the
daemon's SIGTERM) is checked between pages and before each delivery starts; a delivery that had
not started gives its lease back. An ``automation_failure`` about a failed delivery also goes to
the log, so a broken sink is never the only place its own failure is sent.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from threading import Event
from typing import TYPE_CHECKING, Any, TypeVar

from runtime.engine.services import Services
from runtime.engine.uow import UnitOfWork, commit_batched
from runtime.model import (
    DeliveryStatus,
    Digest,
    Recipient,
    RecipientStatus,
    Reminder,
    ReminderKind,
)
from runtime.notify import DeliveryError, LogSink, Sink, payload_of
from runtime.rules.reminders import Firing
from runtime.store import Changes

if TYPE_CHECKING:
    from runtime.engine.reminders import SweepReport


@dataclass(frozen=True)
class RetryPolicy:
    """How deliveries are retried: attempt n waits ``base * factor**(n-1)``, capped.

    Deliveries of a page run on ``workers`` threads (one task per reminder and sink), each
    bounded by its sink's timeout (a webhook's ``timeout_s``; ``timeout`` for sinks without
    one). A page is cut so that its deliveries fit in ``lease`` minus ``margin`` even if every
    one of them runs into its timeout."""

    max_attempts: int = 5
    base: timedelta = timedelta(minutes=1)
    factor: float = 4.0
    cap: timedelta = timedelta(hours=2)
    lease: timedelta = timedelta(minutes=5)
    workers: int = 8
    timeout: timedelta = timedelta(seconds=10)
    margin: timedelta = timedelta(seconds=30)

    def backoff(self, attempts: int) -> timedelta:
        return min(self.cap, self.base * (self.factor ** max(0, attempts - 1)))

    def page_size(self, sinks: Sequence[Sink], limit: int) -> int:
        """The most reminders a page may hold so that its worst case (every delivery runs into
        its timeout) ends before the lease: ``timeout * ceil(page * sinks / workers) + margin
        <= lease``; at least 1."""
        timeout = max([self.timeout.total_seconds(),
                       *(float(getattr(s, "timeout_s", 0) or 0) for s in sinks)])
        rounds = int((self.lease - self.margin).total_seconds() // max(timeout, 1e-3))
        fits = rounds * max(1, self.workers) // max(1, len(sinks))
        return max(1, min(limit, fits))


NOT_STARTED = "not started: the daemon is stopping"

D = TypeVar("D", Reminder, Digest)


@dataclass
class PersonOutcome:
    """What one delivery attempt did for one recipient: the channels it was sent on, the
    failed attempts (retried) and the permanent refusals (that recipient fails)."""

    sent: list[str] = field(default_factory=list)
    retry: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    skipped: str | None = None

    def take(self, channel: str, result: str | tuple[str, str] | None) -> None:
        """Count one send's result (:func:`_send_one`): sent, retried, refused for good."""
        if result is None:
            self.sent.append(channel)
        elif isinstance(result, tuple):
            self.refused.append(result[1])
        elif result == NOT_STARTED:
            self.retry.append(f"{channel}: {NOT_STARTED}")
        else:
            self.retry.append(result)


@dataclass
class Outcome:
    """One reminder's delivery attempt: the sinks' errors (None: every sink took it) and, per
    recipient sent to, a :class:`PersonOutcome`."""

    error: str | None = None
    people: dict[str, PersonOutcome] = field(default_factory=dict)
    not_started: bool = False

    @property
    def retry_error(self) -> str | None:
        """Everything that failed and is worth another attempt, or None."""
        errors = [self.error] if self.error else []
        errors += [f"{pid}: {'; '.join(o.retry)}" for pid, o in self.people.items() if o.retry]
        return "; ".join(errors) or None


def is_channel(sink: Any) -> bool:
    return hasattr(sink, "channel")


def deliver_pending(svc: Services, sinks: Sequence[Any], now: datetime, *,
                    policy: RetryPolicy | None = None, limit: int = 50,
                    report: SweepReport | None = None, stop: Event | None = None) -> SweepReport:
    """Deliver every pending reminder whose time has come to every sink and to each of its
    recipients on every channel (smtp://, chat://): lease a page of up to ``limit`` (cut to fit
    the lease, batched writes), deliver them concurrently, settle the outcomes (batched),
    repeat until none is left or ``stop`` is set. A daemon that dies mid-page leaves at most
    one page leased until the lease runs out."""
    from runtime.engine.reminders import SweepReport

    report = report or SweepReport()
    policy = policy or RetryPolicy()
    outlets = [s for s in sinks if not is_channel(s)]
    channels = [s for s in sinks if is_channel(s)]
    limit = policy.page_size([*outlets, *channels, *channels], limit)  # ~2 recipients each
    with ThreadPoolExecutor(max_workers=max(1, policy.workers),
                            thread_name_prefix="dataops-delivery") as pool:
        while not (stop and stop.is_set()):
            page, spent, claimed = _claim_page(svc, now, limit, policy)
            busy, more = _deliver_page(svc, pool, outlets, channels, spent, claimed, now, policy,
                                       report, stop)
            if (len(page) < limit and not more) or not busy:
                break  # (an automation_failure a settlement recorded goes out in this sweep)
    return report


def _leases(svc: Services, page: list[D], now: datetime, policy: RetryPolicy
            ) -> tuple[list[D], list[UnitOfWork], list[D]]:
    """A page (of reminders or digests) split into the records whose attempts are spent and the
    leases of the others (their units of work and the leased records)."""
    # a lease that ran out with every attempt spent: the deliveries never finished (a
    # daemon died in them each time); it fails now instead of being leased forever
    spent = [r for r in page if r.attempts >= policy.max_attempts]
    fresh = [r for r in page if r.attempts < policy.max_attempts]
    units = [UnitOfWork(svc, now) for _ in fresh]
    claims = [u.touch(r, {"deliver_after": now + policy.lease, "attempts": r.attempts + 1},
                      bump=True) for u, r in zip(units, fresh, strict=True)]
    return spent, units, claims


def _claim_page(svc: Services, now: datetime, limit: int, policy: RetryPolicy
                ) -> tuple[list[Reminder], list[Reminder], list[Reminder]]:
    """Read and lease one page: ``(page, spent, claimed)``. A store that can lock rows and skip
    the locked ones (PostgreSQL: ``claim_deliveries``) leases in the transaction that reads,
    so daemons never claim, nor wait for, each other's reminders; elsewhere the leases are
    version-conditional writes and a reminder another daemon leased first is left to it."""
    claim = getattr(svc.store, "claim_deliveries", None)
    if claim is not None:
        held: dict[str, tuple[list[Reminder], list[Reminder]]] = {}

        def lease(page: list[Reminder]) -> Changes:
            spent, units, claims = _leases(svc, page, now, policy)
            held["page"] = (spent, claims)
            merged = UnitOfWork(svc, now)
            for unit in units:
                merged.changes.extend(unit.changes)
            return merged.changes

        page = claim(now, limit, lease)
        spent, claimed = held.get("page", ([], []))
        return page, spent, claimed
    page = svc.store.pending_deliveries(now, limit)
    spent, units, claims = _leases(svc, page, now, policy)
    won = commit_batched(svc, units)
    return page, spent, [c for c, ok in zip(claims, won, strict=True) if ok]


def _deliver_page(svc: Services, pool: ThreadPoolExecutor, outlets: Sequence[Sink],
                  channels: Sequence[Any], spent: list[Reminder], claimed: list[Reminder],
                  now: datetime, policy: RetryPolicy, report: SweepReport,
                  stop: Event | None) -> tuple[bool, bool]:
    """Deliver and settle one leased page: (whether it held anything this daemon could take,
    whether settling it recorded new reminders: automation failures, due at once)."""
    outcomes = _deliver_all(svc, pool, outlets, channels, claimed, stop)
    units = [_release(svc, c, now) if o.not_started else
             _settle_delivery(svc, c, o, now, policy) for c, o in zip(claimed, outcomes, strict=True)]
    units += [_settle_delivery(svc, r, Outcome(f"{r.attempts} delivery attempts never finished "
                                               "(did a daemon die while delivering it?)"), now, policy)
              for r in spent]
    written = commit_batched(svc, [uow for uow, _, _ in units])
    recorded = False
    for ok, (uow, bucket, done) in zip(written, units, strict=True):
        if ok and bucket:  # else the lease ran out and another daemon settles it
            getattr(report, bucket).append(done)
            recorded = recorded or any(isinstance(r, Reminder) for r in uow.changes.creates)
    return bool(claimed or spent), recorded


def _deliver_all(svc: Services, pool: ThreadPoolExecutor, outlets: Sequence[Sink],
                 channels: Sequence[Any], claimed: list[Reminder], stop: Event | None
                 ) -> list[Outcome]:
    """Every claimed reminder to every sink, and to each recipient not yet sent to on every
    channel, at once (bounded by the pool). Messages are rendered here, before the sends
    start (the store is read on this thread only)."""
    from runtime.engine.messages import Reads
    from runtime.engine.routing import directory_of

    directory = directory_of(svc) if channels else None
    reads = Reads(svc)
    jobs = []
    for reminder in claimed:
        payload = payload_of(reminder)
        sink_futures = [pool.submit(_deliver_one, sink, payload, stop)
                        for sink in _sinks_for(outlets, payload)]
        person_futures: dict[str, list[tuple[str, Any]]] = {}
        skipped: dict[str, str] = {}
        for rcpt in reminder.recipients:
            if directory is None or rcpt.delivery != "immediate" or rcpt.status != RecipientStatus.PENDING:
                continue
            person = directory.people.get(rcpt.person_id)
            if person is None:
                skipped[rcpt.person_id] = "no longer in the people directory"
                continue
            todo = [c for c in channels if c.channel not in rcpt.channels]
            reachable = [c for c in todo if c.address(person)]
            if todo and not reachable:
                skipped[rcpt.person_id] = f"no address for {', '.join(c.channel for c in todo)}"
                continue
            if reachable:
                message = _message(svc, reminder, rcpt, reads)
                if isinstance(message, str):  # it cannot be rendered: retried, then reported
                    person_futures[rcpt.person_id] = [(c.channel, _done(message)) for c in reachable]
                    continue
                person_futures[rcpt.person_id] = [
                    (c.channel, pool.submit(_send_one, c, person, message, stop)) for c in reachable]
        jobs.append((sink_futures, person_futures, skipped))
    return [_outcome(*job) for job in jobs]


def _message(svc: Services, reminder: Reminder, rcpt: Recipient, reads: Any) -> Any:
    """The message of ``reminder`` for ``rcpt``, or why it could not be made (a template or a
    record that does not render must not stop the other deliveries)."""
    from runtime.channels import reminder_message
    from runtime.engine.messages import facts_for

    try:
        return reminder_message(facts_for(svc, reminder, rcpt, reads))
    except Exception as e:  # noqa: BLE001 - reported as this recipient's failed attempt
        return f"could not render the message: {type(e).__name__}: {e}"


def _done(result: str) -> Any:
    from concurrent.futures import Future

    future: Future[str] = Future()
    future.set_result(result)
    return future


def _outcome(sink_futures: list[Any], person_futures: dict[str, list[tuple[str, Any]]],
             skipped: dict[str, str]) -> Outcome:
    errors = [f.result() for f in sink_futures]
    outcome = Outcome(error="; ".join(e for e in errors if e and e != NOT_STARTED) or None)
    starts = list(errors)
    for pid, sends in person_futures.items():
        person = outcome.people.setdefault(pid, PersonOutcome())
        for channel, future in sends:
            result = future.result()
            starts.append(result if result == NOT_STARTED else None)
            person.take(channel, result)
    for pid, why in skipped.items():
        outcome.people.setdefault(pid, PersonOutcome()).skipped = why
    outcome.not_started = bool(starts) and all(e == NOT_STARTED for e in starts)
    return outcome


def _send_one(channel: Any, person: Any, message: Any, stop: Event | None
              ) -> str | tuple[str, str] | None:
    """None (sent), an error string (retry), ``("refused", error)`` (permanent), or
    NOT_STARTED."""
    from runtime.channels import SendError

    if stop is not None and stop.is_set():
        return NOT_STARTED
    try:
        channel.send(person, message)
    except SendError as e:
        return ("refused", str(e)) if e.permanent else str(e)
    except DeliveryError as e:
        return str(e)
    except Exception as e:  # a channel bug must not stop the sweep; it is retried and reported
        return f"{channel.url}: {type(e).__name__}: {e}"
    return None


def _sinks_for(sinks: Sequence[Sink], payload: dict[str, Any]) -> list[Sink]:
    """The configured sinks, plus the log for an automation failure (it always goes to the
    log: a broken sink must not be the only place its own failure goes; the log's outcome does
    not count)."""
    if payload["kind"] == ReminderKind.AUTOMATION_FAILURE \
            and not any(isinstance(s, LogSink) for s in sinks):
        return [*sinks, _AlsoLogged()]
    return list(sinks)


class _AlsoLogged(LogSink):
    """The extra log line of a failure about a failed delivery; it never fails the attempt."""

    def deliver(self, payload: dict[str, Any]) -> None:
        with contextlib.suppress(Exception):
            super().deliver(payload)


def _deliver_one(sink: Sink, payload: dict[str, Any], stop: Event | None) -> str | None:
    if stop is not None and stop.is_set():
        return NOT_STARTED
    try:
        sink.deliver(payload)
    except DeliveryError as e:
        return str(e)
    except Exception as e:  # a sink bug must not stop the sweep; it is retried and reported
        return f"{sink.url}: {type(e).__name__}: {e}"
    return None


def _release(svc: Services, claimed: Reminder, now: datetime) -> tuple[UnitOfWork, str, Reminder]:
    """Give back the lease of a reminder whose delivery never started (the daemon is stopping):
    due again now, the attempt not counted."""
    uow = UnitOfWork(svc, now)
    done = uow.touch(claimed, {"deliver_after": now, "attempts": claimed.attempts - 1}, bump=True)
    return uow, "", done


def _recipients_after(claimed: Reminder, outcome: Outcome, now: datetime, final: bool
                      ) -> tuple[list[Recipient], list[tuple[str, str]]]:
    """The recipients after an attempt (those still pending fail too when ``final``), and the
    (person, why) of each one a channel refused for good in it."""
    out: list[Recipient] = []
    failed: list[tuple[str, str]] = []
    for rcpt in claimed.recipients:
        o = outcome.people.get(rcpt.person_id)
        if o is None or rcpt.status != RecipientStatus.PENDING:
            out.append(rcpt)
            continue
        fields: dict[str, Any] = {"channels": [*rcpt.channels, *o.sent], "attempts": rcpt.attempts + 1}
        if o.skipped:
            fields |= {"status": RecipientStatus.SKIPPED, "error": o.skipped}
        elif o.refused:
            fields |= {"status": RecipientStatus.FAILED, "error": "; ".join(o.refused)}
            failed.append((rcpt.person_id, fields["error"]))
        elif o.retry:
            error = "; ".join(o.retry)
            fields |= {"error": error}
            if final:  # the reminder's own failure names it
                fields |= {"status": RecipientStatus.FAILED}
        else:
            fields |= {"status": RecipientStatus.SENT, "sent_at": now, "error": None}
        out.append(rcpt.model_copy(update=fields))
    return out, failed


def _settle_delivery(svc: Services, claimed: Reminder, outcome: Outcome, now: datetime,
                     policy: RetryPolicy) -> tuple[UnitOfWork, str, Reminder]:
    """The unit of work that records a delivery's outcome, the report bucket, the reminder."""
    rid, attempts = claimed.reminder_id, claimed.attempts  # the lease counted this attempt
    error = outcome.retry_error
    final = error is not None and attempts >= policy.max_attempts
    recipients, refused = _recipients_after(claimed, outcome, now, final)
    fields: dict[str, Any] = {"recipients": recipients} if recipients != claimed.recipients else {}
    if error is None:
        bucket, action, summary = "delivered", "deliver", f"delivered {claimed.kind} reminder {rid}"
        fields |= {"delivery_status": DeliveryStatus.DELIVERED, "deliver_after": None,
                   "last_error": None}
        sent = [r.person_id for r in recipients if r.status == RecipientStatus.SENT]
        if sent:
            summary += f" (sent to {', '.join(sent)})"
    elif not final:
        bucket, action = "retried", "retry"
        summary = f"delivery attempt {attempts} of {rid} failed: {error}"
        fields |= {"deliver_after": now + policy.backoff(attempts), "last_error": error}
    else:
        bucket, action = "failed", "fail"
        summary = f"delivery of {rid} failed {attempts} times: {error}"
        fields |= {"delivery_status": DeliveryStatus.FAILED, "deliver_after": None,
                   "last_error": error}
    uow = UnitOfWork(svc, now)
    done = uow.update(claimed, fields, summary, action=action)
    if claimed.kind == ReminderKind.AUTOMATION_FAILURE:
        return uow, bucket, done  # never a failure about a failed failure
    if bucket == "failed":  # one automation_failure per failed reminder
        uow.record(Firing(
            ReminderKind.AUTOMATION_FAILURE, "reminder", rid, claimed.bundle_id, claimed.task_id,
            now, f"could not deliver {claimed.kind} reminder {rid} after {attempts} "
            f"attempts: {error}"))
    for person_id, why in refused:  # one per recipient refused for good; the others got theirs
        uow.record(Firing(
            ReminderKind.AUTOMATION_FAILURE, "reminder", rid, claimed.bundle_id, claimed.task_id,
            now, f"could not send {claimed.kind} reminder {rid} to {person_id}: {why}",
            discriminator=person_id))
    return uow, bucket, done
