"""The one composition root: URLs and options -> store, artifacts, clock, content, services.

The CLI, the library facade (``runtime.open``) and the demo all build their services here, so
adapters are picked in one place, at call time (boto3, psycopg and friends are imported only
when their URL is opened).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from runtime.clock import Clock, SystemClock
from runtime.engine.services import Services
from runtime.errors import InputError
from runtime.store.base import Store

if TYPE_CHECKING:
    from runtime.artifacts import ArtifactStore
    from runtime.content import Content

DEFAULT_STORE = "sqlite:///dataops.db"


def open_store(url: str, *, migrate: bool = False) -> Store:
    """The store a URL names; an empty URL is an error, not a silent default."""
    from runtime.store import open_store as by_scheme

    if not url or not url.strip():
        raise InputError("the store URL is empty; give e.g. sqlite:///dataops.db or memory://")
    return by_scheme(url.strip(), migrate=migrate)


def open_artifacts(url: str | None, store_url: str) -> ArtifactStore:
    """``file:///path`` (default: a folder beside the SQLite file, else ./artifacts) or
    ``s3://BUCKET/prefix[?endpoint_url=URL&region=R]``."""
    from runtime.artifacts import LocalArtifactStore, artifacts_for_store

    if not url:
        return artifacts_for_store(store_url)
    if url.startswith("file://"):
        path = url[len("file://"):]
        if not path:
            raise InputError(f"artifacts URL {url!r} names no folder; write file:///path/to/dir")
        return LocalArtifactStore(path)
    if url.startswith("s3://"):
        from runtime.artifacts_s3 import S3ArtifactStore

        return S3ArtifactStore(url)
    raise InputError(f"artifacts URL {url!r} has no known scheme; use file:///path/to/dir or "
                     "s3://BUCKET/prefix")


def open_services(
    store: str | Store = DEFAULT_STORE,
    content: str | Path | Content | None = "content",
    *,
    clock: Clock | None = None,
    actor: str = "runtime",
    artifacts: str | ArtifactStore | None = None,
) -> Services:
    """Services on a store URL (or Store) and a content folder (loaded on first use)."""
    st = open_store(store) if isinstance(store, str) else store
    art = artifacts if artifacts is not None and not isinstance(artifacts, str) else \
        open_artifacts(artifacts, st.url)
    loader = None
    if content is not None:
        from runtime.content import Content, load_content

        if isinstance(content, Content):
            loaded = content
            loader = lambda: loaded  # noqa: E731
        else:
            root = Path(content)
            loader = lambda: load_content(root)  # noqa: E731
    return Services(st, clock or SystemClock(), actor, art, loader)
