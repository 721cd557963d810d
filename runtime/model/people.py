"""The people directory (content/people/*.yaml): who reminders are for. Pure: no I/O.

Assignees and owners in definitions name a ``person_id`` or a ``group_id``; the routing rule
(:mod:`runtime.rules.routing`) turns a reminder and this directory into its recipients.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import time
from typing import Annotated, Any, Literal

from pydantic import EmailStr, Field

from runtime.model.common import Definition
from runtime.model.definitions import LocalTime, Slug, Zone

OPERATORS = "operators"
"""The group that receives automation failures and whatever resolves to nobody."""


class DigestDelivery(Definition):
    """One message a local day at ``digest`` (HH:MM in the person's zone)."""

    digest: LocalTime


class Person(Definition):
    person_id: Slug
    name: str = Field(min_length=1)
    email: EmailStr | None = None
    chat: Annotated[str, Field(pattern=r"^https?://\S+$")] | None = None
    """A Slack-compatible incoming webhook: the chat:// sink posts ``{"text": ...}`` to it."""
    timezone: Zone = "UTC"
    manager: Slug | None = None
    delivery: Literal["immediate"] | DigestDelivery = "immediate"

    @property
    def digest_at(self) -> time | None:
        """The local time of this person's daily digest, or None (one message a reminder)."""
        return self.delivery.digest if isinstance(self.delivery, DigestDelivery) else None


class Group(Definition):
    group_id: Slug
    name: str | None = None
    members: list[Slug] = Field(min_length=1)


class PeopleFile(Definition):
    """One file of content/people/."""

    people: list[Person] = []
    groups: list[Group] = []


@dataclass
class Directory:
    """Every person and group that loaded. Empty when content/ has no people/ folder: then
    reminders carry no recipients (routing is off)."""

    people: dict[str, Person] = field(default_factory=dict)
    groups: dict[str, Group] = field(default_factory=dict)
    memo: dict[Any, Any] = field(default_factory=dict, repr=False, compare=False)
    """Routing's answers for this directory (:func:`runtime.engine.routing.recipients_for`):
    a sweep routes thousands of reminders with a handful of distinct facts."""

    def __bool__(self) -> bool:
        return bool(self.people)

    def resolve(self, name: str | None) -> list[str]:
        """The person IDs ``name`` stands for: the person, or a group's members (in the
        group's order); empty when it names nobody."""
        if name is None:
            return []
        if name in self.people:
            return [name]
        group = self.groups.get(name)
        if group is None:
            return []
        return [m for m in group.members if m in self.people]

    def groups_of(self, person_id: str) -> list[str]:
        return sorted(g.group_id for g in self.groups.values() if person_id in g.members)
