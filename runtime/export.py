"""Portable export: snake_case JSON Lines with stable IDs and explicit relationships, a
manifest, a validator that proves an export migration-safe, and import into any store.

An export never carries a store key (PK, SK, rowid): records are the export shape of the model
(``extra="forbid"`` refuses anything else on the way back in).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import re
import shutil
import subprocess
import sys
import tempfile
from array import array
from bisect import bisect_left
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import suppress
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from runtime import limits
from runtime.errors import ConflictError, ExportFormatError, InputError
from runtime.export_lines import (
    BY_TYPE,
    ENTITIES,
    POLYMORPHIC,
    RELATIONSHIPS,
    STORE_KEYS,
    EntitySpec,
    EventLine,
    RecordLine,
    Result,
    check_batch,
    from_wire,
    json_object,
    loads_bounded,
    parse_line,
)
from runtime.model import ENTITY_KINDS, AuditEvent, Record, format_instant
from runtime.rules.audit import edited_in_place, state_hash, verify_entity
from runtime.store import Changes, Store
from runtime.store.base import Row

if TYPE_CHECKING:
    from runtime.artifacts import ArtifactStore

FORMAT = "dataops-export"
FORMAT_VERSION = 4
"""2: per-entity audit chains (records carry audit_seq/audit_hash, events state_hash).
3: API tokens (``api_tokens.jsonl``). 4: digests (``digests.jsonl``) and the reminders'
``recipients`` (who each was sent to). An older export still validates and imports: it has no
tokens, digests or recipients."""
READS = frozenset({2, 3, FORMAT_VERSION})
IMPORT_BATCH = 500
log = logging.getLogger("dataops.export")
__all__ = ["BY_TYPE", "ENTITIES", "POLYMORPHIC", "RELATIONSHIPS", "STORE_KEYS", "EntitySpec",
           "export_store", "import_export", "load_export", "loads_bounded", "parse_line"]

PARALLEL_FROM = 20_000
"""Lines after which export and validation check the rest in worker processes, one per core
(for fewer, starting the workers costs more than they save)."""
BATCH_LINES = 1000
READ_BYTES = 1 << 20
"""How much of an export file the validator reads at a time."""


class _Worker:
    """A child process (``python -m runtime.export_lines``) that runs ``check_batch`` on each
    batch it is sent over its stdin and writes the results to its stdout (pickle frames). A
    plain child, not multiprocessing's: it re-imports no ``__main__`` and inherits no threads
    or locks, whatever the process embedding the runtime runs. It ends when its stdin closes,
    so it never outlives this process."""

    def __init__(self) -> None:
        root = str(Path(__file__).resolve().parent.parent)  # the runtime this process runs
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            [root, *filter(None, [os.environ.get("PYTHONPATH")])])}
        # what it says if it fails (see failure); closed with the worker, in close
        self.errors = tempfile.TemporaryFile()  # noqa: SIM115
        self.proc = subprocess.Popen([sys.executable, "-m", "runtime.export_lines"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.errors, env=env)

    def failure(self) -> str:
        """The last line the worker wrote to its stderr (its error), or how it ended."""
        with suppress(OSError, ValueError):
            self.errors.seek(0)
            lines = self.errors.read().decode("utf-8", "replace").strip().splitlines()
            if lines:
                return lines[-1][:300]
        code = self.proc.poll()
        return f"it ended with exit status {code}" if code is not None else "its answer broke off"

    def send(self, args: tuple[Any, ...]) -> None:
        assert self.proc.stdin is not None
        pickle.dump(args, self.proc.stdin, protocol=pickle.HIGHEST_PROTOCOL)
        self.proc.stdin.flush()

    def receive(self, entity_type: str) -> list[Result]:
        assert self.proc.stdout is not None
        return from_wire(entity_type, pickle.load(self.proc.stdout))

    def close(self) -> None:
        """Close both pipes (a worker blocked writing results nobody will read then ends too)
        and reap it; one that does not end is killed."""
        for pipe in (self.proc.stdin, self.proc.stdout):
            with suppress(OSError):
                if pipe is not None:
                    pipe.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.errors.close()


class _Lines:
    """Runs :func:`runtime.export_lines.check_batch` over a stream of lines: here, or in worker
    processes (:class:`_Worker`), one batch in each at a time so memory stays bounded, the
    results in line order. A worker that fails (killed, or its output unreadable) is given up
    and its batch checked here: the run goes on, in this process."""

    def __init__(self, workers: int | None = None) -> None:
        """``workers``: how many processes (0: none); None: none for the first
        :data:`PARALLEL_FROM` lines, then one per core (at most 4)."""
        self.workers = workers or 0
        self.auto = workers is None
        self.seen = 0
        self.pool: list[_Worker] = []
        self.turn = 0

    def __enter__(self) -> _Lines:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop()

    def _stop(self, failed: _Worker | None = None) -> None:
        if failed is not None:  # one line, as a fault an operator meets: the run goes on
            log.warning("export: a worker process checking lines failed (%s); the rest is "
                        "checked in this process", failed.failure())
        for worker in self.pool:
            worker.close()
        self.pool, self.workers = [], 0

    def _submit(self, args: tuple[Any, ...]) -> _Worker | None:
        if self.workers <= 0:
            return None
        try:
            if not self.pool:
                self.pool = [_Worker() for _ in range(self.workers)]
            worker = self.pool[self.turn % len(self.pool)]
            self.turn += 1
        except OSError as e:  # no interpreter to start: check here
            log.warning("export: cannot start a worker process (%s); checking lines in this "
                        "process", e)
            self._stop()
            return None
        try:
            worker.send(args)
            return worker
        except (OSError, pickle.PickleError):
            self._stop(worker)
            return None

    def _result(self, args: tuple[Any, ...], worker: _Worker | None) -> list[Result]:
        if worker is not None and self.pool:
            try:
                return worker.receive(args[0])
            except Exception:  # noqa: BLE001  whatever a broken stream gives: EOF, a torn frame
                self._stop(worker)
        return check_batch(*args)

    def results(self, spec: EntitySpec, file: str, items: Iterable[tuple[Any, bytes]],
                mode: str = "validate") -> Iterator[tuple[int, Any, Result]]:
        """``(line number, tag, result)`` per ``(tag, line)`` of ``items``, in order."""
        def batches() -> Iterator[tuple[list[Any], list[bytes]]]:
            tags: list[Any] = []
            lines: list[bytes] = []
            for tag, raw in items:
                tags.append(tag)
                lines.append(raw)
                if len(lines) >= BATCH_LINES:
                    yield tags, lines
                    tags, lines = [], []
            if lines:
                yield tags, lines

        for n, tags, found in self._run(spec, file, batches(), mode):
            yield from zip(range(n, n + len(found)), tags, found, strict=True)

    def lines(self, spec: EntitySpec, file: str, batches: Iterable[list[bytes]],
              mode: str = "validate") -> Iterator[tuple[int, Result]]:
        """``(line number, result)`` per line of ``batches`` (see :func:`_line_batches`)."""
        for n, _, found in self._run(spec, file, ((None, b) for b in batches), mode):
            yield from enumerate(found, n)

    def _run(self, spec: EntitySpec, file: str, batches: Iterable[tuple[Any, list[bytes]]],
             mode: str) -> Iterator[tuple[int, Any, list[Result]]]:
        """``(first line number, tags, results)`` per ``(tags, lines)`` batch, in order. Each
        worker holds one batch: the next is sent to it as soon as its results are in, before
        they are gone through here, so the workers and this process overlap."""
        pending: deque[tuple[tuple[Any, ...], Any, _Worker | None]] = deque()
        n = 1

        def oldest() -> tuple[int, Any, list[Result]]:
            """The oldest batch's results (taken now)."""
            args, tags, worker = pending.popleft()
            return args[2], tags, self._result(args, worker)

        for tags, lines in batches:
            self.seen += len(lines)
            if self.auto and self.seen > PARALLEL_FROM:
                self.workers, self.auto = min(4, len(os.sched_getaffinity(0))), False
            ready = oldest() if len(pending) >= max(1, self.workers) else None
            args = (spec.entity_type, file, n, lines, mode)  # a worker per batch in flight:
            pending.append((args, tags, self._submit(args)))  # the one whose results are in
            if ready is not None:
                yield ready
            n += len(lines)
            while pending and pending[0][2] is None:
                yield oldest()
        while pending:
            yield oldest()


