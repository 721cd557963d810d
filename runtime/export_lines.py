"""The per-line half of validating an export: parse a line within the limits, validate it
against its model and hash it (``check_batch``). Pure and picklable, so that batches of lines
run in worker processes beside the reader; ``runtime.export`` keeps what spans lines (ID order,
relationships, chains) in one place.

Run by each worker as ``python -m runtime.export_lines`` (see ``runtime.export._Worker``): it
imports only the model, the audit rules, the limits and the stores' column maps, nothing that
opens a store.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson
from pydantic import ValidationError

from runtime import limits
from runtime.model import (
    ApiToken,
    Artifact,
    AssistantJob,
    AuditEvent,
    Bundle,
    Digest,
    Record,
    Reminder,
    Seal,
    Task,
)
from runtime.rules.audit import event_hash, event_hash_of_doc, state_hash_of_doc
from runtime.store.base import Row, reason_of, row_of

STORE_KEYS = frozenset({"PK", "SK", "pk", "sk", "rowid", "pos", "GSI1PK", "GSI1SK"})


@dataclass(frozen=True)
class EntitySpec:
    entity_type: str
    file: str
    model: type[Record]
    id_field: str
    implemented: bool = True
    since: int = 2
    """The first format version that lists this entity."""


ENTITIES = [
    EntitySpec("bundle", "bundles.jsonl", Bundle, "bundle_id"),
    EntitySpec("task", "tasks.jsonl", Task, "task_id"),
    EntitySpec("artifact", "artifacts.jsonl", Artifact, "artifact_id"),
    EntitySpec("assistant_job", "assistant_jobs.jsonl", AssistantJob, "assistant_job_id"),
    EntitySpec("reminder", "reminders.jsonl", Reminder, "reminder_id"),
    # only the sha256 of each token's secret: an export grants no access
    EntitySpec("api_token", "api_tokens.jsonl", ApiToken, "token_id", since=3),
    EntitySpec("digest", "digests.jsonl", Digest, "digest_id", since=4),
    EntitySpec("audit_event", "audit_events.jsonl", AuditEvent, "event_id"),
    # seals name chain heads as they were, so they may name an entity removed since
    EntitySpec("seal", "seals.jsonl", Seal, "seal_id"),
]
BY_TYPE = {e.entity_type: e for e in ENTITIES}

# child.field -> parent.field; a null child field is allowed (optional relationship)
RELATIONSHIPS = [
    ("task", "bundle_id", "bundle", "bundle_id"),
    ("artifact", "task_id", "task", "task_id"),
    ("artifact", "bundle_id", "bundle", "bundle_id"),
    ("assistant_job", "bundle_id", "bundle", "bundle_id"),
    ("assistant_job", "task_id", "task", "task_id"),
    ("assistant_job", "output_artifact_id", "artifact", "artifact_id"),
    ("reminder", "bundle_id", "bundle", "bundle_id"),
    ("reminder", "task_id", "task", "task_id"),
]
# audit_event.entity_id is checked with each chain (an event without its record is named)
# reminder.entity_id and audit_event.entity_id point at the entity named by entity_type
POLYMORPHIC = [("reminder", "entity_id"), ("audit_event", "entity_id")]


class _TooBig(ValueError):
    """A number in an export line past MAX_INT_DIGITS."""


def _bounded_number(text: str) -> str:
    digits = sum(c.isdigit() for c in text)
    if digits > limits.MAX_INT_DIGITS:
        raise _TooBig(f"a number of {digits} digits; the limit is {limits.MAX_INT_DIGITS} digits")
    return text


def _depth(value: Any) -> int:
    """How deeply ``value`` nests lists and objects (iterative: no recursion limit)."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            depth += 1
            deepest = max(deepest, depth)
            stack.extend((v, depth) for v in (item.values() if isinstance(item, dict) else item))
    return deepest


def loads_bounded(text: str) -> Any:
    """A JSON value within the limits of runtime/limits.py (size is the caller's).

    :raises ValueError: not JSON, or past a limit; the message says which.
    """
    try:
        value = json.loads(text, parse_int=lambda t: int(_bounded_number(t)),
                           parse_float=lambda t: float(_bounded_number(t)))
    except _TooBig:
        raise
    except json.JSONDecodeError as e:
        raise ValueError(f"not valid JSON: {e.msg}") from None
    except RecursionError:
        raise ValueError(f"nesting deeper than {limits.MAX_NESTING} levels; the limit is "
                         f"{limits.MAX_NESTING}") from None
    if _depth(value) > limits.MAX_NESTING:
        raise ValueError(f"nesting deeper than {limits.MAX_NESTING} levels; the limit is "
                         f"{limits.MAX_NESTING}")
    return value


