"""CLI start-up time: `dataops --help` and `dataops task list` beside `python -c pass`.

Runs each command N times as a subprocess (the installed ``dataops`` next to
``sys.executable``) against a small SQLite store in a temp folder holding one 20-task bundle,
and prints min and median wall time and the difference to bare Python measured in the same
run. Also reports whether ``dataops task list`` imports apscheduler, boto3 and holidays (and
the slowest imports from ``python -X importtime``).

    python benchmarks/startup.py           # full run
    python benchmarks/startup.py --quick   # fewer repetitions

Prints a table; never asserts on timings. Goal (from the issue): each dataops command under
0.25 s more than bare Python.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
GOAL_S = 0.25
HEAVY = ("apscheduler", "boto3", "botocore", "holidays", "pydantic", "yaml", "transitions")
ASKED = ("apscheduler", "boto3", "holidays")


def dataops_script() -> Path:
    exe = Path(sys.executable).parent / ("dataops.exe" if os.name == "nt" else "dataops")
    if not exe.exists():
        sys.exit(f"no dataops script at {exe}; install the project (pip install -e .) first")
    return exe


def make_store(folder: Path) -> str:
    """A SQLite store with one bundle of the 20-task benchmark definition."""
    spec = importlib.util.spec_from_file_location("bench_instantiate", HERE / "instantiate.py")
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = bench
    spec.loader.exec_module(bench)  # also puts the repo root on sys.path

    from runtime import engine
    from runtime.store.sqlite import SqliteStore

    url = f"sqlite:///{folder / 'startup.db'}"
    wf = bench.definition()
    store = SqliteStore(url)
    svc = bench.services(store, wf, datetime(2026, 1, 5, tzinfo=UTC))
    view = engine.create_bundle(svc, wf.template_id, date(2026, 2, 2))
    store.close()
    assert view.created and len(view.tasks) == 20
    return url


def load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATAOPS_")}
    env.pop("PYTHONPROFILEIMPORTTIME", None)
    env["DATAOPS_ACTOR"] = "bench"
    return env


def timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - t0
    if done.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr.decode()[-500:]}")
    return elapsed


PROBE = """
import contextlib, io, json, sys
import runtime.cli
with contextlib.redirect_stdout(io.StringIO()):
    rc = runtime.cli.main(sys.argv[2:])
print(json.dumps([len(sys.modules)] + [m in sys.modules for m in sys.argv[1].split(",")]))
"""


def imported(argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[int, dict[str, bool]]:
    """How many modules ``runtime.cli.main(argv)`` leaves loaded, and which of HEAVY."""
    out = subprocess.run([sys.executable, "-c", PROBE, ",".join(HEAVY), *argv], cwd=cwd,
                         env=env, capture_output=True, text=True, check=True)
    count, *flags = json.loads(out.stdout.strip().splitlines()[-1])
    return int(count), dict(zip(HEAVY, flags, strict=True))


def print_table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> None:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, tuple("-" * w for w in widths), *rows]:
        print("  ".join(f"{c:<{w}}" for c, w in zip(row, widths, strict=True)).rstrip())


def slowest_imports(argv: list[str], cwd: Path, env: dict[str, str], top: int) -> list[tuple[int, str]]:
    """Top-level imports by cumulative import time (us), from ``python -X importtime``."""
    out = subprocess.run([sys.executable, "-X", "importtime", "-m", "runtime.cli", *argv],
                         cwd=cwd, env=env, capture_output=True, text=True, check=True)
    rows = []
    for line in out.stderr.splitlines():
        # "import time: self [us] | cumulative | imported package"; nesting indents the name
        if not line.startswith("import time:") or line.count("|") != 2:
            continue
        _, cumulative, name = line[len("import time:"):].split("|")
        if cumulative.strip().isdigit() and not name.startswith("  "):
            rows.append((int(cumulative), name.strip()))
    return sorted(rows, reverse=True)[:top]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer repetitions (5 instead of 30)")
    p.add_argument("--reps", type=int, help="repetitions per command")
    args = p.parse_args(argv)
    reps = args.reps or (5 if args.quick else 30)
    dataops = str(dataops_script())
    env = clean_env()
    with tempfile.TemporaryDirectory(prefix="dataops-startup-") as tmp:
        folder = Path(tmp)
        url = make_store(folder)
        commands = [
            ("python -c pass", [sys.executable, "-c", "pass"]),
            ("dataops --help", [dataops, "--help"]),
            ("dataops task list", [dataops, "--store", url, "task", "list"]),
        ]
        load_before = load()
        for _, cmd in commands:  # warm the page cache and .pyc files
            timed(cmd, folder, env)
        times: dict[str, list[float]] = {name: [] for name, _ in commands}
        for _ in range(reps):  # interleaved, so drift hits every command alike
            for name, cmd in commands:
                times[name].append(timed(cmd, folder, env))

        print(f"startup: {reps} runs each, interleaved; python {sys.version.split()[0]}; "
              f"store {url} (1 bundle, 20 tasks)")
        print(f"load average before {load_before}, after {load()} ({os.cpu_count()} CPUs)")
        print()
        base_min = min(times["python -c pass"])
        base_med = statistics.median(times["python -c pass"])
        header = ("command", "min s", "median s", "min - python", "median - python",
                  f"goal < +{GOAL_S:.2f} s (min / median)")
        rows: list[tuple[str, ...]] = []
        for name, _ in commands:
            lo, med = min(times[name]), statistics.median(times[name])
            if name == "python -c pass":
                rows.append((name, f"{lo:.3f}", f"{med:.3f}", "baseline", "baseline", "-"))
                continue
            extra_lo, extra_med = lo - base_min, med - base_med
            verdict = " / ".join("met" if x < GOAL_S else "NOT met" for x in (extra_lo, extra_med))
            rows.append((name, f"{lo:.3f}", f"{med:.3f}", f"+{extra_lo:.3f}", f"+{extra_med:.3f}",
                         verdict))
        print_table(header, rows)
        print("(min is the better estimate of the command's own cost on a busy machine; "
              "median is what a user sees)")

        print()
        probes = {
            "dataops --help": imported(["--help"], folder, env),
            "dataops task list": imported(["--store", url, "task", "list"], folder, env),
        }
        print_table(("imported by", "modules", *HEAVY),
                    [(name, str(count), *("yes" if flags[m] else "no" for m in HEAVY))
                     for name, (count, flags) in probes.items()])
        listing = probes["dataops task list"][1]
        print()
        for m in ASKED:
            print(f"dataops task list imports {m}: {'yes' if listing[m] else 'no'}")
        print()
        print("slowest top-level imports of `dataops task list` (python -X importtime, cumulative):")
        for us, name in slowest_imports(["--store", url, "task", "list"], folder, env, 8):
            print(f"  {us / 1000:7.1f} ms  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