def export_store(store: Store, out: Path, now: datetime, *, artifacts: ArtifactStore | None = None,
                 progress: Progress | None = None, workers: int | None = None) -> dict[str, Any]:
    """Write every entity of ``store`` to ``out`` from one read snapshot, streaming, each file
    in ID order (audit events by entity, then seq); return the manifest. With ``artifacts``,
    the artifact binaries are copied into ``out/blobs/`` by sha256 and the manifest counts them.

    The export is written into a temporary folder beside ``out``, validated there, and renamed
    into place only when complete and valid, so an interrupted export never replaces (or
    half-overwrites) a good one. Each record is checked as it is written, by the validator's
    own checks; ``workers``: how many processes do that (default: one per core for a large
    store, none for a small one).
    """
    if out.exists() and not out.is_dir():
        raise InputError(f"export folder {out} is a file; give a folder to write the export to")
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.incoming-", dir=out.parent))
    problems: list[str] = []
    try:
        manifest = _write_all(store, work, now, artifacts, progress, problems, workers)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    if problems and not store.quarantined:  # quarantined: known partial, the manifest says so
        # the store's own data does not validate (audit verify says why): keep what was
        # written, beside, and keep the previous export at ``out``
        kept = out.parent / f".{out.name}.invalid-{os.urandom(4).hex()}"
        work.rename(kept)
        raise ExportFormatError(str(kept), [
            f"the store's data does not validate, so {out} was not replaced; the export "
            f"was written to {kept}; run dataops audit verify", *problems])
    _swap_into_place(work, out)
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


