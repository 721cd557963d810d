"""Portable export: snake_case JSON Lines with stable IDs and explicit relationships, a
manifest, a validator that proves an export migration-safe, and import into any store.

An export never carries a store key (PK, SK, rowid): records are the export shape of the model
(``extra="forbid"`` refuses anything else on the way back in).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from runtime import limits
from runtime.errors import ConflictError, ExportFormatError, InputError
from runtime.model import (
    Artifact,
    AssistantJob,
    AuditEvent,
    Bundle,
    Record,
    Reminder,
    Seal,
    Task,
    format_instant,
)
from runtime.rules.audit import state_hash, verify_entity
from runtime.store import Changes, Store

FORMAT = "dataops-export"
FORMAT_VERSION = 2
"""2: per-entity audit chains (records carry audit_seq/audit_hash, events state_hash)."""
IMPORT_BATCH = 500
STORE_KEYS = frozenset({"PK", "SK", "pk", "sk", "rowid", "pos", "GSI1PK", "GSI1SK"})


@dataclass(frozen=True)
class EntitySpec:
    entity_type: str
    file: str
    model: type[Record]
    id_field: str
    implemented: bool = True


ENTITIES = [
    EntitySpec("bundle", "bundles.jsonl", Bundle, "bundle_id"),
    EntitySpec("task", "tasks.jsonl", Task, "task_id"),
    EntitySpec("artifact", "artifacts.jsonl", Artifact, "artifact_id"),
    # The runtime records no assistant jobs yet: listed, never silently left out.
    EntitySpec("assistant_job", "assistant_jobs.jsonl", AssistantJob, "assistant_job_id", False),
    EntitySpec("reminder", "reminders.jsonl", Reminder, "reminder_id"),
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


def _line(record: Record) -> str:
    return json.dumps(record.to_json(), ensure_ascii=False, sort_keys=True)


def export_store(store: Store, out: Path, now: datetime) -> dict[str, Any]:
    """Write every entity of ``store`` to ``out`` from one read snapshot, each file in ID
    order (audit events by entity, then seq); return the manifest.

    The export is written into a temporary folder beside ``out`` and renamed into place only
    when complete, so an interrupted export never replaces (or half-overwrites) a good one.
    """
    if out.exists() and not out.is_dir():
        raise InputError(f"export folder {out} is a file; give a folder to write the export to")
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.incoming-", dir=out.parent))
    try:
        manifest = _write_all(store, work, now)
        _swap_into_place(work, out)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return manifest


def _swap_into_place(work: Path, out: Path) -> None:
    """Rename ``work`` to ``out``; a previous export there is moved aside first and removed
    only once the new one is in place (a crash in between leaves it beside, never lost)."""
    old = None
    if out.exists():
        old = out.parent / f".{out.name}.previous-{os.urandom(4).hex()}"
        out.rename(old)
    work.rename(out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _write_all(store: Store, out: Path, now: datetime) -> dict[str, Any]:
    entities = []
    with store.snapshot() as snap:
        for spec in ENTITIES:
            entities.append(_write_entity(snap, spec, out))
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "exported_at": format_instant(now),
        "entities": entities,
        "relationships": [f"{c}.{cf} -> {p}.{pf}" for c, cf, p, pf in RELATIONSHIPS]
        + [f"{c}.{f} -> (entity_type).id" for c, f in POLYMORPHIC],
    }
    if store.quarantined:
        manifest["quarantined"] = sorted(store.quarantined.items())
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


def _write_entity(snap: Any, spec: EntitySpec, out: Path) -> dict[str, Any]:
    digest = hashlib.sha256()
    count = 0
    with (out / spec.file).open("w", encoding="utf-8") as f:
        for record in snap.scan(spec.model):
            line = _line(record) + "\n"
            f.write(line)
            digest.update(line.encode())
            count += 1
    return {
        "entity_type": spec.entity_type, "file": spec.file, "id_field": spec.id_field,
        "count": count, "sha256": digest.hexdigest(), "implemented": spec.implemented,
    }


def _read_manifest(directory: Path, problems: list[str]) -> dict[str, Any] | None:
    path = directory / "manifest.json"
    if not path.is_file():
        problems.append(f"{path}: missing; an export needs manifest.json")
        return None
    try:
        if path.stat().st_size > limits.MAX_EXPORT_LINE_BYTES:
            problems.append(f"{path}: larger than {limits.MAX_EXPORT_LINE_BYTES} bytes, the limit")
            return None
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        problems.append(f"{path}: cannot read: {e}")
        return None
    manifest = _json_object(str(path), text, problems)
    if manifest is None:
        return None
    if manifest.get("format") != FORMAT:
        problems.append(f"{path}: format is {manifest.get('format')!r}, expected {FORMAT!r}")
    if manifest.get("format_version") != FORMAT_VERSION:
        problems.append(f"{path}: format_version {manifest.get('format_version')!r} is not "
                        f"{FORMAT_VERSION}; this runtime reads version {FORMAT_VERSION}")
    return manifest


def load_export(directory: Path) -> dict[str, list[Record]]:
    """Validate an export and return its records by entity type.

    :raises ExportFormatError: listing every violation (file, line, field).
    """
    if not directory.is_dir():
        raise InputError(f"export folder {directory} does not exist")
    problems: list[str] = []
    manifest = _read_manifest(directory, problems)
    records: dict[str, list[Record]] = {e.entity_type: [] for e in ENTITIES}
    if manifest is None:
        raise ExportFormatError(str(directory), problems)
    entities = manifest.get("entities", [])
    if not isinstance(entities, list):
        problems.append("manifest.json: entities must be a list of entity entries")
        entities = []
    listed = {str(e.get("entity_type")): e for e in entities if isinstance(e, dict)}
    for spec in ENTITIES:
        entry = listed.get(spec.entity_type)
        if entry is None:
            problems.append(f"manifest.json: entity {spec.entity_type} is not listed (list it, "
                            "with implemented: false if it is not produced)")
            continue
        records[spec.entity_type] = _read_entity(directory, spec, entry, problems)
    problems += _check_relationships(records)
    problems += _check_chains(records)
    if problems:
        raise ExportFormatError(str(directory), problems)
    return records


def _read_entity(directory: Path, spec: EntitySpec, entry: dict[str, Any],
                 problems: list[str]) -> list[Record]:
    """The records of one entity file, checked against its manifest entry line by line."""
    path = _inside(directory, spec, str(entry.get("file", spec.file)), problems)
    if path is None:
        return []
    if not path.is_file():
        problems.append(f"{path.name}: missing (the manifest lists {spec.entity_type})")
        return []
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != entry.get("sha256"):
        problems.append(f"{path.name}: checksum does not match the manifest (the file changed)")
    lines = data.decode("utf-8", errors="replace").splitlines()
    count = entry.get("count")
    if not isinstance(count, int) or isinstance(count, bool):
        problems.append(f"manifest.json: entity {spec.entity_type}: count {count!r} must be a "
                        f"number (the file has {len(lines)} records)")
    elif len(lines) != count:
        problems.append(f"{path.name}: {len(lines)} records, the manifest says {count}")
    seen: set[str] = set()
    out = []
    for n, text in enumerate(lines, 1):
        record = _parse_line(spec, f"{path.name}:{n}", text, problems)
        if record is None:
            continue
        rid = str(getattr(record, spec.id_field))
        if rid in seen:
            problems.append(f"{path.name}:{n}: {spec.id_field} {rid!r} appears twice")
        seen.add(rid)
        out.append(record)
    return out


def _inside(directory: Path, spec: EntitySpec, name: str, problems: list[str]) -> Path | None:
    """``DIR/name`` if it stays inside DIR (no absolute path, no ``..``, no symlink out), else
    None with the problem named: the file is never opened."""
    path = directory / name
    inside = not Path(name).is_absolute() and ".." not in Path(name).parts
    if inside:
        try:
            inside = path.resolve().is_relative_to(directory.resolve())
        except (OSError, RuntimeError):  # a symlink loop
            inside = False
    if not inside:
        problems.append(f"manifest.json: entity {spec.entity_type}: file {name!r} is outside "
                        "the export folder")
        return None
    return path


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


def _json_object(where: str, text: str, problems: list[str]) -> dict[str, Any] | None:
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


def _parse_line(spec: EntitySpec, where: str, text: str, problems: list[str]) -> Record | None:
    size = len(text.encode("utf-8", "replace"))
    if size > limits.MAX_EXPORT_LINE_BYTES:
        problems.append(f"{where}: the line is {size} bytes; the limit is "
                        f"{limits.MAX_EXPORT_LINE_BYTES} bytes per record")
        return None
    raw = _json_object(where, text, problems)
    if raw is None:
        return None
    keys = STORE_KEYS & raw.keys()
    if keys:
        problems.append(f"{where}: store keys {sorted(keys)} must not be exported")
    camel = [k for k in raw if k != k.lower() and k not in STORE_KEYS]
    if camel:
        problems.append(f"{where}: fields must be snake_case: {camel}")
    try:
        return spec.model.model_validate(raw)
    except ValidationError as e:
        for err in e.errors():
            field = ".".join(str(p) for p in err["loc"])
            problems.append(f"{where}: {field}: {err['msg']}")
        return None


def _check_relationships(records: dict[str, list[Record]]) -> list[str]:
    ids = {spec.entity_type: {getattr(r, spec.id_field) for r in records[spec.entity_type]}
           for spec in ENTITIES}
    problems = []
    for child, field, parent, pfield in RELATIONSHIPS:
        for r in records[child]:
            value = getattr(r, field)
            if value is not None and value not in ids[parent]:
                problems.append(f"{BY_TYPE[child].file}: {child} {getattr(r, BY_TYPE[child].id_field)}: "
                                f"{field} {value!r} has no {parent} with that {pfield}")
    for r in records["reminder"]:
        kind = r.entity_type  # type: ignore[attr-defined]
        if kind in ids and r.entity_id not in ids[kind]:  # type: ignore[attr-defined]
            problems.append(f"reminders.jsonl: reminder {r.reminder_id}: entity_id "  # type: ignore[attr-defined]
                            f"{r.entity_id!r} has no {kind}")  # type: ignore[attr-defined]
    return problems


def _check_chains(records: dict[str, list[Record]]) -> list[str]:
    """Every entity's chain against its record (DESIGN.md "Audit chains")."""
    chains: dict[str, list[AuditEvent]] = {}
    for event in records["audit_event"]:
        assert isinstance(event, AuditEvent)
        chains.setdefault(event.entity_id, []).append(event)
    problems = []
    for spec in ENTITIES:
        if spec.entity_type in ("audit_event", "seal"):
            continue
        for rec in records[spec.entity_type]:
            rid = getattr(rec, spec.id_field)
            head = (rec.audit_seq, rec.audit_hash, state_hash(rec))  # type: ignore[attr-defined]
            events = sorted(chains.pop(rid, []), key=lambda e: e.seq)
            problems += [f"audit_events.jsonl: {p}" for p in
                         verify_entity(spec.entity_type, rid, head, events)]
    for rid, events in chains.items():
        problems.append(f"audit_events.jsonl: {events[0].entity_type} {rid}: "
                        f"{len(events)} events but no record")
    return problems


