"""Test-only reads of everything in a store (no command lists everything: the port pages)."""

from __future__ import annotations

from typing import Any

from runtime.model import AuditEvent, Bundle, Reminder
from runtime.store import Store


def every(store: Store, kind: Any) -> list[Any]:
    """Every record of ``kind``, in scan (ID) order."""
    with store.snapshot() as snap:
        return list(snap.scan(kind))


def reminders(store: Store, entity_id: str | None = None) -> list[Reminder]:
    """Recorded reminders, in recording order (then ID)."""
    found = [r for r in every(store, Reminder) if entity_id is None or r.entity_id == entity_id]
    return sorted(found, key=lambda r: (r.recorded_at, r.reminder_id))


def bundles(store: Store) -> list[Bundle]:
    return sorted(every(store, Bundle), key=lambda b: (b.created_at, b.bundle_id))


def log_of(store: Store, entity_id: str | None = None) -> list[AuditEvent]:
    """Audit events in the order they were written (then by chain)."""
    if entity_id is not None:
        return store.audit_events(entity_id)
    return sorted(every(store, AuditEvent), key=lambda e: (e.at, e.entity_id, e.seq))


def verified(store: Store) -> int:
    """Verify every chain; the number of events."""
    from runtime.engine.audit import verify

    return verify(store).events


def one_error_line(err: str) -> str:
    """The one ``error:`` line a failing command writes on stderr (no traceback)."""
    lines = err.strip("\n").splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


def show(cli: Any, task_id: str) -> dict[str, Any]:
    """``task show --json`` of a task, which must succeed."""
    r = cli("task", "show", task_id, "--json")
    assert r.code == 0, r.err
    data: dict[str, Any] = r.json()
    return data


def generated(template_id: str, n_tasks: int) -> dict[str, Any]:
    """A definition with ``n_tasks`` tasks (no size cap: any number validates)."""
    return {
        "template_id": template_id, "version": 1, "title": f"{n_tasks} tasks", "timezone": "UTC",
        "default_assignee": "ops", "phases": [{"phase_id": "only", "title": "Only"}],
        "tasks": [{"task_ref": f"t{i:03d}", "title": f"Task {i}", "phase": "only",
                   "offset_days": i % 30} for i in range(n_tasks)],
    }


def kill_when_paused(driver: str, args: list[str], marker: Any, cwd: Any) -> int:
    """Run ``python -c driver *args`` (a driver that splices a pause into the runtime and
    touches ``marker`` when it reaches it), SIGKILL it there, and return its exit code (minus
    SIGKILL's number when the kill landed)."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    env = {k: v for k, v in os.environ.items() if not k.startswith("DATAOPS_")}
    repo = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = repo + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.Popen([sys.executable, "-c", driver, *args], cwd=cwd, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        while not Path(marker).exists():  # polling for a condition, not waiting for time
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode
