"""`dataops worker run` as real processes on SQLite and PostgreSQL: 8 workers racing for 200
jobs, a worker SIGKILLed mid-job; and the loop in-process: retries, a file as proof, cancel."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from runtime.api import Runtime
from runtime.clock import FixedClock
from runtime.engine import Services
from runtime.model import AssistantJob, Reminder, ReminderKind
from runtime.store import open_store
from runtime.worker import JobResult, run
from tests.conftest import need_server, store_url
from tests.helpers import verified

HERE = Path(__file__).resolve().parent
NOW = "2026-11-25T08:00:00+00:00"
VAT = "vat-return/2026-11-02"
COLLECT = f"{VAT}/collect-invoices"
PDF = b"%PDF-1.4\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n"

pytestmark = pytest.mark.slow


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    need_server(request, request.param)
    return store_url(request.param, tmp_path, "workers")


def dataops(url: str, content: Path, *args: str, now: str = NOW, env: dict[str, str] | None = None,
            wait: bool = True) -> Any:
    argv = [sys.executable, "-m", "runtime.cli", "--store", url, "--content", str(content),
            "--now", now, "--actor", "worker", *args]
    full_env = {**os.environ, "PYTHONPATH": f"{HERE}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
                **(env or {})}
    if not wait:
        return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env=full_env, text=True)
    return subprocess.run(argv, capture_output=True, text=True, env=full_env, timeout=300)


def seed(url: str, content: Path, jobs: int) -> list[str]:
    """``jobs`` jobs spread over the open tasks of a few bundles."""
    store = open_store(url)
    try:
        from runtime.wiring import open_services

        rt = Runtime(open_services(store, content, clock=FixedClock(
            __import__("runtime.model", fromlist=["parse_instant"]).parse_instant(NOW, "now")),
            actor="seeder"))
        tasks: list[str] = []
        for day in range(1, 5):
            tasks += [t.task_id for t in rt.create_bundle("vat-return", f"2026-11-0{day}").tasks]
        return [rt.enqueue_job(tasks[i % len(tasks)], "count", {"n": i}).assistant_job_id
                for i in range(jobs)]
    finally:
        store.close()


def test_eight_worker_processes_race_for_200_jobs(url: str, content_dir: Path,
                                                 tmp_path: Path) -> None:
    ids = seed(url, content_dir, 200)
    log, gate = tmp_path / "runs.log", tmp_path / "gate"
    env = {"JOB_LOG": str(log), "JOB_GATE_START": str(gate)}
    procs = [dataops(url, content_dir, "worker", "run", "--handlers", "job_handlers:HANDLERS",
                     "--concurrency", "2", "--until-idle", "--worker", f"w{i}", env=env,
                     wait=False) for i in range(8)]
    gate.touch()  # released together
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0] * 8, [o[1][-2000:] for o in outs]
    runs = Counter(line.split()[0] for line in log.read_text().splitlines())
    assert set(runs) == set(ids) and set(runs.values()) == {1}  # each job ran exactly once
    store = open_store(url)
    try:
        jobs = [store.get(AssistantJob, i) for i in ids]
        assert {j.status for j in jobs} == {"succeeded"} and {j.attempts for j in jobs} == {1}
        assert all(j.output and j.output["pid"] for j in jobs)
        for i in ids[:20]:  # one claim and one completion recorded per job
            assert [e.action for e in store.audit_events(i)] == ["create", "claim", "complete"]
        workers = {j.worker for j in jobs}
        assert len(workers) > 1, "one worker took every job: the race was not a race"
        verified(store)
    finally:
        store.close()


def test_a_killed_workers_job_is_completed_by_another_after_the_lease(
        url: str, content_dir: Path, tmp_path: Path) -> None:
    [job_id] = seed(url, content_dir, 1)
    started = tmp_path / "started"
    victim = dataops(url, content_dir, "worker", "run", "--handlers", "job_handlers:BLOCKING",
                     "--lease", "60", "--worker", "victim", env={"JOB_STARTED": str(started)},
                     wait=False)
    deadline = time.monotonic() + 60
    while not started.exists():  # waiting for a condition: the handler holds the job
        assert victim.poll() is None, victim.communicate()
        assert time.monotonic() < deadline, "the worker never started the job"
        time.sleep(0.02)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    # before the lease runs out nobody else takes it; after, another worker completes it
    r = dataops(url, content_dir, "worker", "run", "--handlers", "job_handlers:HANDLERS",
                "--until-idle", "--worker", "early", now="2026-11-25T08:00:59+00:00",
                env={"JOB_LOG": str(tmp_path / "early.log")})
    assert r.returncode == 0 and not (tmp_path / "early.log").exists()
    r = dataops(url, content_dir, "worker", "run", "--handlers", "job_handlers:HANDLERS",
                "--until-idle", "--worker", "rescuer", now="2026-11-25T08:01:01+00:00",
                env={"JOB_LOG": str(tmp_path / "rescue.log")})
    assert r.returncode == 0, r.stderr
    assert "1 jobs succeeded" in r.stdout
    shown = json.loads(dataops(url, content_dir, "job", "show", job_id, "--json").stdout)
    assert shown["status"] == "succeeded" and shown["attempts"] == 2
    assert shown["worker"] == "rescuer"
    log = json.loads(dataops(url, content_dir, "audit", "log", "--entity", job_id,
                             "--json").stdout)
    assert [e["action"] for e in log] == ["create", "claim", "claim", "complete"]
    assert "lease of victim ran out" in log[2]["summary"]


def test_sigterm_stops_a_worker_after_the_jobs_in_hand(tmp_path: Path, content_dir: Path) -> None:
    url = f"sqlite:///{tmp_path / 'term.db'}"
    seed(url, content_dir, 3)
    worker = dataops(url, content_dir, "worker", "run", "--handlers", "job_handlers:HANDLERS",
                     "--worker", "w", "--poll", "0.05", env={"JOB_LOG": str(tmp_path / "l")},
                     wait=False)
    deadline = time.monotonic() + 60
    while len((tmp_path / "l").read_text().splitlines() if (tmp_path / "l").exists() else []) < 3:
        assert time.monotonic() < deadline and worker.poll() is None
        time.sleep(0.02)
    worker.send_signal(signal.SIGTERM)
    out, err = worker.communicate(timeout=60)
    assert worker.returncode == 0, err
    assert "3 jobs succeeded" in out


# ---- the loop in-process (an injected clock) -----------------------------------------------


@pytest.fixture
def rt(svc: Services) -> Runtime:
    return Runtime(svc)


def test_a_raising_handler_is_retried_then_failed_with_one_automation_failure(rt: Runtime) -> None:
    rt.create_bundle("vat-return", "2026-11-02")
    job = rt.enqueue_job(COLLECT, "flaky", max_attempts=2)
    calls: list[int] = []

    def flaky(ctx: Any) -> None:
        calls.append(ctx.job.attempts)
        raise RuntimeError("the bank is down")

    report = run(rt, {"flaky": flaky}, until_idle=True, install_signals=False)
    assert (report.failed, report.succeeded) == (1, 0)
    assert rt.job(job.assistant_job_id).status == "queued"  # backing off
    clock = rt.services.clock
    assert isinstance(clock, FixedClock)
    clock.advance(timedelta(seconds=31))
    report = run(rt, {"flaky": flaky}, until_idle=True, install_signals=False)
    assert calls == [1, 2] and report.failed == 1
    failed = rt.job(job.assistant_job_id)
    assert failed.status == "failed" and "RuntimeError: the bank is down" in (failed.error or "")
    alarms = [r for r in rt.store.page(Reminder, limit=500).items
              if r.kind == ReminderKind.AUTOMATION_FAILURE]
    assert len(alarms) == 1 and alarms[0].entity_id == job.assistant_job_id


def test_a_handlers_file_satisfies_the_artifact_proof_and_the_task_is_done(rt: Runtime) -> None:
    rt.create_bundle("vat-return", "2026-11-02")
    rt.start(COLLECT)
    rt.enqueue_job(COLLECT, "fetch")
    seen: list[Any] = []

    def fetch(ctx: Any) -> JobResult:
        seen.append((ctx.task.task_id, ctx.bundle.bundle_id, ctx.document and ctx.document.doc_id,
                     ctx.step_title))
        return JobResult(output={"pages": 1}, data=PDF, filename="invoices.pdf")

    assert run(rt, {"fetch": fetch}, until_idle=True, install_signals=False).succeeded == 1
    assert seen[0][:3] == (COLLECT, VAT, "doc-tax-handbook") and seen[0][3]
    assert rt.complete(COLLECT).status == "done"
    verified(rt.store)


def test_a_job_cancelled_while_its_handler_runs_is_lost_not_completed(rt: Runtime) -> None:
    rt.create_bundle("vat-return", "2026-11-02")
    job = rt.enqueue_job(COLLECT, "slow")

    def slow(ctx: Any) -> dict[str, Any]:
        rt.cancel_job(ctx.job.assistant_job_id)  # an operator cancels it meanwhile
        return {"late": True}

    report = run(rt, {"slow": slow}, until_idle=True, install_signals=False)
    assert report.lost == 1 and report.succeeded == 0
    assert rt.job(job.assistant_job_id).status == "cancelled"
    assert rt.job(job.assistant_job_id).output is None


def test_worker_run_refuses_bad_handlers_in_one_line(tmp_path: Path, content_dir: Path) -> None:
    url = f"sqlite:///{tmp_path / 'bad.db'}"
    for spec, needle in (("nope", "MODULE:ATTR"), ("no_such_module:X", "cannot import"),
                         ("job_handlers:MISSING", "has no MISSING"),
                         ("job_handlers:count", "mapping")):
        r = dataops(url, content_dir, "worker", "run", "--handlers", spec, "--until-idle")
        assert r.returncode == 2 and needle in r.stderr and r.stderr.count("\n") == 1, r.stderr


def test_threads_of_one_worker_share_its_pool_without_stalling(url: str, content_dir: Path) -> None:
    """A claim takes one pooled connection (on PostgreSQL its reads go through the claim's own
    transaction), so threads on a pool as small as one never wait for each other's second
    connection; every job is done once."""
    from runtime.model import parse_instant
    from runtime.wiring import open_services

    small = url + ("&pool_size=1" if url.startswith("postgres") else "")
    ids = seed(url, content_dir, 40)
    rt = Runtime(open_services(small, content_dir, clock=FixedClock(parse_instant(NOW, "now")),
                               actor="worker"))
    try:
        report = run(rt, {"count": lambda ctx: {"ok": True}}, concurrency=4, until_idle=True,
                     install_signals=False)
        assert (report.succeeded, report.failed, report.lost) == (40, 0, 0)
        jobs = [rt.job(i) for i in ids]
        assert {j.status for j in jobs} == {"succeeded"} and {j.attempts for j in jobs} == {1}
    finally:
        rt.close()
