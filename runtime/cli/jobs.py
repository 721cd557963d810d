"""`dataops job ...` and `dataops worker run`: assistant jobs by hand, and the worker loop."""

from __future__ import annotations

import json
from typing import Any

from runtime.cli import render
from runtime.cli.context import Ctx

OK = 0


def _json_arg(text: str | None, flag: str) -> dict[str, Any]:
    from runtime.errors import InputError

    if text is None:
        return {}
    try:
        value = json.loads(text)
    except ValueError as e:
        raise InputError(f"{flag}: not JSON ({e}); give an object, e.g. '{{\"tone\": \"dry\"}}'"
                         ) from None
    if not isinstance(value, dict):
        raise InputError(f"{flag}: give a JSON object, not {type(value).__name__}")
    return value


def _run(ctx: Ctx, cls_name: str, **fields: Any) -> Any:
    from runtime import engine
    from runtime.model import commands

    return engine.handle(ctx.services(), commands.build(getattr(commands, cls_name), **fields))


def _show(ctx: Ctx, job: Any, line: str) -> int:
    if ctx.args.json:
        render.emit_json(None if job is None else job.to_json())
    else:
        render.out(line)
    return OK


def _line(job: Any) -> str:
    return (f"{job.assistant_job_id} {job.kind} {job.status} (attempt {job.attempts} of "
            f"{job.max_attempts}) for task {job.task_id}"
            + (f", held by {job.worker} until {job.lease_expires_at.isoformat()}"
               if job.status == "running" and job.lease_expires_at else "")
            + (f"; error: {job.error}" if job.error else ""))


def cmd_job_enqueue(ctx: Ctx) -> int:
    job = _run(ctx, "EnqueueJob", task_id=ctx.args.task_id, kind=ctx.args.kind,
               input=_json_arg(ctx.args.input, "--input"), max_attempts=ctx.args.max_attempts)
    return _show(ctx, job, f"queued {_line(job)}")


def cmd_job_claim(ctx: Ctx) -> int:
    from runtime.worker import default_name

    job = _run(ctx, "ClaimJob", kinds=ctx.args.kind or [], worker=ctx.args.worker or
               default_name(), lease_seconds=ctx.args.lease)
    return _show(ctx, job, "no job to claim" if job is None else f"claimed {_line(job)}")


def cmd_job_heartbeat(ctx: Ctx) -> int:
    job = _run(ctx, "HeartbeatJob", assistant_job_id=ctx.args.job_id, worker=ctx.args.worker,
               lease_seconds=ctx.args.lease)
    return _show(ctx, job, f"lease extended: {_line(job)}")


def cmd_job_complete(ctx: Ctx) -> int:
    fields: dict[str, Any] = {}
    if ctx.args.file:
        from runtime.artifacts import read_upload

        data, name, ctype = read_upload(ctx.args.file)
        fields = {"data": data, "filename": name, "content_type": ctype}
    job = _run(ctx, "CompleteJob", assistant_job_id=ctx.args.job_id, worker=ctx.args.worker,
               output=_json_arg(ctx.args.output, "--output"), **fields)
    return _show(ctx, job, f"succeeded: {_line(job)}")


def cmd_job_fail(ctx: Ctx) -> int:
    job = _run(ctx, "FailJob", assistant_job_id=ctx.args.job_id, worker=ctx.args.worker,
               error=ctx.args.error)
    return _show(ctx, job, _line(job))


def cmd_job_cancel(ctx: Ctx) -> int:
    job = _run(ctx, "CancelJob", assistant_job_id=ctx.args.job_id)
    return _show(ctx, job, f"cancelled: {_line(job)}")


def cmd_job_show(ctx: Ctx) -> int:
    from runtime.model import AssistantJob

    job = ctx.services().store.get(AssistantJob, ctx.args.job_id)
    if ctx.args.json:
        render.emit_json(job.to_json())
        return OK
    render.out(_line(job))
    for key in ("trigger", "input", "output", "output_artifact_id", "created_at", "started_at",
                "finished_at"):
        value = getattr(job, key)
        if value not in (None, {}):
            render.out(f"  {key}: {render.text(value)}")
    return OK


def cmd_job_list(ctx: Ctx) -> int:
    from runtime.engine.jobs import list_jobs

    svc = ctx.services()
    jobs, more = ctx.page(lambda n, cur: list_jobs(svc, ctx.args.task, ctx.args.status,
                                                   ctx.args.kind, limit=n, cursor=cur))
    if ctx.args.json:
        render.emit_json([j.to_json() for j in jobs])
    else:
        render.table([(j.assistant_job_id, j.kind, j.status, f"{j.attempts}/{j.max_attempts}",
                       j.task_id or "", j.worker or "") for j in jobs],
                     ("job", "kind", "status", "attempts", "task", "worker"))
    render.more(len(jobs), None, more)
    return OK


def cmd_worker_run(ctx: Ctx) -> int:
    import logging
    import sys

    from runtime.api import Runtime
    from runtime.worker import load_handlers, run

    if str(ctx.args.path) not in sys.path:
        sys.path.insert(0, str(ctx.args.path))  # handlers next to the operator's files
    handlers = load_handlers(ctx.args.handlers)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    report = run(Runtime(ctx.services()), handlers, kinds=ctx.args.kind or None,
                 concurrency=ctx.args.concurrency, worker=ctx.args.worker,
                 lease_seconds=ctx.args.lease, poll_seconds=ctx.args.poll,
                 until_idle=ctx.args.until_idle)
    render.out(report.line())
    return OK
