"""The exceptions of the runtime, one tree.

::

    DataopsError                      base of everything the runtime raises on purpose
     +-- InputError                   bad input from a user or a file (CLI exit 2)
     |    +-- DefinitionError         content/ (workflow definitions, documents, machine specs)
     |    +-- ExportFormatError       a portable export that does not validate
     +-- TransitionRejected           a guard or the machine refused a trigger (exit 3)
     +-- ConflictError                a lost optimistic-concurrency race (exit 4)
     +-- ThrottledError               the store is busy or throttling: retry later, not a race (exit 4)
     +-- NotFoundError(LookupError)   no record with that ID (exit 5)
     +-- AuditChainBroken             `audit verify` found an edited/removed/reordered event (exit 2)

Constructors take the entity and build the message, so every message names the entity, the field
and what to do.
"""

from __future__ import annotations

from collections.abc import Sequence


class DataopsError(Exception):
    """Base of every error the runtime raises on purpose."""

    exit_code = 1


class InputError(DataopsError, ValueError):
    """Bad input: a CLI argument, a record field, a file. Nothing was changed."""

    exit_code = 2


class DefinitionError(InputError):
    """One or more problems in content/ or machines/; ``problems`` lists every one found."""

    def __init__(self, problems: Sequence[str]):
        self.problems = list(problems)
        if len(self.problems) == 1:
            msg = self.problems[0]
        else:
            msg = f"{len(self.problems)} problems: " + "; ".join(self.problems)
        super().__init__(msg)


class ExportFormatError(InputError):
    """A portable export that does not validate; ``problems`` lists every violation."""

    def __init__(self, directory: str, problems: Sequence[str]):
        self.problems = list(problems)
        super().__init__(
            f"export {directory} is not valid ({len(self.problems)} problems): "
            + "; ".join(self.problems)
        )


class TransitionRejected(DataopsError):
    """A trigger was refused; ``missing`` lists every unmet requirement by name."""

    exit_code = 3

    def __init__(self, entity_id: str, trigger: str, missing: Sequence[str], *, state: str = ""):
        self.entity_id = entity_id
        self.trigger = trigger
        self.state = state
        self.missing = list(missing)
        verb = {"complete": "be done"}.get(trigger, trigger)
        super().__init__(f"task {entity_id} cannot {verb}: " + "; ".join(self.missing))


class ConflictError(DataopsError):
    """Someone else changed (or created) the record first. Nothing was written: reload and retry."""

    exit_code = 4

    def __init__(self, entity_id: str, detail: str = ""):
        self.entity_id = entity_id
        super().__init__(
            f"{entity_id} was changed by someone else"
            + (f" ({detail})" if detail else "")
            + "; nothing was written, reload and try again"
        )


class ThrottledError(DataopsError):
    """The store refused for capacity (busy, throttled), not for a race; retry with backoff.
    Deliberately not a ConflictError: reloading does not help, waiting does."""

    exit_code = 4

    def __init__(self, detail: str):
        super().__init__(f"the store is busy or throttling requests ({detail}); retry later")


class NotFoundError(DataopsError, LookupError):
    """No record with that ID."""

    exit_code = 5

    def __init__(self, entity_type: str, entity_id: str, hint: str = ""):
        self.entity_type = entity_type
        self.entity_id = entity_id
        super().__init__(
            f"no {entity_type} {entity_id!r}" + (f"; {hint}" if hint else "")
        )

    def __str__(self) -> str:  # LookupError would repr() the args otherwise
        return str(self.args[0])


class AuditChainBroken(InputError):
    """An audit event was edited, removed or reordered."""

    def __init__(self, seq: int, event_id: str, reason: str):
        self.seq = seq
        self.event_id = event_id
        super().__init__(f"audit chain broken at event #{seq} ({event_id}): {reason}")
