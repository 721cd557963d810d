"""The pure reminder rules (DESIGN "Reminders (pure rules; recorded once; delivered to sinks)",
"Time"; seed scenario "Waiting work creates follow-up state": a waiting task can drive a
follow-up-due reminder when the follow-up date arrives).

Every expectation is an exact UTC instant written out by hand, so a rule that drifts by an hour
across a DST change fails. The two zones and their changes:

- Europe/Berlin leaves summer time on 2026-10-25 (CEST +02:00 -> CET +01:00): 09:00 local is
  07:00Z on 2026-10-24 and 08:00Z from 2026-10-25 on.
- America/New_York leaves daylight time on 2026-11-01 (EDT -04:00 -> EST -05:00): 09:00 local is
  13:00Z on 2026-10-31 and 14:00Z from 2026-11-01 on.

No I/O, no clock, no store: records are built by hand.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, timezone
from typing import Any

import pytest

from runtime.model import (
    Bundle,
    BundleLink,
    BundleStatus,
    ProofEntry,
    ProofKind,
    ReminderKind,
    ReminderSettings,
    Task,
    TaskStatus,
    reminder_id_for,
)
from runtime.model.common import utc
from runtime.rules.reminders import (
    Firing,
    bundle_firings,
    due_between,
    firings_of,
    local_instant,
    next_after,
    next_reminder_at,
    task_firings,
)

BERLIN = "Europe/Berlin"
NEW_YORK = "America/New_York"
CREATED = utc(2026, 10, 1, 12)
SECOND = timedelta(seconds=1)
DEFAULT = ReminderSettings()  # 09:00, 3 overdue repeats

URL_REQ = {"kind": "url", "label": "Booking confirmation", "pattern": "^https://"}
ART_REQ = {"kind": "artifact", "label": "Signed release form"}
COM_REQ = {"kind": "comment", "label": "Sign-off"}
EXT_REQ = {"kind": "external_status", "system": "youtube", "expected": "published"}


def make_task(due: date, *, status: TaskStatus = TaskStatus.TODO,
              requirements: list[dict[str, Any]] | None = None,
              proof: list[ProofEntry] | None = None, waiting_for: str | None = None,
              follow_up_at: datetime | None = None, task_id: str = "wf/2026-10-24/t1",
              cursor: datetime | None = None) -> Task:
    return Task(
        task_id=task_id, bundle_id="wf/2026-10-24", template_id="wf", template_task_ref="t1",
        title="Task one", phase="p1", assignee="alice", due_date=due, status=status,
        waiting_for=waiting_for, follow_up_at=follow_up_at,
        proof_requirements=requirements or [], proof=proof or [],
        reminder_cursor=cursor, created_at=CREATED, updated_at=CREATED, version=1,
    )


def make_bundle(anchor: date, zone: str, links: list[tuple[str, bool, str | None]], *,
                status: BundleStatus = BundleStatus.ACTIVE,
                settings: ReminderSettings = DEFAULT) -> Bundle:
    return Bundle(
        bundle_id=f"wf/{anchor.isoformat()}", template_id="wf", template_version=1,
        title="A run", anchor_date=anchor, timezone=zone, stage="p1", status=status,
        required_bundle_links=[BundleLink(key=k, label=k.title(), required=req, url=url)
                               for k, req, url in links],
        reminder_settings=settings, created_at=CREATED, updated_at=CREATED, version=1,
    )


def proof(kind: ProofKind, value: str | None = None, **extra: Any) -> ProofEntry:
    return ProofEntry(kind=kind, value=value, by="alice", at=CREATED, **extra)


def of_kind(firings: list[Firing], kind: ReminderKind) -> list[Firing]:
    return [f for f in firings if f.kind == kind]


def instants(firings: list[Firing], kind: ReminderKind) -> list[datetime]:
    return [f.fire_at for f in of_kind(firings, kind)]


# ---- local time in a zone with a DST change ---------------------------------------------------


@pytest.mark.parametrize(("day", "zone", "expected"), [
    (date(2026, 10, 24), BERLIN, utc(2026, 10, 24, 7)),     # CEST, the day before the change
    (date(2026, 10, 25), BERLIN, utc(2026, 10, 25, 8)),     # the change happened at 03:00 local
    (date(2026, 10, 26), BERLIN, utc(2026, 10, 26, 8)),     # CET
    (date(2026, 10, 31), NEW_YORK, utc(2026, 10, 31, 13)),  # EDT
    (date(2026, 11, 1), NEW_YORK, utc(2026, 11, 1, 14)),    # the change happened at 02:00 local
    (date(2026, 11, 2), NEW_YORK, utc(2026, 11, 2, 14)),    # EST
])
def test_local_instant_keeps_the_local_time_across_dst(day: date, zone: str, expected: datetime) -> None:
    got = local_instant(day, time(9, 0), zone)
    assert got == expected
    assert got.tzinfo is not None and got.utcoffset() == timedelta(0)


@pytest.mark.parametrize(("day", "at", "zone", "expected"), [
    # an ambiguous local time (the clock shows it twice): the first occurrence (fold=0)
    (date(2026, 10, 25), time(2, 30), BERLIN, utc(2026, 10, 25, 0, 30)),
    (date(2026, 11, 1), time(1, 30), NEW_YORK, utc(2026, 11, 1, 5, 30)),
    # a local time that does not exist (the clock skips it): the pre-transition offset
    (date(2026, 3, 29), time(2, 30), BERLIN, utc(2026, 3, 29, 1, 30)),
    (date(2026, 3, 8), time(2, 30), NEW_YORK, utc(2026, 3, 8, 7, 30)),
])
def test_local_instant_in_a_dst_overlap_and_gap(day: date, at: time, zone: str,
                                                expected: datetime) -> None:
    assert local_instant(day, at, zone) == expected


# ---- due ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("due", "zone", "expected"), [
    (date(2026, 10, 24), BERLIN, utc(2026, 10, 24, 7)),
    (date(2026, 10, 25), BERLIN, utc(2026, 10, 25, 8)),
    (date(2026, 10, 26), BERLIN, utc(2026, 10, 26, 8)),
    (date(2026, 10, 31), NEW_YORK, utc(2026, 10, 31, 13)),
    (date(2026, 11, 1), NEW_YORK, utc(2026, 11, 1, 14)),
    (date(2026, 11, 2), NEW_YORK, utc(2026, 11, 2, 14)),
])
def test_due_fires_at_the_local_reminder_time_of_the_due_date(due: date, zone: str,
                                                              expected: datetime) -> None:
    firings = task_firings(make_task(due), zone, DEFAULT)
    due_firings = of_kind(firings, ReminderKind.DUE)
    assert [f.fire_at for f in due_firings] == [expected]
    f = due_firings[0]
    assert (f.entity_type, f.entity_id, f.task_id, f.bundle_id) == (
        "task", "wf/2026-10-24/t1", "wf/2026-10-24/t1", "wf/2026-10-24")
    assert due.isoformat() in f.summary
    # not one second before, and at the instant itself
    assert ReminderKind.DUE not in {x.kind for x in due_between(firings, None, expected - SECOND)}
    assert ReminderKind.DUE in {x.kind for x in due_between(firings, None, expected)}


def test_due_uses_the_definitions_reminder_time() -> None:
    settings = ReminderSettings(at=time(8, 30), overdue_repeats=0)
    firings = task_firings(make_task(date(2026, 10, 31)), NEW_YORK, settings)
    assert instants(firings, ReminderKind.DUE) == [utc(2026, 10, 31, 12, 30)]
    firings = task_firings(make_task(date(2026, 11, 2)), NEW_YORK, settings)
    assert instants(firings, ReminderKind.DUE) == [utc(2026, 11, 2, 13, 30)]


@pytest.mark.parametrize("status", [TaskStatus.TODO, TaskStatus.IN_PROGRESS])
def test_open_tasks_have_due_reminders(status: TaskStatus) -> None:
    firings = task_firings(make_task(date(2026, 10, 24), status=status), BERLIN, DEFAULT)
    assert instants(firings, ReminderKind.DUE) == [utc(2026, 10, 24, 7)]


# ---- overdue -----------------------------------------------------------------------------------


def test_overdue_on_each_following_day_across_the_berlin_change() -> None:
    firings = task_firings(make_task(date(2026, 10, 23)), BERLIN, DEFAULT)
    assert instants(firings, ReminderKind.OVERDUE) == [
        utc(2026, 10, 24, 7),  # CEST
        utc(2026, 10, 25, 8),  # CET from here on: the UTC hour moves, 09:00 local does not
        utc(2026, 10, 26, 8),
    ]
    summaries = [f.summary for f in of_kind(firings, ReminderKind.OVERDUE)]
    assert "overdue by 1 day " in summaries[0] and "overdue by 3 days" in summaries[2]


def test_overdue_on_each_following_day_across_the_new_york_change() -> None:
    firings = task_firings(make_task(date(2026, 10, 30)), NEW_YORK, DEFAULT)
    assert instants(firings, ReminderKind.OVERDUE) == [
        utc(2026, 10, 31, 13),  # EDT
        utc(2026, 11, 1, 14),   # EST
        utc(2026, 11, 2, 14),
    ]


@pytest.mark.parametrize("repeats", [0, 1, 2, 5])
def test_overdue_repeats_at_most_overdue_repeats_times(repeats: int) -> None:
    settings = ReminderSettings(at=time(9, 0), overdue_repeats=repeats)
    firings = task_firings(make_task(date(2026, 10, 31)), NEW_YORK, settings)
    expected = [local_instant(date(2026, 10, 31) + timedelta(days=n), time(9), NEW_YORK)
                for n in range(1, repeats + 1)]
    assert instants(firings, ReminderKind.OVERDUE) == expected
    # whatever the time, nothing past the last repeat
    everything = due_between(firings, None, utc(2030, 1, 1))
    assert len(of_kind(everything, ReminderKind.OVERDUE)) == repeats
    assert len(of_kind(everything, ReminderKind.DUE)) == 1


def test_zero_overdue_repeats_gives_no_overdue_reminder() -> None:
    settings = ReminderSettings(overdue_repeats=0)
    firings = task_firings(make_task(date(2026, 10, 24)), BERLIN, settings)
    assert of_kind(firings, ReminderKind.OVERDUE) == []
    assert [f.kind for f in firings] == [ReminderKind.DUE]


def test_overdue_not_one_second_before_its_instant() -> None:
    firings = task_firings(make_task(date(2026, 10, 24)), BERLIN, DEFAULT)
    first_overdue = utc(2026, 10, 25, 8)
    cursor = utc(2026, 10, 24, 7)  # the due reminder was swept
    assert due_between(firings, cursor, first_overdue - SECOND) == []
    got = due_between(firings, cursor, first_overdue)
    assert [(f.kind, f.fire_at) for f in got] == [(ReminderKind.OVERDUE, first_overdue)]


# ---- missing evidence --------------------------------------------------------------------------


def test_missing_evidence_on_the_due_date_names_every_missing_requirement() -> None:
    task = make_task(date(2026, 10, 25), requirements=[URL_REQ, ART_REQ, COM_REQ, EXT_REQ])
    firings = task_firings(task, BERLIN, DEFAULT)
    missing = of_kind(firings, ReminderKind.MISSING_EVIDENCE)
    assert [f.fire_at for f in missing] == [utc(2026, 10, 25, 8)]
    summary = missing[0].summary
    for expected in ("url 'Booking confirmation'", "artifact 'Signed release form'",
                     "comment 'Sign-off'", "external_status youtube=published"):
        assert expected in summary, summary
    assert (missing[0].entity_type, missing[0].task_id) == ("task", task.task_id)


def test_missing_evidence_names_only_what_is_still_missing() -> None:
    task = make_task(date(2026, 10, 25), requirements=[URL_REQ, COM_REQ],
                     proof=[proof(ProofKind.URL, "https://booking.example.com/1")])
    missing = of_kind(task_firings(task, BERLIN, DEFAULT), ReminderKind.MISSING_EVIDENCE)
    assert len(missing) == 1
    assert "comment 'Sign-off'" in missing[0].summary
    assert "Booking confirmation" not in missing[0].summary


def test_missing_evidence_stops_when_the_proof_is_complete() -> None:
    task = make_task(
        date(2026, 10, 25), status=TaskStatus.IN_PROGRESS, requirements=[URL_REQ, EXT_REQ],
        proof=[proof(ProofKind.URL, "https://booking.example.com/1"),
               proof(ProofKind.EXTERNAL_STATUS, "published", system="youtube")])
    firings = task_firings(task, BERLIN, DEFAULT)
    assert of_kind(firings, ReminderKind.MISSING_EVIDENCE) == []
    assert instants(firings, ReminderKind.DUE) == [utc(2026, 10, 25, 8)]  # still open: still due


def test_a_task_without_proof_requirements_has_no_missing_evidence() -> None:
    firings = task_firings(make_task(date(2026, 10, 25)), BERLIN, DEFAULT)
    assert of_kind(firings, ReminderKind.MISSING_EVIDENCE) == []


def test_a_url_that_does_not_match_the_pattern_is_still_missing() -> None:
    task = make_task(date(2026, 10, 25), requirements=[URL_REQ],
                     proof=[proof(ProofKind.URL, "http://insecure.example.com/")])
    missing = of_kind(task_firings(task, BERLIN, DEFAULT), ReminderKind.MISSING_EVIDENCE)
    assert len(missing) == 1 and "Booking confirmation" in missing[0].summary


@pytest.mark.parametrize(("anchor", "zone", "expected"), [
    (date(2026, 10, 24), BERLIN, utc(2026, 10, 24, 7)),
    (date(2026, 10, 26), BERLIN, utc(2026, 10, 26, 8)),
    (date(2026, 10, 31), NEW_YORK, utc(2026, 10, 31, 13)),
    (date(2026, 11, 2), NEW_YORK, utc(2026, 11, 2, 14)),
])
def test_bundle_missing_evidence_on_the_anchor_date_names_the_empty_required_links(
        anchor: date, zone: str, expected: datetime) -> None:
    bundle = make_bundle(anchor, zone, [("recording_folder", True, None),
                                        ("episode_page", True, "https://example.com/ep"),
                                        ("press_kit", False, None)])
    firings = bundle_firings(bundle)
    assert [(f.kind, f.fire_at) for f in firings] == [(ReminderKind.MISSING_EVIDENCE, expected)]
    f = firings[0]
    assert (f.entity_type, f.entity_id, f.bundle_id, f.task_id) == (
        "bundle", bundle.bundle_id, bundle.bundle_id, None)
    assert "recording_folder" in f.summary
    assert "episode_page" not in f.summary  # filled
    assert "press_kit" not in f.summary  # optional
    assert firings_of(bundle, zone, DEFAULT) == firings
    assert due_between(firings, None, expected - SECOND) == []
    assert due_between(firings, None, expected) == firings


def test_bundle_missing_evidence_uses_the_bundles_reminder_time() -> None:
    bundle = make_bundle(date(2026, 10, 26), BERLIN, [("folder", True, None)],
                         settings=ReminderSettings(at=time(17, 45), overdue_repeats=1))
    assert [f.fire_at for f in bundle_firings(bundle)] == [utc(2026, 10, 26, 16, 45)]


def test_bundle_with_every_required_link_filled_has_no_reminder() -> None:
    bundle = make_bundle(date(2026, 10, 24), BERLIN, [("a", True, "https://x.example.com/a"),
                                                       ("b", True, "https://x.example.com/b"),
                                                       ("c", False, None)])
    assert bundle_firings(bundle) == []
    assert next_reminder_at(bundle, BERLIN, DEFAULT) is None


def test_bundle_without_required_links_has_no_reminder() -> None:
    assert bundle_firings(make_bundle(date(2026, 10, 24), BERLIN, [])) == []


@pytest.mark.parametrize("status", [BundleStatus.COMPLETED, BundleStatus.CANCELLED])
def test_closed_bundles_have_no_reminder(status: BundleStatus) -> None:
    bundle = make_bundle(date(2026, 10, 24), BERLIN, [("a", True, None)], status=status)
    assert bundle_firings(bundle) == []


# ---- follow-up due -----------------------------------------------------------------------------


def test_follow_up_due_fires_at_follow_up_at_while_waiting() -> None:
    follow_up = utc(2026, 10, 25, 1, 30, 15)  # 02:30:15 CET, in the hour Berlin repeats
    task = make_task(date(2026, 10, 30), status=TaskStatus.WAITING, waiting_for="the guest",
                     follow_up_at=follow_up)
    firings = task_firings(task, BERLIN, DEFAULT)
    fu = of_kind(firings, ReminderKind.FOLLOW_UP_DUE)
    assert [f.fire_at for f in fu] == [follow_up]
    assert "the guest" in fu[0].summary
    assert (fu[0].entity_type, fu[0].task_id) == ("task", task.task_id)
    assert due_between(firings, None, follow_up - SECOND) == []
    assert [f.kind for f in due_between(firings, None, follow_up)] == [ReminderKind.FOLLOW_UP_DUE]
    # a waiting task is still open: its due and overdue reminders stay
    assert instants(firings, ReminderKind.DUE) == [utc(2026, 10, 30, 8)]
    assert len(of_kind(firings, ReminderKind.OVERDUE)) == 3


def test_follow_up_at_given_in_another_offset_fires_at_the_same_instant() -> None:
    eastern = timezone(timedelta(hours=-5))
    task = make_task(date(2026, 11, 5), status=TaskStatus.WAITING, waiting_for="the bank",
                     follow_up_at=datetime(2026, 11, 2, 10, 0, tzinfo=eastern))
    assert instants(task_firings(task, NEW_YORK, DEFAULT), ReminderKind.FOLLOW_UP_DUE) == [
        utc(2026, 11, 2, 15)]


@pytest.mark.parametrize("status", [TaskStatus.TODO, TaskStatus.IN_PROGRESS])
def test_no_follow_up_due_unless_waiting(status: TaskStatus) -> None:
    # a stale follow_up_at on a task that is no longer waiting must not fire
    task = make_task(date(2026, 10, 30), status=status, follow_up_at=utc(2026, 10, 25, 12))
    assert of_kind(task_firings(task, BERLIN, DEFAULT), ReminderKind.FOLLOW_UP_DUE) == []


# ---- closed tasks ------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [TaskStatus.DONE, TaskStatus.CANCELLED])
def test_closed_tasks_have_no_reminders(status: TaskStatus) -> None:
    task = make_task(date(2026, 10, 24), status=status, requirements=[URL_REQ],
                     follow_up_at=utc(2026, 10, 25, 12), waiting_for="x")
    assert task_firings(task, BERLIN, DEFAULT) == []
    assert firings_of(task, BERLIN, DEFAULT) == []
    assert next_reminder_at(task, BERLIN, DEFAULT) is None


def test_every_firing_of_an_open_task_in_order() -> None:
    task = make_task(date(2026, 10, 31), status=TaskStatus.WAITING, requirements=[COM_REQ],
                     waiting_for="legal", follow_up_at=utc(2026, 11, 1, 6))
    got = [(f.kind, f.fire_at) for f in task_firings(task, NEW_YORK, DEFAULT)]
    assert got == [
        (ReminderKind.DUE, utc(2026, 10, 31, 13)),
        (ReminderKind.MISSING_EVIDENCE, utc(2026, 10, 31, 13)),
        (ReminderKind.FOLLOW_UP_DUE, utc(2026, 11, 1, 6)),
        (ReminderKind.OVERDUE, utc(2026, 11, 1, 14)),
        (ReminderKind.OVERDUE, utc(2026, 11, 2, 14)),
        (ReminderKind.OVERDUE, utc(2026, 11, 3, 14)),
    ]


# ---- the index: next_after, due_between, next_reminder_at --------------------------------------


def test_next_after_and_due_between_walk_the_firings() -> None:
    task = make_task(date(2026, 10, 24), requirements=[COM_REQ])
    firings = task_firings(task, BERLIN, DEFAULT)
    assert next_after(firings, None) == utc(2026, 10, 24, 7)
    assert next_after(firings, utc(2026, 10, 24, 7) - SECOND) == utc(2026, 10, 24, 7)
    assert next_after(firings, utc(2026, 10, 24, 7)) == utc(2026, 10, 25, 8)
    assert next_after(firings, utc(2026, 10, 25, 8)) == utc(2026, 10, 26, 8)
    assert next_after(firings, utc(2026, 10, 26, 8)) == utc(2026, 10, 27, 8)
    assert next_after(firings, utc(2026, 10, 27, 8)) is None
    # (cursor, now]: the cursor's own instant is excluded, now's included
    got = due_between(firings, utc(2026, 10, 24, 7), utc(2026, 10, 26, 8))
    assert [(f.kind, f.fire_at) for f in got] == [
        (ReminderKind.OVERDUE, utc(2026, 10, 25, 8)), (ReminderKind.OVERDUE, utc(2026, 10, 26, 8))]
    got = due_between(firings, None, utc(2026, 10, 24, 7))
    assert {f.kind for f in got} == {ReminderKind.DUE, ReminderKind.MISSING_EVIDENCE}


def test_schedule_fields_uses_the_records_cursor() -> None:
    fresh = make_task(date(2026, 10, 24))
    assert next_reminder_at(fresh, BERLIN, DEFAULT) == utc(2026, 10, 24, 7)
    swept = make_task(date(2026, 10, 24), cursor=utc(2026, 10, 25, 8))
    assert next_reminder_at(swept, BERLIN, DEFAULT) == utc(2026, 10, 26, 8)


# ---- deterministic IDs ---------------------------------------------------------------------------


def test_reminder_ids_are_deterministic() -> None:
    a = task_firings(make_task(date(2026, 10, 24), requirements=[COM_REQ]), BERLIN, DEFAULT)
    b = task_firings(make_task(date(2026, 10, 24), requirements=[COM_REQ]), BERLIN, DEFAULT)
    assert [f.reminder_id for f in a] == [f.reminder_id for f in b]
    ids = [f.reminder_id for f in a]
    assert len(set(ids)) == len(ids)  # due and missing_evidence share an instant, not an ID
    assert all(i.startswith("rem-") for i in ids)
    due = of_kind(a, ReminderKind.DUE)[0]
    assert due.reminder_id == reminder_id_for(ReminderKind.DUE, due.entity_id, due.fire_at)


def test_reminder_id_depends_on_kind_entity_and_instant() -> None:
    at = utc(2026, 10, 24, 7)
    base = reminder_id_for(ReminderKind.DUE, "wf/2026-10-24/t1", at)
    assert reminder_id_for(ReminderKind.DUE, "wf/2026-10-24/t1", at) == base
    assert reminder_id_for(ReminderKind.DUE, "wf/2026-10-24/t1", at + SECOND) != base
    assert reminder_id_for(ReminderKind.OVERDUE, "wf/2026-10-24/t1", at) != base
    assert reminder_id_for(ReminderKind.DUE, "wf/2026-10-24/t2", at) != base
    # the same instant written in another offset is the same reminder
    berlin = at.astimezone(timezone(timedelta(hours=2)))
    assert reminder_id_for(ReminderKind.DUE, "wf/2026-10-24/t1", berlin) == base


def test_the_same_rule_after_a_dst_change_gives_a_different_id() -> None:
    before = of_kind(task_firings(make_task(date(2026, 10, 24)), BERLIN, DEFAULT), ReminderKind.DUE)
    after = of_kind(task_firings(make_task(date(2026, 10, 26)), BERLIN, DEFAULT), ReminderKind.DUE)
    assert before[0].reminder_id != after[0].reminder_id


def test_a_rescheduled_follow_up_is_a_new_reminder() -> None:
    first = make_task(date(2026, 11, 5), status=TaskStatus.WAITING, waiting_for="x",
                      follow_up_at=utc(2026, 11, 2, 15))
    second = make_task(date(2026, 11, 5), status=TaskStatus.WAITING, waiting_for="x",
                       follow_up_at=utc(2026, 11, 3, 15))
    f1 = of_kind(task_firings(first, NEW_YORK, DEFAULT), ReminderKind.FOLLOW_UP_DUE)[0]
    f2 = of_kind(task_firings(second, NEW_YORK, DEFAULT), ReminderKind.FOLLOW_UP_DUE)[0]
    assert f1.reminder_id != f2.reminder_id


def test_discriminator_separates_two_firings_of_one_kind_at_one_instant() -> None:
    at = utc(2026, 10, 24, 7)
    one = Firing(ReminderKind.STAGE_CHANGE, "bundle", "wf/x", "wf/x", None, at, "s", "v2")
    two = Firing(ReminderKind.STAGE_CHANGE, "bundle", "wf/x", "wf/x", None, at, "s", "v3")
    again = Firing(ReminderKind.STAGE_CHANGE, "bundle", "wf/x", "wf/x", None, at, "other", "v2")
    assert one.reminder_id != two.reminder_id
    assert one.reminder_id == again.reminder_id  # the summary is not part of the identity


def test_instants_are_utc() -> None:
    for f in task_firings(make_task(date(2026, 11, 1)), NEW_YORK, DEFAULT):
        assert f.fire_at.tzinfo is not None
        assert f.fire_at.utcoffset() == timedelta(0)
        assert f.fire_at.astimezone(UTC) == f.fire_at