def _write_all(store: Store, out: Path, now: datetime, artifacts: ArtifactStore | None,
               progress: Progress | None, problems: list[str], workers: int | None
               ) -> dict[str, Any]:
    """Write every file from one snapshot, checking each record as it is written (the
    validator's checks on the store's docs, the line written being the record's export
    shape)."""
    entities = []
    checker = _Checker(out, problems)
    with store.snapshot() as snap, _Lines(workers) as pipeline:
        for spec in ENTITIES:
            entities.append(_write_entity(snap, spec, out, progress, checker, pipeline,
                                          store.quarantined))
    shas = checker.shas
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "exported_at": format_instant(now),
        "entities": entities,
        "relationships": [f"{c}.{cf} -> {p}.{pf}" for c, cf, p, pf in RELATIONSHIPS]
        + [f"{c}.{f} -> (entity_type).id" for c, f in POLYMORPHIC],
    }
    if artifacts is not None:
        manifest["blobs"] = _write_blobs(artifacts, shas, out / BLOBS)
        checker.check_blobs(manifest["blobs"])
    if store.quarantined:
        manifest["quarantined"] = sorted(store.quarantined.items())
    with (out / "manifest.json").open("w", encoding="utf-8") as f:
        f.write(json.dumps(manifest, indent=2) + "\n")
        f.flush()
        os.fsync(f.fileno())
    return manifest


def _docs(snap: Any, spec: EntitySpec) -> Iterator[tuple[str, bytes]]:
    """``(ID, stored doc)`` of each record of ``spec`` in the snapshot, in scan order: as the
    store keeps them where it can give them so (SQL stores), else serialised from the scan."""
    scan_docs = getattr(snap, "scan_docs", None)
    if scan_docs is not None:
        for rid, doc in scan_docs(spec.model):
            yield rid, doc.encode() if isinstance(doc, str) else doc
        return
    for record in snap.scan(spec.model):
        yield record.id, record.model_dump_json().encode()


def _write_entity(snap: Any, spec: EntitySpec, out: Path, progress: Progress | None,
                  checker: _Checker, pipeline: _Lines, quarantined: dict[str, str]
                  ) -> dict[str, Any]:
    digest = hashlib.sha256()
    count = 0
    checker.files[spec.entity_type] = out / spec.file
    with (out / spec.file).open("wb", buffering=1 << 20) as f:
        for _, rid, (summary, _, line, reason) in pipeline.results(
                spec, spec.file, _docs(snap, spec), mode="export"):
            if progress is not None:
                progress.update(1)
            if reason is not None:  # as a read of the store quarantines it: left out, named
                quarantined[rid] = reason
                continue
            assert isinstance(line, bytes) and summary is not None
            f.write(line + b"\n")
            digest.update(line + b"\n")
            count += 1
            checker.take(spec, spec.file, count, summary)
        f.flush()
        os.fsync(f.fileno())
    checker.finish(spec)
    return {
        "entity_type": spec.entity_type, "file": spec.file, "id_field": spec.id_field,
        "count": count, "sha256": digest.hexdigest(), "implemented": spec.implemented,
    }


def _write_blobs(artifacts: ArtifactStore, shas: set[str], folder: Path) -> dict[str, Any]:
    """Each artifact binary, by sha256, checked against its name as it is copied."""
    from runtime.errors import NotFoundError

    folder.mkdir()
    for sha in sorted(shas):
        try:
            data = artifacts.get_sha256(sha)
        except NotFoundError as e:
            raise InputError(f"export --with-binaries: the binary of artifact sha256 {sha} is "
                             f"not in the artifact store ({e}); export without --with-binaries "
                             "or restore the binary") from None
        if hashlib.sha256(data).hexdigest() != sha:
            raise InputError(f"export --with-binaries: the artifact store's binary {sha} does "
                             "not hash to its name: it is damaged")
        (folder / sha).write_bytes(data)
    return {"dir": BLOBS, "count": len(shas)}


def import_blobs(directory: Path, artifacts: ArtifactStore) -> int:
    """Put the export's binaries (``blobs/``, validated) into ``artifacts``; how many."""
    folder = directory / BLOBS
    if not folder.is_dir():
        return 0
    n = 0
    for path in sorted(folder.iterdir()):
        artifacts.put(path.read_bytes())
        n += 1
    return n


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
    manifest = json_object(str(path), text, problems)
    if manifest is None:
        return None
    if manifest.get("format") != FORMAT:
        problems.append(f"{path}: format is {manifest.get('format')!r}, expected {FORMAT!r}")
    if manifest.get("format_version") not in READS:
        problems.append(f"{path}: format_version {manifest.get('format_version')!r} is not "
                        f"one this runtime reads ({', '.join(map(str, sorted(READS)))})")
    return manifest


def load_export(directory: Path, progress: Progress | None = None, *,
                workers: int | None = None) -> dict[str, int]:
    """Validate an export in one streaming pass per file; return the count per entity type.

    Memory is bounded by the number of IDs, not by the size of the records: per record only a
    64-bit digest of its ID and of its chain head is kept (see :class:`_Checker`). Lines are
    parsed, validated and hashed in ``workers`` processes (default: one per core once past
    :data:`PARALLEL_FROM` lines), the checks across lines here.

    :raises ExportFormatError: listing every violation (file, line, field).
    """
    return _validate(directory, progress, workers)


