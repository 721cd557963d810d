"""The loop a worker process embeds: claim assistant jobs, run their handlers, heartbeat, answer.

::

    import runtime, runtime.worker

    def draft_show_notes(ctx: runtime.worker.JobContext) -> dict:
        return {"notes": f"Notes for {ctx.task.title}"}

    rt = runtime.open(store="postgresql://...", content="content", actor="worker-1")
    runtime.worker.run(rt, handlers={"draft-show-notes": draft_show_notes}, concurrency=4)

A handler gets a :class:`JobContext` (the job, its task and bundle, the task's instruction
document and step) and returns the job's output (a dict, or None), or a :class:`JobResult` with
a file, which becomes an artifact of the task and can satisfy its artifact proof. A handler that
raises fails the attempt (retried with backoff up to the job's ``max_attempts``). While it runs,
a heartbeat extends the lease every third of it; a job whose heartbeat is refused (cancelled,
or its lease ran out and another worker took it) is left to whoever holds it now. SIGTERM or
Ctrl-C stops claiming and lets the jobs in hand finish. A worker that is killed loses nothing:
its jobs come back when their leases run out.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from runtime.api import Runtime
from runtime.errors import DataopsError, NotFoundError, TransitionRejected
from runtime.model import AssistantJob, Bundle, Document, Task

log = logging.getLogger("dataops.worker")


@dataclass
class JobContext:
    """What a handler works from."""

    job: AssistantJob
    task: Task | None
    bundle: Bundle
    document: Document | None = None
    """The task's instruction document from content/, if it names one that exists."""
    step_title: str | None = None


@dataclass
class JobResult:
    """A handler's answer with a file (the output alone may be returned as a plain dict)."""

    output: dict[str, Any] = field(default_factory=dict)
    data: bytes | None = None
    filename: str | None = None
    content_type: str | None = None


Handler = Callable[[JobContext], "dict[str, Any] | JobResult | None"]


@dataclass
class WorkerReport:
    succeeded: int = 0
    failed: int = 0
    lost: int = 0
    """Jobs whose answer was refused: cancelled meanwhile, or the lease ran out."""

    def line(self) -> str:
        return (f"worker: {self.succeeded} jobs succeeded, {self.failed} attempts failed, "
                f"{self.lost} lost to cancellation or an expired lease")