def import_export(store: Store, directory: Path) -> dict[str, int]:
    """Load a valid export into a store without changing an ID, a chain head or an event
    (records and events are written as they are).

    On a store without a per-write limit (SQLite, memory) the import is one atomic write: a
    killed import leaves the store as it was. On a store with a limit it is written in batches
    within it, every entity's events before the entity's record, and is resumable: running the
    same import again writes only what is missing. Either way importing an export again into
    the store that holds it changes nothing.

    :raises ExportFormatError: the export does not validate; nothing was written.
    :raises ConflictError: the store holds a different version of a record of the export.
    :raises InputError: the store holds records the export does not (it is neither empty nor
        a partial or whole import of this export).
    """
    records = load_export(directory)
    todo = _still_missing(store, records)
    limit = store.max_items
    if todo and limit is None:
        store.commit(_changes(todo))
    elif todo and limit is not None:
        for chunk in _chunks(todo, min(IMPORT_BATCH, limit)):
            store.commit(_changes(chunk))
    return {spec.entity_type: len(records[spec.entity_type]) for spec in ENTITIES}


def _changes(chunk: list[Record]) -> Changes:
    return Changes(creates=[r for r in chunk if not isinstance(r, AuditEvent)],
                   events=[r for r in chunk if isinstance(r, AuditEvent)])


