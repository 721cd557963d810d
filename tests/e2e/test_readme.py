"""The README's promises: its embedding example runs as written, and CI runs its test command."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"


def section(title: str) -> str:
    """The text of the README's ``## title`` section, up to the next ``## `` heading."""
    text = README.read_text(encoding="utf-8")
    match = re.search(rf"^## {re.escape(title)}\s*$(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match, f"README.md has no section {title!r}"
    return match.group(1)


def code_blocks(text: str, lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```", text, re.M | re.S)


def test_embedding_example_runs() -> None:
    blocks = code_blocks(section("Embedding in a worker"), "python")
    assert len(blocks) == 1, blocks
    code = blocks[0]
    assert "import runtime" in code
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATAOPS_")}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    # the example prints the missing proof of its first, premature complete()
    assert "Filing confirmation" in r.stdout and "tax_portal=accepted" in r.stdout


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    text = README.read_text(encoding="utf-8")
    after = text.split("Run the tests:", 1)
    assert len(after) == 2, "README.md has no 'Run the tests:' paragraph"
    blocks = code_blocks(after[1], "sh")
    assert blocks, "no sh block after 'Run the tests:'"
    command = [line for line in blocks[0].splitlines() if line.strip()]
    assert len(command) == 1, command
    assert "pytest" in command[0]
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert command[0] in ci, f".ci/run does not contain {command[0]!r}"
    assert os.access(REPO / ".ci" / "run", os.X_OK)
