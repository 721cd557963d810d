"""What a use case runs against: a store, a clock, an actor, artifacts and content."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from runtime.clock import Clock
from runtime.errors import InputError
from runtime.store.base import Store

if TYPE_CHECKING:  # content (yaml, difflib) and artifacts are imported only where used
    from runtime.artifacts import ArtifactStore
    from runtime.content import Content


@dataclass
class Services:
    """The ports of the engine. ``content`` is loaded on first use only."""

    store: Store
    clock: Clock
    actor: str
    artifacts: ArtifactStore | None = None
    content_loader: Callable[[], Content] | None = None
    _content: Content | None = field(default=None, repr=False)

    @property
    def content(self) -> Content:
        if self._content is None:
            if self.content_loader is None:
                raise InputError("no content folder configured; give the runtime a content folder")
            self._content = self.content_loader()
        return self._content

    def reload_content(self) -> None:
        """Read content/ again on next use (a daemon picks up edited definitions)."""
        if self.content_loader is not None:
            self._content = None

    def now(self) -> datetime:
        at = self.clock.now()
        if at.tzinfo is None:
            raise InputError("the clock returned a naive datetime; clocks must be timezone-aware")
        return at

    def as_actor(self, actor: str) -> Services:
        """The same ports, acting as someone else."""
        return Services(self.store, self.clock, actor, self.artifacts, self.content_loader,
                        self._content)
