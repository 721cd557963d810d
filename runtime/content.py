"""Load and validate content/: workflow definitions, the document registry and the people
directory.

Each file is loaded on its own: a broken file (bad YAML, an unknown key, an unknown doc or step, a
bad cron, an ID that another file also claims, ...) is kept in :attr:`Content.broken` with every
problem it has, and never stops the good definitions from loading. Each problem names the file,
the line where the YAML gives one, the field and what to do. ``dataops validate`` reports every
problem in the tree in one run (:meth:`Content.check`).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError
from pydantic.alias_generators import to_camel, to_snake

from runtime import limits
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
from runtime.model.people import OPERATORS, DigestDelivery, Directory, Group, PeopleFile, Person

_MODELS: tuple[type[BaseModel], ...] = (
    WorkflowDefinition, TaskDefinition, Phase, Reference, BundleLinkSpec, ManualTrigger,
    ScheduleTrigger, ReminderPolicy, BusinessCalendar, UrlProof, ArtifactProof, CommentProof,
    ExternalStatusProof, Document, DocStep, PeopleFile, Person, Group, DigestDelivery,
)
KNOWN_KEYS = sorted(
    {name for m in _MODELS for name in m.model_fields}
    | {f.alias for m in _MODELS for f in m.model_fields.values() if f.alias}
)

Path_ = tuple[str | int, ...]


@dataclass
class Content:
    """The content tree, loaded file by file.

    ``workflows``, ``documents`` and ``sources`` (template_id -> file) hold only what validated.
    ``broken`` maps every file that did not (and the workflows folder, when it has no
    definition) to all of its problems, in load order: documents, then definitions, each by
    name. ``broken_templates`` maps a template_id read from a broken file's raw data to the
    broken files that claim it (more than one when they claim it twice).
    """

    root: Path
    workflows: dict[str, WorkflowDefinition] = field(default_factory=dict)
    documents: dict[str, Document] = field(default_factory=dict)
    sources: dict[str, Path] = field(default_factory=dict)
    broken: dict[Path, list[str]] = field(default_factory=dict)
    broken_templates: dict[str, list[Path]] = field(default_factory=dict)
    directory: Directory = field(default_factory=Directory)
    people_sources: dict[str, Path] = field(default_factory=dict)

    def workflow(self, template_id: str) -> WorkflowDefinition:
        """The good definition ``template_id``.

        :raises DefinitionError: the files that claim ``template_id`` are broken; lists their
            problems.
        :raises NotFoundError: no file claims it.
        """
        if template_id in self.workflows:
            return self.workflows[template_id]
        files = self.broken_templates.get(template_id)
        if files:
            raise DefinitionError([p for f in files for p in self.broken[f]])
        known = ", ".join(sorted(self.workflows)) or "none"
        hint = f"templates in {self.root}: {known}"
        if self.broken:
            hint += f"; {len(self.broken)} broken file(s) left out (run dataops validate)"
        raise NotFoundError("template", template_id, hint)

    def problems(self) -> list[str]:
        """Every problem of every broken file, in load order (empty: the tree is valid)."""
        return [problem for problems in self.broken.values() for problem in problems]

    def check(self) -> None:
        """:raises DefinitionError: listing every problem in the tree, if there is any."""
        problems = self.problems()
        if problems:
            raise DefinitionError(problems)


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


class _Refused(Exception):
    """A limit of runtime/limits.py was passed; ``line`` is 1-based, 0 when unknown."""

    def __init__(self, line: int, message: str):
        super().__init__(message)
        self.line = line


class _BoundedLoader(yaml.SafeLoader):
    """A SafeLoader whose composer counts nodes (an alias counts the size of its anchor's
    node), aliases and nesting depth, and refuses past the limits before anything expands."""

    def __init__(self, text: str):
        super().__init__(text)
        self._nodes = 0
        self._aliases = 0
        self._depth = 0
        self._sizes: dict[int, int] = {}

    def _count(self, n: int, mark: Any) -> None:
        self._nodes += n
        if self._nodes > limits.MAX_YAML_NODES:
            raise _Refused(mark.line + 1, f"the document expands to more than "
                           f"{limits.MAX_YAML_NODES} nodes (YAML aliases?); the limit is "
                           f"{limits.MAX_YAML_NODES}")

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            self._aliases += 1
            if self._aliases > limits.MAX_YAML_ALIASES:
                raise _Refused(event.start_mark.line + 1, f"more than {limits.MAX_YAML_ALIASES} "
                               f"YAML aliases; the limit is {limits.MAX_YAML_ALIASES}")
            node = super().compose_node(parent, index)
            self._count(self._sizes.get(id(node), 1), event.start_mark)
            return node
        self._depth += 1
        mark = self.peek_event().start_mark
        if self._depth > limits.MAX_NESTING:
            raise _Refused(mark.line + 1, f"nesting deeper than {limits.MAX_NESTING} levels; "
                           f"the limit is {limits.MAX_NESTING}")
        before = self._nodes
        self._count(1, mark)
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        self._sizes[id(node)] = self._nodes - before
        if isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:int":
            digits = sum(c.isdigit() for c in str(node.value))
            if digits > limits.MAX_INT_DIGITS:
                raise _Refused(mark.line + 1, f"an integer of {digits} digits; the limit is "
                               f"{limits.MAX_INT_DIGITS} digits")
        return node


def _parse(path: Path) -> tuple[Any, yaml.Node | None]:
    """The data and root node of one YAML file, within the limits of runtime/limits.py."""
    size = path.stat().st_size
    if size > limits.MAX_CONTENT_FILE_BYTES:
        raise _Refused(0, f"the file is {size} bytes; the limit is "
                       f"{limits.MAX_CONTENT_FILE_BYTES} bytes ({limits.MAX_CONTENT_FILE_BYTES // 1024} KiB)")
    loader = _BoundedLoader(path.read_text(encoding="utf-8"))
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    finally:
        loader.dispose()
    return data, node


def _read(path: Path) -> tuple[Any, dict[Path_, int], list[str]]:
    """Parse one YAML file: (data, field path -> line number, problems). The data is None when
    the file cannot be read or parsed, or passes a limit; a key given twice is a problem, yet
    the data is kept."""
    try:
        data, node = _parse(path)
    except _Refused as e:
        where = f"{path}:{e.line}" if e.line else str(path)
        return None, {}, [f"{where}: refused: {e}"]
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        problem = getattr(e, "problem", None) or str(e)
        return None, {}, [f"{where}: not valid YAML: {problem}"]
    except (OSError, UnicodeDecodeError) as e:
        return None, {}, [f"{path}: cannot read: {e}"]
    except (RecursionError, ValueError, OverflowError) as e:
        return None, {}, [f"{path}: not valid YAML: {e}"]
    lines: dict[Path_, int] = {}
    dupes: list[str] = []
    if node is not None:
        _line_map(node, (), lines, dupes)
    return data, lines, [f"{path}:{d}" for d in dupes]


def read_yaml(path: Path) -> tuple[Any, dict[Path_, int]]:
    """Parse one YAML file; return the data and a map from field path to line number.

    :raises DefinitionError: the file is not valid YAML, or gives a key twice in one mapping.
    """
    data, lines, problems = _read(path)
    if problems:
        raise DefinitionError(problems)
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
            out.append(to_snake(part))  # a missing key: name it as the docs do, snake_case
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


@dataclass
class _File:
    """One file as loaded: its model if it validated, the ID its raw data claims, its problems."""

    path: Path
    lines: dict[Path_, int]
    problems: list[str]
    model: Any = None
    claimed: str | None = None  # the ID the file gives (from its data, or its text if unparsable)
    id_key: str = ""  # the key that gave it, as spelled in the file


def _load_file(path: Path, model: type[BaseModel], id_field: str) -> _File:
    data, lines, problems = _read(path)
    file = _File(path, lines, problems)
    if not problems:
        file.model = _validate(model, data, path, lines, problems)
    if not id_field:  # a file of many entries (people/): no one ID names the file
        return file
    if isinstance(data, dict):
        for key in (id_field, to_camel(id_field)):
            value = data.get(key)
            if isinstance(value, str | int) and not isinstance(value, bool):
                file.claimed, file.id_key = str(value), key
                break
    elif data is None:
        _claim_from_text(file, id_field)
    return file


def _claim_from_text(file: _File, id_field: str) -> None:
    """The ID of a file that does not parse, from a top-level ``id_field: value`` line."""
    try:
        if file.path.stat().st_size > limits.MAX_CONTENT_FILE_BYTES:
            return
        text = file.path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return
    keys = f"{id_field}|{to_camel(id_field)}"
    match = re.search(rf"^({keys})[ \t]*:[ \t]*(['\"]?)([\w.-]+)\2[ \t]*(?:#.*)?\s*$", text,
                      re.MULTILINE)
    if match:
        file.claimed, file.id_key = match[3], match[1]
        file.lines[(match[1],)] = text.count("\n", 0, match.start()) + 1


def _flag_duplicates(files: list[_File], rule: str) -> None:
    """Each file that claims an ID another file claims too gets a problem naming the others.
    None of them is used: which one would win must not depend on the file names."""
    claims: dict[str, list[_File]] = {}
    for f in files:
        if f.claimed is not None:
            claims.setdefault(f.claimed, []).append(f)
    for value, group in claims.items():
        for f in group if len(group) > 1 else []:
            others = ", ".join(str(o.path) for o in group if o is not f)
            f.problems.append(f"{_where(f.path, f.lines, (f.id_key,))}: {f.id_key}: {value!r} is "
                              f"also defined in {others}; {rule}")


def _sort_out(files: list[_File], content: Content) -> tuple[list[_File], dict[str, list[Path]]]:
    """Record each file with a problem in ``content.broken``; return the good files and, for
    the broken ones, claimed ID -> their paths."""
    good: list[_File] = []
    claims: dict[str, list[Path]] = {}
    for f in files:
        if not f.problems:
            good.append(f)
            continue
        content.broken[f.path] = f.problems
        if f.claimed is not None:
            claims.setdefault(f.claimed, []).append(f.path)
    return good, claims


def load_content(root: str | Path) -> Content:
    """Load a content tree, each file on its own (see :class:`Content`). A broken file does not
    raise: it is kept in ``Content.broken``; :meth:`Content.check` refuses any problem.

    :raises InputError: the folder does not exist.
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError(
            f"content folder {root} does not exist; point the runtime at the folder that holds "
            "workflows/ and docs/"
        )
    content = Content(root=root)
    broken_docs = _load_documents(content)
    _load_workflows(content, broken_docs)
    _load_people(content)
    return content


