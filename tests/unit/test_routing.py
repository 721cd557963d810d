"""Routing as a pure rule and the people directory as content (DESIGN.md "People and routing"):
who each kind of reminder goes to, escalation from the Nth overdue reminder, an assignee that
names nobody going to operators (saying so), digest instants across a DST change, and the
directory's named errors (file, line, field) and validate's warnings."""

from __future__ import annotations

from datetime import time
from pathlib import Path

import pytest

from runtime.content import load_content, unresolved_assignees
from runtime.model import ReminderKind
from runtime.model.common import utc
from runtime.model.people import Directory, Group, Person
from runtime.rules.routing import Facts, Route, local_day, next_digest_at, routes

K = ReminderKind


def directory() -> Directory:
    people = [Person(person_id="ada", name="Ada", email="ada@example.com", manager="grace"),
              Person(person_id="bob", name="Bob", email="bob@example.com", manager="carmen"),
              Person(person_id="carmen", name="Carmen"),
              Person(person_id="grace", name="Grace")]
    groups = [Group(group_id="bookkeeper", members=["ada", "bob"]),
              Group(group_id="operators", members=["grace"])]
    return Directory({p.person_id: p for p in people}, {g.group_id: g for g in groups})


def ids(found: list[Route]) -> list[str]:
    return [r.person_id for r in found]


@pytest.mark.parametrize("kind", [K.DUE, K.OVERDUE, K.FOLLOW_UP_DUE, K.MISSING_EVIDENCE])
def test_task_reminders_go_to_the_assignee_person_or_every_group_member(kind: K) -> None:
    d = directory()
    assert routes(Facts(kind, "task", assignee="ada", owner="grace"), d) == [Route("ada", "assignee")]
    assert routes(Facts(kind, "task", assignee="bookkeeper", owner="grace"), d) == [
        Route("ada", "assignee (member of bookkeeper)"), Route("bob", "assignee (member of bookkeeper)")]


@pytest.mark.parametrize("kind", [K.MISSING_EVIDENCE, K.STAGE_CHANGE, K.RECURRING])
def test_bundle_reminders_go_to_the_owner(kind: K) -> None:
    assert routes(Facts(kind, "bundle", owner="carmen"), directory()) == [Route("carmen", "owner")]
    assert ids(routes(Facts(kind, "bundle", owner="bookkeeper"), directory())) == ["ada", "bob"]


def test_automation_failures_go_to_operators() -> None:
    for entity_type in ("reminder", "job", "assistant_job", "content"):
        assert routes(Facts(K.AUTOMATION_FAILURE, entity_type, assignee="ada", owner="carmen"),
                      directory()) == [Route("grace", "operators")]


def test_a_name_that_resolves_to_nobody_goes_to_operators_saying_so() -> None:
    found = routes(Facts(K.DUE, "task", assignee="ghost"), directory())
    assert found == [Route("grace", "operators: the assignee 'ghost' resolves to nobody")]
    assert routes(Facts(K.DUE, "task", assignee=None), directory()) == [
        Route("grace", "operators: there is no assignee")]
    assert routes(Facts(K.STAGE_CHANGE, "bundle", owner="nobody"), directory()) == [
        Route("grace", "operators: the owner 'nobody' resolves to nobody")]


def test_escalation_from_the_nth_overdue_reminder_to_each_assignees_manager() -> None:
    d = directory()
    for n in (1, 2):
        assert ids(routes(Facts(K.OVERDUE, "task", assignee="bookkeeper", overdue_n=n,
                                escalate_after=3), d)) == ["ada", "bob"]
    for n in (3, 4):
        found = routes(Facts(K.OVERDUE, "task", assignee="bookkeeper", overdue_n=n, escalate_after=3), d)
        assert ids(found) == ["ada", "bob", "grace", "carmen"]
        assert found[2].reason == f"escalation: manager of ada (overdue reminder {n}, escalates from 3)"
    # no escalation configured, or not an overdue reminder: nobody else
    assert ids(routes(Facts(K.OVERDUE, "task", assignee="ada", overdue_n=9), d)) == ["ada"]
    assert ids(routes(Facts(K.DUE, "task", assignee="ada", escalate_after=1), d)) == ["ada"]


def test_each_person_receives_a_reminder_once_whatever_their_roles() -> None:
    d = directory()
    d.groups["everyone"] = Group(group_id="everyone", members=["ada", "grace", "ada"])
    found = routes(Facts(K.OVERDUE, "task", assignee="everyone", overdue_n=5, escalate_after=1), d)
    assert ids(found) == ["ada", "grace"]  # grace is ada's manager too: still once


