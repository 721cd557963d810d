"""The reminder sweep against a store (DESIGN "Reminders", "Reminders (pure rules; recorded once;
delivered to sinks)", "Reminder sinks", "Time"; seed scenario "Waiting work creates follow-up
state": a waiting task drives a follow-up-due reminder when the follow-up date arrives).

The clock is injected (``FixedClock``) and moved by hand: nothing sleeps. Every test runs on every
store (``svc`` is parametrized memory/sqlite).

Most tests use definitions written on the fly (:func:`write_lab_content`) in the two zones whose
DST change falls inside the test window:

- ``berlin`` (Europe/Berlin, CEST -> CET on 2026-10-25), anchor 2026-10-24;
- ``newyork`` (America/New_York, EDT -> EST on 2026-11-01), anchor 2026-10-31;

each with a required bundle link, a task ``t-proof`` due on the anchor that needs a comment as
proof, and a task ``t-wait`` due two days later that the test puts in ``waiting`` with a
follow-up inside the hour the zone repeats. Each expectation is an exact UTC instant.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from runtime import engine
from runtime.artifacts import LocalArtifactStore
from runtime.clock import FixedClock
from runtime.content import load_content
from runtime.engine import Services
from runtime.errors import DeliveryError if False else None  # noqa: F401  (placeholder, replaced below)
