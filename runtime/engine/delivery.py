"""Delivery: every pending reminder to every sink, at least once.

A pending reminder is leased (a version-bumping bookkeeping write that also counts the
attempt), handed to every sink with its ID as idempotency key, then settled: delivered, retried
with backoff, or failed with one ``automation_failure`` (never one about a failed failure). A
daemon killed mid-page leaves at most one page leased until the lease runs out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from runtime.engine.services import Services
from runtime.engine.uow import UnitOfWork, commit_batched
from runtime.model import DeliveryStatus, Reminder, ReminderKind
from runtime.notify import DeliveryError, Sink, payload_of
from runtime.rules.reminders import Firing, reminder_of

if TYPE_CHECKING:
    from runtime.engine.reminders import SweepReport


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



def deliver_pending(svc: Services, sinks: Sequence[Sink], now: datetime, *,
                    policy: RetryPolicy | None = None, limit: int = 50,
                    report: SweepReport | None = None) -> SweepReport:
    """Deliver every pending reminder whose time has come to every sink: lease a page of
    ``limit`` (batched writes), deliver them, settle the outcomes (batched), repeat. A daemon
    that dies mid-page leaves at most ``limit`` reminders leased until the lease runs out."""
    from runtime.engine.reminders import SweepReport

    report = report or SweepReport()
    policy = policy or RetryPolicy()
    while True:
        page = svc.store.pending_deliveries(now, limit)
        # a lease that ran out with every attempt spent: the deliveries never finished (a
        # daemon died in them each time); it fails now instead of being leased forever
        spent = [r for r in page if r.attempts >= policy.max_attempts]
        fresh = [r for r in page if r.attempts < policy.max_attempts]
        leases = [UnitOfWork(svc, now) for _ in fresh]
        claims = [u.touch(r, {"deliver_after": now + policy.lease, "attempts": r.attempts + 1},
                          bump=True) for u, r in zip(leases, fresh, strict=True)]
        won = commit_batched(svc, leases)
        claimed = [c for c, ok in zip(claims, won, strict=True) if ok]  # others: another daemon's
        outcomes = [_settle_delivery(svc, c, _deliver(sinks, payload_of(c)), now, policy)
                    for c in claimed]
        outcomes += [_settle_delivery(svc, r, f"{r.attempts} delivery attempts never finished "
                                      "(did a daemon die while delivering it?)", now, policy)
                     for r in spent]
        written = commit_batched(svc, [uow for uow, _, _ in outcomes])
        for ok, (_, bucket, done) in zip(written, outcomes, strict=True):
            if ok:  # else the lease ran out and another daemon settles it
                getattr(report, bucket).append(done)
        if len(page) < limit or not (claimed or spent):
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