def _validate(directory: Path, progress: Progress | None, workers: int | None,
              mode: str = "validate", insert: Callable[[Sequence[Row]], None] | None = None,
              before_end: Callable[[], None] | None = None) -> dict[str, int]:
    """:func:`load_export`; with ``mode`` a SQL store's (``sqlite``, ``postgres``), each valid
    line's row is given to ``insert`` as it is checked, and ``before_end`` runs once the whole
    export has validated (the caller's transaction commits after that, or rolls back on the
    :class:`ExportFormatError`)."""
    if not directory.is_dir():
        raise InputError(f"export folder {directory} does not exist")
    problems: list[str] = []
    manifest = _read_manifest(directory, problems)
    if manifest is None:
        raise ExportFormatError(str(directory), problems)
    entries = _entries(manifest, problems)
    checker = _Checker(directory, problems)
    counts: dict[str, int] = {}
    with _Lines(workers) as pipeline:
        for spec in ENTITIES:
            entry = entries.get(spec.entity_type)
            if entry is None:
                counts[spec.entity_type] = 0
                continue
            counts[spec.entity_type] = checker.read(spec, entry, progress, pipeline, mode,
                                                    None if problems else insert)
    checker.check_blobs(manifest.get("blobs"))
    if problems:
        raise ExportFormatError(str(directory), problems)
    if before_end is not None:
        before_end()
    return counts


validate_export = load_export


def _entries(manifest: dict[str, Any], problems: list[str]) -> dict[str, dict[str, Any]]:
    entities = manifest.get("entities", [])
    if not isinstance(entities, list):
        problems.append("manifest.json: entities must be a list of entity entries")
        entities = []
    listed = {str(e.get("entity_type")): e for e in entities if isinstance(e, dict)}
    version = manifest.get("format_version")
    for spec in ENTITIES:
        if spec.entity_type not in listed and (not isinstance(version, int)
                                               or version >= spec.since):
            problems.append(f"manifest.json: entity {spec.entity_type} is not listed (list it, "
                            "with implemented: false if it is not produced)")
    return {k: v for k, v in listed.items() if k in BY_TYPE}


_MASK64 = (1 << 64) - 1


def _h64(text: str) -> int:
    """A 64-bit digest of an ID or a hash: what the validator keeps per record. Python's own
    string hash (SipHash, keyed per process, cached on the string): the digests never leave
    the process (see :class:`_Checker` for what a collision could and could not do)."""
    return hash(text) & _MASK64


_CHAINED = tuple(k.record_kind for k in ENTITY_KINDS)  # type: ignore[attr-defined]
_PARENTS = {kind: [(f, p, pf) for c, f, p, pf in RELATIONSHIPS if c == kind] for kind in BY_TYPE}


def _sorted_by_top_bits(part: Callable[[int], Iterable[int]]) -> Iterator[list[int]]:
    """The 64-bit values ``part(top)`` gives for each value of their top 3 bits, each part
    sorted: in this order they are all sorted. A list of Python ints costs about 44 bytes a
    value, so sorting an eighth at a time keeps what a sort of a million digests holds at
    once to a few MB instead of ~44 (the standard library has no in-place sort of an array);
    each part costs a pass over the values."""
    for top in range(8):
        yield sorted(part(top))


class _Heads:
    """The records of one entity type as the validator keeps them: per record the 64-bit
    digest of its ID and its chain head (``audit_seq`` and digests of ``audit_hash`` and of
    its state hash), in flat arrays (about 40 bytes a record, where a dict of Python ints
    takes about 150). Filled in file order; :meth:`seal` sorts the digests (with each one's
    place in the file) so that a record is found by binary search."""

    def __init__(self) -> None:
        self.keys, self.seqs, self.audits, self.states = (array("Q") for _ in range(4))
        self.sorted = array("Q")
        self.place = array("Q")  # the file position of each sorted digest
        self.used = bytearray()  # per file position: its chain has been checked

    def add(self, key: int, seq: int, audit: int, state: int) -> None:
        self.keys.append(key)
        self.seqs.append(seq)
        self.audits.append(audit)
        self.states.append(state)

    def seal(self) -> set[int]:
        """Sort for lookups (the arrays in file order stay for the heads); return the digests
        seen more than once."""
        keys = self.keys
        for packed in _sorted_by_top_bits(  # digest and place in one int: no key function
                lambda top: ((key << 32) | n for n, key in enumerate(keys) if key >> 61 == top)):
            self.sorted.extend(p >> 32 for p in packed)
            self.place.extend(p & 0xFFFF_FFFF for p in packed)
        self.keys = array("Q")
        self.used = bytearray(len(self.sorted))
        s = self.sorted
        return {s[i] for i in range(1, len(s)) if s[i] == s[i - 1]}

    def __contains__(self, key: int) -> bool:
        i = bisect_left(self.sorted, key)
        return i < len(self.sorted) and self.sorted[i] == key

    def take(self, key: int) -> tuple[int, int, int] | None:
        """The chain head of the record with ``key`` (the last in the file, if it is there
        twice), marked as checked; None if there is none, or it was taken already."""
        i = bisect_left(self.sorted, key)
        found = None
        while i < len(self.sorted) and self.sorted[i] == key:
            n = self.place[i]
            if not self.used[n]:
                self.used[n] = 1
                found = n
            i += 1
        if found is None:
            return None
        return self.seqs[found], self.audits[found], self.states[found]

    def left(self) -> dict[int, int]:
        """Digest -> audit_seq of the records whose chain was not checked (no events)."""
        return {self.sorted[i]: self.seqs[self.place[i]] for i in range(len(self.sorted))
                if not self.used[self.place[i]]}


