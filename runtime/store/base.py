"""The store port (v2): what the engine, the scheduler and export need from a store.

Designed against DynamoDB and PostgreSQL as much as SQLite:

* reads by ID, by bundle, by the due index (``next_reminder_at`` of tasks and bundles,
  ``deliver_after`` of reminders), and paged lists with an opaque cursor: no command lists
  everything;
* scans for export and verification in ID order inside one consistent read snapshot;
* one atomic write per command (:class:`Changes`), every update conditional on the version it
  read; an adapter declares the most items one write may hold (:attr:`Store.max_items`; None
  for no limit);
* nothing global: an audit event is a plain insert, chained by the unit of work on its own
  entity's record (no shared sequence, counter or chain head).

A record that does not decode is quarantined: reads by ID raise
:class:`~runtime.errors.RecordUnreadable`, lists and scans skip it, and the adapter notes it in
:attr:`Store.quarantined` for the sweep to report once.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

from pydantic import ValidationError

from runtime.errors import InputError
from runtime.model import (
    AssistantJob,
    AuditEvent,
    Bundle,
    Digest,
    Record,
    Reminder,
    Seal,
    Task,
    kind_of,
    record_id,
    record_version,
)

R = TypeVar("R", bound=Record)


@dataclass
class Changes:
    """One command's writes; they commit together or not at all.

    ``creates`` must not exist yet (a conflict otherwise). ``updates`` are ``(record,
    expected_version)``: written only if the stored version is still ``expected_version``.
    ``events`` are appended as they are (the unit of work has chained them).
    """

    creates: list[Record] = field(default_factory=list)
    updates: list[tuple[Record, int]] = field(default_factory=list)
    events: list[AuditEvent] = field(default_factory=list)
    docs: dict[int, str] = field(default_factory=dict, repr=False)
    """Records' JSON already made by the unit of work (by ``id()`` of a record in the lists
    above), so that a store serialises nothing twice; see :meth:`doc`."""

    def doc(self, rec: Record) -> str:
        """``rec`` as the JSON a store keeps (its export shape)."""
        return self.docs.get(id(rec)) or rec.model_dump_json()

    def size(self) -> int:
        return len(self.creates) + len(self.updates) + len(self.events)

    def __bool__(self) -> bool:
        return self.size() > 0

    def extend(self, other: Changes) -> None:
        self.creates += other.creates
        self.updates += other.updates
        self.events += other.events
        self.docs.update(other.docs)


@dataclass
class Page(Generic[R]):
    """One page of a list; ``next_cursor`` is None on the last page."""

    items: list[R]
    next_cursor: str | None = None


def encode_cursor(key: Sequence[Any]) -> str:
    """An opaque cursor for the list position after ``key``."""
    return base64.urlsafe_b64encode(json.dumps(list(key)).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> list[Any]:
    """:raises InputError: the cursor was not made by :func:`encode_cursor`."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        key = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, UnicodeDecodeError):
        raise InputError(f"cursor {cursor!r} is not a cursor this store gave; start again "
                         "without one") from None
    if not isinstance(key, list):
        raise InputError(f"cursor {cursor!r} is not a cursor this store gave")
    return key


_CURSOR_SHAPE: dict[str, tuple[type, ...]] = {
    "reminder": (int, str),
    "audit_event": (int, str, int),
}
"""The types of a list's position (see :func:`list_key`); by ID, ``(str,)``, otherwise."""


def decode_list_cursor(kind: str, cursor: str) -> list[Any]:
    """The position in a ``kind`` list that ``cursor`` holds.

    :raises InputError: not a cursor this store gave for a ``kind`` list (garbage, or another
        list's), so that it never reaches a comparison or a query.
    """
    key = decode_cursor(cursor)
    shape = _CURSOR_SHAPE.get(kind, (str,))
    if len(key) != len(shape) or any(type(v) is not t for v, t in zip(key, shape, strict=False)):
        raise InputError(f"cursor {cursor!r} is not a cursor of a {kind} list; start again "
                         "without one")
    return key


TABLES: dict[str, tuple[str, str]] = {
    "bundle": ("bundles", "bundle_id"),
    "task": ("tasks", "task_id"),
    "artifact": ("artifacts", "artifact_id"),
    "assistant_job": ("assistant_jobs", "assistant_job_id"),
    "reminder": ("reminders", "reminder_id"),
    "audit_event": ("audit_events", "event_id"),
    "seal": ("seals", "seal_id"),
    "api_token": ("api_tokens", "token_id"),
    "idempotency_key": ("idempotency_keys", "key_id"),
    "digest": ("digests", "digest_id"),
}
"""Per record kind, the table (SQL adapters) and the ID field."""

Row = tuple[str, tuple[str, ...], tuple[object, ...]]
"""A record as a SQL store's row: (table, column names, values)."""


def row_of(rec: Record, columns: dict[str, object], doc: str) -> Row:
    """``rec`` as its table's row: its ID, its indexed ``columns``, its version and ``doc``."""
    table, key = TABLES[kind_of(rec)]
    cols = {key: record_id(rec), **columns, "version": record_version(rec), "doc": doc}
    return table, tuple(cols), tuple(cols.values())


