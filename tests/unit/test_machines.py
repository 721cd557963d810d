"""Machine specs: loading fails loudly, naming the file and the unknown name."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from runtime.errors import DefinitionError
from runtime.machines import SPECS_PACKAGE, load_spec, machine, spec_files, specs_dir


def _spec(tmp_path: Path, edit) -> Path:
    data = yaml.safe_load((specs_dir() / "task.yaml").read_text())
    edit(data)
    path = tmp_path / "task.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _fails(path: Path, *needles: str) -> None:
    with pytest.raises(DefinitionError) as err:
        load_spec(path)
    assert str(path) in str(err.value)
    for needle in needles:
        assert needle in str(err.value), str(err.value)


def test_the_shipped_specs_load() -> None:
    for name in ("task", "bundle"):
        spec = load_spec(specs_dir() / f"{name}.yaml")
        assert spec.name == name


def test_the_specs_are_found_in_the_installed_package() -> None:
    import importlib

    package = importlib.import_module(SPECS_PACKAGE)
    assert [f.name for f in spec_files()] == ["assistant_job.yaml", "bundle.yaml", "task.yaml"]
    assert Path(str(specs_dir())) == Path(package.__file__).parent


def test_a_missing_spec_the_engine_needs_is_named(specs_copy: Path) -> None:
    (specs_copy / "task.yaml").unlink()
    with pytest.raises(DefinitionError) as err:
        spec_files()
    assert err.value.problems == [f"{specs_copy / 'task.yaml'}: machine spec is missing; "
                                  "the engine needs it"]


def test_unknown_guard(tmp_path: Path) -> None:
    _fails(_spec(tmp_path, lambda d: d["transitions"][3]["guards"].append("proof_compleet")),
           "unknown guard 'proof_compleet'")


def test_unknown_effect(tmp_path: Path) -> None:
    _fails(_spec(tmp_path, lambda d: d["transitions"][0].setdefault("effects", []).append("boom")),
           "unknown effect 'boom'")


def test_unknown_state(tmp_path: Path) -> None:
    def edit(d):
        d["transitions"][0]["dest"] = "in_progres"

    _fails(_spec(tmp_path, edit), "unknown state 'in_progres'")


def test_unknown_initial(tmp_path: Path) -> None:
    def edit(d):
        d["initial"] = "new"

    _fails(_spec(tmp_path, edit), "initial", "'new'")


def test_unknown_trigger(tmp_path: Path) -> None:
    def edit(d):
        d["transitions"][0]["trigger"] = "begin"

    _fails(_spec(tmp_path, edit), "unknown trigger 'begin'", "'start' is missing")


def test_unknown_key(tmp_path: Path) -> None:
    _fails(_spec(tmp_path, lambda d: d.update(inital="todo")), "inital")


def test_invalid_yaml(tmp_path: Path) -> None:
    path = tmp_path / "task.yaml"
    path.write_text("name: task\nstates: [unclosed\n")
    _fails(path, "cannot load machine spec")


def test_one_machine_per_spec_is_shared() -> None:
    assert machine("task") is machine("task")


def test_check_names_every_unmet_guard_and_changes_nothing() -> None:
    from runtime.machines import Context
    from runtime.model.common import utc

    spec = machine("task")
    ctx = Context(record=None, now=utc(2026, 11, 25), actor="a", args={})
    missing = spec.check("in_progress", "wait", ctx)
    assert any("waiting_for" in m for m in missing) and any("follow_up_at" in m for m in missing)
    assert ctx.changes == {}
    assert spec.check("done", "start", ctx) == ["not allowed from state done (allowed now: reopen)"]


def test_open_task_states_are_the_specs_open_states() -> None:
    """TaskStatus.is_open (used on hot paths without the machine) agrees with machines/task.yaml."""
    from runtime.model import OPEN_TASK_STATES

    spec = load_spec(specs_dir() / "task.yaml")
    assert {s.name for s in spec.states if s.open} == {s.value for s in OPEN_TASK_STATES}
