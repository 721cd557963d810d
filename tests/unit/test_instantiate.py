"""Instantiating a workflow definition: the seed scenarios "Representative workflow definition
instantiates cleanly" and "Docs stay contextual".

Runs against the shipped content and against small definitions written into a tmp content dir
from Python dicts (see :func:`write_content`). Every expected value is spelled out.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml

from runtime.artifacts import LocalArtifactStore
from runtime.content import dump_definition, load_content
from runtime.engine import Services, build_bundle, create_bundle
from runtime.model import Bundle, Task, WorkflowDefinition
from runtime.model.common import utc
from tests.helpers import bundles, log_of

NOW = utc(2026, 11, 25, 8, 0)
NOW_JSON = "2026-11-25T08:00:00+00:00"


# ---- building content on the fly --------------------------------------------------------------

DOC_SOP: dict[str, Any] = {
    "doc_id": "doc-sop",
    "title": "Standard operating procedure",
    "location": "https://wiki.example.com/sop",
    "steps": [
        {"step_id": "prepare", "title": "Preparing"},
        {"step_id": "ship", "title": "Shipping"},
    ],
}


def definition(tasks: list[dict[str, Any]] | None = None, **top: Any) -> dict[str, Any]:
    """A small, valid workflow definition as a dict; ``top`` overrides top-level fields."""
    wf: dict[str, Any] = {
        "template_id": "mini",
        "version": 4,
        "title": "Mini workflow",
        "timezone": "UTC",
        "default_assignee": "owner",
        "source_doc_ids": ["doc-sop"],
        "phases": [
            {"phase_id": "first", "title": "First"},
            {"phase_id": "second", "title": "Second"},
        ],
        "tasks": tasks if tasks is not None else [
            {"task_ref": "only", "title": "The only task", "phase": "first", "offset_days": 0},
        ],
    }
    wf.update(top)
    return wf


def write_content(
    root: Path,
    workflows: list[dict[str, Any]],
    docs: list[dict[str, Any]] | None = None,
) -> Path:
    """Write a content tree (workflows/*.yaml, docs/*.yaml) from dicts with yaml.safe_dump."""
    (root / "workflows").mkdir(parents=True)
    (root / "docs").mkdir()
    for wf in workflows:
        (root / "workflows" / f"{wf.get('template_id', 'unnamed')}.yaml").write_text(
            yaml.safe_dump(wf, sort_keys=False), encoding="utf-8"
        )
    for doc in [DOC_SOP] if docs is None else docs:
        (root / "docs" / f"{doc['doc_id']}.yaml").write_text(
            yaml.safe_dump(doc, sort_keys=False), encoding="utf-8"
        )
    return root


def load_one(tmp_path: Path, wf: dict[str, Any], name: str = "content") -> WorkflowDefinition:
    content = load_content(write_content(tmp_path / name, [wf]))
    return content.workflow(wf["template_id"])


def due_of(wf: WorkflowDefinition, anchor: date) -> dict[str, date]:
    _, tasks = build_bundle(wf, anchor, NOW)
    return {t.template_task_ref: t.due_date for t in tasks}


@pytest.fixture
def make_svc(store, clock, tmp_path):
    """Services over the parametrized store for a content tree written by the test."""

    def make(root: Path) -> Services:
        content = load_content(root)
        return Services(
            store=store,
            clock=clock,
            actor="tester",
            artifacts=LocalArtifactStore(tmp_path / "artifacts"),
            content_loader=lambda: content,
        )

    return make


# ---- the shipped representative workflow ------------------------------------------------------

PODCAST_ANCHOR = date(2026, 12, 1)  # a Tuesday

# ref: (phase, assignee, due_date)
PODCAST_TASKS = {
    "book-guest": ("prep", "host", date(2026, 11, 17)),             # -14 calendar days
    "research-guest": ("prep", "host", date(2026, 11, 19)),         # -8 business days, no calendar
    "record-episode": ("record", "host", date(2026, 11, 24)),       # -7
    "edit-audio": ("post", "editor", date(2026, 11, 26)),           # -3 bd: Thanksgiving counts
    "write-show-notes": ("post", "producer", date(2026, 11, 29)),   # -2: a Sunday, never moved
    "design-cover-art": ("post", "designer", date(2026, 11, 29)),
    "publish-episode": ("publish", "producer", date(2026, 12, 1)),  # 0
    "promote-episode": ("publish", "producer", date(2026, 12, 3)),  # +2
}


def test_shipped_podcast_bundle_fields(svc):
    view = create_bundle(svc, "podcast-episode", PODCAST_ANCHOR)
    assert view.created is True
    b = view.bundle
    assert b.bundle_id == "podcast-episode/2026-12-01"
    assert b.template_id == "podcast-episode"
    assert b.template_version == 3
    assert b.title == "Podcast episode 2026-12-01"
    assert b.anchor_date == date(2026, 12, 1)
    assert b.timezone == "Europe/Berlin"
    assert b.stage == "prep"
    assert b.status == "active"
    assert b.source_doc_ids == ["doc-podcast-sop", "doc-brand-guide"]
    assert b.tags == ["podcast", "content"]
    assert b.created_at == NOW and b.updated_at == NOW
    assert b.version == 1
    j = b.to_json()
    assert j["references"] == [
        {"label": "Show notes template", "url": "https://docs.example.com/podcast/show-notes-template"},
        {"label": "Episode tracker", "url": "https://tracker.example.com/podcast"},
    ]
    assert j["required_bundle_links"] == [
        {"key": "recording_folder", "label": "Recording folder", "required": True, "url": None},
        {"key": "episode_page", "label": "Episode page", "required": True, "url": None},
        {"key": "guest_press_kit", "label": "Guest press kit", "required": False, "url": None},
    ]
    assert j["anchor_date"] == "2026-12-01"
    assert j["created_at"] == NOW_JSON and j["updated_at"] == NOW_JSON


def test_shipped_podcast_tasks(svc):
    view = create_bundle(svc, "podcast-episode", PODCAST_ANCHOR)
    assert [t.template_task_ref for t in view.tasks] == list(PODCAST_TASKS)
    for t in view.tasks:
        phase, assignee, due = PODCAST_TASKS[t.template_task_ref]
        assert t.task_id == f"podcast-episode/2026-12-01/{t.template_task_ref}"
        assert t.bundle_id == "podcast-episode/2026-12-01"
        assert t.template_id == "podcast-episode"
        assert (t.phase, t.assignee, t.due_date) == (phase, assignee, due), t.task_id
        assert t.status == "todo"
        assert t.waiting_for is None and t.follow_up_at is None
        assert t.completed_at is None and t.completed_by is None
        assert t.proof == [] and t.comments == []
        assert t.created_at == NOW and t.updated_at == NOW
        assert t.version == 1

    book = view.tasks[0].to_json()
    assert book["proof_requirements"] == [
        {"kind": "url", "label": "Booking confirmation", "pattern": "^https://"},
        {"kind": "artifact", "label": "Signed release form", "content_types": None},
    ]
    assert book["instruction_doc_id"] == "doc-podcast-sop"
    assert book["instruction_step_id"] == "booking"
    assert book["systems"] == ["calendar", "email"]
    assert book["validation"] == "Guest confirmed the date in writing"
    assert book["instructions_url"] is None
    assert book["tags"] == ["guest"]
    assert book["due_date"] == "2026-11-17"

    publish = view.tasks[6].to_json()
    assert publish["proof_requirements"] == [
        {"kind": "url", "label": "Episode URL", "pattern": "^https://"},
        {"kind": "external_status", "label": "YouTube status", "system": "youtube",
         "expected": "published"},
    ]
    record = view.tasks[2].to_json()
    assert record["proof_requirements"] == [
        {"kind": "artifact", "label": "Raw recording",
         "content_types": ["audio/wav", "audio/x-wav", "audio/flac"]},
    ]


def test_shipped_podcast_doc_context_and_legacy_url(svc):
    """Docs stay contextual: every doc field of the definition is on the task; the legacy
    instructions_url survives only on the one task that still uses it."""
    wf = svc.content.workflow("podcast-episode")
    view = create_bundle(svc, "podcast-episode", PODCAST_ANCHOR)
    for td, t in zip(wf.tasks, view.tasks, strict=True):
        assert t.instruction_doc_id == td.instruction_doc_id
        assert t.instruction_step_id == td.instruction_step_id
        assert t.phase == td.phase
        assert t.systems == td.systems
        assert t.validation == td.validation
        assert t.tags == td.tags
        assert t.proof_requirements == td.proof
    legacy = {t.template_task_ref: t.instructions_url for t in view.tasks if t.instructions_url}
    assert legacy == {"design-cover-art": "https://legacy-wiki.example.com/podcast/cover-art"}
    cover = view.tasks[5]
    assert cover.instruction_doc_id is None and cover.instruction_step_id is None
    assert cover.systems == [] and cover.validation is None


def test_shipped_vat_return_skips_new_york_holidays(svc):
    view = create_bundle(svc, "vat-return", date(2026, 12, 1))
    due = {t.template_task_ref: t.due_date.isoformat() for t in view.tasks}
    assert due == {
        "collect-invoices": "2026-11-16",   # -10 bd, Thanksgiving (11-26) skipped
        "reconcile-accounts": "2026-11-19",  # -7 bd
        "prepare-return": "2026-11-23",     # -5 bd
        "file-return": "2026-11-30",        # -1 bd
        "pay-balance": "2026-12-01",        # 0
        "archive-records": "2026-12-08",    # +7 calendar
    }
    assert view.bundle.stage == "collect"
    assert view.bundle.timezone == "America/New_York"
    assert {t.template_task_ref: t.assignee for t in view.tasks} == {
        "collect-invoices": "bookkeeper", "reconcile-accounts": "bookkeeper",
        "prepare-return": "accountant", "file-return": "accountant",
        "pay-balance": "bookkeeper", "archive-records": "bookkeeper",
    }


def test_shipped_vat_return_day_before_thanksgiving(svc):
    view = create_bundle(svc, "vat-return", date(2026, 11, 27))  # the Friday after Thanksgiving
    due = {t.template_task_ref: t.due_date for t in view.tasks}
    assert due["file-return"] == date(2026, 11, 25)  # -1 bd skips Thursday 11-26
    assert due["prepare-return"] == date(2026, 11, 19)  # 25, 24, 23, 20, 19


def test_shipped_newsletter(svc):
    view = create_bundle(svc, "newsletter", date(2026, 11, 27))
    got = {t.template_task_ref: (t.due_date.isoformat(), t.assignee) for t in view.tasks}
    assert got == {
        "pick-topics": ("2026-11-23", "editor"),
        "draft-issue": ("2026-11-24", "writer"),
        "edit-issue": ("2026-11-25", "editor"),      # -2 bd
        "schedule-send": ("2026-11-26", "editor"),   # -1 bd: no calendar, Thanksgiving counts
        "confirm-sent": ("2026-11-27", "editor"),
        "review-metrics": ("2026-11-30", "analyst"),
    }
    assert view.bundle.stage == "plan"
    assert view.bundle.template_version == 2
    assert [link.to_json() for link in view.bundle.required_bundle_links] == [
        {"key": "draft_document", "label": "Draft document", "required": True, "url": None},
        {"key": "web_version", "label": "Web version of the issue", "required": False, "url": None},
    ]


def test_title_override(svc):
    view = create_bundle(svc, "podcast-episode", PODCAST_ANCHOR, "Episode 42 with Ada")
    assert view.bundle.title == "Episode 42 with Ada"


# ---- idempotency ------------------------------------------------------------------------------


def test_instantiation_is_idempotent(svc, clock):
    first = create_bundle(svc, "podcast-episode", PODCAST_ANCHOR)
    events = len(log_of(svc.store))
    assert events == 1 + len(first.tasks)
    clock.set(utc(2026, 11, 26, 12, 0))
    second = create_bundle(svc, "podcast-episode", PODCAST_ANCHOR, "another title")
    assert second.created is False
    assert second.bundle.bundle_id == first.bundle.bundle_id
    assert [t.task_id for t in second.tasks] == [t.task_id for t in first.tasks]
    assert second.bundle == first.bundle  # nothing re-stamped: same title, timestamps, version
    assert second.tasks == first.tasks
    assert len(log_of(svc.store)) == events
    assert [b.bundle_id for b in bundles(svc.store)] == ["podcast-episode/2026-12-01"]


def test_different_anchor_is_a_different_bundle(svc):
    a = create_bundle(svc, "podcast-episode", date(2026, 12, 1))
    b = create_bundle(svc, "podcast-episode", date(2026, 12, 8))
    assert b.created is True
    assert a.bundle.bundle_id != b.bundle.bundle_id
    assert b.tasks[0].task_id == "podcast-episode/2026-12-08/book-guest"
    assert len(bundles(svc.store)) == 2


# ---- small definitions: IDs, defaults, copies -------------------------------------------------


def test_small_definition_instantiates_with_every_field(tmp_path, make_svc):
    wf = definition(
        tasks=[
            {"task_ref": "draft", "title": "Draft", "phase": "first", "offset_days": -3,
             "assignee": "writer", "proof": [{"kind": "comment", "label": "Notes"}],
             "instruction_doc_id": "doc-sop", "instruction_step_id": "prepare",
             "systems": ["docs"], "validation": "Reviewed", "tags": ["a", "b"]},
            {"task_ref": "ship", "title": "Ship", "phase": "second", "offset_days": 5,
             "proof": [{"kind": "external_status", "system": "shop", "expected": "live"}]},
        ],
        references=[{"label": "Board", "url": "https://board.example.com"}],
        required_bundle_links=[
            {"key": "folder", "label": "Folder"},  # required defaults to true
            {"key": "extra", "label": "Extra", "required": False},
        ],
        tags=["mini"],
    )
    svc = make_svc(write_content(tmp_path / "c", [wf]))
    view = create_bundle(svc, "mini", date(2026, 3, 10))
    b = view.bundle.to_json()
    assert b["bundle_id"] == "mini/2026-03-10"
    assert b["template_version"] == 4
    assert b["title"] == "Mini workflow 2026-03-10"
    assert b["timezone"] == "UTC"
    assert b["stage"] == "first"
    assert b["status"] == "active"
    assert b["references"] == [{"label": "Board", "url": "https://board.example.com"}]
    assert b["required_bundle_links"] == [
        {"key": "folder", "label": "Folder", "required": True, "url": None},
        {"key": "extra", "label": "Extra", "required": False, "url": None},
    ]
    assert b["source_doc_ids"] == ["doc-sop"]
    assert b["tags"] == ["mini"]
    assert b["version"] == 1
    assert b["created_at"] == NOW_JSON and b["updated_at"] == NOW_JSON

    draft, ship = (t.to_json() for t in view.tasks)
    assert draft["task_id"] == "mini/2026-03-10/draft"
    assert draft["bundle_id"] == "mini/2026-03-10"
    assert draft["template_task_ref"] == "draft"
    assert draft["due_date"] == "2026-03-07"
    assert draft["assignee"] == "writer"
    assert draft["proof_requirements"] == [{"kind": "comment", "label": "Notes"}]
    assert (draft["instruction_doc_id"], draft["instruction_step_id"]) == ("doc-sop", "prepare")
    assert draft["phase"] == "first"
    assert draft["systems"] == ["docs"]
    assert draft["validation"] == "Reviewed"
    assert draft["instructions_url"] is None
    assert draft["tags"] == ["a", "b"]
    assert draft["status"] == "todo"
    assert ship["task_id"] == "mini/2026-03-10/ship"
    assert ship["due_date"] == "2026-03-15"
    assert ship["assignee"] == "owner"  # default_assignee
    assert ship["proof_requirements"] == [
        {"kind": "external_status", "system": "shop", "expected": "live", "label": None}
    ]
    assert ship["instruction_doc_id"] is None and ship["systems"] == [] and ship["tags"] == []
    for t in (draft, ship):
        assert t["created_at"] == NOW_JSON and t["updated_at"] == NOW_JSON and t["version"] == 1


def test_stage_is_first_phase_in_definition_order(tmp_path):
    # the only task sits in the second phase; phases listed in a non-alphabetical order
    wf = load_one(tmp_path, definition(
        phases=[{"phase_id": "zeta", "title": "Z"}, {"phase_id": "alpha", "title": "A"},
                {"phase_id": "mid", "title": "M"}],
        tasks=[{"task_ref": "m", "title": "M", "phase": "mid", "offset_days": 0},
               {"task_ref": "a", "title": "A", "phase": "alpha", "offset_days": 1}],
    ))
    bundle, _ = build_bundle(wf, date(2026, 3, 10), NOW)
    assert bundle.stage == "alpha"


def test_no_default_assignee_uses_task_assignee(tmp_path):
    wf_dict = definition(tasks=[
        {"task_ref": "x", "title": "X", "phase": "first", "offset_days": 0, "assignee": "ann"},
    ])
    del wf_dict["default_assignee"]
    wf = load_one(tmp_path, wf_dict)
    _, tasks = build_bundle(wf, date(2026, 3, 10), NOW)
    assert tasks[0].assignee == "ann"


# ---- due dates ---------------------------------------------------------------------------------

US_NY = {"country": "US", "subdivision": "NY"}


def offsets_definition(offsets: dict[str, dict[str, int]], **top: Any) -> dict[str, Any]:
    return definition(
        tasks=[{"task_ref": ref, "title": ref, "phase": "first", **off} for ref, off in offsets.items()],
        **top,
    )


def test_calendar_offsets_are_never_moved(tmp_path):
    wf = load_one(tmp_path, offsets_definition({
        "minus-14": {"offset_days": -14},
        "minus-1": {"offset_days": -1},
        "zero": {"offset_days": 0},
        "plus-1": {"offset_days": 1},
        "plus-40": {"offset_days": 40},
        "none": {},  # no offset at all: the anchor
    }, business_calendar=US_NY))
    assert due_of(wf, date(2026, 11, 27)) == {
        "minus-14": date(2026, 11, 13),
        "minus-1": date(2026, 11, 26),   # Thanksgiving: calendar days do not skip holidays
        "zero": date(2026, 11, 27),
        "plus-1": date(2026, 11, 28),    # a Saturday, kept
        "plus-40": date(2027, 1, 6),
        "none": date(2026, 11, 27),
    }


BUSINESS_OFFSETS = {
    "m1": {"offset_business_days": -1},
    "zero": {"offset_business_days": 0},
    "p1": {"offset_business_days": 1},
    "p5": {"offset_business_days": 5},
}


@pytest.mark.parametrize(
    ("anchor", "expected"),
    [
        # Friday 2026-11-20
        (date(2026, 11, 20), {"m1": date(2026, 11, 19), "zero": date(2026, 11, 20),
                              "p1": date(2026, 11, 23), "p5": date(2026, 11, 27)}),
        # Saturday 2026-11-21: +1 -> Monday, -1 -> Friday, 0 -> that Saturday
        (date(2026, 11, 21), {"m1": date(2026, 11, 20), "zero": date(2026, 11, 21),
                              "p1": date(2026, 11, 23), "p5": date(2026, 11, 27)}),
        # Sunday 2026-11-22
        (date(2026, 11, 22), {"m1": date(2026, 11, 20), "zero": date(2026, 11, 22),
                              "p1": date(2026, 11, 23), "p5": date(2026, 11, 27)}),
        # Monday 2026-11-23: -1 -> the Friday before
        (date(2026, 11, 23), {"m1": date(2026, 11, 20), "zero": date(2026, 11, 23),
                              "p1": date(2026, 11, 24), "p5": date(2026, 11, 30)}),
    ],
)
def test_business_day_offsets_without_calendar(tmp_path, anchor, expected):
    wf = load_one(tmp_path, offsets_definition(BUSINESS_OFFSETS))
    assert due_of(wf, anchor) == expected


@pytest.mark.parametrize(
    ("anchor", "with_ny", "without"),
    [
        # Wednesday before Thanksgiving (Thu 2026-11-26)
        (date(2026, 11, 25),
         {"m1": date(2026, 11, 24), "zero": date(2026, 11, 25), "p1": date(2026, 11, 27),
          "p5": date(2026, 12, 3)},
         {"m1": date(2026, 11, 24), "zero": date(2026, 11, 25), "p1": date(2026, 11, 26),
          "p5": date(2026, 12, 2)}),
        # Friday after Thanksgiving
        (date(2026, 11, 27),
         {"m1": date(2026, 11, 25), "zero": date(2026, 11, 27), "p1": date(2026, 11, 30),
          "p5": date(2026, 12, 4)},
         {"m1": date(2026, 11, 26), "zero": date(2026, 11, 27), "p1": date(2026, 11, 30),
          "p5": date(2026, 12, 4)}),
        # Thursday before Christmas (Fri 2026-12-25)
        (date(2026, 12, 24),
         {"m1": date(2026, 12, 23), "zero": date(2026, 12, 24), "p1": date(2026, 12, 28),
          "p5": date(2027, 1, 4)},   # 28, 29, 30, 31, (New Year's Day), 2027-01-04
         {"m1": date(2026, 12, 23), "zero": date(2026, 12, 24), "p1": date(2026, 12, 25),
          "p5": date(2026, 12, 31)}),
        # Monday after Christmas
        (date(2026, 12, 28),
         {"m1": date(2026, 12, 24), "zero": date(2026, 12, 28), "p1": date(2026, 12, 29),
          "p5": date(2027, 1, 5)},   # New Year's Day 2027-01-01 (Fri) skipped too
         {"m1": date(2026, 12, 25), "zero": date(2026, 12, 28), "p1": date(2026, 12, 29),
          "p5": date(2027, 1, 4)}),
        # 0 on a holiday is the holiday itself
        (date(2026, 11, 26),
         {"m1": date(2026, 11, 25), "zero": date(2026, 11, 26), "p1": date(2026, 11, 27),
          "p5": date(2026, 12, 3)},
         {"m1": date(2026, 11, 25), "zero": date(2026, 11, 26), "p1": date(2026, 11, 27),
          "p5": date(2026, 12, 3)}),
    ],
)
def test_business_day_offsets_skip_us_ny_holidays_only_with_the_calendar(
    tmp_path, anchor, with_ny, without
):
    ny = load_one(tmp_path, offsets_definition(BUSINESS_OFFSETS, business_calendar=US_NY), "ny")
    plain = load_one(tmp_path, offsets_definition(BUSINESS_OFFSETS), "plain")
    assert due_of(ny, anchor) == with_ny
    assert due_of(plain, anchor) == without


def test_business_days_across_the_year_boundary_use_each_years_holidays(tmp_path):
    wf = load_one(tmp_path, offsets_definition(
        {"m3": {"offset_business_days": -3}, "p1": {"offset_business_days": 1}},
        business_calendar=US_NY,
    ))
    # Mon 2027-01-04: Fri 2027-01-01 is New Year's Day; 2026-12-31 is a working day
    assert due_of(wf, date(2027, 1, 4)) == {"m3": date(2026, 12, 29), "p1": date(2027, 1, 5)}
    # Thu 2026-12-31 +1: New Year's Day skipped, then the weekend
    assert due_of(wf, date(2026, 12, 31))["p1"] == date(2027, 1, 4)


@pytest.mark.parametrize(
    ("zone", "anchor", "expected"),
    [
        # Berlin leaves DST on 2026-10-25: the task's due date is in summer time, the anchor not
        ("Europe/Berlin", date(2026, 11, 1),
         {"m14": date(2026, 10, 18), "m7": date(2026, 10, 25), "bm5": date(2026, 10, 26),
          "p0": date(2026, 11, 1)}),
        # New York leaves DST on 2026-11-01
        ("America/New_York", date(2026, 11, 1),
         {"m14": date(2026, 10, 18), "m7": date(2026, 10, 25), "bm5": date(2026, 10, 26),
          "p0": date(2026, 11, 1)}),
        ("America/New_York", date(2026, 11, 8),
         {"m14": date(2026, 10, 25), "m7": date(2026, 11, 1), "bm5": date(2026, 11, 2),
          "p0": date(2026, 11, 8)}),
        # and into DST in spring (2026-03-08 in New York, 2026-03-29 in Berlin)
        ("America/New_York", date(2026, 3, 15),
         {"m14": date(2026, 3, 1), "m7": date(2026, 3, 8), "bm5": date(2026, 3, 9),
          "p0": date(2026, 3, 15)}),
        ("Europe/Berlin", date(2026, 4, 5),
         {"m14": date(2026, 3, 22), "m7": date(2026, 3, 29), "bm5": date(2026, 3, 30),
          "p0": date(2026, 4, 5)}),
    ],
)
def test_dst_change_between_due_date_and_anchor_yields_plain_calendar_dates(
    tmp_path, zone, anchor, expected
):
    wf = load_one(tmp_path, offsets_definition(
        {"m14": {"offset_days": -14}, "m7": {"offset_days": -7},
         "bm5": {"offset_business_days": -5}, "p0": {"offset_days": 0}},
        timezone=zone,
    ))
    bundle, tasks = build_bundle(wf, anchor, NOW)
    assert bundle.timezone == zone
    assert {t.template_task_ref: t.due_date for t in tasks} == expected
    assert {t.template_task_ref: t.to_json()["due_date"] for t in tasks} == {
        k: v.isoformat() for k, v in expected.items()
    }


# ---- doc context, camelCase aliases, save and load again ---------------------------------------

CAMEL_WF: dict[str, Any] = {
    "template_id": "camel",
    "version": 2,
    "title": "Camel case",
    "timezone": "Europe/Berlin",
    "default_assignee": "owner",
    "sourceDocIds": ["doc-sop"],
    "phases": [{"phase_id": "first", "title": "First"}, {"phase_id": "second", "title": "Second"}],
    "tasks": [
        {"task_ref": "with-step", "title": "With a step", "phase": "first", "offset_days": -1,
         "instructionDocId": "doc-sop", "instructionStepId": "prepare",
         "systems": ["notion", "email"], "validation": "Checked twice",
         "proof": [{"kind": "url", "label": "Link", "pattern": "^https://"}]},
        {"task_ref": "doc-only", "title": "Doc, no step", "phase": "second", "offset_days": 0,
         "instructionDocId": "doc-sop", "systems": ["drive"], "validation": "Filed"},
        {"task_ref": "legacy", "title": "Legacy link", "phase": "second", "offset_days": 1,
         "instructionsUrl": "https://old-wiki.example.com/page"},
    ],
}

CAMEL_EXPECTED = {
    "with-step": {"instruction_doc_id": "doc-sop", "instruction_step_id": "prepare",
                  "phase": "first", "systems": ["notion", "email"],
                  "validation": "Checked twice", "instructions_url": None},
    "doc-only": {"instruction_doc_id": "doc-sop", "instruction_step_id": None,
                 "phase": "second", "systems": ["drive"], "validation": "Filed",
                 "instructions_url": None},
    "legacy": {"instruction_doc_id": None, "instruction_step_id": None, "phase": "second",
               "systems": [], "validation": None,
               "instructions_url": "https://old-wiki.example.com/page"},
}
DOC_FIELDS = ("instruction_doc_id", "instruction_step_id", "phase", "systems", "validation",
              "instructions_url")


def doc_context(tasks: list[Task]) -> dict[str, dict[str, Any]]:
    return {t.template_task_ref: {f: t.to_json()[f] for f in DOC_FIELDS} for t in tasks}


def test_camel_case_aliases_load(tmp_path):
    wf = load_one(tmp_path, CAMEL_WF)
    assert wf.source_doc_ids == ["doc-sop"]
    assert wf.task("with-step").instruction_doc_id == "doc-sop"
    assert wf.task("with-step").instruction_step_id == "prepare"
    assert wf.task("legacy").instructions_url == "https://old-wiki.example.com/page"
    bundle, tasks = build_bundle(wf, date(2026, 6, 1), NOW)
    assert bundle.source_doc_ids == ["doc-sop"]
    assert doc_context(tasks) == CAMEL_EXPECTED


def test_saved_definition_loads_again_with_every_doc_field(tmp_path):
    """Docs stay contextual: the template is saved (dump_definition) and loaded again; every
    doc-context field persists and copies to the tasks."""
    wf = load_one(tmp_path, CAMEL_WF, "camel")
    text = dump_definition(wf)
    for camel in ("sourceDocIds", "instructionDocId", "instructionStepId", "instructionsUrl"):
        assert camel not in text  # saved in the canonical snake_case form
    saved = tmp_path / "saved"
    write_content(saved, [])
    (saved / "workflows" / "camel.yaml").write_text(text, encoding="utf-8")
    again = load_content(saved).workflow("camel")
    assert again == wf
    for ref, fields in CAMEL_EXPECTED.items():
        td = again.task(ref)
        for name, value in fields.items():
            if name != "phase":
                assert getattr(td, name) == value, (ref, name)
    assert again.source_doc_ids == ["doc-sop"]
    _, tasks = build_bundle(again, date(2026, 6, 1), NOW)
    assert doc_context(tasks) == CAMEL_EXPECTED
    _, first = build_bundle(wf, date(2026, 6, 1), NOW)
    assert tasks == first


def test_shipped_definitions_survive_save_and_load(tmp_path, content_dir):
    content = load_content(content_dir)
    saved = tmp_path / "saved"
    write_content(saved, [], docs=[])
    for doc in (content_dir / "docs").iterdir():
        (saved / "docs" / doc.name).write_text(doc.read_text(encoding="utf-8"), encoding="utf-8")
    for template_id, wf in content.workflows.items():
        (saved / "workflows" / f"{template_id}.yaml").write_text(dump_definition(wf), encoding="utf-8")
    again = load_content(saved)
    assert again.workflows == content.workflows


def test_doc_context_persists_through_the_store(tmp_path, make_svc):
    svc = make_svc(write_content(tmp_path / "c", [CAMEL_WF]))
    created = create_bundle(svc, "camel", date(2026, 6, 1))
    stored = svc.store.tasks_of("camel/2026-06-01")
    assert doc_context(stored) == CAMEL_EXPECTED
    assert stored == created.tasks
    assert svc.store.get(Bundle, "camel/2026-06-01").source_doc_ids == ["doc-sop"]
    assert svc.store.get(Task, "camel/2026-06-01/legacy").instructions_url == (
        "https://old-wiki.example.com/page"
    )

