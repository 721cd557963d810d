"""Load and validate content/: workflow definitions and the document registry.

Every problem in the tree is reported in one run, each naming the file, the line where the YAML
gives one, the field and what to do.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from runtime.errors import DefinitionError, InputError, NotFoundError
from runtime.model import (
    ArtifactProof,
    BundleLinkSpec,
    BusinessCalendar,
    CommentProof,
    DocStep,
    Document,
    ExternalStatusProof,
    ManualTrigger,
    Phase,
    Reference,
    ReminderPolicy,
    ScheduleTrigger,
    TaskDefinition,
    UrlProof,
    WorkflowDefinition,
)
from runtime.store.base import MAX_ITEMS_PER_COMMIT

# A bundle and each of its tasks are created with one audit event each, in one atomic write.
MAX_TASKS_PER_DEFINITION = MAX_ITEMS_PER_COMMIT // 2 - 2

_MODELS: tuple[type[BaseModel], ...] = (
    WorkflowDefinition, TaskDefinition, Phase, Reference, BundleLinkSpec, ManualTrigger,
    ScheduleTrigger, ReminderPolicy, BusinessCalendar, UrlProof, ArtifactProof, CommentProof,
    ExternalStatusProof, Document, DocStep,
)
KNOWN_KEYS = sorted(
    {name for m in _MODELS for name in m.model_fields}
    | {f.alias for m in _MODELS for f in m.model_fields.values() if f.alias}
)

Path_ = tuple[str | int, ...]


@dataclass
class Content:
    """The validated content tree."""

    root: Path
    workflows: dict[str, WorkflowDefinition] = field(default_factory=dict)
    documents: dict[str, Document] = field(default_factory=dict)
    sources: dict[str, Path] = field(default_factory=dict)

    def workflow(self, template_id: str) -> WorkflowDefinition:
        try:
            return self.workflows[template_id]
        except KeyError:
            known = ", ".join(sorted(self.workflows)) or "none"
            raise NotFoundError(
                "template", template_id, f"templates in {self.root}: {known}"
            ) from None


# ---- YAML with line numbers ------------------------------------------------------------------


def _line_map(node: yaml.Node, path: Path_, out: dict[Path_, int], dupes: list[str]) -> None:
    out.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            name = str(key.value)
            sub = (*path, name)
            if name in seen:
                dupes.append(f"{key.start_mark.line + 1}: {_dotted(sub)}: the key is given twice "
                             "in one mapping; keep one (YAML would silently keep the last)")
            seen.add(name)
            _line_map(value, sub, out, dupes)
            out[sub] = key.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _line_map(item, (*path, i), out, dupes)


def read_yaml(path: Path) -> tuple[Any, dict[Path_, int]]:
    """Parse one YAML file; return the data and a map from field path to line number.

    :raises DefinitionError: the file is not valid YAML.
    """
    try:
        text = path.read_text(encoding="utf-8")
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        problem = getattr(e, "problem", None) or str(e)
        raise DefinitionError([f"{where}: not valid YAML: {problem}"]) from None
    except (OSError, UnicodeDecodeError) as e:
        raise DefinitionError([f"{path}: cannot read: {e}"]) from None
    lines: dict[Path_, int] = {}
    dupes: list[str] = []
    if node is not None:
        _line_map(node, (), lines, dupes)
    if dupes:
        raise DefinitionError([f"{path}:{d}" for d in dupes])
    return data, lines


def _data_path(data: Any, loc: Iterable[str | int]) -> Path_:
    """Map a pydantic error location onto the data's own path (dropping union tags)."""
    out: list[str | int] = []
    cur: Any = data
    for part in loc:
        if isinstance(cur, dict) and part in cur:
            out.append(part)
            cur = cur[part]
        elif isinstance(cur, list) and isinstance(part, int) and 0 <= part < len(cur):
            out.append(part)
            cur = cur[part]
        elif isinstance(cur, dict) and isinstance(part, str) and part not in _UNION_TAGS:
            out.append(part)  # a missing or unknown key: name it
            cur = None
    return tuple(out)


_UNION_TAGS = {"url", "artifact", "comment", "external_status", "manual", "schedule"}


def _dotted(path: Path_) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text or "(top level)"


def _where(file: Path, lines: dict[Path_, int], path: Path_) -> str:
    for cut in range(len(path), -1, -1):
        if path[:cut] in lines:
            return f"{file}:{lines[path[:cut]]}"
    return str(file)


def _explain(err: Any, path: Path_) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        key = str(path[-1]) if path else "?"
        if key in KNOWN_KEYS:  # a field's two spellings (snake_case and camelCase) both given
            from pydantic.alias_generators import to_camel, to_snake

            other = to_camel(key) if to_snake(key) == key else to_snake(key)
            return f"field {key!r} is given twice, as {to_snake(key)!r} and {to_camel(to_snake(key))!r}; keep one" if other else ""
        close = difflib.get_close_matches(key, KNOWN_KEYS, n=1, cutoff=0.6)
        hint = f"did you mean {close[0]!r}?" if close else "remove it or check the spelling"
        return f"unknown field {key!r}; {hint}"
    if kind == "missing":
        return "required field is missing; add it"
    if kind == "union_tag_invalid":
        return f"{err['msg']}"
    msg = str(err["msg"])
    return msg[len("Value error, "):] if msg.startswith("Value error, ") else msg


def _validate(model: type[BaseModel], data: Any, file: Path, lines: dict[Path_, int], problems: list[str]) -> Any:
    if not isinstance(data, dict):
        problems.append(f"{file}:1: expected a mapping of fields, got {type(data).__name__}")
        return None
    try:
        return model.model_validate(data)
    except ValidationError as e:
        for err in e.errors():
            path = _data_path(data, err["loc"])
            problems.append(f"{_where(file, lines, path)}: {_dotted(path)}: {_explain(err, path)}")
        return None


