"""Dates at the edge of the representable range and message hints, through the CLI: a named
error on one line of stderr and exit 2, never an OverflowError traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

EDGES = ["0001-01-01T00:00:00+00:00", "0001-01-01T00:00:00+05:00", "9999-12-31T23:00:00-05:00",
         "9999-12-31T23:59:59+00:00"]


def _named(r, *needles: str) -> None:
    assert r.code == 2, (r.code, r.out, r.err)
    assert r.err.startswith("error:") and len(r.err.strip().splitlines()) == 1, r.err
    for needle in needles:
        assert needle in r.err, r.err


@pytest.mark.parametrize("anchor", ["0001-01-01", "0001-01-02", "9999-12-31", "9999-01-01"])
def test_bundle_create_near_the_ends_of_the_calendar(cli, anchor: str) -> None:
    _named(cli("bundle", "create", "vat-return", "--anchor", anchor),
           f"--anchor '{anchor}'", "leaves the supported date range")


@pytest.mark.parametrize("instant", EDGES)
def test_reminders_due_near_the_ends_of_the_calendar(cli, instant: str) -> None:
    _named(cli("reminders", "due", "--at", instant), f"--at '{instant}'", "date range")
    _named(cli("reminders", "due", now=instant), f"--now '{instant}'", "date range")
    _named(cli("bundle", "create", "vat-return", "--anchor", "2026-11-01", now=instant), "--now")


def test_the_hint_for_a_naive_now_is_itself_valid(cli) -> None:
    r = cli("reminders", "due", now="2026-11-25")
    _named(r, "no UTC offset")
    hint = r.err.split("write e.g. ")[1].split(" ")[0]
    assert cli("reminders", "due", now=hint).code == 0, hint
    r = cli("reminders", "due", now="2026-11-25T08:00")
    assert cli("reminders", "due", now=r.err.split("write e.g. ")[1].split(" ")[0]).code == 0


def test_validate_refuses_a_huge_offset(cli, content_dir: Path) -> None:
    path = content_dir / "workflows" / "vat-return.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["tasks"][0].pop("offset_business_days", None)
    data["tasks"][0]["offset_days"] = -1_000_000
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    r = cli("validate")
    assert r.code == 2 and "leaves the representable date range" in r.err, r.err


def test_validate_warns_about_a_cron_that_never_fires(cli, content_dir: Path) -> None:
    path = content_dir / "workflows" / "newsletter.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert data["trigger"]["type"] == "schedule"
    data["trigger"]["cron"] = "0 0 31 2 *"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    r = cli("validate")
    assert r.code == 0, r.err
    assert r.err.startswith("warning:") and "never fires" in r.err and str(path) in r.err, r.err
    assert r.out.startswith("ok:")


def test_validate_does_not_warn_about_a_cron_that_fires(cli) -> None:
    r = cli("validate")
    assert r.code == 0 and "never fires" not in r.err, r.err


@pytest.mark.parametrize(("argv", "needle"), [
    (["--interval", "nan"], "--interval nan"), (["--interval", "inf"], "--interval inf"),
    (["--delivery-timeout", "-1"], "--delivery-timeout -1"),
    (["--delivery-workers", "0"], "--delivery-workers 0"),
    (["--delivery-workers", "100000"], "from 1 to 256"),
    (["--lease", "20"], "--lease 20.0: give at least 40"),
    (["--lease", "100", "--delivery-timeout", "90"], "give at least 120"),
    (["--lease", "100", "--sink", "http://127.0.0.1:9/h?timeout=80"], "give at least 110"),
])
def test_scheduler_options_out_of_range_are_named(cli, monkeypatch: pytest.MonkeyPatch,
                                                  argv: list[str], needle: str) -> None:
    monkeypatch.setenv("DATAOPS_WEBHOOK_SECRET", "s")
    _named(cli("scheduler", "run", "--once", *argv), needle)


def test_scheduler_delivery_options_reach_the_daemon(cli, monkeypatch: pytest.MonkeyPatch) -> None:
    from datetime import timedelta

    from runtime import scheduler

    seen = []
    real = scheduler.Daemon.__init__

    def spy(self, svc, sinks, **kw):  # type: ignore[no-untyped-def]
        seen.append(kw["policy"])
        real(self, svc, sinks, **kw)

    monkeypatch.setattr(scheduler.Daemon, "__init__", spy)
    r = cli("scheduler", "run", "--once", "--delivery-workers", "3", "--delivery-timeout", "4",
            "--lease", "90")
    assert r.code == 0, r.err
    [policy] = seen
    assert (policy.workers, policy.timeout, policy.lease) == (
        3, timedelta(seconds=4), timedelta(seconds=90))
    r = cli("scheduler", "run", "--once")
    assert r.code == 0, r.err
    assert (seen[1].workers, seen[1].timeout, seen[1].lease) == (
        8, timedelta(seconds=10), timedelta(minutes=5))