class _Checker:
    """The validator's state across files, bounded by the number of IDs.

    Per entity type its records' ID digests and chain heads (:class:`_Heads`); audit events'
    IDs as digests in an array. Relationships are looked up by digest (parents' files come
    before their children's), each entity's chain is checked when its events have been read
    (the events file is in (entity_id, seq) order), and a digest seen twice is confirmed by a
    second read of that file before it is reported, so a collision never fails a valid export;
    a violation could go unnoticed only if a missing ID collided with a present one (odds
    below 1 in 10^12 at a million records)."""

    def __init__(self, directory: Path, problems: list[str]) -> None:
        self.directory, self.problems = directory, problems
        self.heads: dict[str, _Heads] = {s.entity_type: _Heads() for s in ENTITIES}
        self.files: dict[str, Path] = {}
        self.twice: dict[str, set[int]] = {}
        self.event_ids = array("Q")
        self.later: list[tuple[str, int, str]] = []  # reminder -> reminder, checked at the end
        self.shas: set[str] = set()
        self.last_id: dict[str, str] = {}
        self._group: list[EventLine] = []
        self._last: tuple[str, int] | None = None
        self.recheck: dict[str, dict[int, tuple[str, int, str]]] = {}

    # -- files ------------------------------------------------------------------------------
    def read(self, spec: EntitySpec, entry: dict[str, Any], progress: Progress | None,
             pipeline: _Lines, mode: str = "validate",
             insert: Callable[[Sequence[Row]], None] | None = None) -> int:
        """Check ``spec``'s file; with ``insert``, give it the rows of the valid lines, a
        batch at a time, until the first problem (the import is rolled back then)."""
        path = _inside(self.directory, spec, str(entry.get("file", spec.file)), self.problems)
        if path is None:
            return 0
        if not path.is_file():
            self.problems.append(f"{path.name}: missing (the manifest lists {spec.entity_type})")
            return 0
        self.files[spec.entity_type] = path
        digest = hashlib.sha256()
        n = 0
        rows: list[Row] = []
        name = path.name
        with path.open("rb") as f:
            for n, (summary, problems, row, _) in pipeline.lines(
                    spec, name, _line_batches(f, digest), mode):
                if progress is not None:
                    progress.update(1)
                if problems:
                    self.problems += problems
                if summary is not None:
                    self.take(spec, name, n, summary)
                if insert is not None and isinstance(row, tuple):
                    rows.append(row)
                    if len(rows) >= BATCH_LINES:
                        if self.problems:  # it will be rolled back: insert no more
                            insert = None
                        else:
                            insert(rows)
                        rows = []
        if insert is not None and rows and not self.problems:
            insert(rows)
        if digest.hexdigest() != entry.get("sha256"):
            self.problems.append(f"{path.name}: checksum does not match the manifest (the file "
                                 "changed)")
        count = entry.get("count")
        if not isinstance(count, int) or isinstance(count, bool):
            self.problems.append(f"manifest.json: entity {spec.entity_type}: count {count!r} "
                                 f"must be a number (the file has {n} records)")
        elif n != count:
            self.problems.append(f"{path.name}: {n} records, the manifest says {count}")
        self.finish(spec)
        return n

    def take(self, spec: EntitySpec, file: str, n: int, summary: RecordLine | EventLine
             ) -> None:
        """Check one record of ``spec``'s file, line ``n`` of ``file``, from what its line
        gave (:func:`runtime.export_lines.check_batch`). This runs for every line: a digest
        is ``hash(text) & _MASK64`` inline (see :func:`_h64`), and the ``file:line`` of a
        message is made only when there is one."""
        if isinstance(summary, EventLine):
            key = (summary.entity_id, summary.seq)
            if self._last is not None and key <= self._last:
                self.problems.append(f"{file}:{n}: event {summary.event_id} is out of "
                                     "(entity_id, seq) order")
            self._last = key
            if self._group and self._group[0].entity_id != summary.entity_id:
                self._chain(self._group)
                self._group = []
            self._group.append(summary)
            self.event_ids.append(hash(summary.event_id) & _MASK64)
            return
        self._record(spec, file, n, summary)

    def finish(self, spec: EntitySpec) -> None:
        """The end of ``spec``'s file: the last chain, duplicates confirmed, and the checks
        that wait for a whole file."""
        if self._group:
            self._chain(self._group)
            self._group = []
        if spec.entity_type != "audit_event":
            self.twice[spec.entity_type] = self.heads[spec.entity_type].seal()
        self._confirm_twice(spec)
        if spec.entity_type == "reminder":
            self.reminders_done()
        if spec.entity_type == "audit_event":
            self.events_done()

    def _record(self, spec: EntitySpec, file: str, n: int, line: RecordLine) -> None:
        kind, rid = spec.entity_type, line.rid
        prev = self.last_id.get(kind)
        if prev is not None and rid <= prev and kind != "seal":
            self.problems.append(f"{file}:{n}: {spec.id_field} {rid!r} is out of ID order "
                                 f"(after {prev!r})")
        self.last_id[kind] = rid
        heads = self.heads
        if kind in _CHAINED:
            heads[kind].add(hash(rid) & _MASK64, line.audit_seq,
                            hash(line.audit_hash) & _MASK64, hash(line.state) & _MASK64)
        else:
            heads[kind].add(hash(rid) & _MASK64, 0, 0, 0)
        for (field, parent, pfield), value in zip(_PARENTS[kind], line.refs, strict=True):
            if value is not None and (hash(value) & _MASK64) not in heads[parent]:
                self.problems.append(f"{file}:{n}: {kind} {rid}: {field} {value!r} has no "
                                     f"{parent} with that {pfield}")
        if kind == "reminder":
            target, entity_id = line.extra
            if target == "reminder":
                self.later.append((f"{file}:{n}", _h64(entity_id), entity_id))
            elif target in heads and _h64(entity_id) not in heads[target]:
                self.problems.append(f"{file}:{n}: reminder {rid}: entity_id {entity_id!r} "
                                     f"has no {target}")
        elif kind == "artifact":
            self.shas.add(line.extra)

    def _confirm_twice(self, spec: EntitySpec) -> None:
        """Name the IDs that really appear twice (a digest seen twice may be a collision)."""
        suspects = self.twice.pop(spec.entity_type, set())
        if spec.entity_type == "audit_event":
            ids = self.event_ids
            for ordered in _sorted_by_top_bits(lambda top: (d for d in ids if d >> 61 == top)):
                suspects |= {a for a, b in zip(ordered, ordered[1:], strict=False) if a == b}
        if not suspects:
            return
        first: dict[str, int] = {}
        for n, rid, _ in self._lines_of(spec, suspects):
            if rid in first:
                self.problems.append(f"{spec.file}:{n}: {spec.id_field} {rid!r} appears twice "
                                     f"(first on line {first[rid]})")
            first.setdefault(rid, n)

    def _lines_of(self, spec: EntitySpec, wanted: set[int] | dict[int, Any]
                  ) -> Iterator[tuple[int, str, bytes]]:
        """(line number, ID, line) of the records of ``spec``'s file whose ID digest is in
        ``wanted``."""
        path = self.files.get(spec.entity_type)
        if path is None:
            return
        with path.open("rb") as f:
            for n, raw in enumerate(_bounded_lines(f, None), 1):
                try:
                    rid = str(orjson.loads(raw).get(spec.id_field))
                except (orjson.JSONDecodeError, AttributeError):
                    continue
                if _h64(rid) in wanted:
                    yield n, rid, raw

    # -- chains -----------------------------------------------------------------------------
    def _chain(self, events: list[EventLine]) -> None:
        first = events[0]
        kind, rid = first.entity_type, first.entity_id
        key = _h64(rid)
        # a chain split in two is named by the (entity_id, seq) order check; its second part
        # then also reads as events without a record (its head was taken by the first)
        taken = self.heads[kind].take(key) if kind in _CHAINED else None
        head = None
        unsure = False
        if taken is not None:
            seq, audit_hash, state = taken
            last = events[-1]
            # the record's state was hashed from its line; a line not in the export shape may
            # hash otherwise than the model: such a record is read again at the end to confirm
            # (see events_done)
            unsure = _h64(last.state_hash) != state
            head = (seq, last.hash if _h64(last.hash) == audit_hash else "(another hash)",
                    last.state_hash)
        found = verify_entity(kind, rid, head, events, [e.computed for e in events])
        if unsure and not found:
            self.recheck.setdefault(kind, {})[key] = (last.state_hash, last.seq, last.event_id)
        self.problems += [f"audit_events.jsonl: {p}" for p in found]

    def reminders_done(self) -> None:
        reminders = self.heads["reminder"]
        for where, key, target in self.later:
            if key not in reminders:
                self.problems.append(f"{where}: entity_id {target!r} has no reminder")
        self.later.clear()

    def events_done(self) -> None:
        """Records whose chain had no event at all: named by a second read of their file;
        and the records whose state hash from the line did not match their last event's,
        confirmed (or cleared) with the state hash of the record itself."""
        for kind, wanted in self.recheck.items():
            spec = BY_TYPE[kind]
            for _, rid, raw in self._lines_of(spec, wanted):
                expected, seq, event_id = wanted[_h64(rid)]
                if state_hash(spec.model.model_validate_json(raw)) != expected:
                    self.problems.append("audit_events.jsonl: " + edited_in_place(
                        f"{kind} {rid}", seq, event_id))
        self.recheck.clear()
        for spec in ENTITIES:
            if spec.entity_type not in _CHAINED:
                continue
            left = self.heads[spec.entity_type].left()
            if not left:
                continue
            for _, rid, _ in self._lines_of(spec, left):
                seq = left[_h64(rid)]
                problem = (f"{spec.entity_type} {rid}: the record has no audit event" if not seq
                           else f"{spec.entity_type} {rid}: the record's chain head is event "
                           f"#{seq} but the log has 0 events: the chain was truncated or extended")
                self.problems.append(f"audit_events.jsonl: {problem}")

    # -- binaries ---------------------------------------------------------------------------
    def check_blobs(self, blobs: Any) -> None:
        """With ``--with-binaries``: every artifact's binary is in ``blobs/`` by its sha256, and
        every file there hashes to its name; the manifest's count holds."""
        if blobs is None:
            return
        if not isinstance(blobs, dict) or blobs.get("dir") != BLOBS:
            self.problems.append(f"manifest.json: blobs must be {{\"dir\": \"{BLOBS}\", ...}}")
            return
        folder = self.directory / BLOBS
        if folder.is_symlink() or not folder.is_dir():
            self.problems.append(f"{BLOBS}/: missing or not a folder inside the export")
            return
        found = 0
        for path in sorted(folder.iterdir()):
            found += 1
            name = path.name
            if path.is_symlink() or not path.is_file() or not _SHA.match(name):
                self.problems.append(f"{BLOBS}/{name}: not a binary named by its sha256")
                continue
            if _sha_of_file(path) != name:
                self.problems.append(f"{BLOBS}/{name}: its content does not hash to its name")
        missing = sorted(sha for sha in self.shas if not (folder / sha).is_file())
        for sha in missing[:20]:
            self.problems.append(f"{BLOBS}/: no binary for artifact sha256 {sha}")
        if len(missing) > 20:
            self.problems.append(f"{BLOBS}/: {len(missing) - 20} more artifact binaries missing")
        if blobs.get("count") != found:
            self.problems.append(f"manifest.json: blobs count {blobs.get('count')!r}, the folder "
                                 f"holds {found}")


