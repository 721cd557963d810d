"""The `dataops` command: parse, call a use case, print, map errors to exit codes.

Nothing here decides anything; imports of the runtime happen inside the commands so that
`dataops --help` stays fast.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from runtime.engine import BundleView, Services
    from runtime.model import Task

EXIT_OK, EXIT_UNEXPECTED, EXIT_INPUT, EXIT_REJECTED, EXIT_CONFLICT, EXIT_NOT_FOUND = 0, 1, 2, 3, 4, 5


def _default_actor() -> str:
    import getpass

    try:
        return getpass.getuser()
    except Exception:  # no user name in a bare container
        return "unknown"


# ---- wiring ----------------------------------------------------------------------------------


class Ctx:
    """The global options, and the services built from them on first use."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.store_url: str = args.store or os.environ.get("DATAOPS_STORE") or "sqlite:///dataops.db"
        self.content_dir: str = args.content or os.environ.get("DATAOPS_CONTENT") or "content"
        self.now_text: str | None = args.now or os.environ.get("DATAOPS_NOW") or None
        self.actor: str = args.actor or os.environ.get("DATAOPS_ACTOR") or _default_actor()
        self._svc: Services | None = None

    def clock(self) -> Any:
        from runtime.clock import FixedClock, SystemClock
        from runtime.model import parse_instant

        if self.now_text:
            return FixedClock(parse_instant(self.now_text, "--now"))
        return SystemClock()

    def content(self) -> Any:
        from runtime.content import load_content

        return load_content(self.content_dir)

    def services(self) -> Services:
        if self._svc is None:
            from runtime.artifacts import artifacts_for_store
            from runtime.engine import Services
            from runtime.store import open_store

            clock = self.clock()
            self._svc = Services(
                store=open_store(self.store_url),
                clock=clock,
                actor=self.actor,
                artifacts=artifacts_for_store(self.store_url),
                content_loader=self.content,
            )
        return self._svc

    def close(self) -> None:
        if self._svc is not None:
            self._svc.store.close()


def _out(text: str = "") -> None:
    sys.stdout.write(text + "\n")


def _json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")


def _text(value: Any) -> str:
    """A value as printed for people: instants in ISO-8601 (as in the JSON), None as -."""
    if value is None:
        return "-"
    isoformat = getattr(value, "isoformat", None)
    return str(isoformat()) if isoformat else str(value)


