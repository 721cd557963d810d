"""`dataops demo`: build a store from the shipped content and show what the runtime does."""

from __future__ import annotations

import os
import sys
import threading
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from runtime.errors import DataopsError, InputError

DEMO_DB = "dataops-demo.db"


def _say(text: str = "") -> None:
    sys.stdout.write(text + "\n")


def run_demo(ctx: Any) -> int:
    """Run the demo on a fresh ``./dataops-demo.db`` (or on ``--store``, which must be empty)."""
    from runtime.clock import FixedClock
    from runtime.model.common import utc
    from runtime.wiring import open_services, open_store

    explicit = ctx.args.store or os.environ.get("DATAOPS_STORE")
    if explicit:
        url = explicit
    else:
        for suffix in ("", "-wal", "-shm"):
            Path(DEMO_DB + suffix).unlink(missing_ok=True)
        url = f"sqlite:///{DEMO_DB}"
    store = open_store(url)
    if not store.is_empty():
        store.close()
        raise InputError(f"demo needs an empty store, {url} has bundles; omit --store to use ./{DEMO_DB}")
    start = ctx.clock().now() if ctx.now_text else utc(2026, 11, 2, 8, 0)
    clock = FixedClock(start)
    svc = open_services(store, None, clock=clock, actor=ctx.actor, artifacts=ctx.artifacts_url)
    svc.content_loader = ctx.content
    try:
        _script(svc, clock)
    finally:
        store.close()
    _say()
    _say(f"The demo store is {url}. Look around, e.g.:")
    _say(f"  dataops --store {url} bundle list")
    _say(f"  dataops --store {url} task show podcast-episode/2026-11-20/book-guest")
    _say(f"  dataops --store {url} audit verify")
    return 0


def _script(svc: Any, clock: Any) -> None:
    content = svc.content
    _say(f"Loaded {len(content.workflows)} workflow definitions and {len(content.documents)} "
         f"documents from {content.root}.")
    _say(f"Clock: {clock.now().isoformat()} (demo time, injected)")
    _say()
    views = _create_bundles(svc)
    if "podcast-episode" in views:
        _work_one_task(svc, clock, views["podcast-episode"])
    _say()
    _remind(svc, clock)
    _say()
    _summary(svc)


ANCHORS = {"podcast-episode": date(2026, 11, 20), "newsletter": date(2026, 11, 6),
           "vat-return": date(2026, 11, 16)}


def _create_bundles(svc: Any) -> dict[str, Any]:
    from runtime import engine

    views = {}
    for template_id, anchor in ANCHORS.items():
        if template_id not in svc.content.workflows:
            continue
        view = engine.create_bundle(svc, template_id, anchor)
        views[template_id] = view
        _say(f"created bundle {view.bundle.bundle_id}: {len(view.tasks)} tasks, "
             f"stage {view.bundle.stage}, due {min(t.due_date for t in view.tasks)} .. "
             f"{max(t.due_date for t in view.tasks)}")
    if "podcast-episode" in views:
        again = engine.create_bundle(svc, "podcast-episode", ANCHORS["podcast-episode"])
        _say(f"created it again: created={again.created} (same template and anchor -> same "
             "bundle)")
    return views


def _work_one_task(svc: Any, clock: Any, podcast: Any) -> None:
    from runtime import engine
    from runtime.rules.proof import missing_proof

    book = podcast.tasks[0]
    _say()
    _say(f"task {book.task_id}: {book.title}, assignee {book.assignee}, due {book.due_date}")
    engine.fire_task(svc, book.task_id, "start")
    _say("  started")
    try:
        engine.fire_task(svc, book.task_id, "complete")
    except DataopsError as e:
        _say(f"  done refused: {e}")
    clock.advance(timedelta(hours=1))
    engine.fire_task(svc, book.task_id, "wait", waiting_for="guest to sign the release form",
                     follow_up_at=clock.now() + timedelta(days=2))
    _say("  waiting for the guest, follow-up in 2 days (still open)")
    clock.advance(timedelta(days=1))
    engine.fire_task(svc, book.task_id, "resume")
    _attach_proof(svc, book.task_id)
    missing = missing_proof(engine.get_task(svc, book.task_id)) or "nothing"
    _say(f"  resumed and attached proof; still missing: {missing}")
    done = engine.fire_task(svc, book.task_id, "complete")
    _say(f"  done at {done.completed_at.isoformat() if done.completed_at else '-'} by "
         f"{done.completed_by}")
    bundle = engine.get_bundle(svc, podcast.bundle.bundle_id).bundle
    _say(f"  bundle {bundle.bundle_id} is at stage {bundle.stage}")


def _attach_proof(svc: Any, task_id: str) -> None:
    from runtime import engine

    for req in engine.get_task(svc, task_id).proof_requirements:
        if req.kind == "url":
            engine.attach_url(svc, task_id, "https://calendar.example.com/booking/42")
        elif req.kind == "artifact":
            engine.attach_file(svc, task_id, b"%PDF-1.4 signed release form\n",
                               "release-form.pdf", "application/pdf")
        elif req.kind == "comment":
            engine.attach_comment(svc, task_id, "Confirmed by phone")
        elif req.kind == "external_status":
            engine.attach_external_status(svc, task_id, req.system, req.expected)


