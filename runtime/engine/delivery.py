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
from dataclasses import dataclass
from datetime import datetime, timedelta
from threading import Event
from typing import TYPE_CHECKING, Any

from runtime.engine.services import Services
from runtime.engine.uow import UnitOfWork, commit_batched
from runtime.model import DeliveryStatus, Reminder, ReminderKind
from runtime.notify import DeliveryError, LogSink, Sink, payload_of
from runtime.rules.reminders import Firing, reminder_of
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


def deliver_pending(svc: Services, sinks: Sequence[Sink], now: datetime, *,
                    policy: RetryPolicy | None = None, limit: int = 50,
                    report: SweepReport | None = None, stop: Event | None = None) -> SweepReport:
    """Deliver every pending reminder whose time has come to every sink: lease a page of up to
    ``limit`` (cut to fit the lease, batched writes), deliver them concurrently, settle the
    outcomes (batched), repeat until none is left or ``stop`` is set. A daemon that dies
    mid-page leaves at most one page leased until the lease runs out."""
    from runtime.engine.reminders import SweepReport

    report = report or SweepReport()
    policy = policy or RetryPolicy()
    limit = policy.page_size(sinks, limit)
    with ThreadPoolExecutor(max_workers=max(1, policy.workers),
                            thread_name_prefix="dataops-delivery") as pool:
        while not (stop and stop.is_set()):
            page, spent, claimed = _claim_page(svc, now, limit, policy)
            busy = _deliver_page(svc, pool, sinks, spent, claimed, now, policy, report, stop)
            if len(page) < limit or not busy:
                break
    return report


def _leases(svc: Services, page: list[Reminder], now: datetime, policy: RetryPolicy
            ) -> tuple[list[Reminder], list[UnitOfWork], list[Reminder]]:
    """A page split into the reminders whose attempts are spent and the leases of the others
    (their units of work and the leased records)."""
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


def _deliver_page(svc: Services, pool: ThreadPoolExecutor, sinks: Sequence[Sink],
                  spent: list[Reminder], claimed: list[Reminder], now: datetime,
                  policy: RetryPolicy, report: SweepReport, stop: Event | None) -> bool:
    """Deliver and settle one leased page; False when it held nothing this daemon could take."""
    errors = _deliver_all(pool, sinks, claimed, stop)
    outcomes = [_release(svc, c, now) if e == NOT_STARTED else
                _settle_delivery(svc, c, e, now, policy) for c, e in zip(claimed, errors, strict=True)]
    outcomes += [_settle_delivery(svc, r, f"{r.attempts} delivery attempts never finished "
                                  "(did a daemon die while delivering it?)", now, policy)
                 for r in spent]
    written = commit_batched(svc, [uow for uow, _, _ in outcomes])
    for ok, (_, bucket, done) in zip(written, outcomes, strict=True):
        if ok and bucket:  # else the lease ran out and another daemon settles it
            getattr(report, bucket).append(done)
    return bool(claimed or spent)


def _deliver_all(pool: ThreadPoolExecutor, sinks: Sequence[Sink], claimed: list[Reminder],
                 stop: Event | None) -> list[str | None]:
    """Every claimed reminder to every sink at once (bounded by the pool): per reminder, None or
    the sinks' errors; NOT_STARTED when ``stop`` was set before any of its deliveries began."""
    payloads = [payload_of(c) for c in claimed]
    futures = [[pool.submit(_deliver_one, sink, p, stop) for sink in _sinks_for(sinks, p)]
               for p in payloads]
    results: list[str | None] = []
    for per_sink in futures:
        errors = [f.result() for f in per_sink]
        if errors and all(e == NOT_STARTED for e in errors):
            results.append(NOT_STARTED)
            continue
        results.append("; ".join(e for e in errors if e) or None)
    return results


def _sinks_for(sinks: Sequence[Sink], payload: dict[str, Any]) -> list[Sink]:
    """The configured sinks, plus the log for a failure about a failed delivery (a broken sink
    must not be the only place its own failure goes; the log's outcome does not count)."""
    if payload["kind"] == ReminderKind.AUTOMATION_FAILURE and payload["entity_type"] == "reminder" \
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


def _settle_delivery(svc: Services, claimed: Reminder, error: str | None, now: datetime,
                     policy: RetryPolicy) -> tuple[UnitOfWork, str, Reminder]:
    """The unit of work that records a delivery's outcome, the report bucket, the reminder."""
    rid, attempts = claimed.reminder_id, claimed.attempts  # the lease counted this attempt
    fields: dict[str, Any] = {}
    if error is None:
        bucket, action, summary = "delivered", "deliver", f"delivered {claimed.kind} reminder {rid}"
        fields |= {"delivery_status": DeliveryStatus.DELIVERED, "deliver_after": None,
                   "last_error": None}
    elif attempts < policy.max_attempts:
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
    if bucket == "failed" and claimed.kind != ReminderKind.AUTOMATION_FAILURE:
        # one automation_failure per failed reminder; never one about a failed failure
        firing = Firing(
            ReminderKind.AUTOMATION_FAILURE, "reminder", rid, claimed.bundle_id, claimed.task_id,
            now, f"could not deliver {claimed.kind} reminder {rid} after {attempts} "
            f"attempts: {error}",
        )
        uow.create(reminder_of(firing, now), firing.summary, action="record")
    return uow, bucket, done
