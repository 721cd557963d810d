"""The parser limits, in one place (DESIGN.md "Errors": parsers are bounded).

Content files (content/ YAML) and export lines (JSON Lines) past any of these are refused with
a named problem that gives the file, the line where known, and the limit.
"""

from __future__ import annotations

MAX_CONTENT_FILE_BYTES = 1024 * 1024
"""A content/ YAML file larger than this (1 MiB) is refused unread."""
MAX_YAML_NODES = 100_000
"""Nodes a YAML file may compose to, each alias counting the size of what it stands for."""
MAX_YAML_ALIASES = 1_000
"""Aliases (``*name``) one YAML file may use."""
MAX_NESTING = 100
"""Nesting depth of mappings and sequences, in content YAML and in export lines."""
MAX_INT_DIGITS = 100
"""Digits an integer may have, in content YAML and in export lines."""
MAX_EXPORT_LINE_BYTES = 1024 * 1024
"""An export line (one record) larger than this (1 MiB) is refused."""
MAX_OFFSET_DAYS = 36_500
"""A due/anchor offset (calendar or business days) beyond ±this (about 100 years) is refused."""
MIN_YEAR = 1000
MAX_YEAR = 9000
"""Anchors, ``--now`` and ``--at`` must fall in these years, so that an offset (±MAX_OFFSET_DAYS,
calendar or business) and a sweep's look-ahead stay inside Python's dates (years 1 to 9999)."""
