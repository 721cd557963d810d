"""Stores: the port and its adapters, picked by URL scheme at call time."""

from __future__ import annotations

from runtime.errors import InputError
from runtime.store.base import Changes, Page, Store

__all__ = ["Changes", "Page", "Store", "open_store"]


def open_store(url: str, *, migrate: bool = False) -> Store:
    """Open the store a URL names: ``sqlite:///path.db``, ``memory://``,
    ``postgresql://user:password@host:port/dbname``,
    ``dynamodb://TABLE?region=REGION&endpoint_url=URL``.

    Adapters are imported here, at call time, so that importing the package stays cheap.
    ``migrate`` upgrades an older schema first (``dataops store migrate``); without it a store
    whose schema is older or newer than this runtime's is refused.
    """
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme == "sqlite":
        from runtime.store.sqlite import SqliteStore

        return SqliteStore(url)
    if scheme == "memory":
        from runtime.store.memory import MemoryStore

        return MemoryStore(url)
    if scheme in ("postgresql", "postgres"):
        from runtime.store.postgres import PostgresStore

        return PostgresStore(url, migrate=migrate)
    if scheme == "dynamodb":
        from runtime.store.dynamodb import DynamoStore

        return DynamoStore(url, migrate=migrate)
    raise InputError(
        f"store URL {url!r} has no known scheme; use sqlite:///path.db, postgresql://... or memory://"
    )