_SHA = re.compile(r"^[0-9a-f]{64}$")
BLOBS = "blobs"


def _sha_of_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _line_batches(f: Any, digest: Any) -> Iterator[list[bytes]]:
    """The lines of a binary file without their newlines, :data:`BATCH_LINES` at a time, read
    a block at a time (a ``readline`` per line costs more than checking the line takes here);
    ``digest`` sees every byte. A line past :data:`limits.MAX_EXPORT_LINE_BYTES` that has not
    ended within a block of its limit comes cut to the limit plus one byte (and is named as
    too long), the rest of it skipped: memory stays bounded by the limit and one block."""
    bound = limits.MAX_EXPORT_LINE_BYTES + 1
    pending: list[bytes] = []
    rest = b""
    skipping = False  # in the rest of a line cut at the bound
    while block := f.read(READ_BYTES):
        if digest is not None:
            digest.update(block)
        if skipping:
            end = block.find(b"\n")
            if end < 0:
                continue
            block, skipping = block[end + 1:], False
        data = rest + block if rest else block
        end = data.rfind(b"\n")
        if end >= 0:
            pending += data[:end].split(b"\n")
            rest = data[end + 1:]
        else:
            rest = data
        if len(rest) >= bound:
            pending.append(rest[:bound])
            rest, skipping = b"", True
        while len(pending) >= BATCH_LINES:
            yield pending[:BATCH_LINES]
            del pending[:BATCH_LINES]
    if rest:  # the last line, without a newline
        pending.append(rest)
    while pending:
        yield pending[:BATCH_LINES]
        del pending[:BATCH_LINES]


