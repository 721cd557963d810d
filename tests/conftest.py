"""Shared fixtures: an injected clock, stores of every adapter, the shipped content, the CLI."""

from __future__ import annotations

import io
import json
import shutil
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from runtime.artifacts import LocalArtifactStore
from runtime.clock import FixedClock
from runtime.content import Content, load_content
from runtime.engine import Services
from runtime.model.common import utc
from runtime.store import Store, open_store

REPO = Path(__file__).resolve().parent.parent
SHIPPED_CONTENT = REPO / "content"

STORE_KINDS = ["memory", "sqlite", "postgres", "dynamodb"]
SHARED_KINDS = ["sqlite", "postgres", "dynamodb"]
"""The stores several processes can share."""


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(utc(2026, 11, 25, 8, 0))


@pytest.fixture(scope="session")
def pg_server() -> Iterator[Any]:
    """A real PostgreSQL server on 127.0.0.1 for the whole session (tests/pg.py)."""
    from tests.pg import RUNNING, PgServer

    server = PgServer().start()
    RUNNING.append(server)
    yield server
    RUNNING.remove(server)
    server.stop()


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """moto's server mode on 127.0.0.1 (its DynamoDB, S3, SNS and SQS over HTTP) for the whole
    session, one request at a time, in a process of its own (tests/dynamo.py): the code under
    test talks to it with boto3 like it would to AWS; nothing is patched."""
    from tests.dynamo import RUNNING, MotoProcess

    server = MotoProcess().start()
    RUNNING.append(server)
    yield server.url
    RUNNING.remove(server)
    server.stop()


def _running_moto() -> Any:
    from tests.dynamo import RUNNING

    assert RUNNING, "request the moto_endpoint fixture before making a dynamodb store"
    return RUNNING[0]


def _running_pg() -> Any:
    from tests.pg import RUNNING

    assert RUNNING, "request the pg_server fixture before making a postgres store"
    return RUNNING[0]


def make_store(kind: str, tmp_path: Path) -> Store:
    if kind == "memory":
        return open_store("memory://")
    if kind == "sqlite":
        return open_store(f"sqlite:///{tmp_path / 'store.db'}")
    if kind == "postgres":
        return open_store(_running_pg().new_url())
    if kind == "dynamodb":
        return open_store(_running_moto().new_url())
    raise AssertionError(kind)


def store_url(kind: str, tmp_path: Path, name: str = "store") -> str:
    """A URL of a fresh store of ``kind`` that several processes can share."""
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / (name + '.db')}"
    if kind == "postgres":
        return str(_running_pg().new_url())
    if kind == "dynamodb":
        return str(_running_moto().new_url())
    raise AssertionError(kind)


def drop(store: Store) -> None:
    """Close ``store``; a DynamoDB table is deleted too (the endpoint lives for the session)."""
    if hasattr(store, "drop"):
        store.drop()  # type: ignore[attr-defined]
    store.close()


def need_server(request: pytest.FixtureRequest, kind: str) -> None:
    """Start the session's server a store of ``kind`` needs (PostgreSQL, moto)."""
    if kind == "postgres":
        request.getfixturevalue("pg_server")
    elif kind == "dynamodb":
        request.getfixturevalue("moto_endpoint")


@pytest.fixture(params=STORE_KINDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """One fixture, every adapter: the contract suite runs once per store."""
    need_server(request, request.param)
    s = make_store(request.param, tmp_path)
    yield s
    drop(s)


@pytest.fixture
def content_dir(tmp_path: Path) -> Path:
    """A private copy of the shipped content, safe to edit in a test."""
    target = tmp_path / "content"
    shutil.copytree(SHIPPED_CONTENT, target)
    return target


@pytest.fixture
def specs_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private copy of the shipped machine specs that the runtime loads instead."""
    from runtime import machines

    target = tmp_path / "specs"
    target.mkdir()
    for spec in machines.spec_files():
        (target / spec.name).write_text(spec.read_text(encoding="utf-8"), encoding="utf-8")
    monkeypatch.setattr(machines, "specs_dir", lambda: target)
    return target


@pytest.fixture
def content(content_dir: Path) -> Content:
    return load_content(content_dir)


@pytest.fixture
def svc(store: Store, clock: FixedClock, content: Content, tmp_path: Path) -> Services:
    return Services(
        store=store,
        clock=clock,
        actor="tester",
        artifacts=LocalArtifactStore(tmp_path / "artifacts"),
        content_loader=lambda: content,
    )


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


@pytest.fixture
def cli(tmp_path: Path, content_dir: Path, monkeypatch: pytest.MonkeyPatch):
    """Run `dataops` in-process against a SQLite store in tmp_path: cli("task", "list")."""
    from runtime.cli import main

    monkeypatch.chdir(tmp_path)
    for var in ("DATAOPS_STORE", "DATAOPS_CONTENT", "DATAOPS_NOW", "DATAOPS_ACTOR"):
        monkeypatch.delenv(var, raising=False)

    def run(*argv: str, now: str = "2026-11-25T08:00:00+00:00", actor: str = "tester",
            store: str | None = None, content: str | None = None) -> Result:
        out, err = io.StringIO(), io.StringIO()
        full = ["--store", store if store is not None else f"sqlite:///{tmp_path / 'cli.db'}",
                "--content", content or str(content_dir), "--now", now, "--actor", actor, *argv]
        with redirect_stdout(out), redirect_stderr(err):
            code = main(full)
        return Result(code, out.getvalue(), err.getvalue())

    return run


@pytest.fixture
def run(cli: Any) -> Any:
    """``cli`` with a vat-return bundle created; returns the ``cli`` callable."""
    r = cli("bundle", "create", "vat-return", "--anchor", "2026-11-02", "--json")
    assert r.code == 0, r.err
    return cli
