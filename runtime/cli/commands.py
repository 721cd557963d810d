"""`dataops` commands on content, bundles and tasks: parse into a typed command, run it, print.

Nothing here decides anything; runtime imports happen inside the commands so that
`dataops --help` stays fast.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from runtime.cli import render
from runtime.cli.context import Ctx, warn_broken

if TYPE_CHECKING:
    from runtime.engine.views import BundleView
    from runtime.model import Task

OK = 0


def _run(ctx: Ctx, cls_name: str, **fields: Any) -> Any:
    from runtime import engine
    from runtime.model import commands

    return engine.handle(ctx.services(), commands.build(getattr(commands, cls_name), **fields))


def cmd_validate(ctx: Ctx) -> int:
    from runtime.machines import load_spec, spec_files, specs_dir

    content = ctx.content()
    content.check()
    specs = [load_spec(p) for p in spec_files()]  # fails naming a spec the engine needs
    _warn_silent_schedules(ctx, content)
    from runtime.content import unresolved_assignees

    for warning in unresolved_assignees(content):
        render.warn(warning)
    people = (f", {len(content.directory.people)} people" if content.directory
              else "; no people directory (content/people): reminders reach the sinks only")
    render.out(
        f"ok: {len(content.workflows)} workflow definitions, {len(content.documents)} documents"
        f"{people} in {ctx.content_dir}; {len(specs)} machine specs in {specs_dir()}"
    )
    return OK


def _warn_silent_schedules(ctx: Ctx, content: Any) -> None:
    """A warning (not an error) for each schedule trigger whose cron never fires."""
    from runtime.model import ScheduleTrigger
    from runtime.rules.cron import never_fires

    for template_id, wf in content.workflows.items():
        if isinstance(wf.trigger, ScheduleTrigger):
            problem = never_fires(wf.trigger.cron, wf.timezone, ctx.clock().now())
            if problem:
                render.warn(f"{content.sources[template_id]}: trigger.cron: {problem}")


def cmd_template_list(ctx: Ctx) -> int:
    content = ctx.content()
    if ctx.args.json:
        render.emit_json([
            {"template_id": wf.template_id, "version": wf.version, "title": wf.title,
             "timezone": wf.timezone, "trigger": wf.trigger.model_dump(mode="json"),
             "tasks": len(wf.tasks), "file": str(content.sources[wf.template_id])}
            for wf in content.workflows.values()
        ])
        warn_broken(content)
        return OK
    render.table(
        [(wf.template_id, wf.version, wf.trigger.type, len(wf.tasks), wf.title)
         for wf in content.workflows.values()],
        ("template_id", "version", "trigger", "tasks", "title"),
    )
    warn_broken(content)
    return OK


def cmd_template_show(ctx: Ctx) -> int:
    from runtime.content import dump_definition

    wf = ctx.content().workflow(ctx.args.template_id)
    if ctx.args.json:
        render.emit_json(wf.model_dump(mode="json"))
    else:
        sys.stdout.write(dump_definition(wf))
    return OK


def _bundle_out(ctx: Ctx, view: BundleView) -> None:
    if ctx.args.json:
        render.emit_json(view.to_json())
    else:
        render.bundle(view)


def cmd_bundle_create(ctx: Ctx) -> int:
    from runtime.model import parse_day

    anchor = parse_day(ctx.args.anchor, "--anchor")
    view = _run(ctx, "CreateBundle", template_id=ctx.args.template_id, anchor_date=anchor,
                title=ctx.args.title)
    if not ctx.args.json:
        render.out(("created" if view.created else "exists already, nothing created:")
                   + f" bundle {view.bundle.bundle_id} with {len(view.tasks)} tasks")
    _bundle_out(ctx, view)
    return OK


def cmd_bundle_show(ctx: Ctx) -> int:
    from runtime.engine.views import get_bundle

    _bundle_out(ctx, get_bundle(ctx.services(), ctx.args.bundle_id))
    return OK


def cmd_bundle_list(ctx: Ctx) -> int:
    from runtime.engine.views import list_bundles

    svc, a = ctx.services(), ctx.args
    bundles, more = ctx.page(lambda n, cur: list_bundles(svc, a.template, a.status, limit=n,
                                                         cursor=cur))
    if a.json:
        render.emit_json([b.to_json() for b in bundles])
    else:
        render.table([(b.bundle_id, b.status, b.stage, b.anchor_date, b.title) for b in bundles],
                     ("bundle_id", "status", "stage", "anchor", "title"))
    render.more(len(bundles), None, more)
    return OK


def cmd_bundle_link(ctx: Ctx) -> int:
    a = ctx.args
    _bundle_out(ctx, _run(ctx, "LinkBundle", bundle_id=a.bundle_id, key=a.key, url=a.url))
    return OK


def cmd_bundle_cancel(ctx: Ctx) -> int:
    a = ctx.args
    _bundle_out(ctx, _run(ctx, "CancelBundle", bundle_id=a.bundle_id, reason=a.reason))
    return OK


def _task_out(ctx: Ctx, task: Task, allowed: bool = False) -> None:
    if ctx.args.json:
        render.emit_json(task.to_json())
        return
    from runtime.engine.views import allowed_triggers

    render.task(task, allowed_triggers(ctx.services(), task) if allowed else None)


def cmd_task_show(ctx: Ctx) -> int:
    from runtime.engine.views import get_task

    _task_out(ctx, get_task(ctx.services(), ctx.args.task_id), allowed=True)
    return OK


def cmd_task_list(ctx: Ctx) -> int:
    from runtime.engine.views import list_tasks

    svc, a = ctx.services(), ctx.args
    tasks, more = ctx.page(lambda n, cur: list_tasks(svc, a.bundle, a.status, a.assignee,
                                                     limit=n, cursor=cur))
    if a.json:
        render.emit_json([t.to_json() for t in tasks])
    else:
        render.tasks(tasks)
    render.more(len(tasks), None, more)
    return OK


_TRIGGER_COMMANDS = {"start": "StartTask", "resume": "ResumeTask", "complete": "CompleteTask",
                     "wait": "WaitTask", "cancel": "CancelTask", "reopen": "ReopenTask"}


def fire(trigger: str) -> Callable[[Ctx], int]:
    def run(ctx: Ctx) -> int:
        a = ctx.args
        fields: dict[str, Any] = {"task_id": a.task_id}
        if trigger in ("cancel", "reopen"):
            fields["reason"] = a.reason
        if trigger == "wait":
            from runtime.model import parse_instant

            fields["waiting_for"] = a.waiting_for
            fields["follow_up_at"] = parse_instant(a.follow_up_at, "--follow-up-at")
        task = _run(ctx, _TRIGGER_COMMANDS[trigger], **fields)
        if not a.json:
            render.out(f"task {task.task_id} is {task.status}")
        _task_out(ctx, task)
        return OK

    run.__name__ = f"cmd_task_{trigger}"
    return run


def cmd_task_assign(ctx: Ctx) -> int:
    _task_out(ctx, _run(ctx, "AssignTask", task_id=ctx.args.task_id, assignee=ctx.args.assignee))
    return OK


def cmd_task_comment(ctx: Ctx) -> int:
    _task_out(ctx, _run(ctx, "CommentTask", task_id=ctx.args.task_id, body=ctx.args.text))
    return OK


def cmd_task_attach(ctx: Ctx) -> int:
    from runtime.errors import InputError

    a = ctx.args
    if a.url is not None:
        task = _run(ctx, "AttachUrl", task_id=a.task_id, url=a.url)
    elif a.comment is not None:
        task = _run(ctx, "AttachComment", task_id=a.task_id, body=a.comment)
    elif a.external_status is not None:
        system, sep, value = a.external_status.partition("=")
        if not sep:
            raise InputError(
                f"--external-status {a.external_status!r}: write SYSTEM=VALUE, e.g. youtube=published"
            )
        task = _run(ctx, "AttachExternalStatus", task_id=a.task_id, system=system, value=value)
    else:
        from runtime.artifacts import read_upload

        data, filename, content_type = read_upload(a.file)
        task, artifact = _run(ctx, "AttachFile", task_id=a.task_id, data=data,
                              filename=filename, content_type=content_type)
        if not a.json:
            render.out(f"stored {filename} as {artifact.artifact_id} (sha256 "
                       f"{artifact.sha256[:12]}..., {artifact.size_bytes} bytes)")
    _task_out(ctx, task)
    return OK