def _bounded_lines(f: Any, digest: Any) -> Iterator[bytes]:
    """The lines of :func:`_line_batches`, one by one."""
    for batch in _line_batches(f, digest):
        yield from batch


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


def in_one_pass(store: Store, replace: bool = False) -> bool:
    """Whether :func:`import_export` validates and loads an export into ``store`` in one pass
    (an empty SQL store, without ``replace``), rather than validating it first."""
    return not replace and _bulk_mode(store) is not None and store.is_empty()


def _bulk_mode(store: Store) -> str | None:
    """The ``check_batch`` mode whose rows ``store.bulk_insert`` takes, if it has one."""
    mode = getattr(store, "bulk_rows", None)
    return mode if isinstance(mode, str) and hasattr(store, "bulk_insert") else None


def import_export(store: Store, directory: Path, progress: Progress | None = None, *,
                  validated: bool = False, replace: bool = False,
                  artifacts: ArtifactStore | None = None,
                  workers: int | None = None) -> dict[str, int]:
    """Load a valid export into a store without changing an ID, a chain head or an event
    (records and events are written as they are), streaming: records are read from the files
    batch by batch, never all at once.

    On a store without a per-write limit (SQLite, PostgreSQL, memory) the import is one atomic
    write (``import_atomically`` where the store has it): a killed import leaves the store as
    it was. On a store with a limit it is written in batches within it, every entity's events
    before the entity's records, and is resumable: running the same import again writes only
    what is missing. Either way importing an export again into the store that holds it
    changes nothing.

    Into an empty SQLite or PostgreSQL store (:func:`in_one_pass`) the export is validated and
    loaded in one pass inside that one transaction: the worker processes that check each line
    (see :func:`load_export`) also make its row, the doc being the line itself, and the
    transaction commits only once the whole export has validated; otherwise the export is
    validated first, then loaded (``progress`` sees each line twice).

    ``validated``: the caller has just validated the export with :func:`load_export`.
    ``replace``: a record (or event) the store holds in another version is overwritten with
    the export's, conditional on the version read, instead of being a conflict.
    ``artifacts``: the export's binaries are put there (content-addressed: putting one twice
    is harmless) once it has validated, before its records are written or committed; their
    count is returned as ``binaries``.

    :raises ExportFormatError: the export does not validate; nothing was written.
    :raises ConflictError: the store holds a different version of a record of the export.
    :raises InputError: the store holds records the export does not (it is neither empty nor
        a partial or whole import of this export).
    """
    mode = _bulk_mode(store)
    binaries: list[int] = []

    def put_binaries() -> None:
        if artifacts is not None:
            binaries.append(import_blobs(directory, artifacts))

    if not validated and mode is not None and in_one_pass(store, replace):
        bulk = store.bulk_insert()  # type: ignore[attr-defined]
        try:
            with bulk as insert:
                counts = _validate(directory, progress, workers, mode, insert, put_binaries)
        except ConflictError:  # an ID twice in the export: name it as validation does
            load_export(directory, workers=workers)
            raise
        return {**counts, **({"binaries": binaries[0]} if binaries else {})}
    counts = _counts(directory) if validated else load_export(directory, progress,
                                                             workers=workers)
    put_binaries()
    replacing: dict[tuple[str, int], int] | None = {} if replace else None
    present = None if store.is_empty() else _present(store, directory, replacing)
    if present and replacing:
        present -= set(replacing)
    limit = store.max_items
    size = IMPORT_BATCH if limit is None else min(IMPORT_BATCH, limit)
    batches = _batches(_records(directory, present, progress), size, replacing)
    if limit is None:
        atomically = getattr(store, "import_atomically", None)
        if atomically is not None:
            atomically(batches)
        else:
            merged = Changes()
            for batch in batches:
                merged.extend(batch)
            if merged:
                store.commit(merged)
    else:
        for batch in batches:
            store.commit(batch)
    return {**counts, **({"binaries": binaries[0]} if binaries else {})}


