"""Audit use cases: verify every entity's chain against its record, and seal the chain heads.

Both read one consistent snapshot: the records of every entity kind by ID, and the audit
events by (entity_id, seq), merged entity by entity, so memory stays in the number of
entities, not of events.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from itertools import groupby
from typing import Any

from runtime.engine.services import Services
from runtime.engine.uow import UnitOfWork
from runtime.errors import AuditChainBroken, ConflictError
from runtime.model import ENTITY_KINDS, AuditEvent, Seal, format_instant, kind_of, new_id, record_id
from runtime.rules.audit import merkle_root, state_hash, verify_entity
from runtime.store.base import Store

Head = tuple[str, str, int, str]  # (entity_type, entity_id, audit_seq, audit_hash)


@dataclass
class VerifyReport:
    entities: int
    events: int
    sealed: Seal | None


def _heads(snap: Any) -> dict[str, tuple[str, int, str, str]]:
    """entity_id -> (entity_type, audit_seq, audit_hash, state hash now)."""
    return {record_id(rec): (kind_of(rec), rec.audit_seq, rec.audit_hash, state_hash(rec))
            for kind in ENTITY_KINDS for rec in snap.scan(kind)}


def verify(store: Store) -> VerifyReport:
    """Check every chain (edited, removed, reordered or truncated events; a record edited in
    place; events whose record is gone) and, against the latest seal, entities removed with
    all their events or sealed events rewritten. A record that cannot be read is named as such,
    not as removed.

    :raises AuditChainBroken: listing every problem, each naming the entity and event.
    """
    problems: list[str] = []
    events_seen = 0
    with store.snapshot() as snap:
        heads = _heads(snap)
        seals = list(snap.scan(Seal))
        seal = max(seals, key=lambda x: (x.at, x.seal_id)) if seals else None
        sealed = {i: (seq, h) for _, i, seq, h in seal.heads} if seal else {}
        unreadable = dict(store.quarantined)
        chained: set[str] = set()
        for entity_id, group in groupby(snap.scan(AuditEvent), key=lambda e: e.entity_id):
            events = list(group)
            events_seen += len(events)
            chained.add(entity_id)
            if entity_id in unreadable:
                continue
            head = heads.get(entity_id)
            entity_type = head[0] if head else events[0].entity_type
            problems += verify_entity(entity_type, entity_id, head and head[1:], events)
            if entity_id in sealed:
                problems += _sealed_event(entity_type, entity_id, sealed[entity_id], events, seal)
    for entity_id, (entity_type, seq, _, _) in heads.items():
        if entity_id not in chained:
            problems += verify_entity(entity_type, entity_id, (seq, "", ""), [])
    problems += [f"record {rid} cannot be read (quarantined: {why}); its chain is not checked"
                 for rid, why in unreadable.items()]
    problems += [f"audit event {rid} cannot be read (quarantined: {why}); its entity's chain "
                 "shows the gap" for rid, why in store.quarantined.items() if rid not in unreadable]
    if seal is not None:
        problems += _against_seal(seal, heads, unreadable)
    if problems:
        raise AuditChainBroken(problems)
    return VerifyReport(len(heads), events_seen, seal)


def _sealed_event(entity_type: str, entity_id: str, sealed: tuple[int, str],
                  events: list[AuditEvent], seal: Any) -> list[str]:
    seq, sealed_hash = sealed
    if seq <= len(events) and seq and events[seq - 1].hash != sealed_hash:
        return [f"{entity_type} {entity_id}: event #{seq} is not the one sealed in "
                f"{seal.seal_id}: the chain was rewritten after the seal"]
    return []


def _against_seal(seal: Seal, heads: dict[str, tuple[str, int, str, str]],
                  unreadable: dict[str, str]) -> list[str]:
    problems = []
    if merkle_root(seal.heads) != seal.root:
        problems.append(f"seal {seal.seal_id}: its heads no longer give its root {seal.root}: "
                        "the seal was edited")
    for entity_type, entity_id, seq, _ in seal.heads:
        now = heads.get(entity_id)
        if entity_id in unreadable:
            continue
        if now is None:
            problems.append(f"{entity_type} {entity_id}: sealed at event #{seq} on "
                            f"{format_instant(seal.at)} ({seal.seal_id}) but is gone with all "
                            "its events")
        elif now[1] < seq:
            problems.append(f"{entity_type} {entity_id}: sealed at event #{seq} on "
                            f"{format_instant(seal.at)} but its chain now ends at #{now[1]}")
    return problems


def _current_heads(svc: Services) -> Iterator[Head]:
    with svc.store.snapshot() as snap:
        for kind in ENTITY_KINDS:
            for rec in snap.scan(kind):
                yield (kind_of(rec), record_id(rec), rec.audit_seq, rec.audit_hash)  # type: ignore[attr-defined]


def seal(svc: Services, *, seal_id: str | None = None) -> Seal:
    """Write a seal: the Merkle root over every chain head now, kept in the store. With a
    ``seal_id`` (the scheduler's daily one) a seal that exists already is returned as is."""
    heads = sorted(_current_heads(svc))
    uow = UnitOfWork(svc)
    made = Seal(seal_id=seal_id or f"seal-{format_instant(uow.now)}-{new_id('s')[2:10]}", at=uow.now,
                root=merkle_root(heads), count=len(heads), heads=heads, created_by=uow.actor)
    uow.changes.creates.append(made)  # a seal is its own record: no chain of its own
    try:
        uow.commit()
    except ConflictError:
        existing = svc.store.find(Seal, made.seal_id)
        if existing is None:
            raise
        return existing
    return made


def daily_seal(svc: Services, now: datetime) -> Seal | None:
    """The scheduler's seal of the (UTC) day, written once across daemons."""
    seal_id = f"seal-daily-{now.date().isoformat()}"
    if svc.store.find(Seal, seal_id) is not None:
        return None
    return seal(svc, seal_id=seal_id)
