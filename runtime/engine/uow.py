"""The unit of work: the only code that writes.

A use case reads through it, then says *what* changes (``create``, ``update``, ``touch``); the
unit of work stamps *how*: ``version`` and ``updated_at``, the reminder index
(``next_reminder_at``) from the one reminder rule, and the audit event that extends the
record's own chain (``audit_seq``, ``audit_hash`` on the record; ``seq``, ``prev_hash``,
``state_hash``, ``hash`` on the event). :meth:`commit` writes it all in one atomic write.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

import orjson

from runtime.errors import ConflictError, InputError, NotFoundError, VersionMismatch
from runtime.model import (
    GENESIS_HASH,
    AuditEvent,
    Bundle,
    Record,
    Reminder,
    Task,
    format_instant,
    kind_of,
    new_id,
    record_id,
)
from runtime.rules.audit import STATE_EXCLUDE, digest, hash_of_event
from runtime.rules.reminders import Firing, next_reminder_at, reminder_of
from runtime.store.base import Changes

if TYPE_CHECKING:
    from runtime.engine.services import Services

R = TypeVar("R", bound=Record)
T = TypeVar("T")

BATCH = 100
"""Independent writes (the sweep's) merged into one atomic write (at most the store's limit)."""

RETRIES = 12
"""How often a command that lost a race is re-run (re-read, guards re-checked) before the
conflict reaches the caller."""


class UnitOfWork:
    """One command's reads and writes; see the module docstring."""

    def __init__(self, svc: Services, now: datetime | None = None) -> None:
        self.svc = svc
        self.store = svc.store
        self.actor = svc.actor
        self.now = (now or svc.now()).astimezone(UTC)
        self.changes = Changes()
        self._bundles: dict[str, Bundle] = {}

    # -- reads ------------------------------------------------------------------------------
    def get(self, kind: type[R], record_id: str) -> R:
        """:raises NotFoundError, RecordUnreadable:"""
        rec = self.store.get(kind, record_id)
        self.remember(rec)
        return rec

    def task_and_bundle(self, task_id: str) -> tuple[Task, Bundle]:
        """A task and its bundle: in one read where the store can join them (PostgreSQL's
        ``task_and_bundle``), else two.

        :raises NotFoundError, RecordUnreadable:"""
        both = getattr(self.store, "task_and_bundle", None)
        if both is not None:
            task, bundle = both(task_id)
        else:
            task = self.store.get(Task, task_id)
            bundle = self.store.get(Bundle, task.bundle_id)
        self.remember(bundle)
        return task, bundle

    def remember(self, rec: Record) -> None:
        """Know ``rec`` (a bundle: the zone and policy its tasks' reminders follow)."""
        if isinstance(rec, Bundle):
            self._bundles[rec.bundle_id] = rec

    # -- writes -----------------------------------------------------------------------------
    def create(self, rec: R, summary: str, *, action: str = "create") -> R:
        """Add ``rec`` as new (version 1), with its first audit event."""
        stamp: dict[str, Any] = {"audit_seq": 0, "audit_hash": ""}
        if "version" in type(rec).model_fields:
            stamp["version"] = 1
        new = self._stamped(None, rec.model_copy(update=stamp), action, summary, None)
        self.changes.creates.append(new)
        self.remember(new)
        return new

    def record(self, firing: Firing, *, task: Task | None = None, bundle: Bundle | None = None,
               summary: str | None = None) -> Reminder:
        """Record ``firing`` as a new reminder, routed to its recipients (the people directory;
        ``task`` and ``bundle`` say whose it is)."""
        from runtime.engine.routing import recipients_for

        recipients = recipients_for(self.svc, firing, self.now, task=task, bundle=bundle)
        return self.create(reminder_of(firing, self.now, recipients), summary or firing.summary,
                           action="record")

    def update(self, old: R, fields: dict[str, Any], summary: str, *, action: str) -> R:
        """Write ``old`` with ``fields`` changed, conditional on the version read."""
        stamp: dict[str, Any] = {"version": old.version + 1}  # type: ignore[attr-defined]
        if "updated_at" in type(old).model_fields:
            stamp["updated_at"] = self.now
        draft = old.model_copy(update={**fields, **stamp})
        new = self._stamped(old, draft, action, summary, set(fields))
        self.changes.updates.append((new, old.version))  # type: ignore[attr-defined]
        self.remember(new)
        return new

    def touch(self, old: R, fields: dict[str, Any], *, bump: bool = False) -> R:
        """Write bookkeeping ``fields`` (a reminder cursor, a delivery lease) that no audit event
        covers, conditional on the version read; ``bump`` moves the version on, else it stays
        (so an operator's command never conflicts with the sweep's cursor)."""
        if set(fields) - STATE_EXCLUDE:
            raise AssertionError(f"touch() writes bookkeeping only, not {set(fields) - STATE_EXCLUDE}")
        version: int = old.version  # type: ignore[attr-defined]
        new = old.model_copy(update={**fields, "version": version + 1 if bump else version})
        if "next_reminder_at" not in fields:
            new = self._indexed(new)
        self.changes.updates.append((new, version))
        return new

    def commit(self) -> None:
        """:raises ConflictError, NotFoundError, ThrottledError, StoreFault: nothing written."""
        if self.changes:
            self.store.commit(self.changes)

    # -- stamping ---------------------------------------------------------------------------
    def _index(self, rec: Record) -> dict[str, Any]:
        """The reminder index field ``rec`` must be written with (empty if it has none)."""
        if isinstance(rec, Task):
            bundle = self._bundles.get(rec.bundle_id) or self.get(Bundle, rec.bundle_id)
            return {"next_reminder_at": next_reminder_at(rec, bundle.timezone,
                                                         bundle.reminder_settings)}
        if isinstance(rec, Bundle):
            return {"next_reminder_at": next_reminder_at(rec, rec.timezone, rec.reminder_settings)}
        return {}

    def _stamped(self, old: Record | None, draft: R, action: str, summary: str,
                 fields: set[str] | None) -> R:
        """``draft`` with its index and the head of its chain, the event appended. The index
        and the head are bookkeeping the state hash leaves out, so the draft's state is final:
        the record is serialised once (its state, its hash and the JSON the store keeps all
        come from that one dump) and copied once."""
        full: dict[str, Any] = orjson.loads(draft.model_dump_json())
        state = {k: v for k, v in full.items() if k not in STATE_EXCLUDE}
        if old is None:
            before, after = None, state
        else:
            touched = (fields or set()) - STATE_EXCLUDE
            was = old.model_dump(mode="json", include=touched)
            changed = sorted(k for k in touched if was.get(k) != state.get(k))
            before = {k: was.get(k) for k in changed}
            after = {k: state.get(k) for k in changed}
        body = {
            "event_id": new_id("evt"), "seq": draft.audit_seq + 1,  # type: ignore[attr-defined]
            "actor": self.actor, "entity_type": kind_of(draft), "entity_id": record_id(draft),
            "action": action, "summary": summary,
            # free-form: keys sorted, as the model keeps them (FreeForm); the values are JSON
            # already (from the dump above), so orjson sorts them (a record with recipients
            # nests lists of objects: a walk in Python cost a fifth of a sweep)
            "before": None if before is None else _sorted_json(before),
            "after": _sorted_json(after),
            "at": self.now, "prev_hash": draft.audit_hash or GENESIS_HASH,  # type: ignore[attr-defined]
            "state_hash": digest(state),
        }
        # every field is built here from validated records and an aware clock: no re-validation
        event = AuditEvent.trusted(**body, hash=hash_of_event(body), presorted=True)
        self.changes.events.append(event)
        # the event's JSON in its fields' order, byte for byte what pydantic would write
        values = {**body, "at": format_instant(self.now), "hash": event.hash}
        self.changes.docs[id(event)] = _json({name: values[name] for name in EVENT_FIELDS})
        head = {**self._index(draft), "audit_seq": event.seq, "audit_hash": event.hash}
        new = draft.model_copy(update=head)
        if "next_reminder_at" in head:
            at = head["next_reminder_at"]
            head["next_reminder_at"] = None if at is None else format_instant(at)
        self.changes.docs[id(new)] = _json({**full, **head})
        return new

    def _indexed(self, rec: R) -> R:
        return rec.model_copy(update=self._index(rec))


