"""Shared building blocks of the model: base config, time types and ID schemes. No I/O."""

from __future__ import annotations

import hashlib
import os
from datetime import UTC, date, datetime
from typing import Annotated, Any

import orjson
from pydantic import AfterValidator, BaseModel, ConfigDict, PlainSerializer
from pydantic.alias_generators import to_camel

from runtime.errors import InputError


def _to_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError(
            "a naive date-time has no time zone; give an offset, e.g. 2026-11-25T09:00:00+00:00"
        )
    return value.astimezone(UTC)


def format_instant(value: datetime) -> str:
    """ISO-8601 in UTC with an explicit offset, e.g. ``2026-11-25T09:00:00+00:00``."""
    return value.astimezone(UTC).isoformat()


Instant = Annotated[
    datetime,
    AfterValidator(_to_utc),
    PlainSerializer(format_instant, return_type=str),
]
"""An aware instant, stored in UTC and serialized with an explicit offset."""

def sorted_keys(value: Any) -> Any:
    """``value`` with every mapping's keys in sorted order (lists keep theirs); the value
    itself when it is already so (the common case: what a store or an export gives back)."""
    try:  # two C-speed serialisations compare in ~1 us where the walk below takes ~30
        unsorted = orjson.dumps(value) != orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # not plain JSON (a number past 64 bits, a non-str key): walk it
        unsorted = not _is_sorted(value)
    return _sort(value) if unsorted else value


def _is_sorted(value: Any) -> bool:
    if isinstance(value, dict):
        keys = list(value)
        return keys == sorted(keys) and all(_is_sorted(v) for v in value.values())
    if isinstance(value, list):
        return all(_is_sorted(v) for v in value)
    return True


def _sort(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _sort(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_sort(v) for v in value]
    return value


FreeForm = Annotated[dict[str, Any], AfterValidator(sorted_keys)]
"""A free-form JSON object (an event's before/after, a job's input), kept with its keys in
sorted order so that it serialises the same from every store (PostgreSQL's jsonb reorders)."""

Day = Annotated[date, PlainSerializer(lambda d: d.isoformat(), return_type=str)]


def _in_range(value: date, text: str, what: str) -> None:
    from runtime.limits import MAX_YEAR, MIN_YEAR

    if not MIN_YEAR <= value.year <= MAX_YEAR:
        raise InputError(f"{what} {text!r} leaves the supported date range: years {MIN_YEAR} to "
                         f"{MAX_YEAR} (offsets and reminders must stay representable)")


def parse_instant(text: str, what: str = "instant") -> datetime:
    """Parse an aware ISO-8601 instant (``Z`` accepted); a naive one, or one outside the years
    MIN_YEAR..MAX_YEAR (runtime/limits.py), is an :class:`InputError`."""
    try:
        value = datetime.fromisoformat(text.strip().replace("z", "Z"))
    except ValueError:
        raise InputError(
            f"{what} {text!r} is not an ISO-8601 instant; write e.g. 2026-11-25T09:00:00+00:00"
        ) from None
    if value.tzinfo is None:
        example = value.isoformat(timespec="seconds") + "+00:00"
        raise InputError(
            f"{what} {text!r} has no UTC offset; write e.g. {example} (naive times are refused)"
        )
    _in_range(value, text, what)
    return value.astimezone(UTC)


def parse_day(text: str, what: str = "date") -> date:
    try:
        value = date.fromisoformat(text.strip())
    except ValueError:
        raise InputError(f"{what} {text!r} is not a date; write it as YYYY-MM-DD") from None
    _in_range(value, text, what)
    return value


class Definition(BaseModel):
    """Base of the Git-backed content models: snake_case, camelCase aliases, no unknown keys."""

    model_config = ConfigDict(
        extra="forbid", alias_generator=to_camel, populate_by_name=True, frozen=True,
        defer_build=True,  # built on first use: `dataops --help` and lists stay fast
    )


class Record(BaseModel):
    """Base of the store's records (the export shape). Records are immutable: change by copy."""

    model_config = ConfigDict(  # snake_case only: no camelCase aliases (a store key or a
        extra="forbid", frozen=True,  # camelCase field in an export line is an extra field)
        defer_build=True,  # built on first use: `dataops --help` and lists stay fast
    )

    def to_json(self) -> dict[str, Any]:
        """The export shape: snake_case, dates as YYYY-MM-DD, instants with an offset."""
        # pydantic-core's JSON serializer + orjson parse is ~5x faster than model_dump(mode="json")
        return orjson.loads(self.model_dump_json())


# ---- IDs ------------------------------------------------------------------------------------
# Durable IDs are application-level and never a store key. Bundles and tasks get readable
# business IDs (template, anchor, task_ref), which also makes instantiation idempotent: the same
# template at the same anchor is the same bundle. Records created by events (artifacts, audit
# events, assistant jobs) get random IDs; reminders get IDs derived from what they are about.


def bundle_id_for(template_id: str, anchor: date) -> str:
    return f"{template_id}/{anchor.isoformat()}"


def task_id_for(bundle_id: str, task_ref: str) -> str:
    return f"{bundle_id}/{task_ref}"


def new_id(prefix: str) -> str:
    """``prefix-`` + 32 random hex digits (128 bits, like a uuid4 without its version bits)."""
    return f"{prefix}-{os.urandom(16).hex()}"


def reminder_id_for(kind: str, entity_id: str, fire_at: datetime) -> str:
    """Deterministic: (kind, entity, firing instant) always gives the same ID."""
    key = f"{kind}|{entity_id}|{format_instant(fire_at)}"
    return "rem-" + hashlib.sha256(key.encode()).hexdigest()[:24]


def digest_id_for(person_id: str, local_date: date) -> str:
    """Deterministic: one digest per person and local day."""
    key = f"digest|{person_id}|{local_date.isoformat()}"
    return "dig-" + hashlib.sha256(key.encode()).hexdigest()[:24]


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)