def json_object(where: str, text: str, problems: list[str]) -> dict[str, Any] | None:
    """``text`` as a JSON object within the limits, or None with the problem named."""
    try:
        value = loads_bounded(text)
    except ValueError as e:
        problems.append(f"{where}: {e}")
        return None
    if not isinstance(value, dict):
        problems.append(f"{where}: expected a JSON object")
        return None
    return value


_DIGITS_TO_0 = bytes(0x30 if 0x30 <= b <= 0x39 else 0x20 for b in range(256))
_LONG_RUN = b"0" * (limits.MAX_INT_DIGITS + 1)


def _long_digit_run(raw: bytes) -> bool:
    """Whether ``raw`` holds more than MAX_INT_DIGITS digits in a row (maybe an oversized
    number; the bounded parser then decides). A C-speed translate, not a regex: this runs on
    every line."""
    return _LONG_RUN in raw.translate(_DIGITS_TO_0)


def parse_line(spec: EntitySpec, where: str, raw: bytes | str, problems: list[str]
                ) -> tuple[Record | None, dict[str, Any] | None]:
    """One export line as its record and the object it parsed to, or (None, None) with every
    problem named. The fast path is orjson; a line that may nest past the limit or hold an
    oversized number takes the bounded parser, which names the limit."""
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "replace")
    if len(raw) > limits.MAX_EXPORT_LINE_BYTES:
        problems.append(f"{where}: the line is over {limits.MAX_EXPORT_LINE_BYTES} bytes; the "
                        f"limit is {limits.MAX_EXPORT_LINE_BYTES} bytes per record")
        return None, None
    if _needs_bounded_parser(raw):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            problems.append(f"{where}: not UTF-8: {e.reason} at byte {e.start}")
            return None, None
        found = json_object(where, text, problems)
    else:
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError as e:
            problems.append(f"{where}: not valid JSON: {str(e).split(':', 1)[0]}")
            return None, None
        found = value if isinstance(value, dict) else None
        if found is None:
            problems.append(f"{where}: expected a JSON object")
    if found is None:
        return None, None
    try:  # no field is a store key or camelCase: a line with either fails here, and is named
        return spec.model.model_validate(found), found
    except ValidationError as e:
        invalid = e
    keys = STORE_KEYS & found.keys()
    if keys:
        problems.append(f"{where}: store keys {sorted(keys)} must not be exported")
    camel = [k for k in found if k != k.lower() and k not in STORE_KEYS]
    if camel:
        problems.append(f"{where}: fields must be snake_case: {camel}")
    for err in invalid.errors():
        field = ".".join(str(p) for p in err["loc"])
        problems.append(f"{where}: {field}: {err['msg']}")
    return None, None




REFS: dict[str, tuple[str, ...]] = {
    kind: tuple(field for child, field, _, _ in RELATIONSHIPS if child == kind)
    for kind in BY_TYPE}
"""Per entity type, the fields that name a parent (the order of :data:`RELATIONSHIPS`)."""

class RecordLine(NamedTuple):
    """What the reader keeps of a record's line."""

    rid: str
    audit_seq: int
    audit_hash: str
    state: str
    """The state hash of the line (empty for a record without a chain)."""
    refs: tuple[str | None, ...]
    """The values of its :data:`REFS`."""
    extra: Any
    """A reminder's (entity_type, entity_id), an artifact's sha256, else None."""


class EventLine(NamedTuple):
    """What the reader keeps of an audit event's line (a link of its entity's chain)."""

    entity_type: str
    entity_id: str
    seq: int
    event_id: str
    prev_hash: str
    hash: str
    state_hash: str
    computed: str
    """The hash the event's fields give (what ``hash`` must be)."""


Result = tuple[RecordLine | EventLine | None, tuple[str, ...], "bytes | Row | None", str | None]
"""Per line: its summary (None if it did not parse), the problems it has, what the mode makes
of it (export: the line to write, the record's export shape; an import: its :data:`Row`) and
why the store's record does not decode (export: it is quarantined, not written)."""