def _load_documents(content: Content) -> dict[str, list[Path]]:
    """Load content/docs/ into ``content``; return doc_id -> the broken files that claim it."""
    paths = sorted((content.root / "docs").glob("*.y*ml"))
    files = [_load_file(path, Document, "doc_id") for path in paths]
    for f in files:
        if f.model is not None:
            f.problems += _check_steps(f.model, f.path, f.lines)
    _flag_duplicates(files, "doc IDs must be unique")
    good, broken_docs = _sort_out(files, content)
    for f in good:
        content.documents[f.model.doc_id] = f.model
    return broken_docs


def _load_workflows(content: Content, broken_docs: dict[str, list[Path]]) -> None:
    """Load content/workflows/ into ``content``, checked against the good documents."""
    folder = content.root / "workflows"
    paths = sorted(folder.glob("*.y*ml"))
    if not paths:
        content.broken[folder] = [f"{folder}: no workflow definitions (*.yaml) found"]
        return
    files = [_load_file(path, WorkflowDefinition, "template_id") for path in paths]
    for f in files:
        if f.model is not None:
            f.problems += _check_workflow(f.model, f.path, f.lines, content.documents, broken_docs)
    _flag_duplicates(files, "template IDs must be unique across content/")
    good, content.broken_templates = _sort_out(files, content)
    for f in good:
        content.workflows[f.model.template_id] = f.model
        content.sources[f.model.template_id] = f.path


