"""`dataops` commands for operators: reminders, the scheduler, export and import, the audit
log, diagrams, the store."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from runtime.cli import render
from runtime.cli.context import Ctx, warn_broken

OK = 0


def cmd_reminders_due(ctx: Ctx) -> int:
    from runtime.engine.reminders import preview_due, preview_routed
    from runtime.model import parse_instant
    from runtime.rules.reminders import is_late

    svc = ctx.services()
    at = parse_instant(ctx.args.at, "--at") if ctx.args.at else svc.now()
    if ctx.args.by_recipient:
        from runtime.cli.people import by_recipient

        return by_recipient(ctx, at, preview_routed(svc, at))
    firings = preview_due(svc, at)
    if ctx.args.json:
        render.emit_json([{"reminder_id": f.reminder_id, "kind": str(f.kind),
                           "entity_type": f.entity_type, "entity_id": f.entity_id,
                           "bundle_id": f.bundle_id, "task_id": f.task_id,
                           "fire_at": f.fire_at.isoformat(), "late": is_late(f.fire_at, at),
                           "summary": f.summary} for f in firings])
        return OK
    render.out(f"{len(firings)} reminders due at {at.isoformat()} and not yet recorded "
               "(nothing recorded)")
    render.table([(f.fire_at.isoformat(), f.kind, f.entity_id, f.summary) for f in firings],
                 ("fire_at", "kind", "entity", "summary"))
    return OK


def cmd_reminders_list(ctx: Ctx) -> int:
    from runtime.engine.views import list_reminders

    svc = ctx.services()
    reminders, more = ctx.page(lambda n, cur: list_reminders(svc, limit=n, cursor=cur))
    if ctx.args.json:
        render.emit_json([r.to_json() for r in reminders])
    else:
        render.table([(r.fire_at.isoformat(), r.kind, r.entity_id, r.delivery_status, r.attempts,
                       "late" if r.late else "", _to(r), r.summary) for r in reminders],
                     ("fire_at", "kind", "entity", "delivery", "attempts", "late", "to", "summary"))
    render.more(len(reminders), None, more)
    return OK


def _to(reminder: Any) -> str:
    """Who a reminder is for and how far it got: ``ada, bob:digested``; ``-`` unrouted."""
    shown = [r.person_id + ("" if r.status == "sent" else f":{r.status}")
             for r in reminder.recipients[:4]]
    more = len(reminder.recipients) - len(shown)
    return ", ".join(shown) + (f" +{more}" if more > 0 else "") if shown else "-"


MAX_DELIVERY_WORKERS = 256


def cmd_scheduler_run(ctx: Ctx) -> int:
    import logging
    import math
    from datetime import timedelta

    from runtime.engine.delivery import RetryPolicy
    from runtime.errors import InputError
    from runtime.notify import open_sinks
    from runtime.scheduler import Daemon

    interval = ctx.args.interval
    if not math.isfinite(interval) or interval <= 0:
        raise InputError(f"--interval {interval}: give a positive number of seconds")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    timeout = ctx.args.delivery_timeout
    if not math.isfinite(timeout) or timeout <= 0:
        raise InputError(f"--delivery-timeout {timeout}: give a positive number of seconds")
    workers = ctx.args.delivery_workers
    if not 1 <= workers <= MAX_DELIVERY_WORKERS:
        raise InputError(f"--delivery-workers {workers}: give a whole number from 1 to "
                         f"{MAX_DELIVERY_WORKERS}")
    sinks = open_sinks(ctx.args.sink, timeout_s=timeout)
    longest = max([timeout, *(float(getattr(s, "timeout_s", 0) or 0) for s in sinks)])
    margin = RetryPolicy.margin.total_seconds()
    lease = ctx.args.lease
    if not math.isfinite(lease) or lease < longest + margin:
        raise InputError(f"--lease {lease}: give at least {longest + margin:g} seconds (the longest "
                         f"delivery timeout, {longest:g} s, plus a {margin:g} s margin), or "
                         "lower --delivery-timeout")
    svc = ctx.services()
    warn_broken(svc.content)  # a broken definition is left out: its schedule does not fire
    policy = RetryPolicy(timeout=timedelta(seconds=timeout), workers=workers,
                         lease=timedelta(seconds=lease))
    daemon = Daemon(svc, sinks, interval_s=interval, policy=policy)
    if ctx.args.once:
        report = daemon.run_sweep()
        render.out(report.line())
        return OK
    daemon.run_forever()
    return OK


def _progress(ctx: Ctx, what: str, total: int | None) -> Any:
    """A progress bar with a rate and an ETA on a terminal (tqdm, imported only here); nothing
    when stderr is not a terminal or with --quiet."""
    import contextlib

    if getattr(ctx.args, "quiet", False) or not sys.stderr.isatty():
        return contextlib.nullcontext(None)
    from tqdm import tqdm

    return tqdm(total=total, desc=what, unit=" records", unit_scale=True, file=sys.stderr,
                leave=False, dynamic_ncols=True)


def _total(directory: Path) -> int | None:
    """The records an export's manifest lists (for the progress bar), if it says."""
    import json

    try:
        entries = json.loads((directory / "manifest.json").read_text(encoding="utf-8"))["entities"]
        return sum(int(e["count"]) for e in entries)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def cmd_export(ctx: Ctx) -> int:
    from runtime.errors import InputError
    from runtime.export import export_store, load_export

    a = ctx.args
    if a.action == "validate":
        if not a.directory:
            raise InputError("export validate needs the export folder: dataops export validate DIR")
        folder = Path(a.directory)
        with _progress(ctx, "validate", _total(folder)) as bar:
            counts = load_export(folder, bar)
        render.out(f"ok: {a.directory} is a valid export ("
                   + ", ".join(f"{n} {k}" for k, n in counts.items()) + ")")
        return OK
    if a.action is not None or not a.out:
        raise InputError("use dataops export --out DIR, or dataops export validate DIR")
    svc = ctx.services()
    with _progress(ctx, "export", None) as bar:
        manifest = export_store(svc.store, Path(a.out), svc.now(),
                                artifacts=svc.artifacts if a.with_binaries else None, progress=bar)
    blobs = manifest.get("blobs")
    render.out(f"exported to {a.out}: " + ", ".join(
        f"{e['count']} {e['entity_type']}" + ("" if e["implemented"] else " (not implemented)")
        for e in manifest["entities"]) + (f", {blobs['count']} binaries" if blobs else ""))
    return OK


