"""Assistant jobs on every store: enqueued by definitions and by hand, claimed under a lease,
heartbeats, expiry, completion (with a file that satisfies an artifact proof), failure with
retries and one automation_failure, cancellation with the task or bundle."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from runtime.api import Runtime
from runtime.clock import FixedClock
from runtime.content import load_content
from runtime.engine import Services
from runtime.errors import InputError, NotFoundError, TransitionRejected
from runtime.model import AssistantJob, Reminder, ReminderKind
from runtime.model.common import utc
from runtime.store.memory import MemoryStore
from tests.helpers import verified

VAT = "vat-return/2026-11-02"
COLLECT = f"{VAT}/collect-invoices"  # artifact proof: PDF or ZIP
RECONCILE = f"{VAT}/reconcile-accounts"
PDF = b"%PDF-1.4\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n"


def with_jobs(content_dir: Path) -> Any:
    """The shipped vat-return with two definition jobs on collect-invoices."""
    path = content_dir / "workflows" / "vat-return.yaml"
    wf = yaml.safe_load(path.read_text())
    task = next(t for t in wf["tasks"] if t["task_ref"] == "collect-invoices")
    task["assistant_jobs"] = [
        {"kind": "fetch-statements", "input": {"bank": "acme"}, "on": "create"},
        {"kind": "draft-summary", "on": "start", "max_attempts": 2},
    ]
    path.write_text(yaml.safe_dump(wf))
    content = load_content(content_dir)
    assert not content.broken
    return content


@pytest.fixture
def rt(svc: Services, content_dir: Path) -> Runtime:
    content = with_jobs(content_dir)
    svc.content_loader = lambda: content
    svc._content = None
    return Runtime(svc)


def clock_of(rt: Runtime) -> FixedClock:
    clock = rt.services.clock
    assert isinstance(clock, FixedClock)
    return clock


def failures(rt: Runtime) -> list[Reminder]:
    return [r for r in rt.store.page(Reminder, limit=500).items
            if r.kind == ReminderKind.AUTOMATION_FAILURE]


def test_definition_jobs_are_queued_on_create_and_on_start_once(rt: Runtime) -> None:
    rt.create_bundle("vat-return", "2026-11-02")
    [fetch] = rt.jobs(COLLECT)
    assert fetch.kind == "fetch-statements" and fetch.status == "queued"
    assert fetch.input == {"bank": "acme"} and fetch.trigger == "create"
    assert fetch.bundle_id == VAT and fetch.task_id == COLLECT
    rt.create_bundle("vat-return", "2026-11-02")  # again: nothing new
    assert len(rt.jobs(COLLECT)) == 1
    rt.start(COLLECT)
    kinds = sorted(j.kind for j in rt.jobs(COLLECT))
    assert kinds == ["draft-summary", "fetch-statements"]
    rt.cancel(COLLECT, "restart")  # cancels both ...
    assert {j.status for j in rt.jobs(COLLECT)} == {"cancelled"}
    rt.reopen(COLLECT, "again")
    assert len(rt.jobs(COLLECT)) == 2
    # a second enqueue of the definition's start jobs (a second start) creates nothing
    from runtime.engine.jobs import add_definition_jobs
    from runtime.engine.uow import UnitOfWork

    uow = UnitOfWork(rt.services)
    add_definition_jobs(uow, rt.task(COLLECT), "start", check_existing=True)
    assert not uow.changes
    verified(rt.store)


def test_claim_heartbeat_complete_audited(rt: Runtime) -> None:
    rt.create_bundle("vat-return", "2026-11-02")
    job = rt.enqueue_job(RECONCILE, "check-ledger", {"year": 2026})
    assert rt.claim_job(["nothing-like-it"], worker="w1") is None
    got = rt.claim_job(["check-ledger"], worker="w1", lease_seconds=60)
    assert got is not None and got.assistant_job_id == job.assistant_job_id
    assert got.status == "running" and got.attempts == 1 and got.worker == "w1"
    assert got.lease_expires_at == clock_of(rt).now() + timedelta(seconds=60)
    assert rt.claim_job(["check-ledger"], worker="w2") is None  # held
    clock_of(rt).advance(timedelta(seconds=50))
    beat = rt.heartbeat_job(job.assistant_job_id, worker="w1", lease_seconds=60)
    assert beat.lease_expires_at == clock_of(rt).now() + timedelta(seconds=60)
    clock_of(rt).advance(timedelta(seconds=50))  # past the first lease, inside the new one
    assert rt.claim_job(["check-ledger"], worker="w2") is None
    done = rt.complete_job(job.assistant_job_id, {"balanced": True}, worker="w1")
    assert done.status == "succeeded" and done.output == {"balanced": True}
    assert done.claimable_at is None and done.finished_at == clock_of(rt).now()
    actions = [e.action for e in rt.audit_log(job.assistant_job_id)]
    assert actions == ["create", "claim", "complete"]  # heartbeats are bookkeeping
    with pytest.raises(TransitionRejected, match="succeeded"):
        rt.complete_job(job.assistant_job_id, {}, worker="w1")
    verified(rt.store)


def test_an_expired_lease_puts_the_job_back_with_attempts_plus_one(rt: Runtime) -> None:
    rt.create_bundle("vat-return", "2026-11-02")
    job = rt.enqueue_job(RECONCILE, "check-ledger", max_attempts=2)
    rt.claim_job(["check-ledger"], worker="w1", lease_seconds=60)
    clock_of(rt).advance(timedelta(seconds=61))
    again = rt.claim_job(["check-ledger"], worker="w2", lease_seconds=60)
    assert again is not None and again.attempts == 2 and again.worker == "w2"
    for late in (lambda: rt.heartbeat_job(job.assistant_job_id, worker="w1"),
                 lambda: rt.complete_job(job.assistant_job_id, {}, worker="w1"),
                 lambda: rt.fail_job(job.assistant_job_id, "boom", worker="w1")):
        with pytest.raises(TransitionRejected, match="held by w2"):
            late()
    clock_of(rt).advance(timedelta(seconds=61))  # the last attempt's lease runs out too
    assert rt.claim_job(["check-ledger"], worker="w3") is None
    gone = rt.job(job.assistant_job_id)
    assert gone.status == "failed" and "ran out" in (gone.error or "")
    [failure] = failures(rt)
    assert failure.entity_id == job.assistant_job_id and failure.task_id == RECONCILE


def test_a_failing_job_is_retried_with_backoff_then_failed_once(rt: Runtime) -> None:
    rt.create_bundle("vat-return", "2026-11-02")
    job = rt.enqueue_job(RECONCILE, "check-ledger", max_attempts=2)
    rt.claim_job(["check-ledger"], worker="w1")
    back = rt.fail_job(job.assistant_job_id, "bank timed out", worker="w1")
    assert back.status == "queued" and back.error == "bank timed out"
    assert back.claimable_at == clock_of(rt).now() + timedelta(seconds=30)
    assert rt.claim_job(["check-ledger"], worker="w1") is None  # backing off
    clock_of(rt).advance(timedelta(seconds=30))
    assert rt.claim_job(["check-ledger"], worker="w1") is not None
    out = rt.fail_job(job.assistant_job_id, "bank timed out again", worker="w1")
    assert out.status == "failed" and out.finished_at is not None
    [failure] = failures(rt)
    assert "2 attempts" in failure.summary and failure.entity_type == "assistant_job"
    with pytest.raises(TransitionRejected):
        rt.fail_job(job.assistant_job_id, "more", worker="w1")
    assert len(failures(rt)) == 1
    verified(rt.store)


def test_a_jobs_file_satisfies_the_artifact_proof(rt: Runtime) -> None:
    rt.create_bundle("vat-return", "2026-11-02")
    rt.start(COLLECT)
    with pytest.raises(TransitionRejected):
        rt.complete(COLLECT)
    job = rt.claim_job(["fetch-statements"], worker="w1")
    assert job is not None
    done = rt.complete_job(job.assistant_job_id, {"pages": 3}, worker="w1", data=PDF,
                           filename="invoices.pdf")
    assert done.output_artifact_id is not None
    task = rt.task(COLLECT)
    assert task.proof[-1].artifact_id == done.output_artifact_id
    assert task.proof[-1].content_type == "application/pdf"
    assert rt.complete(COLLECT).status == "done"
    verified(rt.store)


def test_cancellation_with_the_job_task_or_bundle(rt: Runtime) -> None:
    rt.create_bundle("vat-return", "2026-11-02")
    job = rt.enqueue_job(RECONCILE, "check-ledger")
    assert rt.cancel_job(job.assistant_job_id).status == "cancelled"
    with pytest.raises(TransitionRejected):
        rt.cancel_job(job.assistant_job_id)
    held = rt.enqueue_job(RECONCILE, "check-ledger")
    assert rt.claim_job(["check-ledger"], worker="w1") is not None
    rt.cancel_bundle(VAT, "client left")
    assert {j.status for j in rt.jobs()} == {"cancelled"}
    with pytest.raises(TransitionRejected, match="cancelled"):
        rt.heartbeat_job(held.assistant_job_id, worker="w1")
    with pytest.raises(TransitionRejected):
        rt.enqueue_job(RECONCILE, "check-ledger")
    verified(rt.store)


def test_a_job_whose_task_closed_is_cancelled_at_claim_not_run(rt: Runtime) -> None:
    rt.create_bundle("vat-return", "2026-11-02")
    rt.start(COLLECT)
    rt.attach_file(COLLECT, data=PDF, filename="i.pdf")
    rt.complete(COLLECT)  # done, its jobs still queued
    assert {j.status for j in rt.jobs(COLLECT)} == {"queued"}
    assert rt.claim_job(worker="w1") is None
    assert {j.status for j in rt.jobs(COLLECT)} == {"cancelled"}


def test_job_mistakes_are_named(rt: Runtime) -> None:
    rt.create_bundle("vat-return", "2026-11-02")
    with pytest.raises(NotFoundError):
        rt.enqueue_job("no/such/task", "x")
    with pytest.raises(InputError, match="kind"):
        rt.enqueue_job(RECONCILE, "  ")
    with pytest.raises(InputError, match="lease_seconds"):
        rt.claim_job(worker="w", lease_seconds=0)
    with pytest.raises(InputError, match="worker"):
        rt.claim_job(worker="")
    with pytest.raises(NotFoundError):
        rt.heartbeat_job("job-nope")
    with pytest.raises(InputError, match="status"):
        rt.jobs(status="weird")


def test_a_large_bundle_with_create_jobs_in_steps(content_dir: Path) -> None:
    """On a store that caps one write, each task is written with its jobs; every job is there
    once the bundle is published."""
    from tests.unit.test_large_bundles import big_definition

    wf = big_definition(60)
    for t in wf["tasks"]:
        t["assistant_jobs"] = [{"kind": "prep", "on": "create"}]
    (content_dir / "workflows" / "big.yaml").write_text(yaml.safe_dump(wf))
    content = load_content(content_dir)
    svc = Services(MemoryStore(max_items=10), FixedClock(utc(2026, 11, 25, 8)), "t", None,
                   lambda: content)
    rt = Runtime(svc)
    view = rt.create_bundle("big", "2026-12-01")
    assert view.bundle.status == "active" and len(view.tasks) == 60
    assert len(rt.jobs(limit=500)) == 60
    assert all(isinstance(j, AssistantJob) for j in rt.jobs())
    verified(svc.store)