def by_table(rows: Iterable[Row]) -> dict[tuple[str, tuple[str, ...]], list[tuple[object, ...]]]:
    """``rows`` grouped by table and column names: one ``executemany`` each."""
    groups: dict[tuple[str, tuple[str, ...]], list[tuple[object, ...]]] = {}
    for table, names, values in rows:
        groups.setdefault((table, names), []).append(values)
    return groups

TRANSIENT_KINDS = frozenset({"idempotency_key"})
"""Request state, not records of work: not exported, not counted by ``is_empty``."""


def get_or_raise(store: Any, kind: type[R], record_id: str) -> R:
    """``store.find``, or :class:`~runtime.errors.NotFoundError` when there is no such record:
    every adapter's ``get``."""
    from runtime.errors import NotFoundError

    found = store.find(kind, record_id)
    if found is None:
        raise NotFoundError(kind.record_kind, record_id)  # type: ignore[attr-defined]
    return found


LIST_FILTERS: dict[str, frozenset[str]] = {
    "bundle": frozenset({"template_id", "status"}),
    "task": frozenset({"bundle_id", "status", "assignee"}),
    "reminder": frozenset({"entity_id"}),
    "audit_event": frozenset({"entity_id"}),
    "assistant_job": frozenset({"task_id", "status", "kind"}),
    "api_token": frozenset(),
}
"""The fields each paged list filters on (equality)."""


def check_filters(kind: str, where: dict[str, str]) -> None:
    unknown = set(where) - LIST_FILTERS.get(kind, frozenset())
    if unknown:
        raise InputError(f"a {kind} list cannot filter on {', '.join(sorted(unknown))}")


class Snapshot(Protocol):
    def scan(self, kind: type[R]) -> Iterator[R]:
        """Every readable record of ``kind`` as of the snapshot, in ID order (audit events in
        (entity_id, seq) order: each chain whole and in order)."""


@runtime_checkable
class Store(Protocol):
    """A place for bundles, tasks, artifacts' metadata, assistant jobs, reminders, audit
    events and seals.

    Every method raises only :class:`~runtime.errors.DataopsError` subclasses; driver errors are
    translated at the adapter's edge through one table per adapter.
    """

    url: str
    max_items: int | None
    """The most items one :meth:`commit` may hold; None: no limit."""
    quarantined: dict[str, str]
    """IDs of records met that do not decode, with why (in this process)."""

    def get(self, kind: type[R], record_id: str) -> R:
        """The record of ``kind`` with that ID.

        :raises NotFoundError: there is none.
        :raises RecordUnreadable: it is stored but does not decode.
        :raises ThrottledError: the store is busy.
        """

    def find(self, kind: type[R], record_id: str) -> R | None:
        """The record of ``kind`` with that ID, or None.

        :raises RecordUnreadable: it is stored but does not decode.
        """

    def tasks_of(self, bundle_id: str) -> list[Task]:
        """The readable tasks of a bundle in definition (creation) order; empty if none."""

    def page(self, kind: type[R], *, where: dict[str, str] | None = None, limit: int = 100,
             cursor: str | None = None) -> Page[R]:
        """One page of ``kind`` in list order (bundles, tasks: by ID; reminders: by
        ``fire_at`` then ID; audit events: by ``at``, then entity and seq, so each chain reads
        in order), filtered by equality on the
        fields :data:`LIST_FILTERS` names.

        :raises InputError: an unknown filter or a cursor this store did not give.
        """

    def count(self, kind: type[R], *, where: dict[str, str] | None = None) -> int | None:
        """How many records a list would show, or None where counting is not cheap."""

    def audit_events(self, entity_id: str) -> list[AuditEvent]:
        """The audit chain of one entity, in seq order."""

    def due_for_reminders(self, at: datetime, limit: int,
                          cursor: str | None = None) -> Page[Task | Bundle]:
        """Tasks and bundles whose ``next_reminder_at`` is at or before ``at`` (indexed), by
        (``next_reminder_at``, ID), after ``cursor``; ``next_cursor`` is non-None when more
        were due than ``limit``.

        :raises InputError: a cursor this store did not give.
        """

    def pending_deliveries(self, at: datetime, limit: int) -> list[Reminder]:
        """Reminders whose ``deliver_after`` is at or before ``at`` (indexed), oldest first."""

    def pending_digest_deliveries(self, at: datetime, limit: int) -> list[Digest]:
        """Digests whose ``deliver_after`` is at or before ``at`` (indexed), oldest first."""

    def pending_digests(self, at: datetime, limit: int) -> list[Reminder]:
        """Reminders whose ``digest_after`` (the earliest digest still to gather them) is at
        or before ``at`` (indexed), oldest first."""

    def latest_seal(self) -> Seal | None:
        """The most recent seal, or None."""

    def snapshot(self) -> AbstractContextManager[Snapshot]:
        """A consistent read snapshot for scans (export, verify, seal)."""

    def is_empty(self) -> bool:
        """True when the store holds no record of any kind (request state aside)."""

    def claimable_jobs(self, at: datetime, kinds: Sequence[str] | None,
                       limit: int) -> list[AssistantJob]:
        """Assistant jobs a worker may claim at ``at`` (``claimable_at`` at or before it,
        indexed), of ``kinds`` (None: any), oldest first."""

    def purge_idempotency_keys(self, before: datetime, limit: int = 1000) -> int:
        """Remove at most ``limit`` idempotency keys whose ``expires_at`` is at or before
        ``before`` (the sweep's housekeeping); how many were removed."""

    def commit(self, changes: Changes) -> None:
        """Write ``changes`` atomically.

        :raises ConflictError: a create exists already or an update's version moved on;
            nothing was written.
        :raises NotFoundError: an update's record does not exist; nothing was written.
        :raises InputError: more than :attr:`max_items` items.
        :raises ThrottledError: busy; nothing was written, retry later.
        :raises StoreFault: read-only, full or corrupt; nothing was written.
        """

    def close(self) -> None:
        """Release connections."""