def check_batch(entity_type: str, file: str, first: int, lines: list[bytes],
                mode: str = "validate") -> list[Result]:
    """Check ``lines`` of ``file`` (the first is line ``first``), one :data:`Result` each.

    ``mode``: ``validate``; ``export``: the lines are the store's docs being exported: a doc
    that does not decode is quarantined (as a store read quarantines it), and each result
    carries the line to write, the record serialised once by pydantic in its field order;
    ``sqlite`` or ``postgres``: validate, and each result carries the row that store's
    table holds for the record (:data:`Row`), its doc the line as it is (it validated, and
    every read of it decodes it again)."""
    spec = BY_TYPE[entity_type]
    columns = _columns(mode)
    validate = spec.model.model_validate
    out: list[Result] = []
    for n, raw in enumerate(lines, first):
        record: Record | None = None
        if mode == "export":
            try:
                doc = orjson.loads(raw)
                record = validate(doc)
            except (orjson.JSONDecodeError, ValidationError, ValueError, TypeError) as e:
                out.append((None, (), None, reason_of(e)))
                continue
        elif _plain(raw):  # the common case, inline: a line within the limits that validates
            with suppress(orjson.JSONDecodeError, ValidationError):
                doc = orjson.loads(raw)
                if type(doc) is dict:
                    record = validate(doc)
        if record is None and mode != "export":  # again, naming every problem
            problems: list[str] = []
            record, doc = parse_line(spec, f"{file}:{n}", raw, problems)
            if record is None:
                out.append((None, tuple(problems), None, None))
                continue
        assert record is not None and doc is not None
        made: bytes | Row | None = None
        if mode == "export":
            made = record.__pydantic_serializer__.to_json(record)  # bytes: no encode
        elif columns is not None:
            made = row_of(record, columns(record), raw.decode())
        out.append((_summary(record, doc), (), made, None))
    return out


def _needs_bounded_parser(raw: bytes) -> bool:
    """Whether ``raw`` may nest past the limit or hold an oversized number: then the bounded
    parser, which names the limit, reads it instead of orjson."""
    return raw.count(b"[") + raw.count(b"{") > limits.MAX_NESTING or _long_digit_run(raw)


def _plain(raw: bytes) -> bool:
    """Whether ``raw`` is within the limits :func:`parse_line` checks before orjson parses
    it (its size, its nesting, no long run of digits)."""
    return len(raw) <= limits.MAX_EXPORT_LINE_BYTES and not _needs_bounded_parser(raw)


def _columns(mode: str) -> Callable[[Record], dict[str, object]] | None:
    """The indexed columns of a record in the store ``mode`` imports into."""
    if mode == "sqlite":
        from runtime.store import sqlite_schema

        return sqlite_schema.columns_of
    if mode == "postgres":
        from runtime.store import postgres_schema

        return postgres_schema.columns_of
    if mode in {"validate", "export"}:
        return None
    raise ValueError(f"check_batch: unknown mode {mode!r}")


def _summary(record: Record, doc: dict[str, Any]) -> RecordLine | EventLine:
    if isinstance(record, AuditEvent):
        # the hash from the parsed line is ~3x cheaper than from the model; a line not in the
        # export shape (hand-written) may hash otherwise, so a mismatch is confirmed
        computed = event_hash_of_doc(doc)
        if computed != record.hash:
            computed = event_hash(record)
        return EventLine(record.entity_type, record.entity_id, record.seq, record.event_id,
                         record.prev_hash, record.hash, record.state_hash, computed)
    extra: Any = None
    if isinstance(record, Reminder):
        extra = (record.entity_type, record.entity_id)
    elif isinstance(record, Artifact):
        extra = record.sha256
    fields = record.__dict__  # not getattr with a default: see model.record_version
    seq = fields.get("audit_seq", 0)
    return RecordLine(record.id, seq,  # type: ignore[attr-defined]
                      fields.get("audit_hash") or "",
                      state_hash_of_doc(doc, consume=True) if seq else "",
                      tuple(fields[f] for f in REFS[record.record_kind]),  # type: ignore[attr-defined]
                      extra)


def to_wire(results: list[Result]) -> list[tuple[Any, ...]]:
    """``results`` as plain tuples, for the pipe: a named tuple pickles by its class (a Python
    call per line, about 3x the cost of a plain tuple's)."""
    return [(tuple(s) if s is not None else None, p, m, r) for s, p, m, r in results]


def from_wire(entity_type: str, wire: list[tuple[Any, ...]]) -> list[Result]:
    """What :func:`to_wire` made of a batch of ``entity_type``'s lines, back as results."""
    kind: Any = EventLine if entity_type == "audit_event" else RecordLine
    make: Any = tuple.__new__  # a named tuple from its fields, without a Python call per line
    return [(make(kind, s) if s is not None else None, p, m, r) for s, p, m, r in wire]


def _serve() -> None:
    """A worker of ``runtime.export._Lines``: ``check_batch`` per pickled batch on stdin, its
    results pickled to stdout, until stdin closes. Ctrl-C at the terminal reaches the whole
    process group: a worker ignores it and ends when the process it works for closes its
    pipes (or dies), quietly."""
    import pickle
    import signal
    import sys

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    source, sink = sys.stdin.buffer, sys.stdout.buffer
    try:
        while True:
            try:
                args = pickle.load(source)
            except EOFError:
                return
            pickle.dump(to_wire(check_batch(*args)), sink, protocol=pickle.HIGHEST_PROTOCOL)
            sink.flush()
    except BrokenPipeError:  # the reader is gone: nobody wants the results
        return


if __name__ == "__main__":  # by its own name, so that what it pickles names this module
    from runtime.export_lines import _serve as serve

    serve()
