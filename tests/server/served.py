"""`dataops serve` as a real process on a free 127.0.0.1 port, for the API's socket tests."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def dataops(store: str, content: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "runtime.cli", "--store", store, "--content",
                           str(content), *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "DATAOPS_ACTOR": "admin"})


def token(store: str, content: Path, actor: str, role: str) -> str:
    r = dataops(store, content, "token", "create", "--actor", actor, "--role", role, "--json")
    assert r.returncode == 0, r.stderr
    return str(json.loads(r.stdout)["token"])


class Served:
    """One ``dataops serve`` process; ``url`` once it answers ``/v1/health``."""

    def __init__(self, store: str, content: Path, folder: Path, *, workers: int = 1,
                 max_upload_mb: float = 100) -> None:
        self.store, self.content, self.folder = store, content, folder
        self.workers, self.max_upload_mb = workers, max_upload_mb
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = folder / f"serve-{self.port}.log"

    def start(self, ready_within: float = 60.0) -> Served:
        self.folder.mkdir(parents=True, exist_ok=True)
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "runtime.cli", "--store", self.store, "--content",
                 str(self.content), "--artifacts", f"file://{self.folder / 'artifacts'}", "serve",
                 "--port", str(self.port), "--workers", str(self.workers), "--log-level",
                 "warning", "--max-upload-mb", str(self.max_upload_mb)],
                stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + ready_within
        while time.monotonic() < deadline:  # waiting for a condition (the port answers)
            if self.proc.poll() is not None:
                raise AssertionError(f"dataops serve exited {self.proc.returncode}: "
                                     f"{self.log.read_text()}")
            try:
                if httpx.get(f"{self.url}/v1/health", timeout=1.0).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        self.stop()
        raise AssertionError(f"dataops serve did not answer within {ready_within} s: "
                             f"{self.log.read_text()}")

    def stop(self) -> int:
        """SIGTERM, then the exit code (uvicorn finishes the requests in hand)."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return int(self.proc.returncode)

    def __enter__(self) -> Served:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
