"""The scheduler daemon: APScheduler 3 as the clock, the sweep as the work.

APScheduler holds no state of ours: jobs live in its in-memory job store and are rebuilt from
content/ at start (no pickled jobs, no shared job store). Exactly-once comes from the store's
conditional writes, so any number of daemons may run against one store.

* an interval job sweeps (coalesce, one instance at a time, ``misfire_grace_time=None`` so a
  late tick still runs, UTC);
* one cron job per schedule-triggered definition instantiates its bundle at the anchor the
  trigger names and records a ``recurring`` reminder (idempotent across daemons);
* the sweep also seals the audit chain heads once a (UTC) day;
* a listener records a job that raised as an ``automation_failure`` reminder;
* SIGTERM and Ctrl-C stop it after the deliveries in flight (the sweep checks the stop event
  between pages; a delivery not yet started gives its lease back).
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from runtime.engine.audit import daily_seal
from runtime.engine.reminders import (
    CATCH_UP,
    RetryPolicy,
    SweepReport,
    fire_schedule,
    record_failure,
    sweep,
)
from runtime.engine.services import Services
from runtime.model import ScheduleTrigger
from runtime.notify import Sink

log = logging.getLogger("dataops.scheduler")

SWEEP_JOB = "sweep"


class Daemon:
    """Wires the sweep and the schedule triggers onto an APScheduler BackgroundScheduler."""

    def __init__(self, svc: Services, sinks: Sequence[Sink], *, interval_s: float = 60.0,
                 policy: RetryPolicy | None = None, on_sweep: Any = None) -> None:
        self.svc = svc
        self.sinks = list(sinks)
        self.interval_s = interval_s
        self.policy = policy or RetryPolicy()
        self.on_sweep = on_sweep
        self._stopped = threading.Event()
        self._scheduler: Any = None

    # jobs: they only load, call the use cases and emit
    def run_sweep(self) -> SweepReport:
        self.svc.reload_content()  # an edited definition is served (or reported) from now on
        report = sweep(self.svc, self.sinks, policy=self.policy, stop=self._stopped)
        daily_seal(self.svc, self.svc.now())
        log.info(report.line())
        if self.on_sweep:
            self.on_sweep(report)
        return report

    def run_schedule(self, template_id: str) -> None:
        """A cron job's tick: instantiate for the firing it stands for (the latest at or before
        now, so a late tick still keys the bundle and its reminder by the cron instant)."""
        from runtime.rules.cron import latest_firing

        wf = self.svc.content.workflow(template_id)
        assert isinstance(wf.trigger, ScheduleTrigger)
        now = self.svc.now()
        fire_at = latest_firing(wf.trigger.cron, wf.timezone, now, CATCH_UP) or now
        view = fire_schedule(self.svc, template_id, fire_at)
        log.info("schedule of %s: bundle %s", template_id, view.bundle.bundle_id)

    def _job_failed(self, event: Any) -> None:
        at = event.scheduled_run_time
        record_failure(self.svc, f"job:{event.job_id}", at,
                       f"scheduled job {event.job_id} failed at {at.isoformat()}: "
                       f"{type(event.exception).__name__}: {event.exception}")
        log.error("job %s failed: %s", event.job_id, event.exception)

    def build(self) -> Any:
        from apscheduler.events import EVENT_JOB_ERROR
        from apscheduler.executors.pool import ThreadPoolExecutor
        from apscheduler.schedulers.background import BackgroundScheduler
        from apscheduler.triggers.interval import IntervalTrigger

        from runtime.rules.cron import cron_trigger

        scheduler = BackgroundScheduler(
            timezone="UTC",
            executors={"default": ThreadPoolExecutor(max_workers=1)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )
        scheduler.add_job(self.run_sweep, IntervalTrigger(seconds=self.interval_s, timezone="UTC"),
                          id=SWEEP_JOB, next_run_time=datetime.now(tz=scheduler.timezone))
        for wf in self.svc.content.workflows.values():
            if isinstance(wf.trigger, ScheduleTrigger):
                scheduler.add_job(self.run_schedule, cron_trigger(wf.trigger.cron, wf.timezone),
                                  args=[wf.template_id], id=f"schedule:{wf.template_id}")
        scheduler.add_listener(self._job_failed, EVENT_JOB_ERROR)
        self._scheduler = scheduler
        return scheduler

    def run_forever(self) -> None:
        """Run until SIGTERM or Ctrl-C, then stop after the current sweep."""
        scheduler = self.build()

        def stop(signum: int, _frame: Any) -> None:
            log.info("signal %s: stopping after the current sweep", signum)
            self._stopped.set()

        previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
        scheduler.start()
        try:
            while not self._stopped.wait(0.5):
                pass
        finally:
            scheduler.shutdown(wait=True)
            for s, handler in previous.items():
                signal.signal(s, handler)

    def stop(self) -> None:
        self._stopped.set()
