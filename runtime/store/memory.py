"""The in-memory store: a real adapter (versions checked, same errors, same encoding), for tests
and demos.

Records are kept as their JSON, exactly as the SQLite store keeps them, so a record comes back
from every adapter identical (instants included) and a damaged record can be quarantined here
too. ``memory://?max_items=N`` declares a per-write limit like DynamoDB's, to exercise the
engine's resumable protocols without a server.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, urlparse

from runtime.errors import ConflictError, InputError, NotFoundError
from runtime.model import (
    AssistantJob,
    AuditEvent,
    Bundle,
    Digest,
    IdempotencyKey,
    Reminder,
    Seal,
    Task,
    kind_of,
    record_id,
    record_version,
)
from runtime.store.base import (
    TRANSIENT_KINDS,
    Changes,
    Page,
    R,
    check_filters,
    check_size,
    decode,
    decode_list_cursor,
    decode_or_raise,
    due_cursor,
    due_key,
    encode_cursor,
    get_or_raise,
    list_key,
    scan_key,
)

_Row = tuple[int, bytes]  # (version, JSON)


MIN_ITEMS = 8
"""The least a store must take in one write: a task command writes at most 6 items (the task
and the bundle, their events, a stage_change reminder and its event), and a sweep records up
to 3 reminders of one task at one instant (due, missing_evidence, follow_up_due) with its
cursor: 7."""


def _max_items(url: str) -> int | None:
    query = parse_qs(urlparse(url).query)
    if "max_items" not in query:
        return None
    try:
        value = int(query["max_items"][-1])
    except ValueError:
        value = 0
    if value < MIN_ITEMS:
        raise InputError(f"store URL {url!r}: max_items must be a whole number of at least "
                         f"{MIN_ITEMS} (the most one task command writes)")
    return value


class _View:
    """Reads over one frozen copy of the tables (a snapshot) or the live ones."""

    def __init__(self, store: MemoryStore, tables: dict[str, dict[str, _Row]]) -> None:
        self.store, self.tables = store, tables

    def scan(self, kind: type[R]) -> Iterator[R]:
        rows = self.tables.get(kind.record_kind, {})  # type: ignore[attr-defined]
        records = [r for rid, (_, doc) in rows.items()
                   if (r := self.store._decode(kind, rid, doc)) is not None]
        yield from sorted(records, key=scan_key)


class MemoryStore:
    """Records live in dicts keyed by kind and ID, as JSON; one lock makes commits atomic."""

    def __init__(self, url: str = "memory://", *, max_items: int | None = None) -> None:
        self.url = url
        self.max_items = max_items if max_items is not None else _max_items(url)
        if self.max_items is not None and self.max_items < MIN_ITEMS:
            raise InputError(f"store {url!r}: max_items must be at least {MIN_ITEMS} (the most "
                             "one command or one sweep write needs)")
        self.quarantined: dict[str, str] = {}
        self._lock = threading.RLock()
        self._tables: dict[str, dict[str, _Row]] = {}
        self._tasks_by_bundle: dict[str, list[str]] = {}
        self._chain_places: dict[tuple[str, int], str] = {}  # (entity_id, seq) -> event_id

    # -- decoding ---------------------------------------------------------------------------
    def _decode(self, kind: type[R], rid: str, doc: bytes) -> R | None:
        return decode(kind, rid, doc, self.quarantined)

    def _rows(self, kind: str) -> dict[str, _Row]:
        return self._tables.setdefault(kind, {})

    def _all(self, kind: type[R]) -> list[R]:
        with self._lock:
            rows = list(self._rows(kind.record_kind).items())  # type: ignore[attr-defined]
        return [r for rid, (_, doc) in rows if (r := self._decode(kind, rid, doc)) is not None]

    # -- reads ------------------------------------------------------------------------------
    def find(self, kind: type[R], record_id: str) -> R | None:
        with self._lock:
            row = self._rows(kind.record_kind).get(record_id)  # type: ignore[attr-defined]
        return None if row is None else decode_or_raise(kind, record_id, row[1], self.quarantined)

    def get(self, kind: type[R], record_id: str) -> R:
        return get_or_raise(self, kind, record_id)

    def tasks_of(self, bundle_id: str) -> list[Task]:
        with self._lock:
            ids = list(self._tasks_by_bundle.get(bundle_id, []))
            rows = self._rows("task")
            docs = [(t, rows[t][1]) for t in ids]
        tasks = [r for t, doc in docs if (r := self._decode(Task, t, doc)) is not None]
        return sorted(tasks, key=lambda t: (t.position, t.task_id))

    def page(self, kind: type[R], *, where: dict[str, str] | None = None, limit: int = 100,
             cursor: str | None = None) -> Page[R]:
        where = where or {}
        check_filters(kind.record_kind, where)  # type: ignore[attr-defined]
        after = tuple(decode_list_cursor(kind.record_kind, cursor)) if cursor else None  # type: ignore[attr-defined]
        hits = sorted((r for r in self._all(kind) if _matches(r, where)), key=list_key)
        if after is not None:
            hits = [r for r in hits if list_key(r) > after]
        items = hits[:limit]
        more = len(hits) > limit
        return Page(items, encode_cursor(list_key(items[-1])) if more and items else None)

    def count(self, kind: type[R], *, where: dict[str, str] | None = None) -> int | None:
        check_filters(kind.record_kind, where or {})  # type: ignore[attr-defined]
        return sum(1 for r in self._all(kind) if _matches(r, where or {}))

    def audit_events(self, entity_id: str) -> list[AuditEvent]:
        return sorted((e for e in self._all(AuditEvent) if e.entity_id == entity_id),
                      key=lambda e: e.seq)

    def due_for_reminders(self, at: datetime, limit: int,
                          cursor: str | None = None) -> Page[Task | Bundle]:
        # No index: the memory store is for tests and demos, not for a million tasks.
        after = due_cursor(cursor)
        candidates: list[Task | Bundle] = [*self._all(Bundle), *self._all(Task)]
        hits = sorted((r for r in candidates
                       if r.next_reminder_at is not None and r.next_reminder_at <= at
                       and (after is None or due_key(r) > after)), key=due_key)
        more = len(hits) > limit
        return Page(hits[:limit], encode_cursor(due_key(hits[limit - 1])) if more else None)

    def pending_deliveries(self, at: datetime, limit: int) -> list[Reminder]:
        hits = [r for r in self._all(Reminder)
                if r.deliver_after is not None and r.deliver_after <= at]
        hits.sort(key=lambda r: (r.deliver_after, r.reminder_id))
        return hits[:limit]

    def pending_digest_deliveries(self, at: datetime, limit: int) -> list[Digest]:
        hits = [d for d in self._all(Digest)
                if d.deliver_after is not None and d.deliver_after <= at]
        hits.sort(key=lambda d: (d.deliver_after, d.digest_id))
        return hits[:limit]

    def pending_digests(self, at: datetime, limit: int) -> list[Reminder]:
        hits = [r for r in self._all(Reminder)
                if r.digest_after is not None and r.digest_after <= at]
        hits.sort(key=lambda r: (r.digest_after, r.reminder_id))
        return hits[:limit]

    def latest_seal(self) -> Seal | None:
        seals = self._all(Seal)
        return max(seals, key=lambda s: (s.at, s.seal_id)) if seals else None

    @contextmanager
    def snapshot(self) -> Iterator[_View]:
        with self._lock:
            frozen = {kind: dict(rows) for kind, rows in self._tables.items()}
        yield _View(self, frozen)

    def is_empty(self) -> bool:
        with self._lock:
            return not any(rows for kind, rows in self._tables.items()
                           if kind not in TRANSIENT_KINDS)

    def claimable_jobs(self, at: datetime, kinds: Sequence[str] | None,
                       limit: int) -> list[AssistantJob]:
        hits = [j for j in self._all(AssistantJob) if j.claimable_at is not None
                and j.claimable_at <= at and (not kinds or j.kind in kinds)]
        hits.sort(key=lambda j: (j.claimable_at, j.assistant_job_id))
        return hits[:limit]

    def purge_idempotency_keys(self, before: datetime, limit: int = 1000) -> int:
        with self._lock:
            rows = self._rows("idempotency_key")
            gone = [rid for rid, (_, doc) in rows.items()
                    if (k := self._decode(IdempotencyKey, rid, doc)) is None
                    or k.expires_at <= before][:limit]
            for rid in gone:
                del rows[rid]
        return len(gone)

    # -- writes -----------------------------------------------------------------------------
    def commit(self, changes: Changes) -> None:
        check_size(self, changes)
        with self._lock:
            self._check(changes)
            for rec in (*changes.creates, *changes.events):
                self._rows(kind_of(rec))[record_id(rec)] = (record_version(rec), changes.doc(rec).encode())
                if isinstance(rec, Task):
                    self._tasks_by_bundle.setdefault(rec.bundle_id, []).append(rec.task_id)
                elif isinstance(rec, AuditEvent):
                    self._chain_places[(rec.entity_id, rec.seq)] = rec.event_id
            for rec, _ in changes.updates:
                self._rows(kind_of(rec))[record_id(rec)] = (record_version(rec), changes.doc(rec).encode())

    def _check(self, changes: Changes) -> None:
        updated: dict[tuple[str, str], int] = {}
        for rec, expected in changes.updates:  # first: a lost race names the record
            key = (kind_of(rec), record_id(rec))
            row = self._rows(key[0]).get(key[1])
            if row is None:
                raise NotFoundError(*key)
            # a second update of one record in one write meets the version the first wrote,
            # as it does in SQL (``... WHERE version = expected`` then matches no row)
            version = updated.get(key, row[0])
            if version != expected:
                raise ConflictError(key[1], f"version is {version}, expected {expected}")
            updated[key] = record_version(rec)
        seen: set[tuple[str, str]] = set()
        for rec in (*changes.creates, *changes.events):
            key = (kind_of(rec), record_id(rec))
            if key in seen or key[1] in self._rows(key[0]):
                raise ConflictError(key[1], "it exists already")
            seen.add(key)
        chains = {(e.entity_id, e.seq) for e in changes.events}
        if len(chains) != len(changes.events):
            raise ConflictError(changes.events[0].entity_id, "two events at one place in its chain")
        events = self._rows("audit_event")
        for e in changes.events:  # unique per (entity_id, seq) against the stored events too
            if self._chain_places.get((e.entity_id, e.seq)) in events:
                raise ConflictError(e.entity_id, f"its audit event #{e.seq} exists already")

    def close(self) -> None:
        pass

    # -- test hooks: tamper with stored rows like an attacker or a damaged disk would --------
    def _put_raw(self, kind: str, rid: str, doc: bytes, version: int = 1) -> None:
        with self._lock:
            self._rows(kind)[rid] = (version, doc)

    def _delete_raw(self, kind: str, rid: str) -> None:
        with self._lock:
            self._rows(kind).pop(rid, None)
            for ids in self._tasks_by_bundle.values():
                if rid in ids:
                    ids.remove(rid)

    def _raw(self, kind: str, rid: str) -> bytes:
        return self._rows(kind)[rid][1]


def _matches(rec: Any, where: dict[str, str]) -> bool:
    return all(str(getattr(rec, k, None)) == v for k, v in where.items())

