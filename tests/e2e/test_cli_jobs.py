"""`dataops job ...`: the CLI contract of assistant jobs (DESIGN.md "Assistant jobs")."""

from __future__ import annotations

VAT = "vat-return/2026-11-02"
TASK = f"{VAT}/reconcile-accounts"


def test_enqueue_claim_heartbeat_complete_list_show(run) -> None:
    cli = run
    r = cli("job", "enqueue", TASK, "--kind", "check-ledger", "--input", '{"year": 2026}', "--json")
    assert r.code == 0, r.err
    job = r.json()
    assert job["status"] == "queued" and job["input"] == {"year": 2026}
    empty = cli("job", "claim", "--kind", "other", "--json")
    assert empty.code == 0 and empty.out.strip() == "null"
    claimed = cli("job", "claim", "--kind", "check-ledger", "--worker", "w1", "--json").json()
    assert claimed["assistant_job_id"] == job["assistant_job_id"] and claimed["worker"] == "w1"
    assert cli("job", "heartbeat", job["assistant_job_id"], "--worker", "w1").code == 0
    r = cli("job", "complete", job["assistant_job_id"], "--worker", "w1", "--output",
            '{"ok": true}', "--json")
    assert r.code == 0 and r.json()["status"] == "succeeded" and r.json()["output"] == {"ok": True}
    listed = cli("job", "list", "--task", TASK, "--json").json()
    assert [j["assistant_job_id"] for j in listed] == [job["assistant_job_id"]]
    shown = cli("job", "show", job["assistant_job_id"])
    assert shown.code == 0 and "succeeded" in shown.out and "output" in shown.out
    assert "check-ledger" in cli("job", "list").out


def test_fail_and_cancel_and_mistakes(run) -> None:
    cli = run
    job = cli("job", "enqueue", TASK, "--kind", "k", "--max-attempts", "1", "--json").json()
    cli("job", "claim", "--worker", "w1")
    r = cli("job", "fail", job["assistant_job_id"], "--error", "boom", "--json")
    assert r.code == 0 and r.json()["status"] == "failed"
    assert cli("job", "cancel", job["assistant_job_id"]).code == 3  # over already
    r = cli("job", "enqueue", TASK, "--kind", "k", "--input", "[1]")
    assert r.code == 2 and "--input" in r.err and r.err.count("\n") == 1
    r = cli("job", "enqueue", TASK, "--kind", "k", "--input", "{nope")
    assert r.code == 2 and r.err.startswith("error: --input")
    assert cli("job", "show", "job-nope").code == 5
    assert cli("job", "enqueue", "no/such/task", "--kind", "k").code == 5
    r = cli("job", "list", "--status", "weird")
    assert r.code == 2 and "status" in r.err
    r = cli("job", "claim", "--lease", "0")
    assert r.code == 2 and "lease" in r.err
