"""Usage errors follow the CLI contract: exit 2 and one `error:` line on stderr."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version

import pytest


@pytest.mark.parametrize("argv", [
    ("bogus",),
    ("task", "wait", "some/task"),
    ("task", "attach", "some/task"),
    ("task", "attach", "some/task", "--url", "https://x", "--comment", "both"),
    ("bundle", "create", "podcast-episode"),
    ("scheduler", "run", "--interval", "soon"),
])
def test_usage_errors_are_one_line_exit_2(cli, argv: tuple[str, ...]) -> None:
    r = cli(*argv)
    assert r.code == 2
    lines = r.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), r.err
    assert r.out == ""


def test_help_exits_0(cli) -> None:
    r = cli("--help")
    assert r.code == 0 and "bundle" in r.out


@pytest.mark.parametrize("url", ["dynamodb://table?region=eu-west-1", "postgres://x", "nonsense"])
def test_unknown_or_unbuilt_store_is_a_clear_input_error(cli, url: str) -> None:
    r = cli("task", "list", store=url)
    assert r.code == 2 and r.err.startswith("error:") and url.split("?")[0] in r.err


def test_version_prints_the_distributions_version(cli) -> None:
    r = cli("--version")
    assert (r.code, r.out, r.err) == (0, f"dataops {version('dataops-runtime')}\n", "")


def test_version_imports_neither_pydantic_nor_transitions() -> None:
    code = ("import sys; from runtime.cli import main; code = main(['--version']); "
            "heavy = [m for m in ('pydantic', 'transitions', 'yaml') if m in sys.modules]; "
            "print(code, heavy)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[-1] == "0 []", r.stdout


def test_store_migrate_on_sqlite_reports_the_schema(cli) -> None:
    r = cli("store", "migrate")
    assert r.code == 0 and "at schema 4; nothing else to migrate" in r.out, r.err
