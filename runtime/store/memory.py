"""The in-memory store: a real adapter (versions checked, same errors), for tests and demos."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime

from runtime.errors import ConflictError, NotFoundError
from runtime.model import (
    GENESIS_HASH,
    AuditEvent,
    Bundle,
    Record,
    Reminder,
    Task,
    chain,
    kind_of,
    record_id,
    record_version,
)
from runtime.store.base import Changes, R, check_size, sort_bundles


class MemoryStore:
    """Records live in dicts keyed by kind and ID; records are immutable, so sharing is safe."""

    def __init__(self, url: str = "memory://") -> None:
        self.url = url
        self._lock = threading.Lock()
        self._data: dict[str, dict[str, Record]] = {}
        self._tasks_by_bundle: dict[str, list[str]] = {}
        self._events: list[AuditEvent] = []
        self._event_ids: set[str] = set()

    def _table(self, kind: str) -> dict[str, Record]:
        return self._data.setdefault(kind, {})

    def find(self, kind: type[R], record_id: str) -> R | None:
        if kind is AuditEvent:
            return next((e for e in self._events if e.event_id == record_id), None)  # type: ignore[return-value]
        return self._table(kind.record_kind).get(record_id)  # type: ignore[attr-defined, return-value]

    def get(self, kind: type[R], record_id: str) -> R:
        found = self.find(kind, record_id)
        if found is None:
            raise NotFoundError(kind.record_kind, record_id)  # type: ignore[attr-defined]
        return found

    def tasks_of(self, bundle_id: str) -> list[Task]:
        table = self._table("task")
        return [table[t] for t in self._tasks_by_bundle.get(bundle_id, [])]  # type: ignore[misc]

    def bundles(self) -> list[Bundle]:
        return sort_bundles(list(self._table("bundle").values()))  # type: ignore[arg-type]

    def reminders(self, *, entity_id: str | None = None) -> list[Reminder]:
        rs: list[Reminder] = list(self._table("reminder").values())  # type: ignore[arg-type]
        if entity_id is not None:
            rs = [r for r in rs if r.entity_id == entity_id]
        return rs  # insertion order, like the sqlite store

    def due_for_reminders(self, at: datetime, limit: int) -> list[Task | Bundle]:
        # The memory store has no index; it is for tests and demos, not for a million tasks.
        hits: list[Task | Bundle] = [
            r  # type: ignore[misc]
            for kind in ("bundle", "task")
            for r in self._table(kind).values()
            if r.next_reminder_at is not None and r.next_reminder_at <= at  # type: ignore[attr-defined]
        ]
        hits.sort(key=lambda r: (r.next_reminder_at, r.id))
        return hits[:limit]

    def pending_deliveries(self, at: datetime, limit: int) -> list[Reminder]:
        hits = [
            r
            for r in self._table("reminder").values()
            if r.deliver_after is not None and r.deliver_after <= at  # type: ignore[attr-defined]
        ]
        hits.sort(key=lambda r: (r.deliver_after, r.reminder_id))  # type: ignore[attr-defined]
        return hits[:limit]  # type: ignore[return-value]

    def audit_events(self, *, entity_id: str | None = None) -> list[AuditEvent]:
        if entity_id is None:
            return list(self._events)
        return [e for e in self._events if e.entity_id == entity_id]

    def scan(self, kind: type[R]) -> Iterator[R]:
        if kind is AuditEvent:
            yield from self._events  # type: ignore[misc]
            return
        yield from list(self._table(kind.record_kind).values())  # type: ignore[attr-defined, misc]

    def commit(self, changes: Changes) -> list[AuditEvent]:
        check_size(changes)
        with self._lock:
            seen: set[tuple[str, str]] = set()
            for rec in changes.creates:
                key = (kind_of(rec), record_id(rec))
                if key in seen or record_id(rec) in self._table(kind_of(rec)):
                    raise ConflictError(record_id(rec), "it exists already")
                seen.add(key)
            fresh: set[str] = set()
            for event in changes.events:
                if event.event_id in self._event_ids or event.event_id in fresh:
                    raise ConflictError(event.event_id, "audit event exists already")
                fresh.add(event.event_id)
            for rec, expected in changes.updates:
                current = self._table(kind_of(rec)).get(record_id(rec))
                if current is None:
                    raise NotFoundError(kind_of(rec), record_id(rec))
                if record_version(current) != expected:
                    raise ConflictError(
                        record_id(rec),
                        f"version is {record_version(current)}, expected {expected}",
                    )
            for rec in changes.creates:
                self._table(kind_of(rec))[record_id(rec)] = rec
                if isinstance(rec, Task):
                    self._tasks_by_bundle.setdefault(rec.bundle_id, []).append(rec.task_id)
            for rec, _ in changes.updates:
                self._table(kind_of(rec))[record_id(rec)] = rec
            placed = []
            for event in changes.events:
                last = self._events[-1] if self._events else None
                event = chain(event, last.seq if last else 0, last.hash if last else GENESIS_HASH)
                self._events.append(event)
                self._event_ids.add(event.event_id)
                placed.append(event)
            return placed

    def close(self) -> None:
        pass

    # -- test hooks: let the contract suite tamper with the audit log like an attacker would
    def _replace_events(self, events: list[AuditEvent]) -> None:
        self._events = list(events)
        self._event_ids = {e.event_id for e in events}
