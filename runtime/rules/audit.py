"""Audit chains: hashing, chain verification and seals. Pure.

Every entity has its own chain (DESIGN.md "Audit chains"): event ``n`` of an entity links to
event ``n - 1`` by ``prev_hash``, carries ``state_hash`` (the record's visible fields after the
event) and hashes to ``hash``; the record carries the head (``audit_seq``, ``audit_hash``).
So a chain is checked against its own record, and a seal (a Merkle root over every head)
catches an entity removed together with all its events.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

import orjson

from runtime.model import GENESIS_HASH, AuditEvent, Record, format_instant

STATE_EXCLUDE = frozenset({
    "version", "updated_at", "next_reminder_at", "reminder_cursor", "deliver_after", "attempts",
    "audit_seq", "audit_hash", "lease_expires_at", "claimable_at",
})
"""Bookkeeping fields: they move without an event (the sweep's cursor; a delivery lease, which
counts the attempt it starts so that a reminder that kills every daemon still runs out of
attempts), so the state hash leaves them out; every other field of a record is covered."""


def digest(data: Any) -> str:
    # orjson: sorted keys, compact, UTF-8: a canonical form any language can recompute
    return hashlib.sha256(orjson.dumps(data, option=orjson.OPT_SORT_KEYS)).hexdigest()


def visible_state(record: Record) -> dict[str, Any]:
    """The record's fields that its chain vouches for, in the export shape."""
    state: dict[str, Any] = orjson.loads(record.model_dump_json(exclude=set(STATE_EXCLUDE)))
    return state


def state_hash(record: Record) -> str:
    return digest(visible_state(record))


def state_hash_of_doc(doc: dict[str, Any], *, consume: bool = False) -> str:
    """:func:`state_hash` of the record whose export line parsed to ``doc``, if that line is
    in the export shape (the model's own serialisation, as every export writes it); a caller
    that cannot be sure confirms a mismatch with :func:`state_hash` of the record.
    ``consume``: the caller has no further use for ``doc``; its bookkeeping fields are removed
    from it in place (cheaper than copying the rest)."""
    if not consume:
        return digest({k: v for k, v in doc.items() if k not in STATE_EXCLUDE})
    for name in STATE_EXCLUDE:
        doc.pop(name, None)
    return digest(doc)


HASHED = ("event_id", "seq", "actor", "entity_type", "entity_id", "action", "before", "after",
          "summary", "at", "prev_hash", "state_hash")
"""Every field of an audit event but ``hash``: what its hash covers."""


def hash_of_event(fields: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of an event's :data:`HASHED` fields (``at`` an instant)."""
    body = {name: fields[name] for name in HASHED}
    body["at"] = format_instant(body["at"])
    return digest(body)


def event_hash(event: AuditEvent) -> str:
    """The hash ``event`` must carry (see :func:`hash_of_event`)."""
    return hash_of_event({name: getattr(event, name) for name in HASHED})


def event_hash_of_doc(doc: dict[str, Any]) -> str | None:
    """:func:`event_hash` from an export line parsed to ``doc`` (``at`` already the instant's
    text), or None if a hashed field is missing; a mismatch is confirmed with
    :func:`event_hash` of the record (a line need not be in the export shape)."""
    try:
        return digest({name: doc[name] for name in HASHED})
    except KeyError:
        return None


class ChainLink(Protocol):
    """What checking a chain reads of each event: an :class:`AuditEvent`, or what an export's
    reader kept of its line."""

    @property
    def seq(self) -> int: ...
    @property
    def event_id(self) -> str: ...
    @property
    def prev_hash(self) -> str: ...
    @property
    def hash(self) -> str: ...
    @property
    def state_hash(self) -> str: ...


def edited_in_place(name: str, seq: int, event_id: str) -> str:
    return (f"{name}: the record no longer matches its last event #{seq} ({event_id}): it "
            "was edited in place")


def verify_entity(
    entity_type: str, entity_id: str, head: tuple[int, str, str] | None,
    events: Sequence[ChainLink], hashes: Sequence[str] | None = None,
) -> list[str]:
    """Check one entity's chain against its record.

    ``head`` is ``(audit_seq, audit_hash, state_hash of the record now)``, or None when there
    is no record. ``hashes``: each event's :func:`event_hash`, when the caller has them
    (without them, ``events`` are :class:`AuditEvent` and are hashed here).
    Returns every problem found, each naming the entity and the event.
    """
    name = f"{entity_type} {entity_id}"
    problems: list[str] = []
    prev = GENESIS_HASH
    for n, event in enumerate(events, 1):
        where = f"{name}: event #{event.seq} ({event.event_id})"
        if event.seq != n:
            problems.append(f"{where}: expected event #{n} here: an event was removed or reordered")
            return problems
        if event.prev_hash != prev:
            problems.append(f"{where}: prev_hash does not match the event before it: "
                            "an event was removed, reordered or edited")
            return problems
        if hashes is not None:
            computed = hashes[n - 1]
        else:
            assert isinstance(event, AuditEvent), "give the hashes of events that are not models"
            computed = event_hash(event)
        if computed != event.hash:
            problems.append(f"{where}: its content was edited after it was written")
            return problems
        prev = event.hash
    if head is None:
        if events:
            problems.append(f"{name}: has {len(events)} audit events but no record: "
                            "the record was removed")
        return problems
    audit_seq, audit_hash, current = head
    if audit_seq != len(events) or (events and audit_hash != events[-1].hash):
        problems.append(f"{name}: the record's chain head is event #{audit_seq} but the log "
                        f"has {len(events)} events: the chain was truncated or extended")
    elif audit_seq and current != events[-1].state_hash:
        problems.append(edited_in_place(name, audit_seq, events[-1].event_id))
    elif not audit_seq:
        problems.append(f"{name}: the record has no audit event")
    return problems


def merkle_root(leaves: Iterable[tuple[str, str, int, str]]) -> str:
    """The Merkle root (sha256, pairwise, odd node promoted) over chain heads sorted by
    (entity_type, entity_id); the root of no heads is :data:`GENESIS_HASH`."""
    level = [
        hashlib.sha256(f"{t}|{i}|{seq}|{h}".encode()).digest()
        for t, i, seq, h in sorted(leaves)
    ]
    if not level:
        return GENESIS_HASH
    while len(level) > 1:
        nxt = [hashlib.sha256(level[k] + level[k + 1]).digest() for k in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0].hex()