def _load_people(content: Content) -> None:
    """Load content/people/ into ``content.directory``. A file with a problem (bad YAML, an
    unknown key, an invalid zone or email, an ID given twice, a manager or member who does not
    exist) contributes nobody; its problems name the file, line and field."""
    paths = sorted((content.root / "people").glob("*.y*ml"))
    files = [_load_file(path, PeopleFile, "") for path in paths]
    seen: dict[str, list[tuple[_File, Path_]]] = {}  # person and group IDs share one namespace
    for f in files:
        if f.model is None:
            continue
        for section, key, entries in (("people", "person_id", f.model.people),
                                      ("groups", "group_id", f.model.groups)):
            for i, entry in enumerate(entries):
                seen.setdefault(getattr(entry, key), []).append((f, (section, i, key)))
    for value, claims in seen.items():
        for n, (f, path) in enumerate(claims if len(claims) > 1 else []):
            others = ", ".join(_where(o.path, o.lines, p) for m, (o, p) in enumerate(claims) if m != n)
            f.problems.append(f"{_where(f.path, f.lines, path)}: {_dotted(path)}: {value!r} is also "
                              f"defined at {others}; person and group IDs must be unique")
    parsed = [f.model for f in files if f.model is not None]
    people = {p.person_id for m in parsed for p in m.people}
    for f in files:
        if f.model is None:
            continue
        for i, person in enumerate(f.model.people):
            if person.manager is not None and person.manager not in people:
                f.problems.append(f"{_where(f.path, f.lines, ('people', i, 'manager'))}: "
                                  f"people[{i}].manager: {person.manager!r} is not a person in "
                                  f"{content.root / 'people'}; name a person_id")
            if person.manager == person.person_id:
                f.problems.append(f"{_where(f.path, f.lines, ('people', i, 'manager'))}: "
                                  f"people[{i}].manager: {person.person_id!r} cannot be their own manager")
        for i, group in enumerate(f.model.groups):
            for j, member in enumerate(group.members):
                if member not in people:
                    path = ("groups", i, "members", j)
                    f.problems.append(f"{_where(f.path, f.lines, path)}: {_dotted(path)}: "
                                      f"{member!r} is not a person in {content.root / 'people'}; "
                                      "members name person_ids")
    good, _ = _sort_out(files, content)
    for f in good:
        for person in f.model.people:
            content.directory.people[person.person_id] = person
            content.people_sources[person.person_id] = f.path
        for group in f.model.groups:
            content.directory.groups[group.group_id] = group
            content.people_sources[group.group_id] = f.path


