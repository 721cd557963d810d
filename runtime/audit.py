"""Verify the audit log's hash chain. Pure over a list of events."""

from __future__ import annotations

from collections.abc import Iterable

from runtime.errors import AuditChainBroken
from runtime.model import GENESIS_HASH, AuditEvent


def verify_chain(events: Iterable[AuditEvent]) -> int:
    """Check that events are contiguous, each links to the one before and hashes to its hash.

    :returns: the number of events checked.
    :raises AuditChainBroken: at the first event that was edited, removed or reordered.
    """
    prev_seq, prev_hash = 0, GENESIS_HASH
    count = 0
    for event in events:
        if event.seq != prev_seq + 1:
            raise AuditChainBroken(
                event.seq, event.event_id,
                f"expected event #{prev_seq + 1} here: an event was removed or reordered",
            )
        if event.prev_hash != prev_hash:
            raise AuditChainBroken(
                event.seq, event.event_id,
                "its prev_hash does not match the event before it: an event was removed, "
                "reordered or edited",
            )
        if event.content_hash(prev_hash) != event.hash:
            raise AuditChainBroken(event.seq, event.event_id, "its content was edited after it was written")
        prev_seq, prev_hash = event.seq, event.hash
        count += 1
    return count
