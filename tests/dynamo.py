"""A DynamoDB- and S3-compatible endpoint for the tests: moto's server mode on 127.0.0.1.

moto's own threaded server gives wrong answers to racing transactions (it rolls a failed
transaction back by restoring a copy of the whole table, which loses other requests' writes),
so its WSGI app is served one request at a time here (werkzeug's ``make_server(...,
threaded=False)``), in a process of its own (:class:`MotoProcess`: its work then shares no
interpreter lock with the tests' own servers, such as the SMTP server a daemon test sends to,
and runs on the other core); every test talks to it only through boto3 over HTTP, and each gets its own
small table, dropped when the test ends. Nothing of the code under test is patched: it talks to
the server over HTTP with boto3.

One fix is made to the server itself (:func:`_back_up_each_table_once`): moto backs a
transaction up by deep-copying the whole table once for every item of the transaction, so a
100-item transaction on a table of a few thousand items took seconds. The copy is now made once
per table per transaction; what the server answers is unchanged.
"""

from __future__ import annotations

import itertools
import logging
import os
import subprocess
import sys
import threading
from types import SimpleNamespace
from typing import Any

_names = itertools.count(1)
RUNNING: list[MotoServer | MotoProcess] = []

FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                    "AWS_DEFAULT_REGION": "us-east-1"}


def _back_up_each_table_once() -> None:
    import copy

    from moto.dynamodb import models
    from moto.dynamodb.models.table import Table

    original = models.DynamoDBBackend.transact_write_items
    if getattr(original, "_once", False):
        return

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        copies: dict[int, Any] = {}

        def deepcopy(obj: Any, memo: Any = None) -> Any:
            if isinstance(obj, Table):
                if id(obj) not in copies:
                    copies[id(obj)] = copy.deepcopy(obj, memo)
                return copies[id(obj)]
            return copy.deepcopy(obj, memo)

        # the server serves one request at a time, so swapping the module's name is safe
        models.copy = SimpleNamespace(deepcopy=deepcopy)  # type: ignore[attr-defined]
        try:
            original(self, transact_items)
        finally:
            models.copy = copy  # type: ignore[attr-defined]

    transact_write_items._once = True  # type: ignore[attr-defined]
    models.DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]


class MotoServer:
    """moto's WSGI app behind a single-threaded werkzeug server, on a free port, in a thread of
    this process (the benchmarks, which count what it serves, use it so)."""

    def __init__(self) -> None:
        from moto.moto_server.werkzeug_app import (  # a dev dependency: missing, it fails loudly
            DomainDispatcherApplication,
            create_backend_app,
        )
        from werkzeug.serving import make_server

        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        _back_up_each_table_once()
        app = DomainDispatcherApplication(create_backend_app)
        self._server: Any = make_server("127.0.0.1", 0, app, threaded=False)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True,
                                        name="moto")

    def start(self) -> MotoServer:
        for name, value in FAKE_CREDENTIALS.items():  # children inherit them
            os.environ.setdefault(name, value)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def new_url(self, shards: int = 4) -> str:
        return new_url(self.url, shards)


class MotoProcess:
    """:class:`MotoServer` in a child process (``python -m tests.dynamo``), which prints its
    URL when it listens and serves until it is terminated."""

    def __init__(self) -> None:
        self.url = ""
        self._proc: subprocess.Popen[str] | None = None

    def start(self) -> MotoProcess:
        for name, value in FAKE_CREDENTIALS.items():  # children inherit them
            os.environ.setdefault(name, value)
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        self._proc = subprocess.Popen([sys.executable, "-m", "tests.dynamo"], cwd=root,
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline().strip()  # blocks until it listens, or dies
        if not line.startswith("http://"):
            self._proc.kill()
            raise RuntimeError(f"moto's server did not start (exit {self._proc.wait()}); "
                               "is the dev extra installed? pip install -e '.[dev]'")
        self.url = line
        return self

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            for pipe in (self._proc.stdin, self._proc.stdout):
                if pipe is not None:
                    pipe.close()

    def new_url(self, shards: int = 4) -> str:
        return new_url(self.url, shards)


def new_url(endpoint: str, shards: int = 4) -> str:
    """A store URL naming a table no other test uses (made on first use)."""
    name = f"t{os.getpid()}_{next(_names)}"
    return f"dynamodb://{name}?region=us-east-1&endpoint_url={endpoint}&shards={shards}"


def main() -> None:
    def orphaned() -> None:  # the tests' process is gone (even SIGKILLed): so is this one
        sys.stdin.read()
        os._exit(0)

    threading.Thread(target=orphaned, daemon=True).start()
    server = MotoServer()
    print(server.url, flush=True)
    server._server.serve_forever()


if __name__ == "__main__":
    main()