def _table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> None:
    cells = [[_text(c) for c in row] for row in [header, *rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    for i, row in enumerate(cells):
        _out("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        if i == 0:
            _out("  ".join("-" * w for w in widths))


# ---- printing records ------------------------------------------------------------------------


def print_bundle(view: BundleView) -> None:
    b = view.bundle
    _out(f"bundle   {b.bundle_id}  ({b.status}, stage {b.stage or '-'})")
    _out(f"title    {b.title}")
    _out(f"template {b.template_id} v{b.template_version}, anchor {b.anchor_date}, zone {b.timezone}")
    for link in b.required_bundle_links:
        flag = "required" if link.required else "optional"
        _out(f"link     {link.key} ({flag}): {link.url or '(empty)'}")
    for ref in b.references:
        _out(f"ref      {ref.label}: {ref.url}")
    if view.tasks:
        _out()
        print_tasks(view.tasks)


def print_tasks(tasks: Sequence[Task]) -> None:
    _table(
        [(t.task_id, t.status, t.due_date, t.assignee, t.phase, t.title) for t in tasks],
        ("task_id", "status", "due", "assignee", "phase", "title"),
    )


def print_task(task: Task, allowed: list[str] | None = None) -> None:
    from runtime.proof import missing_proof

    _out(f"task        {task.task_id}  ({task.status})")
    _out(f"title       {task.title}")
    _out(f"bundle      {task.bundle_id}  phase {task.phase}")
    _out(f"assignee    {task.assignee or '-'}   due {task.due_date}")
    if task.waiting_for or task.follow_up_at:
        _out(f"waiting for {task.waiting_for}  follow up at {_text(task.follow_up_at)}")
    if task.completed_at:
        _out(f"completed   {_text(task.completed_at)} by {task.completed_by}")
    if task.instruction_doc_id:
        step = f" step {task.instruction_step_id}" if task.instruction_step_id else ""
        _out(f"instructions {task.instruction_doc_id}{step}")
    elif task.instructions_url:
        _out(f"instructions {task.instructions_url} (legacy link)")
    if task.systems:
        _out(f"systems     {', '.join(task.systems)}")
    if task.validation:
        _out(f"validation  {task.validation}")
    for entry in task.proof:
        what = entry.value if entry.kind != "external_status" else f"{entry.system}={entry.value}"
        ref = f" [{entry.artifact_id}]" if entry.artifact_id else ""
        _out(f"proof       {entry.kind}: {what}{ref} ({entry.by}, {_text(entry.at)})")
    missing = missing_proof(task)
    if missing:
        _out(f"missing     {'; '.join(missing)}")
    for c in task.comments:
        _out(f"comment     {c.author} {_text(c.created_at)}: {c.body}")
    if allowed is not None:
        _out(f"allowed now {', '.join(allowed) or '(none)'}")


# ---- commands --------------------------------------------------------------------------------


def cmd_validate(ctx: Ctx) -> int:
    content = ctx.content()
    from runtime.machines import load_spec, spec_files

    specs = [load_spec(p) for p in spec_files()]
    _out(
        f"ok: {len(content.workflows)} workflow definitions, {len(content.documents)} documents "
        f"in {ctx.content_dir}; {len(specs)} machine specs"
    )
    return EXIT_OK


def cmd_template_list(ctx: Ctx) -> int:
    content = ctx.content()
    if ctx.args.json:
        _json([
            {"template_id": wf.template_id, "version": wf.version, "title": wf.title,
             "timezone": wf.timezone, "trigger": wf.trigger.model_dump(mode="json"),
             "tasks": len(wf.tasks), "file": str(content.sources[wf.template_id])}
            for wf in content.workflows.values()
        ])
        return EXIT_OK
    _table(
        [(wf.template_id, wf.version, wf.trigger.type, len(wf.tasks), wf.title)
         for wf in content.workflows.values()],
        ("template_id", "version", "trigger", "tasks", "title"),
    )
    return EXIT_OK


def cmd_template_show(ctx: Ctx) -> int:
    from runtime.content import dump_definition

    wf = ctx.content().workflow(ctx.args.template_id)
    if ctx.args.json:
        _json(wf.model_dump(mode="json"))
    else:
        sys.stdout.write(dump_definition(wf))
    return EXIT_OK


def _bundle_out(ctx: Ctx, view: BundleView) -> None:
    if ctx.args.json:
        _json(view.to_json())
    else:
        print_bundle(view)


def cmd_bundle_create(ctx: Ctx) -> int:
    from runtime.engine import create_bundle
    from runtime.model import parse_day

    anchor = parse_day(ctx.args.anchor, "--anchor")
    view = create_bundle(ctx.services(), ctx.args.template_id, anchor, ctx.args.title)
    if not ctx.args.json:
        _out(("created" if view.created else "exists already, nothing created:")
             + f" bundle {view.bundle.bundle_id} with {len(view.tasks)} tasks")
    _bundle_out(ctx, view)
    return EXIT_OK


def cmd_bundle_show(ctx: Ctx) -> int:
    from runtime.engine import get_bundle

    _bundle_out(ctx, get_bundle(ctx.services(), ctx.args.bundle_id))
    return EXIT_OK


def cmd_bundle_list(ctx: Ctx) -> int:
    from runtime.engine import list_bundles

    bundles = list_bundles(ctx.services(), ctx.args.template, ctx.args.status)
    if ctx.args.json:
        _json([b.to_json() for b in bundles])
        return EXIT_OK
    _table(
        [(b.bundle_id, b.status, b.stage, b.anchor_date, b.title) for b in bundles],
        ("bundle_id", "status", "stage", "anchor", "title"),
    )
    return EXIT_OK


def cmd_bundle_link(ctx: Ctx) -> int:
    from runtime.engine import link_bundle

    view = link_bundle(ctx.services(), ctx.args.bundle_id, ctx.args.key, ctx.args.url)
    _bundle_out(ctx, view)
    return EXIT_OK


def cmd_bundle_cancel(ctx: Ctx) -> int:
    from runtime.engine import cancel_bundle

    _bundle_out(ctx, cancel_bundle(ctx.services(), ctx.args.bundle_id, ctx.args.reason))
    return EXIT_OK


def _task_out(ctx: Ctx, task: Task, allowed: bool = False) -> None:
    if ctx.args.json:
        _json(task.to_json())
        return
    from runtime.engine import allowed_triggers

    print_task(task, allowed_triggers(ctx.services(), task) if allowed else None)


def cmd_task_show(ctx: Ctx) -> int:
    from runtime.engine import get_task

    _task_out(ctx, get_task(ctx.services(), ctx.args.task_id), allowed=True)
    return EXIT_OK


def cmd_task_list(ctx: Ctx) -> int:
    from runtime.engine import list_tasks

    tasks = list_tasks(ctx.services(), ctx.args.bundle, ctx.args.status, ctx.args.assignee)
    if ctx.args.json:
        _json([t.to_json() for t in tasks])
    else:
        print_tasks(tasks)
    return EXIT_OK


def _fire(trigger: str) -> Callable[[Ctx], int]:
    def run(ctx: Ctx) -> int:
        from runtime.engine import fire_task

        args: dict[str, Any] = {}
        if trigger in ("cancel", "reopen"):
            args["reason"] = ctx.args.reason
        if trigger == "wait":
            from runtime.model import parse_instant

            args["waiting_for"] = ctx.args.waiting_for
            args["follow_up_at"] = parse_instant(ctx.args.follow_up_at, "--follow-up-at")
        task = fire_task(ctx.services(), ctx.args.task_id, trigger, **args)
        if not ctx.args.json:
            _out(f"task {task.task_id} is {task.status}")
        _task_out(ctx, task)
        return EXIT_OK

    return run


def cmd_task_assign(ctx: Ctx) -> int:
    from runtime.engine import assign_task

    _task_out(ctx, assign_task(ctx.services(), ctx.args.task_id, ctx.args.assignee))
    return EXIT_OK


def cmd_task_comment(ctx: Ctx) -> int:
    from runtime.engine import comment_task

    _task_out(ctx, comment_task(ctx.services(), ctx.args.task_id, ctx.args.text))
    return EXIT_OK


def cmd_task_attach(ctx: Ctx) -> int:
    from runtime import engine
    from runtime.errors import InputError

    a, svc = ctx.args, ctx.services()
    if a.url is not None:
        task = engine.attach_url(svc, a.task_id, a.url)
    elif a.comment is not None:
        task = engine.attach_comment(svc, a.task_id, a.comment)
    elif a.external_status is not None:
        system, sep, value = a.external_status.partition("=")
        if not sep:
            raise InputError(
                f"--external-status {a.external_status!r}: write SYSTEM=VALUE, e.g. youtube=published"
            )
        task = engine.attach_external_status(svc, a.task_id, system, value)
    else:
        from runtime.artifacts import read_upload

        data, filename, content_type = read_upload(a.file)
        task, artifact = engine.attach_file(svc, a.task_id, data, filename, content_type)
        if not a.json:
            _out(f"stored {filename} as {artifact.artifact_id} (sha256 {artifact.sha256[:12]}..., "
                 f"{artifact.size_bytes} bytes)")
    _task_out(ctx, task)
    return EXIT_OK


def cmd_audit_log(ctx: Ctx) -> int:
    events = ctx.services().store.audit_events(entity_id=ctx.args.entity)
    if ctx.args.json:
        _json([e.to_json() for e in events])
        return EXIT_OK
    _table([(e.seq, e.at, e.actor, e.action, e.entity_id, e.summary) for e in events],
           ("seq", "at", "actor", "action", "entity", "summary"))
    return EXIT_OK


def cmd_audit_verify(ctx: Ctx) -> int:
    from runtime.audit import verify_chain

    count = verify_chain(ctx.services().store.audit_events())
    _out(f"ok: {count} audit events, hash chain intact")
    return EXIT_OK


def cmd_diagrams(ctx: Ctx) -> int:
    from pathlib import Path

    from runtime import diagrams
    from runtime.errors import InputError

    out = Path(ctx.args.out)
    if ctx.args.check:
        problems = diagrams.stale(out)
        if problems:
            raise InputError("diagrams are stale: " + "; ".join(problems)
                             + f"; run dataops diagrams --out {out} and commit")
        _out(f"ok: diagrams in {out} match machines/")
        return EXIT_OK
    for path in diagrams.write(out):
        _out(f"wrote {path}")
    return EXIT_OK


def cmd_reminders_due(ctx: Ctx) -> int:
    from runtime.model import parse_instant
    from runtime.reminders import LATE_AFTER
    from runtime.sweep import preview_due

    svc = ctx.services()
    at = parse_instant(ctx.args.at, "--at") if ctx.args.at else svc.now()
    firings = preview_due(svc, at)
    if ctx.args.json:
        _json([{"reminder_id": f.reminder_id, "kind": str(f.kind), "entity_type": f.entity_type,
                "entity_id": f.entity_id, "bundle_id": f.bundle_id, "task_id": f.task_id,
                "fire_at": f.fire_at.isoformat(), "late": at - f.fire_at > LATE_AFTER,
                "summary": f.summary} for f in firings])
        return EXIT_OK
    _out(f"{len(firings)} reminders due at {at.isoformat()} and not yet recorded (nothing recorded)")
    _table([(f.fire_at.isoformat(), f.kind, f.entity_id, f.summary) for f in firings],
           ("fire_at", "kind", "entity", "summary"))
    return EXIT_OK


def cmd_reminders_list(ctx: Ctx) -> int:
    reminders = ctx.services().store.reminders()
    if ctx.args.json:
        _json([r.to_json() for r in reminders])
        return EXIT_OK
    _table([(r.fire_at.isoformat(), r.kind, r.entity_id, r.delivery_status, r.attempts,
             "late" if r.late else "", r.summary) for r in reminders],
           ("fire_at", "kind", "entity", "delivery", "attempts", "late", "summary"))
    return EXIT_OK


def cmd_scheduler_run(ctx: Ctx) -> int:
    import logging

    from runtime.notify import open_sinks
    from runtime.scheduler import Daemon

    if ctx.args.interval <= 0:
        from runtime.errors import InputError

        raise InputError(f"--interval {ctx.args.interval}: give a positive number of seconds")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    sinks = open_sinks(ctx.args.sink)
    svc = ctx.services()
    _ = svc.content  # fail now on a broken content tree, not later in a job
    daemon = Daemon(svc, sinks, interval_s=ctx.args.interval)
    if ctx.args.once:
        report = daemon.run_sweep()
        _out(report.line())
        return EXIT_OK
    daemon.run_forever()
    return EXIT_OK


def cmd_export(ctx: Ctx) -> int:
    from pathlib import Path

    from runtime.errors import InputError
    from runtime.export import export_store, load_export

    a = ctx.args
    if a.action == "validate":
        if not a.directory:
            raise InputError("export validate needs the export folder: dataops export validate DIR")
        records = load_export(Path(a.directory))
        _out(f"ok: {a.directory} is a valid export ("
             + ", ".join(f"{len(v)} {k}" for k, v in records.items()) + ")")
        return EXIT_OK
    if a.action is not None or not a.out:
        raise InputError("use dataops export --out DIR, or dataops export validate DIR")
    svc = ctx.services()
    manifest = export_store(svc.store, Path(a.out), svc.now())
    _out(f"exported to {a.out}: " + ", ".join(
        f"{e['count']} {e['entity_type']}" + ("" if e["implemented"] else " (not implemented)")
        for e in manifest["entities"]))
    return EXIT_OK


def cmd_import(ctx: Ctx) -> int:
    from pathlib import Path

    from runtime.export import import_export

    counts = import_export(ctx.services().store, Path(ctx.args.directory))
    _out(f"imported into {ctx.store_url}: " + ", ".join(f"{n} {k}" for k, n in counts.items()))
    return EXIT_OK


def cmd_demo(ctx: Ctx) -> int:
    from runtime.demo import run_demo

    return run_demo(ctx)


# ---- the parser ------------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """Usage errors as the contract wants them: one `error:` line on stderr, exit 2."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"error: {self.prog}: {message} (see {self.prog} --help)\n")
        raise SystemExit(EXIT_INPUT)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="dataops",
        description="Recurring operational work: workflow definitions, bundles, tasks, reminders.",
    )
    p.add_argument("--store", help="store URL: sqlite:///path.db (default sqlite:///dataops.db), "
                   "memory:// (env DATAOPS_STORE)")
    p.add_argument("--content", help="content folder (default ./content; env DATAOPS_CONTENT)")
    p.add_argument("--now", help="replace the clock with this aware ISO-8601 instant "
                   "(env DATAOPS_NOW)")
    p.add_argument("--actor", help="who acts (default the OS user; env DATAOPS_ACTOR)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def cmd(parent: Any, name: str, func: Callable[[Ctx], int], help: str, json_flag: bool = True) -> argparse.ArgumentParser:
        sp: argparse.ArgumentParser = parent.add_parser(name, help=help, description=help)
        sp.set_defaults(func=func)
        if json_flag:
            sp.add_argument("--json", action="store_true", help="print the export shape as JSON")
        return sp

    cmd(sub, "validate", cmd_validate, "check content/ and machines/; report every problem", False)

    tpl = sub.add_parser("template", help="workflow definitions").add_subparsers(
        dest="sub", metavar="SUBCOMMAND", required=True)
    cmd(tpl, "list", cmd_template_list, "list workflow definitions")
    cmd(tpl, "show", cmd_template_show, "print one definition").add_argument("template_id")

    bun = sub.add_parser("bundle", help="bundles (runs of a definition)").add_subparsers(
        dest="sub", metavar="SUBCOMMAND", required=True)
    c = cmd(bun, "create", cmd_bundle_create, "instantiate a definition at an anchor date "
            "(idempotent)")
    c.add_argument("template_id")
    c.add_argument("--anchor", required=True, help="YYYY-MM-DD")
    c.add_argument("--title")
    cmd(bun, "show", cmd_bundle_show, "show a bundle and its tasks").add_argument("bundle_id")
    c = cmd(bun, "list", cmd_bundle_list, "list bundles")
    c.add_argument("--template")
    c.add_argument("--status")
    c = cmd(bun, "link", cmd_bundle_link, "fill a required bundle link")
    c.add_argument("bundle_id")
    c.add_argument("key")
    c.add_argument("url")
    c = cmd(bun, "cancel", cmd_bundle_cancel, "cancel a bundle and its open tasks")
    c.add_argument("bundle_id")
    c.add_argument("--reason", required=True)

    tsk = sub.add_parser("task", help="tasks").add_subparsers(
        dest="sub", metavar="SUBCOMMAND", required=True)
    cmd(tsk, "show", cmd_task_show, "show a task and the triggers allowed now").add_argument("task_id")
    c = cmd(tsk, "list", cmd_task_list, "list tasks")
    c.add_argument("--bundle")
    c.add_argument("--status")
    c.add_argument("--assignee")
    for name, trigger, help in (
        ("start", "start", "todo -> in_progress"),
        ("resume", "resume", "waiting -> in_progress"),
        ("done", "complete", "-> done (every proof requirement must be satisfied)"),
    ):
        cmd(tsk, name, _fire(trigger), help).add_argument("task_id")
    c = cmd(tsk, "wait", _fire("wait"), "-> waiting (needs --waiting-for and --follow-up-at)")
    c.add_argument("task_id")
    c.add_argument("--waiting-for", required=True)
    c.add_argument("--follow-up-at", required=True, help="aware ISO-8601 instant")
    for name in ("cancel", "reopen"):
        c = cmd(tsk, name, _fire(name), f"{name} a task (needs --reason)")
        c.add_argument("task_id")
        c.add_argument("--reason", required=True)
    c = cmd(tsk, "assign", cmd_task_assign, "assign a task")
    c.add_argument("task_id")
    c.add_argument("assignee")
    c = cmd(tsk, "comment", cmd_task_comment, "add a comment")
    c.add_argument("task_id")
    c.add_argument("text")
    c = cmd(tsk, "attach", cmd_task_attach, "attach proof to a task")
    c.add_argument("task_id")
    g = c.add_mutually_exclusive_group(required=True)
    g.add_argument("--url")
    g.add_argument("--file")
    g.add_argument("--comment")
    g.add_argument("--external-status", metavar="SYSTEM=VALUE")

    rem = sub.add_parser("reminders", help="reminders: preview and recorded").add_subparsers(
        dest="sub", metavar="SUBCOMMAND", required=True)
    cmd(rem, "due", cmd_reminders_due, "preview reminders due at --at (records nothing)").add_argument(
        "--at", help="aware ISO-8601 instant (default now)")
    cmd(rem, "list", cmd_reminders_list, "recorded reminders with their delivery status")

    sch = sub.add_parser("scheduler", help="the reminder daemon").add_subparsers(
        dest="sub", metavar="SUBCOMMAND", required=True)
    c = cmd(sch, "run", cmd_scheduler_run, "sweep reminders and fire schedule triggers", False)
    c.add_argument("--once", action="store_true", help="sweep once and exit")
    c.add_argument("--sink", action="append", default=[], metavar="URL",
                   help="log://, file:///path.jsonl, https://..., sns://ARN, sqs://URL (repeatable)")
    c.add_argument("--interval", type=float, default=60.0, help="seconds between sweeps")

    c = cmd(sub, "export", cmd_export, "write a portable export (or: export validate DIR)", False)
    c.add_argument("action", nargs="?", choices=["validate"], help="validate an export folder")
    c.add_argument("directory", nargs="?")
    c.add_argument("--out", help="folder to write the export to")
    cmd(sub, "import", cmd_import, "load a valid export into an empty store", False).add_argument(
        "directory")

    aud = sub.add_parser("audit", help="the append-only, hash-chained audit log").add_subparsers(
        dest="sub", metavar="SUBCOMMAND", required=True)
    cmd(aud, "log", cmd_audit_log, "print audit events").add_argument("--entity", help="an entity ID")
    cmd(aud, "verify", cmd_audit_verify, "check the hash chain", False)

    c = cmd(sub, "diagrams", cmd_diagrams, "write Mermaid state diagrams from machines/", False)
    c.add_argument("--out", default="docs/diagrams")
    c.add_argument("--check", action="store_true", help="fail if the diagrams in --out are stale")

    cmd(sub, "demo", cmd_demo, "build a demo store from the shipped content and show what it did",
        False)
    return p



def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse prints its own usage error (exit 2)
        return int(e.code or 0)
    ctx = Ctx(args)
    from runtime.errors import DataopsError

    try:
        return int(args.func(ctx))
    except DataopsError as e:
        code = getattr(e, "exit_code", EXIT_UNEXPECTED)
        message = " ".join(str(e).split("\n"))
        sys.stderr.write(f"error: {message}\n")
        return code if code in (2, 3, 4, 5) else EXIT_UNEXPECTED
    except KeyboardInterrupt:
        sys.stderr.write("error: interrupted\n")
        return 130
    except BrokenPipeError:
        return EXIT_OK
    finally:
        ctx.close()


if __name__ == "__main__":
    sys.exit(main())
