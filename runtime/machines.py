"""State machines built from the declarative specs in machines/*.yaml with `transitions`.

The specs ship inside the package as ``runtime.specs`` (pyproject.toml maps that package onto
the top-level machines/ folder) and are found with ``importlib.resources``: :func:`specs_dir`.

One `transitions.Machine` per spec, shared by every record: a record is loaded, its state is put
on the machine's single cursor model, the trigger runs, the result is read back and persisted.
Nothing stays attached, so the machine costs no memory per task and no time per attached model
(`add_model` keeps a Python list: O(n) per add, see pytransitions/transitions#434).

`transitions` only logs a failed condition and returns False. :meth:`SpecMachine.fire` first
asks every guard what is missing and raises :class:`TransitionRejected` naming each unmet
requirement; the guards are also the machine's conditions, so the machine itself never takes a
transition the spec forbids.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from runtime.errors import DefinitionError, TransitionRejected
from runtime.rules.proof import missing_proof

SPECS_PACKAGE = "runtime.specs"  # machines/ in the source tree, runtime/specs/ when installed


# ---- the spec -------------------------------------------------------------------------------


class StateSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(pattern=r"^[a-z][a-z_]*$")
    open: bool = True
    description: str = ""


class TransitionSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    trigger: str = Field(pattern=r"^[a-z][a-z_]*$")
    source: list[str] = Field(min_length=1)
    dest: str
    guards: list[str] = []
    effects: list[str] = []
    refused_from: dict[str, str] = {}


class MachineSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    description: str = ""
    initial: str
    states: list[StateSpec] = Field(min_length=1)
    transitions: list[TransitionSpec] = Field(min_length=1)

    @property
    def state_names(self) -> list[str]:
        return [s.name for s in self.states]


# ---- guards and effects: a closed registry --------------------------------------------------


@dataclass
class Context:
    """What a trigger runs against: the record, the command's arguments, and the changes the
    effects make (applied by the engine when every guard passed)."""

    record: Any
    now: datetime
    actor: str
    args: dict[str, Any] = field(default_factory=dict)
    changes: dict[str, Any] = field(default_factory=dict)


Guard = Callable[[Context], list[str]]  # returns what is missing; empty means satisfied
Effect = Callable[[Context], None]


def _waiting_fields(ctx: Context) -> list[str]:
    """The one check of the waiting fields: given, and the follow-up in the future (their types
    are the command's business: :class:`~runtime.model.commands.WaitTask`)."""
    missing = []
    waiting_for = (ctx.args.get("waiting_for") or "").strip()
    follow_up_at = ctx.args.get("follow_up_at")
    if not waiting_for:
        missing.append("missing waiting_for (who or what it waits on)")
    if follow_up_at is None:
        missing.append("missing follow_up_at (when to follow up: an instant with an offset)")
    elif follow_up_at <= ctx.now:
        missing.append(
            f"follow_up_at {follow_up_at.isoformat()} is not later than now ({ctx.now.isoformat()})"
        )
    return missing


def _proof_complete(ctx: Context) -> list[str]:
    return [f"missing proof {m}" for m in missing_proof(ctx.record)]


def _has_reason(ctx: Context) -> list[str]:
    return [] if (ctx.args.get("reason") or "").strip() else ["missing reason (why, in words)"]


def _all_tasks_closed(ctx: Context) -> list[str]:
    """Judged on the bundle's own open-task counts (kept by every task command)."""
    open_by_phase = [f"{p.phase_id}: {p.open_tasks}" for p in ctx.record.phases if p.open_tasks]
    return [f"open tasks ({', '.join(open_by_phase)})"] if open_by_phase else []


def _has_open_task(ctx: Context) -> list[str]:
    return [] if _all_tasks_closed(ctx) else ["every task is closed"]


def _required_links_filled(ctx: Context) -> list[str]:
    empty = [lk.key for lk in ctx.record.required_bundle_links if lk.required and not lk.url]
    return [f"required links empty: {', '.join(empty)}"] if empty else []


def _set_waiting(ctx: Context) -> None:
    ctx.changes["waiting_for"] = ctx.args["waiting_for"].strip()
    ctx.changes["follow_up_at"] = ctx.args["follow_up_at"]


def _clear_waiting(ctx: Context) -> None:
    ctx.changes["waiting_for"] = None
    ctx.changes["follow_up_at"] = None


def _set_completion(ctx: Context) -> None:
    ctx.changes["completed_at"] = ctx.now
    ctx.changes["completed_by"] = ctx.actor


def _clear_completion(ctx: Context) -> None:
    ctx.changes["completed_at"] = None
    ctx.changes["completed_by"] = None


GUARDS: dict[str, Guard] = {
    "waiting_fields": _waiting_fields,
    "proof_complete": _proof_complete,
    "has_reason": _has_reason,
    "all_tasks_closed": _all_tasks_closed,
    "has_open_task": _has_open_task,
    "required_links_filled": _required_links_filled,
}
EFFECTS: dict[str, Effect] = {
    "set_waiting": _set_waiting,
    "clear_waiting": _clear_waiting,
    "set_completion": _set_completion,
    "clear_completion": _clear_completion,
}


# The triggers the engine fires, per spec: a spec must define each and nothing else, so a
# renamed or misspelt trigger fails when the spec loads, not when an operator runs a command.
TRIGGERS: dict[str, frozenset[str]] = {
    "task": frozenset({"start", "wait", "resume", "complete", "cancel", "reopen"}),
    "bundle": frozenset({"publish", "complete", "reactivate", "cancel"}),
    "assistant_job": frozenset({"claim", "complete", "retry", "fail", "cancel"}),
}


# ---- loading --------------------------------------------------------------------------------


def load_spec(path: Traversable) -> MachineSpec:
    """Load and check one spec: unknown guard, effect, state or trigger names fail here.

    :raises DefinitionError: naming the file and every unknown name.
    """
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        spec = MachineSpec.model_validate(data)
    except (OSError, yaml.YAMLError) as e:
        raise DefinitionError([f"{path}: cannot load machine spec: {e}"]) from None
    except ValidationError as e:
        raise DefinitionError(
            [f"{path}: {'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors()]
        ) from None
    problems = []
    states = set(spec.state_names)
    if len(states) != len(spec.state_names):
        problems.append(f"{path}: states: a state is listed twice")
    known = TRIGGERS.get(spec.name)
    if known is None:
        problems.append(f"{path}: name: unknown machine {spec.name!r} (known: {', '.join(sorted(TRIGGERS))})")
    else:
        defined = {t.trigger for t in spec.transitions}
        for trigger in sorted(defined - known):
            problems.append(f"{path}: transition {trigger}: unknown trigger {trigger!r} "
                            f"(the engine fires: {', '.join(sorted(known))})")
        for trigger in sorted(known - defined):
            problems.append(f"{path}: transitions: trigger {trigger!r} is missing; the engine fires it")
    if spec.initial not in states:
        problems.append(f"{path}: initial: unknown state {spec.initial!r}")
    for t in spec.transitions:
        for s in [*t.source, t.dest, *t.refused_from]:
            if s not in states:
                problems.append(f"{path}: transition {t.trigger}: unknown state {s!r}")
        for g in t.guards:
            if g not in GUARDS:
                problems.append(
                    f"{path}: transition {t.trigger}: unknown guard {g!r} (known: {', '.join(sorted(GUARDS))})"
                )
        for name in t.effects:
            if name not in EFFECTS:
                problems.append(
                    f"{path}: transition {t.trigger}: unknown effect {name!r} (known: {', '.join(sorted(EFFECTS))})"
                )
    if problems:
        raise DefinitionError(problems)
    return spec


def _plain(state: Any) -> str:
    """Enum states (TaskStatus) by value: `transitions` would take an Enum by its name."""
    return str(getattr(state, "value", state))


class _Cursor:
    """The one model object of a shared machine; holds the state of the record being fired."""

    state: str


class SpecMachine:
    """A `transitions` machine built once from a spec and shared by every record."""

    def __init__(self, spec: MachineSpec) -> None:
        from transitions import Machine  # imported when the first machine is built

        self.spec = spec
        self._lock = threading.Lock()
        self._cursor = _Cursor()
        self._by_trigger: dict[str, list[TransitionSpec]] = {}
        for t in spec.transitions:
            self._by_trigger.setdefault(t.trigger, []).append(t)
        self.machine = Machine(
            model=self._cursor,
            states=spec.state_names,
            initial=spec.initial,
            auto_transitions=False,
            send_event=True,
            model_attribute="state",
        )
        for t in spec.transitions:
            self.machine.add_transition(
                t.trigger,
                source=list(t.source),
                dest=t.dest,
                conditions=[self._condition(g) for g in t.guards],
                after=[self._effect(e) for e in t.effects],
            )

    @staticmethod
    def _condition(name: str) -> Callable[[Any], bool]:
        guard = GUARDS[name]

        def condition(event: Any) -> bool:
            return not guard(event.kwargs["ctx"])

        condition.__name__ = name
        return condition

    @staticmethod
    def _effect(name: str) -> Callable[[Any], None]:
        effect = EFFECTS[name]

        def run(event: Any) -> None:
            effect(event.kwargs["ctx"])

        run.__name__ = name
        return run

    def triggers_from(self, state: str) -> list[str]:
        return [t.trigger for t in self.spec.transitions if state in t.source]

    def _transition(self, trigger: str, state: str) -> TransitionSpec | None:
        for t in self._by_trigger.get(trigger, []):
            if state in t.source:
                return t
        return None

    def check(self, state: str, trigger: str, ctx: Context) -> list[str]:
        """Everything that stands in the way of ``trigger`` from ``state``; changes nothing."""
        state = _plain(state)
        if trigger not in self._by_trigger:
            return [f"unknown trigger {trigger!r} (known: {', '.join(sorted(self._by_trigger))})"]
        t = self._transition(trigger, state)
        if t is None:
            for spec in self._by_trigger[trigger]:
                if state in spec.refused_from:
                    return [spec.refused_from[state]]
            allowed = ", ".join(self.triggers_from(state)) or "none"
            return [f"not allowed from state {state} (allowed now: {allowed})"]
        missing: list[str] = []
        for g in t.guards:
            missing += GUARDS[g](ctx)
        return missing

    def allowed(self, state: str, ctx: Context) -> list[str]:
        """The triggers that would be accepted now."""
        return [t for t in self.triggers_from(state) if not self.check(state, t, ctx)]

    def fire(self, state: str, trigger: str, ctx: Context, entity_id: str) -> str:
        """Run ``trigger`` from ``state``; return the new state (effects fill ``ctx.changes``).

        :raises TransitionRejected: naming every unmet requirement; nothing was changed.
        """
        state = _plain(state)
        missing = self.check(state, trigger, ctx)
        if missing:
            raise TransitionRejected(entity_id, trigger, missing, state=state,
                                     entity_type=self.spec.name)
        from transitions import MachineError

        with self._lock:
            self.machine.set_state(state, model=self._cursor)
            try:
                ok = self._cursor.trigger(trigger, ctx=ctx)  # type: ignore[attr-defined]
            except MachineError as e:  # pragma: no cover - check() covers every refusal
                raise TransitionRejected(entity_id, trigger, [str(e.value)], state=state,
                                     entity_type=self.spec.name) from e
            new_state = self._cursor.state
        if not ok:  # pragma: no cover - a guard that changed its mind between check and fire
            raise TransitionRejected(entity_id, trigger, ["a guard refused"], state=state,
                                     entity_type=self.spec.name)
        return new_state


def specs_dir() -> Traversable:
    """The folder of the shipped machine specs, resolved from the installed package.

    :raises DefinitionError: when the package ``runtime.specs`` is not installed.
    """
    try:
        return resources.files(SPECS_PACKAGE)
    except ModuleNotFoundError:
        raise DefinitionError([
            f"machine specs not installed: no package {SPECS_PACKAGE}; reinstall dataops-runtime "
            "(in a checkout: pip install -e .)"
        ]) from None


@cache
def machine(name: str, directory: Traversable | None = None) -> SpecMachine:
    """The shared machine for ``NAME.yaml`` in :func:`specs_dir` (built once per process)."""
    folder = specs_dir() if directory is None else directory
    return SpecMachine(load_spec(folder / f"{name}.yaml"))


def _yaml_files(folder: Traversable) -> list[Traversable]:
    if not folder.is_dir():
        return []
    return sorted((f for f in folder.iterdir() if f.name.endswith(".yaml")), key=lambda f: f.name)


def spec_files(directory: Traversable | None = None) -> list[Traversable]:
    """Every ``*.yaml`` spec in ``directory`` (default :func:`specs_dir`), sorted by name.

    :raises DefinitionError: naming each spec the engine needs (one per machine in
        :data:`TRIGGERS`) that is not there.
    """
    folder = specs_dir() if directory is None else directory
    files = _yaml_files(folder)
    names = {f.name for f in files}
    missing = [f"{name}.yaml" for name in sorted(TRIGGERS) if f"{name}.yaml" not in names]
    if missing:
        raise DefinitionError([
            f"{folder / name}: machine spec is missing; the engine needs it" for name in missing
        ])
    return files