def _counts(directory: Path) -> dict[str, int]:
    entries = _entries(_read_manifest(directory, []) or {}, [])
    return {spec.entity_type: int(entries.get(spec.entity_type, {}).get("count", 0))
            for spec in ENTITIES}


def _write_order() -> list[EntitySpec]:
    """Audit events first (an event without its record is what an interrupted batched import
    leaves, and ``audit verify`` names it), then the records, parents before children."""
    return [BY_TYPE["audit_event"], *(s for s in ENTITIES if s.entity_type != "audit_event")]


def _records(directory: Path, skip: set[tuple[str, int]] | None,
             progress: Progress | None = None) -> Iterator[Record]:
    """The records of a validated export, file by file in write order, leaving out those in
    ``skip`` ((entity type, ID digest) pairs)."""
    entries = _entries(_read_manifest(directory, []) or {}, [])
    for spec in _write_order():
        entry = entries.get(spec.entity_type)
        if entry is None:
            continue
        path = directory / str(entry.get("file", spec.file))
        with path.open("rb") as f:
            for raw in _bounded_lines(f, None):
                record = spec.model.model_validate_json(raw)
                if progress is not None:
                    progress.update(1)
                if skip and (spec.entity_type, _h64(str(getattr(record, spec.id_field)))) in skip:
                    continue
                yield record


def _batches(records: Iterable[Record], size: int,
             replace: dict[tuple[str, int], int] | None = None) -> Iterator[Changes]:
    spec_of = {spec.model: spec for spec in ENTITIES}
    batch = Changes()
    for record in records:
        spec = spec_of[type(record)]
        stored = replace.get((spec.entity_type, _h64(str(getattr(record, spec.id_field))))) \
            if replace else None
        if stored is not None:  # --replace: overwrite the store's version with the export's
            batch.updates.append((record, stored))
        elif isinstance(record, AuditEvent):
            batch.events.append(record)
        else:
            batch.creates.append(record)
        if batch.size() >= size:
            yield batch
            batch = Changes()
    if batch:
        yield batch


def _present(store: Store, directory: Path, replace: dict[tuple[str, int], int] | None = None
             ) -> set[tuple[str, int]]:
    """The export's records the store already holds, as (entity type, ID digest): identical,
    or, with ``replace`` (a dict to fill), another version, noted there with the stored
    version so that the import overwrites it.

    :raises ConflictError: the store holds another version of one of them (without replace).
    :raises InputError: the store holds a record the export does not (without replace;
        with it, such records stay).
    """
    present: set[tuple[str, int]] = set()
    per_kind: dict[str, int] = {}
    spec_of = {spec.model: spec for spec in ENTITIES}
    for record in _records(directory, None):
        spec = spec_of[type(record)]
        rid = str(getattr(record, spec.id_field))
        held = store.find(spec.model, rid)
        if held is None:
            continue
        if held != record and replace is not None:
            replace[(spec.entity_type, _h64(rid))] = int(getattr(held, "version", 1))
        elif held != record:
            raise ConflictError(
                f"{store.url} holds another version of {spec.entity_type} {rid} "
                f"(version {getattr(held, 'version', '?')}; the export has "
                f"{getattr(record, 'version', '?')}); import into an empty store, or give "
                "--replace to overwrite it with the export's")
        present.add((spec.entity_type, _h64(rid)))
        per_kind[spec.entity_type] = per_kind.get(spec.entity_type, 0) + 1
    for spec in ENTITIES if replace is None else ():  # with --replace, extra records stay
        held_count = store.count(spec.model)
        if held_count is not None and held_count <= per_kind.get(spec.entity_type, 0):
            continue
        with store.snapshot() as snap:
            for held in snap.scan(spec.model):
                rid = str(getattr(held, spec.id_field))
                if (spec.entity_type, _h64(rid)) not in present:
                    raise InputError(
                        f"import needs an empty store, or one holding part of this export; "
                        f"{store.url} holds {spec.entity_type} {rid}, which the export does not")
    return present


class Progress(Protocol):
    """What the export, validation and import report their progress to (a tqdm bar)."""

    def update(self, n: int = 1) -> Any: ...