def test_no_directory_no_recipients() -> None:
    assert routes(Facts(K.DUE, "task", assignee="ada"), Directory()) == []


def test_digest_instants_keep_the_local_time_across_dst() -> None:
    london = "Europe/London"  # BST -> GMT on 2026-10-25 at 02:00 local
    at = time(8, 30)
    assert next_digest_at(utc(2026, 10, 24, 6), at, london) == utc(2026, 10, 24, 7, 30)  # BST
    assert next_digest_at(utc(2026, 10, 24, 7, 30), at, london) == utc(2026, 10, 24, 7, 30)
    assert next_digest_at(utc(2026, 10, 24, 7, 31), at, london) == utc(2026, 10, 25, 8, 30)  # GMT
    assert local_day(utc(2026, 10, 25, 8, 30), london).isoformat() == "2026-10-25"
    ny = "America/New_York"  # EDT -> EST on 2026-11-01
    assert next_digest_at(utc(2026, 10, 31, 20), at, ny) == utc(2026, 11, 1, 13, 30)


# ---- the directory as content ---------------------------------------------------------------


def write_people(content_dir: Path, name: str, text: str) -> Path:
    folder = content_dir / "people"
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def test_the_shipped_directory_loads_and_every_shipped_assignee_resolves(content_dir: Path) -> None:
    content = load_content(content_dir)
    assert content.problems() == []
    assert content.directory.resolve("operators")
    assert unresolved_assignees(content) == []


@pytest.mark.parametrize(("text", "expected"), [
    ("people:\n  - person_id: zed\n    name: Zed\n    emial: z@example.com\n",
     "x.yaml:4: people[0].emial: "),
    ("people:\n  - person_id: zed\n    name: Zed\n    timezone: Mars/Olympus\n",
     "x.yaml:4: people[0].timezone: "),
    ("people:\n  - person_id: zed\n    name: Zed\n    email: not-an-email\n",
     "x.yaml:4: people[0].email: "),
    ("people:\n  - person_id: zed\n    name: Zed\n    manager: nobody\n",
     "x.yaml:4: people[0].manager: 'nobody' is not a person"),
    ("groups:\n  - group_id: crew\n    members: [ada, nobody]\n",
     "x.yaml:3: groups[0].members[1]: 'nobody' is not a person"),
    ("people:\n  - person_id: ada\n    name: Another Ada\n",
     "x.yaml:2: people[0].person_id: 'ada' is also defined at "),
    ("groups:\n  - group_id: ada\n    members: [bob]\n",
     "x.yaml:2: groups[0].group_id: 'ada' is also defined at "),
    ("people:\n  - person_id: zed\n    name: Zed\n    delivery: {digest: '25:00'}\n",
     "x.yaml:4: people[0].delivery"),
])
def test_a_broken_people_file_is_named_with_file_line_and_field(
        content_dir: Path, text: str, expected: str) -> None:
    path = write_people(content_dir, "x.yaml", text)
    content = load_content(content_dir)
    problems = content.broken.get(path, [])
    assert any(expected in p for p in problems), problems
    assert "zed" not in content.directory.people  # a broken file contributes nobody
    team = content_dir / "people" / "team.yaml"
    if "is also defined at" in expected:
        # an ID given twice: which one is meant is not guessed; both files are named
        assert any(f"{path}:2" in p for p in content.broken[team]), content.broken
    else:
        assert "ada" in content.directory.people  # and stops no other file


def test_validate_warns_about_every_assignee_that_resolves_to_nobody(cli, content_dir: Path) -> None:
    wf = content_dir / "workflows" / "vat-return.yaml"
    wf.write_text(wf.read_text().replace("default_assignee: bookkeeper", "default_assignee: ghost"))
    r = cli("validate")
    assert r.code == 0, r.err
    warnings = [line for line in r.err.splitlines() if "'ghost' is no person or group" in line]
    assert warnings and all("vat-return.yaml" in w and "operators" in w for w in warnings), r.err


def test_validate_warns_when_nobody_is_in_operators(cli, content_dir: Path) -> None:
    team = content_dir / "people" / "team.yaml"
    team.write_text(team.read_text().replace("  - {group_id: operators, members: [grace]}\n", ""))
    r = cli("validate")
    assert r.code == 0, r.err
    assert "no group 'operators' with a member" in r.err, r.err
