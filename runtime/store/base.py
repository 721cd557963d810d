"""The store port: what the engine, the scheduler and export need from a store.

Designed so that a DynamoDB adapter fits without changing it: a command is one atomic
:class:`Changes` of at most :data:`MAX_ITEMS_PER_COMMIT` items (DynamoDB's TransactWriteItems
limit), and every query is by ID, by bundle, or by a time index (``next_reminder_at`` of tasks
and bundles, ``deliver_after`` of reminders).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, TypeVar, runtime_checkable

from runtime.model import AuditEvent, Bundle, Record, Reminder, Task

R = TypeVar("R", bound=Record)

MAX_ITEMS_PER_COMMIT = 100


@dataclass
class Changes:
    """One command's writes; they commit together or not at all.

    ``creates`` must not exist yet (a conflict otherwise). ``updates`` are ``(record,
    expected_version)``: written only if the stored version is still ``expected_version``.
    ``events`` are appended to the audit chain in order; the store assigns seq and hashes.
    """

    creates: list[Record] = field(default_factory=list)
    updates: list[tuple[Record, int]] = field(default_factory=list)
    events: list[AuditEvent] = field(default_factory=list)

    def size(self) -> int:
        return len(self.creates) + len(self.updates) + len(self.events)

    def __bool__(self) -> bool:
        return self.size() > 0


@runtime_checkable
class Store(Protocol):
    """A place for bundles, tasks, artifacts' metadata, assistant jobs, reminders and the audit log.

    Every method raises :class:`~runtime.errors.DataopsError` subclasses only; driver errors are
    translated at the adapter's edge.
    """

    url: str

    def get(self, kind: type[R], record_id: str) -> R:
        """The record of ``kind`` with that ID.

        :raises NotFoundError: there is none.
        """

    def find(self, kind: type[R], record_id: str) -> R | None:
        """The record of ``kind`` with that ID, or None."""

    def tasks_of(self, bundle_id: str) -> list[Task]:
        """The tasks of a bundle (empty if there is no such bundle), in creation order."""

    def bundles(self) -> list[Bundle]:
        """Every bundle, oldest first."""

    def reminders(self, *, entity_id: str | None = None) -> list[Reminder]:
        """Recorded reminders (of one entity, or all), oldest first."""

    def due_for_reminders(self, at: datetime, limit: int) -> list[Task | Bundle]:
        """Tasks and bundles whose ``next_reminder_at`` is at or before ``at`` (indexed)."""

    def pending_deliveries(self, at: datetime, limit: int) -> list[Reminder]:
        """Reminders whose ``deliver_after`` is at or before ``at`` (indexed)."""

    def audit_events(self, *, entity_id: str | None = None) -> list[AuditEvent]:
        """The audit log in chain order (of one entity, or all)."""

    def scan(self, kind: type[R]) -> Iterator[R]:
        """Every record of ``kind`` (export only)."""

    def commit(self, changes: Changes) -> list[AuditEvent]:
        """Write ``changes`` atomically and return the audit events as chained.

        :raises ConflictError: a create exists already or an update's version moved on;
            nothing was written.
        :raises InputError: more than :data:`MAX_ITEMS_PER_COMMIT` items.
        """

    def close(self) -> None:
        """Release connections."""


def check_size(changes: Changes) -> None:
    from runtime.errors import InputError

    if changes.size() > MAX_ITEMS_PER_COMMIT:
        raise InputError(
            f"one command may write at most {MAX_ITEMS_PER_COMMIT} items, this one writes "
            f"{changes.size()}; split the definition or the import batch"
        )


def sort_bundles(items: Sequence[Bundle]) -> list[Bundle]:
    return sorted(items, key=lambda b: (b.created_at, b.bundle_id))
