"""The built wheel works on its own: installed into a fresh venv and run from an empty folder.

An editable install runs from the source tree and hides files the wheel leaves out (the
machine specs once were). This builds the wheel with ``pip wheel`` from a clean copy of the
source (a ``build/`` folder left in the repo could smuggle stale files into it), installs it
into a new venv without the outer site-packages, checks that ``runtime`` is imported from that
venv, and runs the CLI where there is no content/ and no machines/.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
CONTENT = REPO / "content"
BOOK_GUEST = "podcast-episode/2026-11-20/book-guest"
NOT_SOURCE = shutil.ignore_patterns(
    ".git", ".venv*", "build", "dist", "*.egg-info", "__pycache__", ".hypothesis",
    ".pytest_cache", "*.db", "*.db-*", "*.artifacts", "dataops-artifacts", "out",
)


def _run(argv: list[str | Path], cwd: Path, env: dict[str, str], timeout: float = 120):
    r = subprocess.run([str(a) for a in argv], cwd=cwd, env=env, capture_output=True,
                       text=True, timeout=timeout)
    assert r.returncode == 0, f"{argv}: exit {r.returncode}\n{r.stdout}\n{r.stderr}"
    return r


def _clean_env(venv: Path | None = None) -> dict[str, str]:
    """The environment without this run's source tree or DATAOPS_ settings; ``venv`` first."""
    drop = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSAFEPATH")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATAOPS_") and k not in drop}
    if venv is not None:
        env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return env


def _build_wheel(tmp_path: Path) -> Path:
    source, dist = tmp_path / "source", tmp_path / "dist"
    shutil.copytree(REPO, source, ignore=NOT_SOURCE)
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", dist, "."],
         cwd=source, env=_clean_env())
    (wheel,) = dist.glob("dataops_runtime-*.whl")
    return wheel


def _fresh_venv(tmp_path: Path, wheel: Path) -> Path:
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", venv], cwd=tmp_path, env=_clean_env())
    _run([venv / "bin" / "python", "-m", "pip", "install", "-q", wheel], cwd=tmp_path,
         env=_clean_env(venv))
    return venv


def _imported_from(venv: Path, cwd: Path) -> tuple[Path, Path, Path]:
    code = ("import runtime, runtime.specs, sysconfig; print(runtime.__file__); "
            "print(runtime.specs.__file__); print(sysconfig.get_paths()['purelib'])")
    r = _run([venv / "bin" / "python", "-c", code], cwd=cwd, env=_clean_env(venv))
    runtime_file, specs_file, purelib = (Path(line) for line in r.stdout.splitlines())
    return runtime_file, specs_file, purelib


def test_the_wheel_runs_from_an_empty_folder(tmp_path: Path) -> None:
    venv = _fresh_venv(tmp_path, _build_wheel(tmp_path))
    empty = tmp_path / "empty"
    empty.mkdir()
    env = _clean_env(venv)
    assert not any(empty.iterdir())

    runtime_file, specs_file, purelib = _imported_from(venv, empty)
    assert purelib.is_relative_to(venv), purelib
    assert runtime_file == purelib / "runtime" / "__init__.py"
    assert sorted(p.name for p in specs_file.parent.glob("*.yaml")) == ["assistant_job.yaml", "bundle.yaml", "task.yaml"]

    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    dataops = venv / "bin" / "dataops"
    assert _run([dataops, "--version"], empty, env).stdout == f"dataops {version}\n"

    out = _run([dataops, "--content", CONTENT, "validate"], empty, env).stdout
    assert out.startswith("ok: 3 workflow definitions") and "3 machine specs" in out
    assert str(purelib / "runtime" / "specs") in out

    out = _run([dataops, "diagrams", "--check", "--out", REPO / "docs" / "diagrams"], empty,
               env).stdout
    assert out.startswith("ok:")

    out = _run([dataops, "--content", CONTENT, "demo"], empty, env).stdout
    assert f"task {BOOK_GUEST}" in out and "hash chains (verified)" in out
    # the demo shows who received what: real messages from the wheel's templates, in an mbox
    assert "who received what (10 emails" in out, out
    assert "bob     at 2026-11-04T13:30:00+00:00: Your digest for 2026-11-04: 5 reminders" in out
    import mailbox

    mails = list(mailbox.mbox(str(empty / "dataops-demo-mail.mbox")))
    assert len(mails) == 11 and all(m.is_multipart() for m in mails)

    out = _run([dataops, "--store", "sqlite:///dataops-demo.db", "--content", CONTENT,
                "task", "show", BOOK_GUEST], empty, env).stdout
    assert out.startswith(f"task        {BOOK_GUEST}  (done)"), out
    assert "proof       artifact: release-form.pdf" in out

    # the HTTP API and the worker loop come with the wheel: their modules and the served app
    code = ("import runtime.server.app as a, runtime.worker as w; print(a.__file__); "
            "print(w.__file__); app = a.create_app(__import__('runtime.wiring', fromlist=['x'])"
            f".open_services('memory://', {str(CONTENT)!r})); print(len(app.openapi()['paths']))")
    server_file, worker_file, paths = _run([venv / "bin" / "python", "-c", code], empty,
                                           env).stdout.splitlines()
    assert Path(server_file) == purelib / "runtime" / "server" / "app.py"
    assert Path(worker_file) == purelib / "runtime" / "worker.py"
    assert int(paths) >= 25