def _in_write_order(records: dict[str, list[Record]]) -> list[Record]:
    """Audit events first (an event without its record is what an interrupted import leaves,
    and ``audit verify`` names it), then the records, parents before children."""
    order = ["audit_event", *(s.entity_type for s in ENTITIES if s.entity_type != "audit_event")]
    return [r for kind in order for r in records[kind]]


def _still_missing(store: Store, records: dict[str, list[Record]]) -> list[Record]:
    """The export's records the store does not hold yet, in write order. A record the store
    holds must be identical; the store may hold nothing the export does not."""
    every = _in_write_order(records)
    if store.is_empty():
        return every
    present: set[tuple[str, str]] = set()
    wanted = {(spec.entity_type, getattr(r, spec.id_field)): r
              for spec in ENTITIES for r in records[spec.entity_type]}
    with store.snapshot() as snap:
        for spec in ENTITIES:
            for held in snap.scan(spec.model):
                rid = getattr(held, spec.id_field)
                mine = wanted.get((spec.entity_type, rid))
                if mine is None:
                    raise InputError(
                        f"import needs an empty store, or one holding part of this export; "
                        f"{store.url} holds {spec.entity_type} {rid}, which the export does not")
                if mine != held:
                    raise ConflictError(
                        f"{store.url} holds another version of {spec.entity_type} {rid} "
                        f"(version {getattr(held, 'version', '?')}; the export has "
                        f"{getattr(mine, 'version', '?')}); import into an empty store")
                present.add((spec.entity_type, rid))
    spec_of = {spec.model: spec for spec in ENTITIES}
    return [r for r in every if (spec_of[type(r)].entity_type,
                                 getattr(r, spec_of[type(r)].id_field)) not in present]


def _chunks(items: list[Any], size: int) -> Iterable[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]
