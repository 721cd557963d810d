"""Parsers are bounded (DESIGN.md "Errors"): content YAML past a limit of runtime/limits.py is
refused with a named problem (file, line where known, the limit), only that file is broken; a
proof pattern runs in linear time (RE2); offsets stay inside the representable dates.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runtime import limits
from runtime.content import load_content, read_yaml
from runtime.errors import DataopsError, DefinitionError
from runtime.model import TaskDefinition, UrlProof
from runtime.rules.pattern import pattern_matches

ALIAS_BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(ord('b') + i)}: &{chr(ord('b') + i)} [{', '.join(['*' + chr(ord('a') + i)] * 9)}]\n"
    for i in range(8)
)


def _refused(path: Path, *needles: str) -> str:
    with pytest.raises(DefinitionError) as err:  # unbounded, the alias bomb would need GBs
        read_yaml(path)
    message = str(err.value)
    assert message.startswith(str(path)), message
    for needle in needles:
        assert needle in message, message
    return message


def test_an_alias_bomb_is_refused_quickly(tmp_path: Path):
    path = tmp_path / "bomb.yaml"
    path.write_text(ALIAS_BOMB, encoding="utf-8")  # 9 levels of 9 aliases: 9**9 leaves
    _refused(path, "refused", str(limits.MAX_YAML_NODES), "aliases")


def test_too_many_aliases_are_refused(tmp_path: Path):
    path = tmp_path / "aliases.yaml"
    path.write_text("a: &a x\nb: [" + ", ".join(["*a"] * (limits.MAX_YAML_ALIASES + 1)) + "]\n")
    _refused(path, f"more than {limits.MAX_YAML_ALIASES} YAML aliases")


def test_a_few_aliases_still_load(tmp_path: Path):
    path = tmp_path / "ok.yaml"
    path.write_text("a: &a [1, 2]\nb: *a\nc: *a\n")
    data, lines = read_yaml(path)
    assert data == {"a": [1, 2], "b": [1, 2], "c": [1, 2]} and lines[("c",)] == 3


def test_deep_nesting_is_refused(tmp_path: Path):
    path = tmp_path / "deep.yaml"
    depth = limits.MAX_NESTING + 5
    path.write_text("a: " + "[" * depth + "]" * depth + "\n")
    _refused(path, f"{path}:1:", f"nesting deeper than {limits.MAX_NESTING}")
    path.write_text("a: " + "[" * 5000 + "]" * 5000 + "\n")  # no RecursionError either
    _refused(path, "nesting deeper")


def test_nesting_within_the_limit_loads(tmp_path: Path):
    path = tmp_path / "nested.yaml"
    depth = limits.MAX_NESTING - 2
    path.write_text("a: " + "[" * depth + "]" * depth + "\n")
    read_yaml(path)


def test_a_huge_integer_is_refused_with_its_line(tmp_path: Path):
    path = tmp_path / "big.yaml"
    path.write_text("template_id: x\nversion: " + "9" * 5000 + "\n")
    _refused(path, f"{path}:2:", "5000 digits", f"limit is {limits.MAX_INT_DIGITS} digits")
    path.write_text("version: " + "1" * limits.MAX_INT_DIGITS + "\n")
    read_yaml(path)


def test_an_oversized_file_is_refused_unread(tmp_path: Path):
    path = tmp_path / "big.yaml"
    path.write_text("# " + "x" * limits.MAX_CONTENT_FILE_BYTES + "\n")
    _refused(path, str(limits.MAX_CONTENT_FILE_BYTES), "bytes")


def test_a_bomb_breaks_only_its_own_file(content_dir: Path):
    bomb = content_dir / "workflows" / "bomb.yaml"
    bomb.write_text("template_id: bomb\n" + ALIAS_BOMB, encoding="utf-8")
    content = load_content(content_dir)
    assert {"newsletter", "podcast-episode", "vat-return"} <= set(content.workflows)
    assert list(content.broken) == [bomb]
    assert "refused" in content.broken[bomb][0]
    assert content.broken_templates == {"bomb": [bomb]}


def test_a_missing_field_is_named_in_snake_case(content_dir: Path):
    path = content_dir / "workflows" / "newsletter.yaml"
    text = path.read_text(encoding="utf-8")
    kept = [line for line in text.splitlines() if not line.startswith("template_id")]
    path.write_text("\n".join(kept) + "\n", encoding="utf-8")
    problems = load_content(content_dir).broken[path]
    assert any("template_id: required field is missing" in p for p in problems), problems
    assert not any("templateId" in p for p in problems), problems


# ---- proof patterns in linear time ----------------------------------------------------------


def test_a_catastrophic_pattern_is_matched_by_the_linear_engine_through_missing_proof():
    """``^https://(a+)+$`` against a long run of a's and a '!' takes exponential time in a
    backtracking engine; the proof check runs it in RE2 (no timing assertion: the compiled
    pattern's engine is checked, and the match runs on an input a backtracking engine would
    take minutes over)."""
    from datetime import date

    from runtime.model import ProofEntry, ProofKind, Task
    from runtime.model.common import utc
    from runtime.rules.pattern import compile_pattern
    from runtime.rules.proof import missing_proof

    assert type(compile_pattern(r"^https://(a+)+$")).__module__.startswith("re2")
    url = "https://" + "a" * 100_000 + "!"
    assert not pattern_matches(r"^https://(a+)+$", url)
    assert pattern_matches(r"^https://(a+)+!$", url)
    at = utc(2026, 11, 25)
    task = Task(task_id="b/t", bundle_id="b", template_id="b", template_task_ref="t", title="T",
                phase="p", assignee="a", due_date=date(2026, 11, 25), created_at=at,
                updated_at=at, version=1,
                proof_requirements=[UrlProof(kind="url", pattern=r"^https://(a+)+$")],
                proof=[ProofEntry(kind=ProofKind.URL, value="https://" + "a" * 40 + "!", by="x",
                                  at=at)])
    assert len(missing_proof(task)) == 1


@pytest.mark.parametrize("pattern", [r"(a)\1", r"^(?=https)", r"(?<!x)y", r"(?!a)b"])
def test_a_pattern_re2_cannot_compile_is_refused(pattern: str):
    with pytest.raises(ValueError, match="linear-time \\(RE2\\)"):
        UrlProof(kind="url", pattern=pattern)


def test_validate_names_a_backtracking_pattern(content_dir: Path):
    path = content_dir / "workflows" / "newsletter.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["tasks"][0]["proof"] = [{"kind": "url", "pattern": r"^https://(\w+)\.\1$"}]
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    problems = load_content(content_dir).broken[path]
    assert any("must be a linear-time (RE2)" in p and "tasks[0].proof[0].pattern" in p
               for p in problems), problems


# ---- offsets ---------------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["offset_days", "offset_business_days"])
def test_an_offset_outside_the_date_range_is_refused(field: str):
    base = {"task_ref": "t", "title": "T", "phase": "p"}
    with pytest.raises(ValueError, match="leaves the representable date range"):
        TaskDefinition.model_validate({**base, field: -1_000_000})
    TaskDefinition.model_validate({**base, field: -limits.MAX_OFFSET_DAYS})


def test_validate_refuses_a_huge_offset_naming_its_line(content_dir: Path):
    path = content_dir / "workflows" / "newsletter.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["tasks"][0].pop("offset_business_days", None)
    data["tasks"][0]["offset_days"] = -1_000_000
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    problems = load_content(content_dir).broken[path]
    assert any(f"{path}:" in p and "tasks[0].offset_days" in p and "±36500" in p
               for p in problems), problems


# ---- fuzz: the loader raises only the runtime's own errors, and never hangs -----------------

_leaf = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
_tree = st.recursive(_leaf, lambda kids: st.lists(kids, max_size=4)
                     | st.dictionaries(st.text(max_size=10), kids, max_size=4), max_leaves=30)
_yamlish = st.text(alphabet=st.sampled_from(list("ab:-&*[]{}!|>'\"#%@`, \n\t0123456789.eE+~")),
                   max_size=200)


def _load_quietly(folder: Path, text: str) -> None:
    (folder / "workflows").mkdir(parents=True, exist_ok=True)
    (folder / "workflows" / "fuzz.yaml").write_text(text, encoding="utf-8")
    try:
        content = load_content(folder)
        content.check()
    except DataopsError:
        pass


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=_yamlish)
def test_fuzz_yamlish_text(tmp_path: Path, text: str):
    _load_quietly(tmp_path / "c", text)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tree=_tree)
def test_fuzz_nested_structures(tmp_path: Path, tree: object):
    _load_quietly(tmp_path / "c", yaml.safe_dump(tree))


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tree=_tree, template=st.sampled_from(["newsletter", "vat-return"]))
def test_fuzz_a_real_definition_with_a_random_field(tmp_path: Path, tree: object, template: str):
    source = Path(__file__).resolve().parents[2] / "content" / "workflows" / f"{template}.yaml"
    data = yaml.safe_load(source.read_text(encoding="utf-8"))
    data["tasks"][0]["proof"] = [tree] if not isinstance(tree, list) else tree
    folder = tmp_path / "c"
    shutil.rmtree(folder, ignore_errors=True)
    _load_quietly(folder, yaml.safe_dump(data))


# ---- fuzz: the export validator collects problems, it does not crash -------------------------

_jsonish = st.text(alphabet=st.sampled_from(list('{}[]":,-+.eE0123456789 tnrufalsxyz_\\')),
                   max_size=300)
_json_tree = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=12), kids, max_size=4),
    max_leaves=30)


def _empty_export(folder: Path) -> Path:
    from runtime.export import export_store
    from runtime.model.common import utc
    from runtime.store import open_store

    if not (folder / "manifest.json").exists():
        export_store(open_store("memory://"), folder, utc(2026, 11, 25))
    return folder


def _validate_lines(folder: Path, lines: list[str]) -> None:
    import hashlib
    import json

    from runtime.errors import ExportFormatError
    from runtime.export import load_export

    text = "".join(line + "\n" for line in lines)
    (folder / "tasks.jsonl").write_text(text, encoding="utf-8")
    manifest = json.loads((folder / "manifest.json").read_text())
    for entry in manifest["entities"]:
        if entry["file"] == "tasks.jsonl":
            entry["sha256"] = hashlib.sha256(text.encode()).hexdigest()
            entry["count"] = len(text.splitlines())
    (folder / "manifest.json").write_text(json.dumps(manifest))
    try:
        load_export(folder)
    except ExportFormatError as e:
        assert e.problems
    except DataopsError:
        pass


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(_jsonish, min_size=1, max_size=4))
def test_fuzz_export_lines(tmp_path: Path, lines: list[str]):
    _validate_lines(_empty_export(tmp_path / "export"), [x.replace("\n", " ") for x in lines])


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.lists(_json_tree, min_size=1, max_size=3))
def test_fuzz_export_records(tmp_path: Path, values: list[object]):
    import json

    _validate_lines(_empty_export(tmp_path / "export"), [json.dumps(v) for v in values])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lines=st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"")), max_size=30),
       newline_at_end=st.booleans(), block=st.integers(1, 24), batch=st.integers(1, 5))
def test_an_export_file_is_read_a_block_at_a_time_line_for_line(
        lines: list[bytes], newline_at_end: bool, block: int, batch: int) -> None:
    """The validator's reader gives back the lines of a file as ``splitlines`` would, in
    batches, whatever the block size; the digest sees every byte; a line past the limit comes
    as one line over the limit that starts as it does (cut, its rest skipped, when it has not
    ended within a block of the limit), so the next lines keep their numbers."""
    import hashlib
    import io

    from runtime import export

    data = b"\n".join(lines) + (b"\n" if newline_at_end and lines else b"")
    digest = hashlib.sha256()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(limits, "MAX_EXPORT_LINE_BYTES", 16)
        patch.setattr(export, "READ_BYTES", block)
        patch.setattr(export, "BATCH_LINES", batch)
        batches = list(export._line_batches(io.BytesIO(data), digest))
    assert digest.digest() == hashlib.sha256(data).digest()
    assert all(0 < len(b) <= batch for b in batches)
    got = [line for b in batches for line in b]
    want = data.split(b"\n")
    if data.endswith(b"\n") or not data:
        want.pop()
    assert len(got) == len(want)
    for seen, line in zip(got, want, strict=True):
        if len(line) <= 16:
            assert seen == line
        else:  # named as too long: over the limit, and no more than the limit + one block
            assert len(seen) > 16 and line.startswith(seen) and len(seen) <= 17 + block
