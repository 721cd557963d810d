"""`dataops people list|show` and `dataops reminders due --by-recipient` on the shipped content
(content/people/team.yaml), as an operator runs them."""

from __future__ import annotations

import shutil
from typing import Any


def test_people_list_shows_everyone_with_groups_and_open_tasks(run: Any) -> None:
    listed = run("people", "list", "--json")
    assert listed.code == 0, listed.err
    people = {p["person_id"]: p for p in listed.json()}
    assert set(people) == {"ada", "bob", "carmen", "dev", "grace"}
    assert people["bob"]["delivery"] == {"digest": "08:30"}
    assert people["ada"]["delivery"] == "immediate"
    assert people["ada"]["groups"] == ["bookkeeper"]
    # the vat-return bundle's tasks: bookkeeper's (ada and bob) and accountant's (grace)
    assert people["ada"]["open_tasks"] == people["bob"]["open_tasks"] > 0
    assert people["grace"]["open_tasks"] > 0 and people["carmen"]["open_tasks"] == 0
    plain = run("people", "list")
    assert plain.code == 0 and "5 people, 9 groups" in plain.out and "digest 08:30" in plain.out


def test_people_show_lists_the_open_tasks_of_the_person_and_their_groups(run: Any) -> None:
    shown = run("people", "show", "ada", "--json")
    assert shown.code == 0, shown.err
    body = shown.json()
    assert body["person"]["email"] == "ada@example.com" and body["person"]["manager"] == "grace"
    assigned = {t["assignee"] for t in body["open_tasks"]}
    assert assigned == {"bookkeeper"}
    assert all(t["status"] in ("todo", "in_progress", "waiting") for t in body["open_tasks"])
    done = body["open_tasks"][0]["task_id"]
    assert run("task", "cancel", done, "--reason", "not needed").code == 0
    again = run("people", "show", "ada", "--json").json()
    assert done not in {t["task_id"] for t in again["open_tasks"]}
    text = run("people", "show", "ada")
    assert text.code == 0 and "open task" in text.out and "Europe/London" in text.out


def test_people_show_of_nobody_or_a_group_is_not_found_naming_it(run: Any) -> None:
    r = run("people", "show", "zed")
    assert r.code == 5 and r.err.startswith("error:") and "zed" in r.err and "ada" in r.err
    g = run("people", "show", "bookkeeper")
    assert g.code == 5 and "is a group (ada, bob)" in g.err


def test_without_a_directory_people_commands_say_how_to_add_one(cli: Any, content_dir: Any) -> None:
    shutil.rmtree(content_dir / "people")
    r = cli("people", "list")
    assert r.code == 2 and "add people/*.yaml" in r.err and len(r.err.splitlines()) == 1
    v = cli("validate")
    assert v.code == 0 and "no people directory" in v.out


def test_reminders_due_by_recipient_previews_who_gets_what(run: Any) -> None:
    at = "2026-10-23T14:00:00+00:00"
    r = run("reminders", "due", "--at", at, "--by-recipient", "--json")
    assert r.code == 0, r.err
    groups = {g["person_id"]: g for g in r.json()}
    assert {"ada", "bob", "dev"} <= set(groups)  # vat-return: bookkeeper; the newsletter: editor
    ada = groups["ada"]["reminders"]
    assert ada and all(x["delivery"] == "immediate" and x["digest_at"] is None for x in ada)
    assert all(x["reason"] == "assignee (member of bookkeeper)" for x in ada
               if x["entity_type"] == "task" and "vat-return" in x["entity_id"])
    bob = groups["bob"]["reminders"]
    assert bob and all(x["delivery"] == "digest" for x in bob)
    assert {x["digest_at"] for x in bob} == {"2026-10-24T12:30:00+00:00"}  # 08:30 in New York
    # the same reminders as the plain preview, each routed; nothing recorded
    plain = {x["reminder_id"] for x in run("reminders", "due", "--at", at, "--json").json()}
    routed = {x["reminder_id"] for g in groups.values() for x in g["reminders"]}
    assert routed == plain
    assert run("reminders", "list", "--json").json() == []
    text = run("reminders", "due", "--at", at, "--by-recipient")
    assert text.code == 0 and "bob (Bob Marley, bob@example.com)" in text.out
