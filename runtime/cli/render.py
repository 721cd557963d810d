"""Printing for people (tables, one record) and for programs (``--json``: the export shape)."""

from __future__ import annotations

import json
import sys
import unicodedata
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from runtime.engine.views import BundleView
    from runtime.model import Task


_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# bidirectional overrides and isolates reorder what a terminal shows
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def _escape(ch: str) -> str:
    if ch in _NAMED:
        return _NAMED[ch]
    if ch in _BIDI or unicodedata.category(ch) in ("Cc", "Zl", "Zp"):
        return f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}"
    return ch


def safe(value: str) -> str:
    """``value`` with terminal control characters (ESC and the other C0/C1 controls, newlines,
    bidi overrides) shown as escapes (``\\x1b``, ``\\n``): a stored value cannot move the
    cursor, recolour or forge a line of the output. Idempotent."""
    if value.isprintable():
        return value
    return "".join(_escape(ch) for ch in value)


def out(text: str = "") -> None:
    sys.stdout.write(safe(text) + "\n")


def warn(text: str) -> None:
    sys.stderr.write(f"warning: {safe(text)}\n")


def emit_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")


def text(value: Any) -> str:
    """A value as printed for people: instants in ISO-8601 (as in the JSON), None as -,
    control characters escaped (:func:`safe`)."""
    if value is None:
        return "-"
    isoformat = getattr(value, "isoformat", None)
    return safe(str(isoformat()) if isoformat else str(value))


def table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> None:
    cells = [[text(c) for c in row] for row in [header, *rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    for i, row in enumerate(cells):
        out("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        if i == 0:
            out("  ".join("-" * w for w in widths))


def bundle(view: BundleView) -> None:
    b = view.bundle
    out(f"bundle   {b.bundle_id}  ({b.status}, stage {b.stage or '-'})")
    out(f"title    {b.title}")
    out(f"template {b.template_id} v{b.template_version}, anchor {b.anchor_date}, zone {b.timezone}")
    for link in b.required_bundle_links:
        flag = "required" if link.required else "optional"
        out(f"link     {link.key} ({flag}): {link.url or '(empty)'}")
    for ref in b.references:
        out(f"ref      {ref.label}: {ref.url}")
    if view.tasks:
        out()
        tasks(view.tasks)


def tasks(items: Sequence[Task]) -> None:
    table(
        [(t.task_id, t.status, t.due_date, t.assignee, t.phase, t.title) for t in items],
        ("task_id", "status", "due", "assignee", "phase", "title"),
    )


def task(t: Task, allowed: list[str] | None = None) -> None:
    from runtime.rules.proof import missing_proof

    out(f"task        {t.task_id}  ({t.status})")
    out(f"title       {t.title}")
    out(f"bundle      {t.bundle_id}  phase {t.phase}")
    out(f"assignee    {t.assignee or '-'}   due {t.due_date}")
    if t.waiting_for or t.follow_up_at:
        out(f"waiting for {t.waiting_for}  follow up at {text(t.follow_up_at)}")
    if t.completed_at:
        out(f"completed   {text(t.completed_at)} by {t.completed_by}")
    if t.instruction_doc_id:
        step = f" step {t.instruction_step_id}" if t.instruction_step_id else ""
        out(f"instructions {t.instruction_doc_id}{step}")
    elif t.instructions_url:
        out(f"instructions {t.instructions_url} (legacy link)")
    if t.systems:
        out(f"systems     {', '.join(t.systems)}")
    if t.validation:
        out(f"validation  {t.validation}")
    for entry in t.proof:
        what = entry.value if entry.kind != "external_status" else f"{entry.system}={entry.value}"
        ref = f" [{entry.artifact_id}]" if entry.artifact_id else ""
        out(f"proof       {entry.kind}: {what}{ref} ({entry.by}, {text(entry.at)})")
    missing = missing_proof(t)
    if missing:
        out(f"missing     {'; '.join(missing)}")
    for c in t.comments:
        out(f"comment     {c.author} {text(c.created_at)}: {c.body}")
    if allowed is not None:
        out(f"allowed now {', '.join(allowed) or '(none)'}")


def more(shown: int, total: int | None, next_cursor: str | None) -> None:
    """The footer of a paged list (on stderr, so stdout stays the table)."""
    if next_cursor is None:
        return
    of = f" of {total}" if total is not None else ""
    sys.stderr.write(f"showing {shown}{of}; more with --limit N or --all\n")