# ---- loading ---------------------------------------------------------------------------------


def load_content(root: str | Path) -> Content:
    """Load and validate a content tree.

    :raises InputError: the folder does not exist.
    :raises DefinitionError: anything is wrong; lists every problem found.
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError(
            f"content folder {root} does not exist; pass --content DIR or set DATAOPS_CONTENT"
        )
    content = Content(root=root)
    problems: list[str] = []
    lines_of: dict[Path, dict[Path_, int]] = {}

    doc_files: dict[str, Path] = {}
    for file in sorted((root / "docs").glob("*.y*ml")):
        try:
            data, lines = read_yaml(file)
        except DefinitionError as e:
            problems += e.problems
            continue
        doc = _validate(Document, data, file, lines, problems)
        if doc is None:
            continue
        if doc.doc_id in doc_files:
            problems.append(
                f"{_where(file, lines, ('doc_id',))}: doc_id: {doc.doc_id!r} is also defined in "
                f"{doc_files[doc.doc_id]}; doc IDs must be unique"
            )
            continue
        steps = [s.step_id for s in doc.steps]
        for i, step in enumerate(steps):
            if step in steps[:i]:
                problems.append(
                    f"{_where(file, lines, ('steps', i, 'step_id'))}: steps[{i}].step_id: "
                    f"{step!r} appears twice in {doc.doc_id}; step IDs must be unique"
                )
        doc_files[doc.doc_id] = file
        content.documents[doc.doc_id] = doc

    workflow_files = sorted((root / "workflows").glob("*.y*ml"))
    if not workflow_files:
        problems.append(f"{root / 'workflows'}: no workflow definitions (*.yaml) found")
    for file in workflow_files:
        try:
            data, lines = read_yaml(file)
        except DefinitionError as e:
            problems += e.problems
            continue
        if isinstance(data, dict) and ("tasks" in data or "phases" in data):
            # the raw tree is checked for duplicates even if the model fails elsewhere
            pass
        wf = _validate(WorkflowDefinition, data, file, lines, problems)
        if wf is None:
            continue
        lines_of[file] = lines
        if wf.template_id in content.sources:
            problems.append(
                f"{_where(file, lines, ('template_id',))}: template_id: {wf.template_id!r} is also "
                f"defined in {content.sources[wf.template_id]}; template IDs must be unique across content/"
            )
            continue
        problems += _check_workflow(wf, file, lines, content.documents)
        content.workflows[wf.template_id] = wf
        content.sources[wf.template_id] = file

    if problems:
        raise DefinitionError(problems)
    return content


def _check_workflow(
    wf: WorkflowDefinition, file: Path, lines: dict[Path_, int], docs: dict[str, Document]
) -> list[str]:
    problems: list[str] = []

    def at(path: Path_, message: str) -> None:
        problems.append(f"{_where(file, lines, path)}: {_dotted(path)}: {message}")

    def unique(items: list[str], section: str, key: str) -> None:
        for i, value in enumerate(items):
            if value in items[:i]:
                at((section, i, key), f"{value!r} appears twice; {key} must be unique in the definition")

    phase_ids = [p.phase_id for p in wf.phases]
    unique(phase_ids, "phases", "phase_id")
    unique([t.task_ref for t in wf.tasks], "tasks", "task_ref")
    unique([link.key for link in wf.required_bundle_links], "required_bundle_links", "key")

    if len(wf.tasks) > MAX_TASKS_PER_DEFINITION:
        at(("tasks",), f"{len(wf.tasks)} tasks; a definition may have at most "
           f"{MAX_TASKS_PER_DEFINITION} (a bundle is created in one atomic write); split it")

    def known_doc(doc_id: str, path: Path_) -> Document | None:
        if doc_id in docs:
            return docs[doc_id]
        close = difflib.get_close_matches(doc_id, list(docs), n=1)
        hint = f"did you mean {close[0]!r}?" if close else "add it to content/docs/ or fix the ID"
        at(path, f"unknown document {doc_id!r}; {hint}")
        return None

    for i, doc_id in enumerate(wf.source_doc_ids):
        known_doc(doc_id, ("source_doc_ids", i))

    for i, task in enumerate(wf.tasks):
        if task.phase not in phase_ids:
            at(("tasks", i, "phase"),
               f"phase {task.phase!r} is not declared in phases ({', '.join(phase_ids)})")
        if task.instruction_doc_id:
            doc = known_doc(task.instruction_doc_id, ("tasks", i, "instruction_doc_id"))
            if doc and task.instruction_step_id:
                steps = [s.step_id for s in doc.steps]
                if task.instruction_step_id not in steps:
                    at(("tasks", i, "instruction_step_id"),
                       f"document {doc.doc_id!r} has no step {task.instruction_step_id!r} "
                       f"(its steps: {', '.join(steps) or 'none'})")
        if not task.assignee and not wf.default_assignee:
            at(("tasks", i, "assignee"),
               "no assignee and no default_assignee; set one of them")

    if isinstance(wf.trigger, ScheduleTrigger):
        from runtime.schedule import check_cron  # imports apscheduler only when needed

        error = check_cron(wf.trigger.cron, wf.timezone)
        if error:
            at(("trigger", "cron"), error)
    if wf.business_calendar is not None:
        from runtime.dates import check_calendar

        error = check_calendar(wf.business_calendar)
        if error:
            at(("business_calendar",), error)
    return problems


def dump_definition(wf: WorkflowDefinition) -> str:
    """The definition as YAML in the canonical snake_case form (what `template show` prints)."""
    data = wf.model_dump(mode="json", exclude_defaults=False)
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
