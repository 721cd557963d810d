"""Proof ``pattern`` regexes in linear time (DESIGN.md "Errors"): RE2, never backtracking.

google-re2 (module ``re2``) is imported on first use, so commands that match no pattern do not
pay for it. A pattern RE2 cannot compile (backreferences, lookarounds) is refused by validate.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any


def _options() -> Any:
    import re2

    options = re2.Options()
    options.log_errors = False  # the runtime reports the error itself, once
    return options


@lru_cache(maxsize=256)
def compile_pattern(pattern: str) -> Any:
    """The compiled RE2 pattern. :raises ValueError: RE2 cannot compile it (named why)."""
    import re2

    try:
        return re2.compile(pattern, options=_options())
    except re2.error as e:
        reason = e.args[0].decode("utf-8", "replace") if e.args and isinstance(
            e.args[0], bytes) else str(e)
        raise ValueError(
            f"pattern {pattern!r} must be a linear-time (RE2) regular expression; RE2 refuses "
            f"it: {reason} (backreferences and lookarounds are not supported)"
        ) from None


def pattern_matches(pattern: str, value: str) -> bool:
    """Whether ``pattern`` is found in ``value`` (like re.search), in time linear in both."""
    try:
        return compile_pattern(pattern).search(value) is not None
    except ValueError:
        return False  # validate refuses such a pattern; a stored one simply does not match