EVENT_FIELDS = tuple(AuditEvent.model_fields)


def _sorted_json(value: dict[str, Any]) -> dict[str, Any]:
    """A JSON value with every object's keys sorted (what ``sorted_keys`` gives), by orjson."""
    out: dict[str, Any] = orjson.loads(orjson.dumps(value, option=orjson.OPT_SORT_KEYS))
    return out


def check_version(rec: Record, expected: int | None) -> None:
    """The caller's condition (HTTP ``If-Match``) on the record as read in this attempt. A
    retried attempt re-reads, so a race lost to a write on this record ends here, while one lost
    only on another record (the bundle) is retried as usual.

    :raises VersionMismatch: the record is at another version; nothing is written."""
    current: int = rec.version  # type: ignore[attr-defined]
    if expected is not None and current != expected:
        raise VersionMismatch(record_id(rec), expected, current)


def _json(data: dict[str, Any]) -> str:
    return orjson.dumps(data).decode()


def retrying(attempt: Callable[[], T], retries: int = RETRIES) -> T:
    """Run ``attempt`` (which reads, decides and commits one unit of work), re-running it when
    it lost a race; the last conflict propagates. Safe because a lost race wrote nothing and
    each run re-reads and re-checks its guards."""
    for n in range(retries):
        try:
            return attempt()
        except ConflictError:
            if n == retries - 1:
                raise
            time.sleep(random.uniform(0, 0.001 * 2 ** min(n, 6)))  # jitter: racers spread out
    raise InputError("retrying() needs at least one attempt")  # pragma: no cover


def commit_batched(svc: Services, units: Sequence[UnitOfWork]) -> list[bool]:
    """Commit independent units of work in as few atomic writes as fit (each at most the
    store's limit and :data:`BATCH`); when a merged write conflicts, its parts are retried one
    by one. Returns, per unit, whether it was written."""
    done = [False] * len(units)
    cap = min(BATCH, svc.store.max_items or BATCH)
    group: list[int] = []
    size = 0

    def flush() -> None:
        merged = UnitOfWork(svc)
        for i in group:
            merged.changes.extend(units[i].changes)
        try:
            merged.commit()
            for i in group:
                done[i] = True
        except (ConflictError, NotFoundError):
            for i in group if len(group) > 1 else ():
                try:
                    units[i].commit()
                    done[i] = True
                except (ConflictError, NotFoundError):
                    pass

    for i, unit in enumerate(units):
        if group and size + unit.changes.size() > cap:
            flush()
            group, size = [], 0
        group.append(i)
        size += unit.changes.size()
    if group:
        flush()
    return done
