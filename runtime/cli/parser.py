"""The `dataops` argument parser (argparse: the standard library is enough for this)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any, NoReturn

from runtime.cli import api as a
from runtime.cli import commands as c
from runtime.cli import jobs as j
from runtime.cli import ops as o
from runtime.cli import people as pe

EXIT_INPUT = 2


class Parser(argparse.ArgumentParser):
    """Usage errors as the contract wants them: one `error:` line on stderr, exit 2."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"error: {self.prog}: {message} (see {self.prog} --help)\n")
        raise SystemExit(EXIT_INPUT)


def _cmd(parent: Any, name: str, func: Callable[..., int], help: str, json_flag: bool = True,
         paged: bool = False) -> argparse.ArgumentParser:
    sp: argparse.ArgumentParser = parent.add_parser(name, help=help, description=help)
    sp.set_defaults(func=func)
    if json_flag:
        sp.add_argument("--json", action="store_true", help="print the export shape as JSON")
    if paged:
        sp.add_argument("--limit", type=int, default=100, help="at most N records (default 100)")
        sp.add_argument("--all", action="store_true", help="every record, page by page")
    return sp


def _group(sub: Any, name: str, help: str) -> Any:
    return sub.add_parser(name, help=help).add_subparsers(dest="sub", metavar="SUBCOMMAND",
                                                          required=True)


DISTRIBUTION = "dataops-runtime"  # the name pyproject.toml installs the package under


