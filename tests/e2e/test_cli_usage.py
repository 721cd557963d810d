"""Usage errors follow the CLI contract: exit 2 and one `error:` line on stderr."""

from __future__ import annotations

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
