"""The global options of one `dataops` run, and the services built from them on first use."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from runtime.cli import render

if TYPE_CHECKING:
    from runtime.content import Content
    from runtime.engine.services import Services
    from runtime.model.common import Record
    from runtime.store.base import Page

T = TypeVar("T", bound="Record")


def _default_actor() -> str:
    import getpass

    try:
        return getpass.getuser()
    except Exception:  # no user name in a bare container
        return "unknown"


def _option(given: str | None, env: str, default: str | None) -> str | None:
    """A global option: the flag, else the environment, else the default. A flag or variable
    that is set but empty is kept empty (and refused where it matters), never defaulted."""
    if given is not None:
        return given
    if env in os.environ:
        return os.environ[env]
    return default


def warn_broken(content: Content) -> None:
    """One line on stderr when some files in content/ are broken (they are left out)."""
    files = list(content.broken)
    if not files:
        return
    defs = all(f.parent == content.root / "workflows" for f in files)
    noun = ("definition" if defs else "file") + ("s" if len(files) > 1 else "")
    verb = "is" if len(files) == 1 else "are"
    render.warn(f"{len(files)} {noun} in {os.path.join(content.root, '')} {verb} "
                f"broken ({', '.join(map(str, files))}); run dataops validate")


class Ctx:
    """The global options, and the services built from them on first use."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.store_url: str = _option(args.store, "DATAOPS_STORE", "sqlite:///dataops.db") or ""
        self.content_dir: str = _option(args.content, "DATAOPS_CONTENT", "content") or "content"
        self.now_text: str | None = _option(args.now, "DATAOPS_NOW", None) or None
        self.actor: str = _option(args.actor, "DATAOPS_ACTOR", None) or _default_actor()
        self.artifacts_url: str | None = _option(args.artifacts, "DATAOPS_ARTIFACTS", None) or None
        self._svc: Services | None = None
        self._content: Content | None = None

    def clock(self) -> Any:
        from runtime.clock import FixedClock, SystemClock
        from runtime.model import parse_instant

        if self.now_text:
            return FixedClock(parse_instant(self.now_text, "--now"))
        return SystemClock()

    def content(self) -> Content:
        """The content tree, loaded once; broken definitions are named on stderr, once."""
        if self._content is None:
            from runtime.content import load_content

            self._content = load_content(self.content_dir)
        return self._content

    def services(self) -> Services:
        if self._svc is None:
            from runtime.wiring import open_services

            if self.store_url.strip().lower().startswith("memory:"):
                render.warn("memory:// keeps nothing after this command ends; use "
                            "sqlite:///PATH.db to keep data")
            svc = open_services(self.store_url, None, clock=self.clock(), actor=self.actor,
                                artifacts=self.artifacts_url)
            svc.content_loader = self.content
            self._svc = svc
        return self._svc

    def close(self) -> None:
        if self._svc is not None:
            self._svc.store.close()

    def report_quarantined(self) -> None:
        """Name on stderr the records this command met that do not decode (it skipped them)."""
        found = self._svc.store.quarantined if self._svc is not None else {}
        if found:
            render.warn(f"{len(found)} stored record(s) cannot be read and were skipped "
                        f"({', '.join(sorted(found))}); they are quarantined: restore them "
                        "from an export, and see the automation_failure the scheduler records")

    def page(self, fetch: Callable[[int, str | None], Page[T]]) -> tuple[list[T], str | None]:
        """Apply ``--limit N`` / ``--all`` to a paged list: the items and the next cursor."""
        from runtime.errors import InputError

        limit = getattr(self.args, "limit", 100)
        if limit is not None and limit < 1:
            raise InputError(f"--limit {limit}: give a positive number of records")
        if not getattr(self.args, "all", False):
            page = fetch(limit, None)
            return page.items, page.next_cursor
        items: list[T] = []
        cursor: str | None = None
        while True:
            page = fetch(500, cursor)
            items += page.items
            if page.next_cursor is None:
                return items, None
            cursor = page.next_cursor