def unresolved_assignees(content: Content) -> list[str]:
    """A warning for each assignee or owner of a definition that names no person or group of
    the directory (its reminders go to operators); none when there is no directory."""
    if not content.directory:
        return []
    out = []
    if not content.directory.resolve(OPERATORS):
        out.append(f"{content.root / 'people'}: no group {OPERATORS!r} with a member: automation "
                   "failures, and reminders whose assignee names nobody, reach only the log and "
                   "the sinks; add one")
    for template_id, wf in content.workflows.items():
        names = [("owner", wf.owner or wf.default_assignee)]
        names += [(f"tasks[{i}].assignee", t.assignee or wf.default_assignee)
                  for i, t in enumerate(wf.tasks)]
        for where, name in names:
            if name and not content.directory.resolve(name):
                out.append(f"{content.sources[template_id]}: {where}: {name!r} is no person or "
                           f"group in {content.root / 'people'}; its reminders go to operators")
    return out


def _check_steps(doc: Document, file: Path, lines: dict[Path_, int]) -> list[str]:
    steps = [s.step_id for s in doc.steps]
    return [
        f"{_where(file, lines, ('steps', i, 'step_id'))}: steps[{i}].step_id: {step!r} appears "
        f"twice in {doc.doc_id}; step IDs must be unique"
        for i, step in enumerate(steps) if step in steps[:i]
    ]


def _unknown_doc(doc_id: str, docs: dict[str, Document], broken_docs: dict[str, list[Path]]) -> str:
    if doc_id in broken_docs:
        files = ", ".join(str(p) for p in broken_docs[doc_id])
        return f"unknown document {doc_id!r}: the file that defines it is broken ({files}); fix it"
    close = difflib.get_close_matches(doc_id, list(docs), n=1)
    hint = f"did you mean {close[0]!r}?" if close else "add it to content/docs/ or fix the ID"
    return f"unknown document {doc_id!r}; {hint}"


def _check_workflow(
    wf: WorkflowDefinition, file: Path, lines: dict[Path_, int], docs: dict[str, Document],
    broken_docs: dict[str, list[Path]],
) -> list[str]:
    """The cross-checks of a definition whose fields validated (IDs, docs, steps, cron, ...)."""
    problems: list[str] = []

    def at(path: Path_, message: str) -> None:
        problems.append(f"{_where(file, lines, path)}: {_dotted(path)}: {message}")

    def unique(items: list[str], section: str, key: str) -> None:
        for i, value in enumerate(items):
            if value in items[:i]:
                at((section, i, key), f"{value!r} appears twice; {key} must be unique in the definition")

    def known_doc(doc_id: str, path: Path_) -> Document | None:
        if doc_id not in docs:
            at(path, _unknown_doc(doc_id, docs, broken_docs))
        return docs.get(doc_id)

    phase_ids = [p.phase_id for p in wf.phases]
    unique(phase_ids, "phases", "phase_id")
    unique([t.task_ref for t in wf.tasks], "tasks", "task_ref")
    unique([link.key for link in wf.required_bundle_links], "required_bundle_links", "key")
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
            at(("tasks", i, "assignee"), "no assignee and no default_assignee; set one of them")
    for path, error in _check_trigger_and_calendar(wf):
        at(path, error)
    return problems


def _check_trigger_and_calendar(wf: WorkflowDefinition) -> list[tuple[Path_, str]]:
    out: list[tuple[Path_, str]] = []
    if isinstance(wf.trigger, ScheduleTrigger):
        from runtime.rules.cron import check_cron  # imports apscheduler only when needed

        error = check_cron(wf.trigger.cron, wf.timezone)
        if error:
            out.append((("trigger", "cron"), error))
    if wf.business_calendar is not None:
        from runtime.rules.calendar import check_calendar

        error = check_calendar(wf.business_calendar)
        if error:
            out.append((("business_calendar",), error))
    return out


def dump_definition(wf: WorkflowDefinition) -> str:
    """The definition as YAML in the canonical snake_case form (what `template show` prints)."""
    data = wf.model_dump(mode="json", exclude_defaults=False)
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
