from datetime import date

from runtime.engine import create_bundle, fire_task


def test_create_and_start(svc):
    view = create_bundle(svc, "vat-return", date(2026, 11, 2))
    assert view.created
    task = fire_task(svc, view.tasks[0].task_id, "start")
    assert task.status == "in_progress"
    assert task.version == 2


def test_cli_roundtrip(cli):
    r = cli("bundle", "create", "podcast-episode", "--anchor", "2026-12-01", "--json")
    assert r.code == 0, r.err
    assert r.json()["bundle"]["bundle_id"] == "podcast-episode/2026-12-01"
