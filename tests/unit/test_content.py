"""Loading content/: each file on its own, so one broken file never hides the good ones.

A broken file is kept in ``Content.broken`` with every problem it has (file:line, field, what
to do); ``Content.workflow`` of a broken template raises DefinitionError with those problems;
``Content.check`` raises one DefinitionError listing every problem in the tree.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from runtime.content import Content, load_content
from runtime.errors import DefinitionError, InputError, NotFoundError
from tests.helpers import generated

SHIPPED = ("newsletter", "podcast-episode", "vat-return")


def wf_file(root: Path, name: str) -> Path:
    return root / "workflows" / f"{name}.yaml"


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def line_of(path: Path, needle: str) -> int:
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if needle in line:
            return i
    raise AssertionError(f"{needle!r} not in {path}")




def write_yaml(path: Path, data: Any) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


# ---- a broken definition beside good ones ---------------------------------------------------


def test_the_shipped_content_has_no_problems(content: Content):
    assert sorted(content.workflows) == list(SHIPPED)
    assert content.broken == {} and content.broken_templates == {}
    assert content.problems() == []
    content.check()  # does not raise


def test_a_broken_definition_leaves_the_good_ones_loaded(content_dir: Path):
    f = wf_file(content_dir, "podcast-episode")
    edit(f, "    offset_days: -14\n", "    offset_day: -14\n")
    content = load_content(content_dir)  # does not raise
    assert sorted(content.workflows) == ["newsletter", "vat-return"]
    assert sorted(content.sources) == ["newsletter", "vat-return"]
    assert content.workflow("vat-return").template_id == "vat-return"
    assert list(content.broken) == [f]
    [problem] = content.broken[f]
    assert problem.startswith(f"{f}:{line_of(f, 'offset_day:')}: tasks[0].offset_day: ")
    assert "did you mean 'offset_days'?" in problem
    assert content.broken_templates == {"podcast-episode": [f]}
    assert content.problems() == [problem]


def test_workflow_of_a_broken_template_raises_its_problems(content_dir: Path):
    f = wf_file(content_dir, "podcast-episode")
    edit(f, "instruction_step_id: booking", "instruction_step_id: bookng")
    content = load_content(content_dir)
    with pytest.raises(DefinitionError) as err:
        content.workflow("podcast-episode")
    assert err.value.problems == content.broken[f]
    assert f"{f}:{line_of(f, 'bookng')}: tasks[0].instruction_step_id" in str(err.value)
    # a template that no file claims is still not found, and the hint names the broken count
    with pytest.raises(NotFoundError) as missing:
        content.workflow("no-such-template")
    assert "newsletter, vat-return" in str(missing.value)
    assert "1 broken file(s)" in str(missing.value)


def test_check_and_problems_list_every_problem_of_every_file(content_dir: Path):
    podcast, vat = wf_file(content_dir, "podcast-episode"), wf_file(content_dir, "vat-return")
    edit(podcast, "    offset_days: -14\n", "    offset_day: -14\n")
    edit(vat, "    phase: close\n", "    phase: closing\n")
    edit(vat, "timezone: America/New_York", "timezone: America/Nowhere")
    content = load_content(content_dir)
    assert list(content.broken) == [podcast, vat]  # in file-name order
    assert sorted(content.workflows) == ["newsletter"]
    with pytest.raises(DefinitionError) as err:
        content.check()
    assert err.value.problems == content.problems()
    assert len(err.value.problems) == 2  # a field error stops the cross-checks of that file
    assert "tasks[0].offset_day" in err.value.problems[0]
    assert f"{vat}:{line_of(vat, 'timezone:')}: timezone" in err.value.problems[1]
    edit(vat, "timezone: America/Nowhere", "timezone: America/New_York")
    assert [p.split(": ", 2)[1] for p in load_content(content_dir).problems()] == [
        "tasks[0].offset_day", "tasks[5].phase"]


def test_invalid_yaml_is_broken_and_its_template_id_is_still_known(content_dir: Path):
    f = wf_file(content_dir, "half-written")
    f.write_text("template_id: half-written  # a comment\nversion: 1\n  title: indented\n",
                 encoding="utf-8")
    content = load_content(content_dir)
    assert sorted(content.workflows) == list(SHIPPED)
    [problem] = content.broken[f]
    assert problem.startswith(f"{f}:3: not valid YAML")
    assert content.broken_templates == {"half-written": [f]}
    with pytest.raises(DefinitionError, match="not valid YAML"):
        content.workflow("half-written")


def test_a_key_given_twice_is_broken_and_names_the_template(content_dir: Path):
    f = wf_file(content_dir, "podcast-episode")
    edit(f, "    offset_days: -14\n", "    offset_days: -14\n    offset_days: -10\n")
    content = load_content(content_dir)
    assert f"{f}:{line_of(f, 'offset_days: -10')}:" in content.broken[f][0]
    with pytest.raises(DefinitionError, match="given twice"):
        content.workflow("podcast-episode")


def test_a_top_level_that_is_not_a_mapping_is_broken(content_dir: Path):
    f = wf_file(content_dir, "a-list")
    f.write_text("- just\n- a list\n", encoding="utf-8")
    content = load_content(content_dir)
    assert content.broken == {f: [f"{f}:1: expected a mapping of fields, got list"]}
    assert content.broken_templates == {}
    assert sorted(content.workflows) == list(SHIPPED)


def test_a_template_id_claimed_twice_uses_neither_file(content_dir: Path):
    """Which file would win must not depend on the file names: both are broken."""
    original = wf_file(content_dir, "vat-return")
    copy = wf_file(content_dir, "vat-return-copy")
    shutil.copy(original, copy)
    content = load_content(content_dir)
    assert sorted(content.workflows) == ["newsletter", "podcast-episode"]
    assert set(content.broken) == {original, copy}
    line = line_of(original, "template_id:")
    assert content.broken[original] == [
        f"{original}:{line}: template_id: 'vat-return' is also defined in {copy}; "
        "template IDs must be unique across content/"]
    assert str(original) in content.broken[copy][0]
    assert content.broken_templates == {"vat-return": [copy, original]}
    with pytest.raises(DefinitionError) as err:
        content.workflow("vat-return")
    assert len(err.value.problems) == 2


def test_an_empty_workflows_folder_is_a_problem_not_a_raise(tmp_path: Path):
    root = tmp_path / "empty"
    (root / "workflows").mkdir(parents=True)
    content = load_content(root)
    assert content.workflows == {}
    assert content.problems() == [f"{root / 'workflows'}: no workflow definitions (*.yaml) found"]
    with pytest.raises(DefinitionError, match="no workflow definitions"):
        content.check()


def test_a_missing_content_folder_still_raises(tmp_path: Path):
    with pytest.raises(InputError, match="does not exist"):
        load_content(tmp_path / "nowhere")


# ---- documents -------------------------------------------------------------------------------


def test_a_broken_document_breaks_only_the_definitions_that_use_it(content_dir: Path):
    doc = content_dir / "docs" / "doc-tax-handbook.yaml"
    edit(doc, "title:", "titel:")
    content = load_content(content_dir)
    assert "doc-tax-handbook" not in content.documents
    assert any("unknown field 'titel'" in p for p in content.broken[doc])
    vat = wf_file(content_dir, "vat-return")
    assert list(content.broken) == [doc, vat]  # documents first
    assert sorted(content.workflows) == ["newsletter", "podcast-episode"]
    first = content.broken[vat][0]
    assert f"{vat}:{line_of(vat, 'source_doc_ids:')}: source_doc_ids[0]: " in first
    assert f"unknown document 'doc-tax-handbook': the file that defines it is broken ({doc})" in first
    assert all("unknown document 'doc-tax-handbook'" in p for p in content.broken[vat])
    with pytest.raises(DefinitionError, match="doc-tax-handbook"):
        content.workflow("vat-return")


def test_a_document_with_invalid_yaml_or_a_step_twice_is_broken(content_dir: Path):
    bad = content_dir / "docs" / "bad.yaml"
    bad.write_text("doc_id: doc-bad\ntitle: [unclosed\n", encoding="utf-8")
    doc = content_dir / "docs" / "doc-newsletter-playbook.yaml"
    data = yaml.safe_load(doc.read_text(encoding="utf-8"))
    data["steps"].append(dict(data["steps"][0]))
    write_yaml(doc, data)
    content = load_content(content_dir)
    assert "not valid YAML" in content.broken[bad][0]
    assert "appears twice in doc-newsletter-playbook; step IDs must be unique" in content.broken[doc][0]
    assert "doc-newsletter-playbook" not in content.documents
    newsletter = wf_file(content_dir, "newsletter")
    assert any("the file that defines it is broken" in p for p in content.broken[newsletter])


def test_a_doc_id_claimed_twice_breaks_both_files(content_dir: Path):
    doc = content_dir / "docs" / "doc-tax-handbook.yaml"
    copy = content_dir / "docs" / "doc-tax-handbook-2.yaml"
    shutil.copy(doc, copy)
    content = load_content(content_dir)
    assert "doc-tax-handbook" not in content.documents
    assert f"is also defined in {copy}; doc IDs must be unique" in content.broken[doc][0]
    assert f"is also defined in {doc}; doc IDs must be unique" in content.broken[copy][0]
    assert "vat-return" not in content.workflows


# ---- no size cap -----------------------------------------------------------------------------


@pytest.mark.parametrize("n_tasks", [53, 500])
def test_a_definition_of_any_size_validates(content_dir: Path, n_tasks: int):
    write_yaml(wf_file(content_dir, f"big-{n_tasks}"), generated(f"big-{n_tasks}", n_tasks))
    content = load_content(content_dir)
    content.check()
    assert len(content.workflow(f"big-{n_tasks}").tasks) == n_tasks


def test_content_built_in_code_has_nothing_broken():
    content = Content(root=Path("."))
    assert content.broken == {} and content.problems() == []
    content.check()
