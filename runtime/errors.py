"""The exceptions of the runtime, one tree.

::

    DataopsError                      base of everything the runtime raises on purpose
     +-- InputError                   bad input from a user or a file
     |    +-- DefinitionError         content/ (workflow definitions, documents, machine specs)
     |    +-- ExportFormatError       a portable export that does not validate
     |    +-- AuditChainBroken        `audit verify` found broken chains
     |    +-- TooLarge                an upload or body over its size limit
     +-- TransitionRejected           a guard or the machine refused a trigger
     +-- ConflictError                a lost optimistic-concurrency race (retries spent)
     +-- VersionMismatch              the caller named a version (If-Match) that is not current
     +-- IdempotencyKeyInUse          a request with the same Idempotency-Key is still running
     +-- NotAuthenticated             no API token, or one that is unknown or revoked
     +-- NotAllowed                   the token's role may not do this
     +-- ThrottledError               the store is busy or throttling: retry later, not a race
     +-- NotFoundError(LookupError)   no record with that ID
     +-- RecordUnreadable             a stored record that does not decode (quarantined)
     +-- StoreFault                   the store cannot do what was asked
          +-- StoreReadOnly           read-only file or database
          +-- StoreFull               the disk or the database is full
          +-- StoreCorrupt            not a database, or a damaged one
          +-- StoreUnreachable        the database server cannot be reached (or the link broke)

Constructors take the entity and build the message, so every message names the entity, the field
and what to do. No error carries an exit code or an HTTP status, and no message names a CLI
flag: the CLI and the HTTP API each map this tree to their own codes in one table.
"""

from __future__ import annotations

from collections.abc import Sequence


class DataopsError(Exception):
    """Base of every error the runtime raises on purpose."""



class InputError(DataopsError, ValueError):
    """Bad input: a CLI argument, a record field, a file. Nothing was changed."""



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


class TooLarge(InputError):
    """An upload or a request body over its size limit; nothing was stored."""


class TransitionRejected(DataopsError):
    """A trigger was refused; ``missing`` lists every unmet requirement by name."""


    def __init__(self, entity_id: str, trigger: str, missing: Sequence[str], *, state: str = "",
                 entity_type: str = "task"):
        self.entity_id = entity_id
        self.entity_type = entity_type
        self.trigger = trigger
        self.state = state
        self.missing = list(missing)
        verb = {"complete": "be done"}.get(trigger, trigger)
        super().__init__(f"{entity_type} {entity_id} cannot {verb}: " + "; ".join(self.missing))


class ConflictError(DataopsError):
    """Someone else changed (or created) the record first. Nothing was written: reload and retry."""


    def __init__(self, entity_id: str, detail: str = ""):
        self.entity_id = entity_id
        super().__init__(
            f"{entity_id} was changed by someone else"
            + (f" ({detail})" if detail else "")
            + "; nothing was written, reload and try again"
        )


class VersionMismatch(DataopsError):
    """The caller asked to change a record at a version (an HTTP ``If-Match``) that is no longer
    current; nothing was written. Not retried: the caller decided on what it saw."""

    def __init__(self, entity_id: str, expected: int, current: int):
        self.entity_id, self.expected, self.current = entity_id, expected, current
        super().__init__(f"{entity_id} is at version {current}, not {expected}; nothing was "
                         "written: read it again and decide on what it is now")


class IdempotencyKeyInUse(DataopsError):
    """A request with the same Idempotency-Key is still being answered; retry a little later."""

    def __init__(self, key: str):
        super().__init__(f"a request with Idempotency-Key {key!r} is still running; retry it "
                         "in a few seconds to get its answer")


class NotAuthenticated(DataopsError):
    """No API token was given, or it is unknown, malformed or revoked."""


class NotAllowed(DataopsError):
    """The caller's role does not allow this."""


class ThrottledError(DataopsError):
    """The store refused for capacity (busy, throttled), not for a race; retry with backoff.
    Deliberately not a ConflictError: reloading does not help, waiting does."""


    def __init__(self, detail: str):
        super().__init__(f"the store is busy or throttling requests ({detail}); retry later")


class NotFoundError(DataopsError, LookupError):
    """No record with that ID."""


    def __init__(self, entity_type: str, entity_id: str, hint: str = ""):
        self.entity_type = entity_type
        self.entity_id = entity_id
        super().__init__(
            f"no {entity_type} {entity_id!r}" + (f"; {hint}" if hint else "")
        )

    def __str__(self) -> str:  # LookupError would repr() the args otherwise
        return str(self.args[0])


class AuditChainBroken(InputError):
    """``audit verify`` found problems; ``problems`` names each entity and event."""

    def __init__(self, problems: Sequence[str]):
        self.problems = list(problems)
        super().__init__(f"audit chain broken ({len(self.problems)} problems): "
                         + "; ".join(self.problems))


class RecordUnreadable(DataopsError):
    """A stored record does not decode (damaged, or written by a newer version): it is
    quarantined, skipped by sweeps and lists, and reported once as an automation_failure."""

    def __init__(self, entity_type: str, entity_id: str, reason: str):
        self.entity_type = entity_type
        self.entity_id = entity_id
        self.reason = reason
        super().__init__(f"{entity_type} {entity_id!r} cannot be read and is quarantined "
                         f"({reason}); restore it from an export or remove it")


class StoreFault(DataopsError):
    """The store cannot do what was asked; the message says what is wrong and what to do."""

    def __init__(self, url: str, detail: str):
        self.url = url
        super().__init__(f"store {url}: {detail}")


class StoreReadOnly(StoreFault):
    """The store refuses writes (a read-only file, folder or database)."""


class StoreFull(StoreFault):
    """The disk or the database is full."""


class StoreCorrupt(StoreFault):
    """The file is not a database of ours, or is damaged."""


class StoreUnreachable(StoreFault):
    """The database server cannot be reached, or the connection broke during a command (which
    may then have been written or not: read the record before retrying by hand)."""