def version() -> str:
    """The installed distribution's version; says so when the package runs uninstalled."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed(DISTRIBUTION)
    except PackageNotFoundError:
        return f"unknown ({DISTRIBUTION} is not installed)"


class _VersionAction(argparse.Action):
    """``--version``: looks the version up only when asked, so parsing stays cheap."""

    def __init__(self, option_strings: Any, dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS,
                         help="print the version and exit")

    def __call__(self, parser: argparse.ArgumentParser, *_: Any) -> NoReturn:
        sys.stdout.write(f"dataops {version()}\n")
        parser.exit(0)


def _globals(p: argparse.ArgumentParser) -> None:
    p.add_argument("--version", action=_VersionAction)
    p.add_argument("--store", help="store URL: sqlite:///path.db (default sqlite:///dataops.db), "
                   "memory:// (env DATAOPS_STORE)")
    p.add_argument("--content", help="content folder (default ./content; env DATAOPS_CONTENT)")
    p.add_argument("--now", help="replace the clock with this aware ISO-8601 instant "
                   "(env DATAOPS_NOW)")
    p.add_argument("--actor", help="who acts (default the OS user; env DATAOPS_ACTOR)")
    p.add_argument("--artifacts", help="artifact binaries: file:///path (default: beside the "
                   "SQLite file; env DATAOPS_ARTIFACTS)")


def _bundles(sub: Any) -> None:
    bun = _group(sub, "bundle", "bundles (runs of a definition)")
    s = _cmd(bun, "create", c.cmd_bundle_create, "instantiate a definition at an anchor date "
             "(idempotent)")
    s.add_argument("template_id")
    s.add_argument("--anchor", required=True, help="YYYY-MM-DD")
    s.add_argument("--title")
    _cmd(bun, "show", c.cmd_bundle_show, "show a bundle and its tasks").add_argument("bundle_id")
    s = _cmd(bun, "list", c.cmd_bundle_list, "list bundles", paged=True)
    s.add_argument("--template")
    s.add_argument("--status")
    s = _cmd(bun, "link", c.cmd_bundle_link, "fill a required bundle link")
    for name in ("bundle_id", "key", "url"):
        s.add_argument(name)
    s = _cmd(bun, "cancel", c.cmd_bundle_cancel, "cancel a bundle and its open tasks")
    s.add_argument("bundle_id")
    s.add_argument("--reason", required=True)


def _tasks(sub: Any) -> None:
    tsk = _group(sub, "task", "tasks")
    _cmd(tsk, "show", c.cmd_task_show, "show a task and the triggers allowed now").add_argument("task_id")
    s = _cmd(tsk, "list", c.cmd_task_list, "list tasks", paged=True)
    for name in ("--bundle", "--status", "--assignee"):
        s.add_argument(name)
    for name, trigger, help in (("start", "start", "todo -> in_progress"),
                                ("resume", "resume", "waiting -> in_progress"),
                                ("done", "complete", "-> done (every proof requirement must be "
                                 "satisfied)")):
        _cmd(tsk, name, c.fire(trigger), help).add_argument("task_id")
    s = _cmd(tsk, "wait", c.fire("wait"), "-> waiting (needs --waiting-for and --follow-up-at)")
    s.add_argument("task_id")
    s.add_argument("--waiting-for", required=True)
    s.add_argument("--follow-up-at", required=True, help="aware ISO-8601 instant")
    for name in ("cancel", "reopen"):
        s = _cmd(tsk, name, c.fire(name), f"{name} a task (needs --reason)")
        s.add_argument("task_id")
        s.add_argument("--reason", required=True)
    s = _cmd(tsk, "assign", c.cmd_task_assign, "assign a task")
    s.add_argument("task_id")
    s.add_argument("assignee")
    s = _cmd(tsk, "comment", c.cmd_task_comment, "add a comment")
    s.add_argument("task_id")
    s.add_argument("text")
    s = _cmd(tsk, "attach", c.cmd_task_attach, "attach proof to a task")
    s.add_argument("task_id")
    g = s.add_mutually_exclusive_group(required=True)
    for name in ("--url", "--file", "--comment"):
        g.add_argument(name)
    g.add_argument("--external-status", metavar="SYSTEM=VALUE")


def _operations(sub: Any) -> None:
    rem = _group(sub, "reminders", "reminders: preview and recorded")
    s = _cmd(rem, "due", o.cmd_reminders_due, "preview reminders due at --at (records nothing)")
    s.add_argument("--at", help="aware ISO-8601 instant (default now)")
    s.add_argument("--by-recipient", action="store_true",
                   help="group them by the person who would receive each (content/people)")
    ppl = _group(sub, "people", "the people directory (content/people): who reminders reach")
    _cmd(ppl, "list", pe.cmd_people_list, "every person, with their groups and open tasks")
    _cmd(ppl, "show", pe.cmd_people_show, "one person and their open tasks").add_argument("person_id")
    _cmd(rem, "list", o.cmd_reminders_list, "recorded reminders with their delivery status",
         paged=True)
    sch = _group(sub, "scheduler", "the reminder daemon")
    s = _cmd(sch, "run", o.cmd_scheduler_run, "sweep reminders and fire schedule triggers", False)
    s.add_argument("--once", action="store_true", help="sweep once and exit")
    s.add_argument("--sink", action="append", default=[], metavar="URL",
                   help="log://, file:///path.jsonl, https://..., sns://ARN, sqs://URL, smtp://HOST:PORT, "
                        "chat:// (repeatable)")
    s.add_argument("--interval", type=float, default=60.0, help="seconds between sweeps")
    s.add_argument("--delivery-timeout", type=float, default=10.0, metavar="SECONDS",
                   help="deadline of one whole webhook delivery (a sink URL's ?timeout= "
                        "overrides it)")
    s.add_argument("--delivery-workers", type=int, default=8, metavar="N",
                   help="deliveries run at once (default 8)")
    s.add_argument("--lease", type=float, default=300.0, metavar="SECONDS",
                   help="how long a daemon holds a reminder it is delivering (default 300); "
                        "daemons sharing a store should use the same value")
    s = _cmd(sub, "export", o.cmd_export, "write a portable export (or: export validate DIR)", False)
    s.add_argument("action", nargs="?", choices=["validate"], help="validate an export folder")
    s.add_argument("directory", nargs="?")
    s.add_argument("--out", help="folder to write the export to")
    s.add_argument("--with-binaries", action="store_true",
                   help="also copy the artifact binaries into DIR/blobs/ by sha256")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s = _cmd(sub, "import", o.cmd_import, "load a valid export (into an empty store, or again "
             "to complete or confirm it)", False)
    s.add_argument("directory")
    s.add_argument("--replace", action="store_true",
                   help="overwrite records the store holds in another version with the export's")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    aud = _group(sub, "audit", "the append-only, hash-chained audit log")
    _cmd(aud, "log", o.cmd_audit_log, "print audit events", paged=True).add_argument(
        "--entity", help="an entity ID")
    _cmd(aud, "verify", o.cmd_audit_verify, "check every entity's hash chain", False)
    _cmd(aud, "seal", o.cmd_audit_seal, "seal every chain head (a Merkle root, printed)")
    sto = _group(sub, "store", "the store itself")
    _cmd(sto, "init", o.cmd_store_init, "create the store's schema (or check it)", False)
    _cmd(sto, "migrate", o.cmd_store_migrate, "upgrade the store's schema to this version's", False)
    s = _cmd(sub, "diagrams", o.cmd_diagrams, "write Mermaid state diagrams from machines/", False)
    s.add_argument("--out", default="docs/diagrams")
    s.add_argument("--check", action="store_true", help="fail if the diagrams in --out are stale")
    job = _group(sub, "job", "assistant jobs: work a worker does for a task")
    s = _cmd(job, "enqueue", j.cmd_job_enqueue, "queue a job for an open task")
    s.add_argument("task_id")
    s.add_argument("--kind", required=True)
    s.add_argument("--input", metavar="JSON", help="the job's input, a JSON object")
    s.add_argument("--max-attempts", type=int, default=3)
    s = _cmd(job, "claim", j.cmd_job_claim, "claim the oldest claimable job (prints null with "
             "--json when there is none)")
    s.add_argument("--kind", action="append", help="a kind to claim (repeatable; default any)")
    s.add_argument("--worker", help="who holds it (default HOST:PID)")
    s.add_argument("--lease", type=float, default=300.0, metavar="SECONDS")
    s = _cmd(job, "heartbeat", j.cmd_job_heartbeat, "extend a running job's lease")
    s.add_argument("job_id")
    s.add_argument("--worker")
    s.add_argument("--lease", type=float, default=300.0, metavar="SECONDS")
    s = _cmd(job, "complete", j.cmd_job_complete, "finish a running job")
    s.add_argument("job_id")
    s.add_argument("--output", metavar="JSON")
    s.add_argument("--file", help="a file of the output: an artifact of the task")
    s.add_argument("--worker")
    s = _cmd(job, "fail", j.cmd_job_fail, "fail a running job's attempt (retried, or failed)")
    s.add_argument("job_id")
    s.add_argument("--error", required=True)
    s.add_argument("--worker")
    _cmd(job, "cancel", j.cmd_job_cancel, "cancel a queued or running job").add_argument("job_id")
    s = _cmd(job, "list", j.cmd_job_list, "list jobs", paged=True)
    for name in ("--task", "--status", "--kind"):
        s.add_argument(name)
    _cmd(job, "show", j.cmd_job_show, "show a job").add_argument("job_id")
    wrk = _group(sub, "worker", "the worker loop")
    s = _cmd(wrk, "run", j.cmd_worker_run, "claim and run jobs with your handlers", False)
    s.add_argument("--handlers", required=True, metavar="MODULE:ATTR",
                   help="a mapping from job kind to function")
    s.add_argument("--kind", action="append", help="kinds to claim (default: the handlers')")
    s.add_argument("--concurrency", type=int, default=1)
    s.add_argument("--worker", help="its name (default HOST:PID)")
    s.add_argument("--lease", type=float, default=300.0, metavar="SECONDS")
    s.add_argument("--poll", type=float, default=1.0, metavar="SECONDS",
                   help="wait between claims when there is nothing to do")
    s.add_argument("--until-idle", action="store_true", help="stop when no job is claimable")
    s.add_argument("--path", default=".", help="folder to import the handlers from (default .)")
    tok = _group(sub, "token", "HTTP API tokens (stored as sha256; the token is shown once)")
    s = _cmd(tok, "create", a.cmd_token_create, "create a token for an actor with a role")
    s.add_argument("--actor", dest="actor_name", required=True, help="who the token acts as")
    s.add_argument("--role", required=True, choices=["viewer", "operator", "admin"])
    _cmd(tok, "list", a.cmd_token_list, "list tokens (never their secrets)", paged=True)
    _cmd(tok, "revoke", a.cmd_token_revoke, "revoke a token on every server").add_argument(
        "token_id")
    s = _cmd(sub, "serve", a.cmd_serve, "serve the HTTP API (uvicorn)", False)
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--workers", type=int, default=1, help="server processes (default 1)")
    s.add_argument("--max-upload-mb", type=float, default=100.0,
                   help="largest artifact upload in MiB (default 100)")
    s.add_argument("--log-level", default="info",
                   choices=["critical", "error", "warning", "info", "debug"])
    _cmd(sub, "demo", o.cmd_demo, "build a demo store from the shipped content and show what "
         "it did", False)


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="dataops", description="Recurring operational work: workflow definitions, "
               "bundles, tasks, reminders.")
    _globals(p)
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _cmd(sub, "validate", c.cmd_validate, "check content/ and machines/; report every problem",
         False)
    tpl = _group(sub, "template", "workflow definitions")
    _cmd(tpl, "list", c.cmd_template_list, "list workflow definitions")
    _cmd(tpl, "show", c.cmd_template_show, "print one definition").add_argument("template_id")
    _bundles(sub)
    _tasks(sub)
    _operations(sub)
    return p
