"""`dataops` commands about people: the directory with each person's open tasks, and who gets
which reminder (``reminders due --by-recipient``)."""

from __future__ import annotations

from typing import Any

from runtime.cli import render
from runtime.cli.context import Ctx

OK = 0


def cmd_people_list(ctx: Ctx) -> int:
    from runtime.engine.views import directory_or_raise, open_tasks_of, person_json

    svc = ctx.services()
    directory = directory_or_raise(svc)
    rows = []
    for pid in sorted(directory.people):
        person, groups = directory.people[pid], directory.groups_of(pid)
        rows.append((person, groups, len(open_tasks_of(svc, [pid, *groups]))))
    if ctx.args.json:
        render.emit_json([{**person_json(p, g), "open_tasks": n} for p, g, n in rows])
        return OK
    render.table([(p.person_id, p.name, p.email, p.timezone,
                   "immediate" if p.digest_at is None else f"digest {p.digest_at:%H:%M}",
                   p.manager, ", ".join(g), n) for p, g, n in rows],
                 ("person", "name", "email", "zone", "delivery", "manager", "groups", "open tasks"))
    render.out(f"{len(directory.people)} people, {len(directory.groups)} groups")
    return OK


def cmd_people_show(ctx: Ctx) -> int:
    from runtime.engine.views import OPEN_TASKS_SHOWN, person_view

    person, tasks = person_view(ctx.services(), ctx.args.person_id)
    if ctx.args.json:
        render.emit_json({"person": person, "open_tasks": [t.to_json() for t in tasks]})
        return OK
    delivery = person["delivery"]
    render.out(f"person   {person['person_id']}  ({person['name']})")
    render.out(f"email    {person['email'] or '-'}")
    render.out(f"chat     {person['chat'] or '-'}")
    render.out(f"zone     {person['timezone']}")
    render.out("delivery " + (delivery if isinstance(delivery, str)
                              else f"digest at {delivery['digest']} {person['timezone']}"))
    render.out(f"manager  {person['manager'] or '-'}")
    render.out(f"groups   {', '.join(person['groups']) or '-'}")
    render.out()
    render.out(f"{len(tasks)} open task{'s' if len(tasks) != 1 else ''}"
               + (f" (the first {OPEN_TASKS_SHOWN})" if len(tasks) >= OPEN_TASKS_SHOWN else ""))
    if tasks:
        render.tasks(tasks)
    return OK


def by_recipient(ctx: Ctx, at: Any, routed: list[Any]) -> int:
    """``reminders due --by-recipient``: who would receive which of the reminders due."""
    from runtime.engine.routing import directory_of
    from runtime.rules.reminders import is_late

    directory = directory_of(ctx.services())
    per: dict[str | None, list[tuple[Any, Any]]] = {}
    for firing, recipients in routed:
        for rcpt in recipients or [None]:
            per.setdefault(rcpt.person_id if rcpt else None, []).append((firing, rcpt))
    order = sorted(per, key=lambda k: (k is None, k or ""))
    if ctx.args.json:
        out = []
        for pid in order:
            person = directory.people.get(pid) if pid else None
            out.append({
                "person_id": pid, "name": person.name if person else None,
                "email": person.email if person else None,
                "reminders": [{"reminder_id": f.reminder_id, "kind": str(f.kind),
                               "entity_type": f.entity_type, "entity_id": f.entity_id,
                               "bundle_id": f.bundle_id, "task_id": f.task_id,
                               "fire_at": f.fire_at.isoformat(), "late": is_late(f.fire_at, at),
                               "reason": r.reason if r else None,
                               "delivery": r.delivery if r else None,
                               "digest_at": r.digest_at.isoformat() if r and r.digest_at else None,
                               "summary": f.summary} for f, r in per[pid]],
            })
        render.emit_json(out)
        return OK
    render.out(f"{len(routed)} reminders due at {at.isoformat()} and not yet recorded, for "
               f"{len([k for k in per if k])} people (nothing recorded)")
    if not directory:
        render.out(f"no people directory in {ctx.content_dir}/people: reminders go to the sinks only")
    for pid in order:
        person = directory.people.get(pid) if pid else None
        render.out()
        render.out(f"{pid} ({person.name}, {person.email or 'no email'})" if person else
                   "nobody (the sinks only)")
        render.table([(f.fire_at.isoformat(), f.kind, f.entity_id,
                       r.reason if r else "-",
                       ("digest " + r.digest_at.isoformat()) if r and r.digest_at else "now")
                      for f, r in per[pid]],
                     ("fire_at", "kind", "entity", "why", "sent"))
    return OK