def cmd_import(ctx: Ctx) -> int:
    from runtime.export import import_export, in_one_pass

    folder = Path(ctx.args.directory)
    svc = ctx.services()
    total = _total(folder)
    if total is not None and not in_one_pass(svc.store, ctx.args.replace):
        total *= 2  # validated first, then loaded: each line is counted twice
    # the binaries go in once the export has validated, before its records (as a command
    # writes a binary before its record; content-addressed: putting one again is harmless)
    with _progress(ctx, "import", total) as bar:
        counts = import_export(svc.store, folder, bar, replace=ctx.args.replace,
                               artifacts=svc.artifacts)
    binaries = counts.pop("binaries", 0)
    render.out(f"imported into {ctx.store_url}: " + ", ".join(f"{n} {k}" for k, n in counts.items())
               + (f", {binaries} binaries" if binaries else ""))
    return OK


def cmd_audit_log(ctx: Ctx) -> int:
    from runtime.engine.views import audit_log

    svc = ctx.services()
    events, more = ctx.page(lambda n, cur: audit_log(svc, ctx.args.entity, limit=n, cursor=cur))
    if ctx.args.json:
        render.emit_json([e.to_json() for e in events])
    else:
        render.table([(e.seq, e.at, e.actor, e.action, e.entity_id, e.summary) for e in events],
                     ("seq", "at", "actor", "action", "entity", "summary"))
    render.more(len(events), None, more)
    return OK


def cmd_audit_verify(ctx: Ctx) -> int:
    from runtime.engine.audit import verify

    report = verify(ctx.services().store)
    sealed = (f"; every head of seal {report.sealed.seal_id} ({report.sealed.count} entities) "
              "still there") if report.sealed else "; no seal yet (dataops audit seal)"
    render.out(f"ok: {report.events} audit events in {report.entities} entity chains, "
               f"every hash chain intact{sealed}")
    return OK


def cmd_audit_seal(ctx: Ctx) -> int:
    from runtime.engine.audit import seal

    made = seal(ctx.services())
    if ctx.args.json:
        render.emit_json({k: v for k, v in made.to_json().items() if k != "heads"})
    else:
        render.out(f"sealed {made.count} chain heads at {made.at.isoformat()}: root {made.root} "
                   f"({made.seal_id}); keep the root outside the store too")
    return OK


def cmd_store_init(ctx: Ctx) -> int:
    store = ctx.services().store
    render.out(f"ok: store {store.url} is ready" + (" (empty)" if store.is_empty() else ""))
    return OK


def cmd_store_migrate(ctx: Ctx) -> int:
    from runtime.wiring import open_store

    store = open_store(ctx.store_url, migrate=True)
    try:
        version = getattr(store, "schema_version", lambda: None)()
        render.out(f"ok: store {store.url} is at schema "
                   + (f"{version}" if version is not None else "of this version")
                   + "; nothing else to migrate")
    finally:
        store.close()
    return OK


def cmd_diagrams(ctx: Ctx) -> int:
    from runtime import diagrams
    from runtime.errors import InputError

    out = Path(ctx.args.out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} is a file; give a folder for the diagrams")
    if ctx.args.check:
        problems = diagrams.stale(out)
        if problems:
            raise InputError("diagrams are stale: " + "; ".join(problems)
                             + f"; run dataops diagrams --out {out} and commit")
        render.out(f"ok: diagrams in {out} match machines/")
        return OK
    for path in diagrams.write(out):
        render.out(f"wrote {path}")
    return OK


def cmd_demo(ctx: Ctx) -> int:
    from runtime.cli.demo import run_demo

    return run_demo(ctx)