def default_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def run(rt: Runtime, handlers: Mapping[str, Handler], *, kinds: Sequence[str] | None = None,
        concurrency: int = 1, worker: str | None = None, lease_seconds: float = 300.0,
        poll_seconds: float = 1.0, until_idle: bool = False,
        stop: threading.Event | None = None, install_signals: bool | None = None) -> WorkerReport:
    """Claim and run jobs of ``kinds`` (default: the handlers' kinds) on ``concurrency``
    threads until ``stop`` is set (SIGTERM/SIGINT set it when this runs in the main thread),
    or, with ``until_idle``, until no job is claimable."""
    from runtime.errors import InputError

    if not handlers:
        raise InputError("the worker has no handlers; give a mapping from job kind to function")
    if not 1 <= concurrency <= 256:
        raise InputError(f"concurrency {concurrency}: give 1 to 256")
    wanted = list(kinds or handlers)
    missing = [k for k in wanted if k not in handlers]
    if missing:
        raise InputError(f"no handler for job kind(s) {', '.join(missing)}; handlers: "
                         f"{', '.join(sorted(handlers))}")
    stop = stop or threading.Event()
    name = worker or default_name()
    report = WorkerReport()
    lock = threading.Lock()
    if install_signals is None:
        install_signals = threading.current_thread() is threading.main_thread()
    previous: dict[signal.Signals, Any] = {}
    if install_signals:
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, lambda *_: stop.set())

    def loop(n: int) -> None:
        me = f"{name}/{n}" if concurrency > 1 else name
        while not stop.is_set():
            try:
                job = rt.claim_job(wanted, worker=me, lease_seconds=lease_seconds)
            except DataopsError as e:  # a busy or unreachable store: say so, wait, try again
                log.warning("claiming a job failed: %s", e)
                stop.wait(poll_seconds)
                continue
            if job is None:
                if until_idle:
                    return
                stop.wait(poll_seconds)
                continue
            outcome = _run_one(rt, handlers[job.kind], job, me, lease_seconds)
            with lock:
                setattr(report, outcome, getattr(report, outcome) + 1)

    threads = [threading.Thread(target=loop, args=(n,), name=f"dataops-worker-{n}", daemon=True)
               for n in range(concurrency)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            while t.is_alive():
                t.join(0.2)
    finally:
        stop.set()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    log.info(report.line())
    return report


def _context(rt: Runtime, job: AssistantJob) -> JobContext:
    task = rt.store.find(Task, job.task_id) if job.task_id else None
    bundle = rt.store.get(Bundle, job.bundle_id)
    doc = step = None
    if task is not None and task.instruction_doc_id:
        try:
            doc = rt.content.documents.get(task.instruction_doc_id)
        except DataopsError:  # content/ unreadable: the handler works without the doc
            doc = None
        if doc is not None and task.instruction_step_id:
            step = next((s.title for s in doc.steps if s.step_id == task.instruction_step_id),
                        None)
    return JobContext(job, task, bundle, doc, step)


def _run_one(rt: Runtime, handler: Handler, job: AssistantJob, worker: str,
             lease_seconds: float) -> str:
    """Run one claimed job with heartbeats; the report field its outcome counts in."""
    done = threading.Event()
    lost = threading.Event()

    def beat() -> None:
        while not done.wait(lease_seconds / 3):
            try:
                rt.heartbeat_job(job.assistant_job_id, worker=worker, lease_seconds=lease_seconds)
            except (TransitionRejected, NotFoundError):
                lost.set()
                return
            except DataopsError as e:  # the store is busy: the lease still runs for a while
                log.warning("heartbeat of %s failed: %s", job.assistant_job_id, e)

    beating = threading.Thread(target=beat, daemon=True, name=f"heartbeat-{job.assistant_job_id}")
    beating.start()
    try:
        try:
            result = handler(_context(rt, job))
        finally:
            done.set()
            beating.join()
        if lost.is_set():
            return "lost"
        if isinstance(result, JobResult):
            rt.complete_job(job.assistant_job_id, result.output, worker=worker, data=result.data,
                            filename=result.filename, content_type=result.content_type)
        else:
            rt.complete_job(job.assistant_job_id, dict(result or {}), worker=worker)
        return "succeeded"
    except TransitionRejected as e:  # cancelled meanwhile, or the lease ran out
        log.warning("job %s: %s", job.assistant_job_id, e)
        return "lost"
    except Exception as e:  # the handler's failure, reported as the attempt's error
        error = f"{type(e).__name__}: {e}"
        log.warning("job %s (%s) failed: %s", job.assistant_job_id, job.kind, error)
        try:
            rt.fail_job(job.assistant_job_id, error, worker=worker)
        except TransitionRejected:
            return "lost"
        return "failed"


def load_handlers(spec: str) -> Mapping[str, Handler]:
    """``module:attr``: a mapping from job kind to handler.

    :raises InputError: the module or attribute cannot be found, or is not a mapping.
    """
    import importlib

    from runtime.errors import InputError

    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise InputError(f"--handlers {spec!r}: write MODULE:ATTR, e.g. myjobs:HANDLERS")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise InputError(f"--handlers {spec!r}: cannot import {module_name} ({e})") from None
    value = getattr(module, attr, None)
    if value is None:
        raise InputError(f"--handlers {spec!r}: {module_name} has no {attr}")
    if not isinstance(value, Mapping) or not all(callable(v) for v in value.values()):
        raise InputError(f"--handlers {spec!r}: give a mapping from job kind to function")
    return value
