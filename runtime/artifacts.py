"""Artifact binaries: kept outside the store, content-addressed by sha256.

The store keeps only an artifact's metadata record. The original filename is metadata only: no
path a user gives ever becomes a path on disk.
"""

from __future__ import annotations

import hashlib
import mimetypes
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from runtime.errors import InputError

OCTET_STREAM = "application/octet-stream"


@dataclass(frozen=True)
class StoredBlob:
    sha256: str
    size_bytes: int
    location: str


class ArtifactStore(Protocol):
    def put(self, data: bytes) -> StoredBlob:
        """Store ``data``; return where it is. Idempotent for the same bytes."""

    def get(self, location: str) -> bytes:
        """The bytes at ``location``.

        :raises NotFoundError: nothing is there.
        """

    def get_sha256(self, sha256: str) -> bytes:
        """The bytes whose sha256 is ``sha256`` (wherever the store keeps them).

        :raises NotFoundError: this store does not hold them.
        """


class LocalArtifactStore:
    """A folder: ``ROOT/sha256/ab/abcdef...`` (written atomically via a temp file + rename)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()

    def put(self, data: bytes) -> StoredBlob:
        digest = hashlib.sha256(data).hexdigest()
        target = self.root / "sha256" / digest[:2] / digest
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".incoming-")
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, target)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        return StoredBlob(digest, len(data), str(target))

    def get(self, location: str) -> bytes:
        from runtime.errors import NotFoundError

        path = Path(location)
        if self.root not in path.resolve().parents:
            raise NotFoundError("artifact binary", location, f"it is not under {self.root}")
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise NotFoundError("artifact binary", location) from None


    def get_sha256(self, sha256: str) -> bytes:
        from runtime.errors import NotFoundError

        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise NotFoundError("artifact binary", sha256, "not a sha256")
        try:
            return (self.root / "sha256" / sha256[:2] / sha256).read_bytes()
        except FileNotFoundError:
            raise NotFoundError("artifact binary", sha256, f"not under {self.root}") from None


def artifacts_for_store(store_url: str) -> LocalArtifactStore:
    """The default artifact folder (DESIGN.md): beside the SQLite file, else ./artifacts."""
    if store_url.startswith("sqlite:///"):
        from runtime.store.sqlite import path_from_url

        db, _ = path_from_url(store_url)
        return LocalArtifactStore(Path(db).parent / f"{Path(db).name}.artifacts")
    return LocalArtifactStore("artifacts")


def content_type_of(data: bytes, filename: str, declared: str | None = None) -> str:
    """The content type of a file: sniffed from its bytes (``filetype``, magic numbers), which
    wins over the name; else the type declared by the caller; else the extension's guess."""
    import filetype

    sniffed = filetype.guess_mime(data[:8192])
    if sniffed:
        return str(sniffed)
    if declared and declared != OCTET_STREAM:
        return declared
    return mimetypes.guess_type(filename)[0] or OCTET_STREAM


def read_upload(path: str) -> tuple[bytes, str, str]:
    """Read a file the user attaches: (bytes, original filename, content type)."""
    p = Path(path)
    if p.is_dir():
        raise InputError(f"file {path}: is a folder, not a file; give the path of a file to attach")
    if not p.is_file():
        raise InputError(f"file {path}: no such file; give the path of a file to attach")
    try:
        data = p.read_bytes()
    except OSError as e:
        raise InputError(f"file {path}: cannot read it: {e.strerror}") from None
    return data, p.name, content_type_of(data, p.name)