def check_size(store: Store, changes: Changes) -> None:
    limit = store.max_items
    if limit is not None and changes.size() > limit:
        raise InputError(
            f"one write to {store.url} may hold at most {limit} items, this one holds "
            f"{changes.size()}"
        )


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def micros(at: datetime | None) -> int | None:
    """An instant as integer microseconds since the epoch (what indexes sort by)."""
    if at is None:
        return None
    delta = at - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def decode(kind: type[R], rid: str, doc: bytes | str, quarantined: dict[str, str]) -> R | None:
    """The record ``doc`` holds, or None (noting why in ``quarantined``) if it does not decode."""
    try:
        return kind.model_validate_json(doc)
    except (ValidationError, ValueError) as e:
        quarantined[rid] = reason_of(e)
        return None


def decode_or_raise(kind: type[R], rid: str, doc: bytes | str, quarantined: dict[str, str]) -> R:
    """The record ``doc`` holds; a read by ID of one that does not decode raises.

    :raises RecordUnreadable: it is quarantined (noted in ``quarantined``)."""
    from runtime.errors import RecordUnreadable

    rec = decode(kind, rid, doc, quarantined)
    if rec is None:
        raise RecordUnreadable(kind.record_kind, rid, quarantined[rid])  # type: ignore[attr-defined]
    return rec


def decode_rows(kind: type[R], rows: Sequence[Any], quarantined: dict[str, str]) -> list[R]:
    """The records of ``(id, doc)`` rows, those that do not decode left out (and noted)."""
    return [r for rid, doc in rows if (r := decode(kind, rid, doc, quarantined)) is not None]


def reason_of(e: Exception) -> str:
    """Why a stored doc does not decode, in one line (the first field and its error)."""
    if isinstance(e, ValidationError):
        first = e.errors()[0]
        loc = ".".join(str(p) for p in first["loc"]) or "(record)"
        more = f" (+{e.error_count() - 1} more)" if e.error_count() > 1 else ""
        return f"{loc}: {first['msg']}{more}"
    return str(e).splitlines()[0][:200] if str(e) else type(e).__name__


def list_key(rec: Record) -> tuple[Any, ...]:
    """A record's position in its paged list (see :meth:`Store.page`)."""
    if isinstance(rec, Reminder):
        return (micros(rec.fire_at), rec.reminder_id)
    if isinstance(rec, AuditEvent):
        return (micros(rec.at), rec.entity_id, rec.seq)
    return (rec.id,)  # type: ignore[attr-defined]


def scan_key(rec: Record) -> tuple[Any, ...]:
    """A record's position in a scan: ID order; audit events by (entity_id, seq)."""
    if isinstance(rec, AuditEvent):
        return (rec.entity_id, rec.seq)
    return (rec.id,)  # type: ignore[attr-defined]


def due_key(rec: Task | Bundle) -> tuple[Any, ...]:
    """A record's place in the due index: (``next_reminder_at`` in microseconds, ID)."""
    return (micros(rec.next_reminder_at), rec.id)


def due_cursor(cursor: str | None) -> tuple[int, str] | None:
    """The due-index position a cursor names.

    :raises InputError: a cursor the due index did not give.
    """
    if cursor is None:
        return None
    key = decode_cursor(cursor)
    if len(key) != 2 or not isinstance(key[0], int) or not isinstance(key[1], str):
        raise InputError(f"cursor {cursor!r} is not a cursor of the due index")
    return key[0], key[1]


__all__ = ["LIST_FILTERS", "TABLES", "TRANSIENT_KINDS", "get_or_raise", "Changes", "Page", "Snapshot", "Store", "check_filters",
           "check_size", "decode", "decode_cursor", "decode_or_raise", "decode_rows", "decode_list_cursor", "due_key",
           "encode_cursor", "list_key", "micros",
           "scan_key"]