def _remind(svc: Any, clock: Any) -> None:
    from runtime.engine.reminders import preview_due, sweep
    from runtime.notify import FileSink

    clock.set(clock.now().replace(hour=18))
    preview = preview_due(svc, clock.now())
    kinds: dict[str, int] = {}
    for firing in preview:
        kinds[firing.kind] = kinds.get(firing.kind, 0) + 1
    _say(f"reminders due at {clock.now().isoformat()}: {len(preview)} "
         f"({', '.join(f'{n} {k}' for k, n in sorted(kinds.items()))}); previewing records nothing")
    sink_path = Path("dataops-demo-reminders.jsonl").resolve()
    sink_path.unlink(missing_ok=True)
    mailbox = DemoMailbox(Path("dataops-demo-mail.mbox").resolve())
    report = sweep(svc, [FileSink(f"file://{sink_path}"), mailbox])
    _say(f"sweep: {report.line()}")
    second = sweep(svc, [FileSink(f"file://{sink_path}"), mailbox])
    _say(f"sweep again at the same instant: recorded {len(second.recorded)}, delivered "
         f"{len(second.delivered)} (exactly once)")
    _say(f"delivered payloads are in {sink_path}")
    _who_received_what(svc, clock, mailbox, sink_path)


class DemoMailbox:
    """The demo's email channel: the real messages (text and HTML parts, the headers smtp://
    sends), appended to an mbox file instead of handed to an SMTP server, so the demo needs
    no mail server. `scheduler run --sink smtp://HOST:PORT` sends the same messages."""

    channel = "email"
    url = "demo-mbox://"
    timeout_s = 10.0

    def __init__(self, path: Path) -> None:
        from runtime.channels import SmtpChannel

        path.unlink(missing_ok=True)
        self.path = path
        self._builder = SmtpChannel("smtp://localhost", env={"DATAOPS_SMTP_FROM": "dataops@demo.invalid"})
        self.sent: list[tuple[str, str]] = []
        self._lock = threading.Lock()  # deliveries run on a thread pool: one writer at a time

    def address(self, person: Any) -> str | None:
        return str(person.email) if person.email else None

    def send(self, person: Any, message: Any) -> None:
        import mailbox

        with self._lock:
            box = mailbox.mbox(self.path)
            try:
                box.add(self._builder.email(person, message))
                box.flush()
            finally:
                box.close()
            self.sent.append((person.person_id, message.subject))

    def close(self) -> None:
        pass


def _who_received_what(svc: Any, clock: Any, mailbox: DemoMailbox, sink_path: Path) -> None:
    from collections import Counter

    from runtime.engine.reminders import sweep
    from runtime.notify import FileSink

    directory = svc.content.directory
    if not directory:
        _say("no people directory (content/people): reminders reached the sinks only")
        return
    per = Counter(pid for pid, _ in mailbox.sent)
    _say()
    _say(f"who received what ({len(mailbox.sent)} emails, in {mailbox.path}):")
    for pid, n in sorted(per.items()):
        person = directory.people[pid]
        first = min(subject for who, subject in mailbox.sent if who == pid)
        _say(f"  {pid:<7} {person.email:<22} {n:>3} email{'s' if n != 1 else ' '}  e.g. {first}")
    digest_people = sorted(p.person_id for p in directory.people.values() if p.digest_at)
    for pid in digest_people:
        person = directory.people[pid]
        _say(f"  {pid:<7} {person.email:<22}   0 emails  (takes a digest at "
             f"{person.digest_at:%H:%M} {person.timezone})")
    if digest_people:  # the next morning, at the digest time of the first of them
        from runtime.rules.routing import next_digest_at

        person = directory.people[digest_people[0]]
        assert person.digest_at is not None
        clock.set(next_digest_at(clock.now(), person.digest_at, person.timezone))
        sweep(svc, [FileSink(f"file://{sink_path}"), mailbox])
        digests = [(pid, s) for pid, s in mailbox.sent if s.startswith("Your digest")]
        for pid, subject in digests:
            _say(f"  {pid:<7} at {clock.now().isoformat()}: {subject}")


def _summary(svc: Any) -> None:
    from runtime.engine.audit import seal, verify
    from runtime.model import Bundle, Reminder, Task

    store = svc.store
    bundles, tasks = store.count(Bundle), store.count(Task)
    open_tasks = sum(store.count(Task, where={"status": s}) or 0
                     for s in ("todo", "in_progress", "waiting"))
    report = verify(store)
    sealed = seal(svc)
    _say(f"{bundles} bundles, {tasks} tasks ({open_tasks} open), "
         f"{store.count(Reminder)} reminders recorded, {report.events} audit events in "
         f"{report.entities} hash chains (verified); sealed, root {sealed.root[:16]}...")
