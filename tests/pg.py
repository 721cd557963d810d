"""A real PostgreSQL server for the tests: ``initdb`` and ``pg_ctl`` into a temporary folder,
listening on a free port on 127.0.0.1 only, started once per test session and stopped at its
end. When the tests run as root the server runs as the ``postgres`` OS user (it refuses to run
as root). Each test gets its own schema (``?schema=t_N`` on the store URL), so tests never see
each other's rows; nothing is mocked.

A machine without the server binaries fails these tests loudly: ``.ci/run`` installs Debian's
``postgresql`` package when ``initdb`` is missing.
"""

from __future__ import annotations

import itertools
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

_names = itertools.count(1)
RUNNING: list[PgServer] = []
"""The session's server while it runs (one module object, however conftest is imported)."""


def _binary(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    for candidate in sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True):
        return str(candidate)
    raise RuntimeError(f"PostgreSQL's {name} is not installed (Debian: apt-get install "
                       "postgresql); the PostgreSQL tests need a real server")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgServer:
    """One throw-away PostgreSQL cluster. ``durable`` keeps the server's crash-safe defaults
    (fsync, synchronous_commit, full_page_writes on), as a benchmark wants; the tests leave all
    three off, for speed."""

    def __init__(self, durable: bool = False) -> None:
        self.durable = durable
        self.root = Path(tempfile.mkdtemp(prefix="dataops-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self.as_root = os.geteuid() == 0
        self.log = self.root / "server.log"

    def _run(self, *argv: str) -> subprocess.CompletedProcess[str]:
        cmd = list(argv)
        if self.as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)

    def start(self) -> PgServer:
        if self.as_root:
            shutil.chown(self.root, "postgres", "postgres")
        r = self._run(_binary("initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust",
                      "-E", "UTF8", "--locale=C.UTF-8", "--no-sync")
        if r.returncode != 0:
            raise RuntimeError(f"initdb failed: {r.stderr.strip()}")
        options = " ".join([
            f"-p {self.port}", "-c listen_addresses=127.0.0.1", f"-k {self.root}",
            "-c max_connections=300", "-c shared_buffers=128MB",
            *([] if self.durable else ["-c fsync=off", "-c synchronous_commit=off",
                                       "-c full_page_writes=off"]),
        ])
        r = self._run(_binary("pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", options,
                      "-w", "-t", "60", "start")
        if r.returncode != 0:
            log = self.log.read_text() if self.log.exists() else ""
            raise RuntimeError(f"pg_ctl start failed: {r.stderr.strip()} {log[-2000:]}")
        return self

    def stop(self) -> None:
        self._run(_binary("pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)

    @property
    def base_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def new_url(self) -> str:
        """A store URL with a schema of its own (created by the store on first use)."""
        return f"{self.base_url}?schema=t_{next(_names)}"

    def psql(self, sql: str) -> str:
        r = subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                            "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-At", "-c", sql],
                           capture_output=True, text=True, timeout=60, check=False)
        if r.returncode != 0:
            raise RuntimeError(f"psql failed: {r.stderr.strip()}")
        return r.stdout
