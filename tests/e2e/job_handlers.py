"""Handlers for the worker-process tests (`dataops worker run --handlers job_handlers:...`).

``count`` appends one line per run to $JOB_LOG (O_APPEND: whole lines from many processes) and
answers with who ran it. ``block`` writes $JOB_STARTED and then waits on $JOB_GATE forever, so
a test can SIGKILL the worker while it holds the job. Importing waits for $JOB_GATE_START, so
that worker processes started one after another are released together.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

_start = os.environ.get("JOB_GATE_START")
while _start and not Path(_start).exists():  # released together: wait for the gate to open
    time.sleep(0.005)


def count(ctx: Any) -> dict[str, Any]:
    line = f"{ctx.job.assistant_job_id} {os.getpid()}\n".encode()
    fd = os.open(os.environ["JOB_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)
    return {"pid": os.getpid(), "task": ctx.task.task_id if ctx.task else None}


def block(ctx: Any) -> dict[str, Any]:
    Path(os.environ["JOB_STARTED"]).write_text(ctx.job.assistant_job_id)
    while True:  # until the test kills this process
        time.sleep(0.05)


HANDLERS = {"count": count}
BLOCKING = {"count": block}
