"""The HTTP API in-process (Starlette's TestClient), on SQLite and PostgreSQL: every route,
every error status, auth and roles, the actor rule, ETag/If-Match, Idempotency-Key, paging and
an artifact upload that satisfies an artifact proof."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient

from runtime import engine
from runtime.artifacts import LocalArtifactStore
from runtime.clock import FixedClock
from runtime.content import load_content
from runtime.engine import Services
from runtime.engine.reminders import sweep
from runtime.model import IdempotencyKey, Task
from runtime.model.commands import CreateToken, build
from runtime.model.common import utc
from runtime.server import create_app
from tests.conftest import need_server, store_url
from tests.helpers import verified
from tests.unit.test_large_bundles import big_definition

VAT = "vat-return/2026-11-02"
EXPORT = f"{VAT}/collect-invoices"  # proof: an artifact (PDF or ZIP)
PODCAST = "podcast-episode/2026-12-01"
BOOK = f"{PODCAST}/book-guest"  # proof: an https URL and an artifact
PROBLEM = "application/problem+json"
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 64


@dataclass
class Api:
    client: TestClient
    svc: Services
    tokens: dict[str, str]

    def h(self, role: str = "operator", **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}", **extra}

    def get(self, path: str, role: str = "viewer", **kw: Any) -> Any:
        return self.client.get(path, headers=self.h(role, **kw.pop("headers", {})), **kw)

    def post(self, path: str, json: Any = None, role: str = "operator", **kw: Any) -> Any:
        return self.client.post(path, json=json, headers=self.h(role, **kw.pop("headers", {})),
                                **kw)


def make_api(url: str, content_dir: Path, tmp_path: Path, max_upload: int = 1 << 20) -> Api:
    from runtime.store import open_store

    (content_dir / "workflows" / "big.yaml").write_text(yaml.safe_dump(big_definition(500)))
    content = load_content(content_dir)
    svc = Services(open_store(url), FixedClock(utc(2026, 11, 25, 8, 0)), "setup",
                   LocalArtifactStore(tmp_path / "artifacts"), lambda: content)
    tokens = {}
    for role, actor in (("viewer", "vera"), ("operator", "otto"), ("admin", "ada")):
        _, tokens[role] = engine.handle(svc, build(CreateToken, actor=actor, role=role))
    client = TestClient(create_app(svc, max_upload_bytes=max_upload),
                        raise_server_exceptions=False)
    return Api(client, svc, tokens)


@pytest.fixture(params=["sqlite", "postgres"])
def api(request: pytest.FixtureRequest, tmp_path: Path, content_dir: Path) -> Any:
    need_server(request, request.param)
    a = make_api(store_url(request.param, tmp_path, "api"), content_dir, tmp_path)
    yield a
    a.client.close()
    a.svc.store.close()


def created(api: Api, template: str = "vat-return", anchor: str = "2026-11-02") -> Any:
    r = api.post("/v1/bundles", {"template_id": template, "anchor_date": anchor})
    assert r.status_code in (200, 201), r.text
    return r.json()


def problem_of(r: Any, status: int) -> dict[str, Any]:
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"] == PROBLEM
    body = r.json()
    assert body["status"] == status and body["type"].startswith("urn:dataops:problem:")
    assert body["title"] and body["detail"]
    return dict(body)


# ---- a whole lifecycle -----------------------------------------------------------------------


def test_a_task_lifecycle_through_the_api_audited_as_the_tokens_actor(api: Api) -> None:
    r = api.post("/v1/bundles", {"template_id": "podcast-episode", "anchor_date": "2026-12-01"})
    assert r.status_code == 201 and r.headers["etag"] == '"1"'
    assert r.json()["bundle"]["bundle_id"] == PODCAST and len(r.json()["tasks"]) == 8
    again = api.post("/v1/bundles", {"template_id": "podcast-episode", "anchor_date": "2026-12-01"})
    assert again.status_code == 200 and again.json()["bundle"] == r.json()["bundle"]

    assert api.post(f"/v1/tasks/{BOOK}/start", {}).json()["status"] == "in_progress"
    r = api.post(f"/v1/tasks/{BOOK}/done")
    body = problem_of(r, 409)
    assert len(body["missing"]) == 2 and any("Booking confirmation" in m for m in body["missing"])
    r = api.post(f"/v1/tasks/{BOOK}/proof", {"kind": "url", "url": "https://cal.example.com/b/1"})
    assert r.status_code == 200 and r.json()["proof"][0]["by"] == "otto"
    r = api.client.post(f"/v1/tasks/{BOOK}/artifacts", headers=api.h(),
                        files={"file": ("release.png", PNG, "application/octet-stream")})
    assert r.status_code == 201, r.text
    entry = r.json()["proof"][1]
    assert entry["kind"] == "artifact" and entry["content_type"] == "image/png"  # sniffed
    r = api.post(f"/v1/tasks/{BOOK}/done")
    assert r.status_code == 200 and r.json()["status"] == "done"
    assert r.json()["completed_by"] == "otto"

    events = api.get("/v1/audit", params={"entity_id": BOOK}).json()["items"]
    assert [e["action"] for e in events] == ["create", "start", "attach", "attach", "complete"]
    assert {e["actor"] for e in events[1:]} == {"otto"}
    verified(api.svc.store)


def test_every_task_command_route(api: Api) -> None:
    created(api)
    tid = EXPORT
    assert api.post(f"/v1/tasks/{tid}/assign", {"assignee": "grace"}).json()["assignee"] == "grace"
    r = api.post(f"/v1/tasks/{tid}/comments", {"body": "on it"})
    assert r.json()["comments"][-1]["author"] == "otto"
    api.post(f"/v1/tasks/{tid}/start")
    r = api.post(f"/v1/tasks/{tid}/wait", {"waiting_for": "the bank",
                                            "follow_up_at": "2026-11-27T09:00:00+01:00"})
    assert r.status_code == 200 and r.json()["status"] == "waiting"
    assert r.json()["follow_up_at"] == "2026-11-27T08:00:00+00:00"
    assert api.post(f"/v1/tasks/{tid}/resume").json()["status"] == "in_progress"
    r = api.post(f"/v1/tasks/{tid}/proof", {"kind": "comment", "body": "exported by hand"})
    assert r.json()["proof"][-1]["kind"] == "comment"
    r = api.post(f"/v1/tasks/{tid}/proof", {"kind": "external_status", "system": "bank",
                                             "value": "ok"})
    assert r.json()["proof"][-1]["system"] == "bank"
    assert api.post(f"/v1/tasks/{tid}/cancel", {"reason": "moved"}).json()["status"] == "cancelled"
    assert api.post(f"/v1/tasks/{tid}/reopen", {"reason": "back"}).json()["status"] == "in_progress"
    assert api.get(f"/v1/tasks/{tid}").json()["status"] == "in_progress"


def test_bundle_routes_links_cancel_and_lists(api: Api) -> None:
    view = created(api, "podcast-episode", "2026-12-01")
    keys = [lk["key"] for lk in view["bundle"]["required_bundle_links"]]
    r = api.post(f"/v1/bundles/{PODCAST}/links", {"key": keys[0], "url": "https://drive.example.com/x"})
    assert r.status_code == 200 and r.json()["bundle"]["required_bundle_links"][0]["url"]
    assert api.get(f"/v1/bundles/{PODCAST}").headers["etag"] == r.headers["etag"]
    created(api)
    page = api.get("/v1/bundles", params={"template_id": "vat-return"}).json()
    assert [b["bundle_id"] for b in page["items"]] == [VAT] and page["next_cursor"] is None
    r = api.post(f"/v1/bundles/{PODCAST}/cancel", {"reason": "guest cancelled"})
    assert r.json()["bundle"]["status"] == "cancelled"
    assert {t["status"] for t in r.json()["tasks"]} == {"cancelled"}
    assert [b["bundle_id"] for b in api.get("/v1/bundles", params={"status": "cancelled"}
                                            ).json()["items"]] == [PODCAST]
    problem_of(api.get("/v1/bundles", params={"status": "nope"}), 422)


def test_templates_reminders_preview_and_health(api: Api) -> None:
    items = api.get("/v1/templates").json()["items"]
    assert {"vat-return", "podcast-episode", "big"} <= {t["template_id"] for t in items}
    assert api.get("/v1/templates/vat-return").json()["template_id"] == "vat-return"
    problem_of(api.get("/v1/templates/nope"), 404)
    created(api)
    preview = api.get("/v1/reminders", params={"at": "2026-12-31T09:00:00+01:00"}).json()
    assert preview["items"] and {i["kind"] for i in preview["items"]} >= {"due", "overdue"}
    assert api.svc.store.page(type(api.svc.store).__mro__[0] and Task).items  # nothing recorded:
    from runtime.model import Reminder

    assert api.svc.store.page(Reminder).items == []
    problem_of(api.get("/v1/reminders", params={"at": "2026-12-31T09:00:00"}), 422)  # naive
    r = api.client.get("/v1/health")
    assert r.status_code == 200 and r.json()["status"] == "ok"


def test_people_and_their_open_tasks(api: Api) -> None:
    people = api.get("/v1/people").json()["items"]
    assert [p["person_id"] for p in people] == ["ada", "bob", "carmen", "dev", "grace"]
    assert people[1]["delivery"] == {"digest": "08:30"} and people[0]["groups"] == ["bookkeeper"]
    created(api)
    ada = api.get("/v1/people/ada").json()
    assert ada["person"]["email"] == "ada@example.com"
    assert ada["open_tasks"] and {t["assignee"] for t in ada["open_tasks"]} == {"bookkeeper"}
    assert api.client.get("/v1/people").status_code == 401
    assert "is a group (ada, bob)" in problem_of(api.get("/v1/people/bookkeeper"), 404)["detail"]
    problem_of(api.get("/v1/people/zed"), 404)


def test_paging_through_a_500_task_bundle(api: Api) -> None:
    created(api, "big", "2026-12-01")
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"bundle_id": "big/2026-12-01", "limit": 77}
        if cursor:
            params["cursor"] = cursor
        page = api.get("/v1/tasks", params=params).json()
        seen += [t["task_id"] for t in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 7 and len(seen) == 500 == len(set(seen))
    assert seen == [f"big/2026-12-01/t{i:03d}" for i in range(500)]
    everything = api.get("/v1/tasks", params={"limit": 1000}).json()
    assert len(everything["items"]) == 500
    problem_of(api.get("/v1/tasks", params={"cursor": "garbage!"}), 422)
    problem_of(api.get("/v1/tasks", params={"limit": 0}), 422)


# ---- auth, roles, the actor rule --------------------------------------------------------------


def test_no_bad_or_revoked_token_is_401_and_roles_are_403(api: Api) -> None:
    created(api)
    r = api.client.get("/v1/tasks")
    assert problem_of(r, 401) and r.headers["www-authenticate"].startswith("Bearer")
    for bad in ("nonsense", "dop.tok-0.x", api.tokens["viewer"] + "x", "Basic abc"):
        header = bad if bad.startswith("Basic") else f"Bearer {bad}"
        problem_of(api.client.get("/v1/tasks", headers={"Authorization": header}), 401)
    r = api.post(f"/v1/tasks/{EXPORT}/start", role="viewer")
    assert "operator" in problem_of(r, 403)["detail"]
    assert api.get(f"/v1/tasks/{EXPORT}").json()["status"] == "todo"  # nothing changed
    problem_of(api.get("/v1/tokens", role="operator"), 403)
    tokens = api.get("/v1/tokens", role="admin").json()["items"]
    assert {t["actor"] for t in tokens} == {"vera", "otto", "ada"}
    assert all("token_sha256" not in t and "token" not in t for t in tokens)
    viewer = next(t for t in tokens if t["actor"] == "vera")
    r = api.post(f"/v1/tokens/{viewer['token_id']}/revoke", role="admin")
    assert r.status_code == 200 and r.json()["revoked_by"] == "ada"
    problem_of(api.get("/v1/tasks"), 401)


def test_a_body_that_sets_the_actor_is_refused(api: Api) -> None:
    created(api)
    r = api.post(f"/v1/tasks/{EXPORT}/comments", {"body": "hi", "actor": "mallory"})
    body = problem_of(r, 422)
    assert "actor" in body["detail"] and "token" in body["detail"]
    assert api.get(f"/v1/tasks/{EXPORT}").json()["comments"] == []


# ---- errors -----------------------------------------------------------------------------------


def test_every_error_status_is_problem_json(api: Api) -> None:
    created(api)
    r = api.client.post(f"/v1/tasks/{EXPORT}/comments", content=b"{not json",
                        headers=api.h(**{"Content-Type": "application/json"}))
    problem_of(r, 400)
    problem_of(api.get("/v1/tasks/no/such/task"), 404)
    problem_of(api.post("/v1/tasks/no/such/task/start"), 404)
    problem_of(api.get("/v1/nowhere"), 404)
    problem_of(api.post(f"/v1/tasks/{EXPORT}/done"), 409)
    problem_of(api.post(f"/v1/tasks/{EXPORT}/assign", {}), 422)
    problem_of(api.post(f"/v1/tasks/{EXPORT}/proof", {"kind": "url", "url": "ftp://x"}), 422)
    body = problem_of(api.post(f"/v1/tasks/{EXPORT}/proof", {"kind": "url", "body": "x"}), 422)
    assert "url" in body["detail"]
    problem_of(api.post(f"/v1/tasks/{EXPORT}/wait", {"waiting_for": "x",
                                                     "follow_up_at": "2026-11-27T09:00"}), 422)
    problem_of(api.post("/v1/bundles", {"template_id": "vat-return", "anchor_date": "soon"}), 422)
    problem_of(api.post("/v1/bundles", {"template_id": "nope", "anchor_date": "2026-01-01"}), 404)
    problem_of(api.post("/v1/bundles", [1, 2]), 422)
    big = api.client.post(f"/v1/tasks/{EXPORT}/comments", content=b"x" * (2 << 20),
                          headers=api.h(**{"Content-Type": "application/json"}))
    problem_of(big, 413)
    streamed = api.client.post(f"/v1/tasks/{EXPORT}/comments",  # no Content-Length
                               content=iter([b'{"body": "', b"x" * (2 << 20), b'"}']),
                               headers=api.h(**{"Content-Type": "application/json"}))
    problem_of(streamed, 413)
    wrong_method = api.client.delete(f"/v1/tasks/{EXPORT}", headers=api.h())
    assert wrong_method.status_code == 405 and wrong_method.headers["content-type"] == PROBLEM


def test_a_store_fault_is_503_with_retry_after_and_changes_nothing(api: Api) -> None:
    created(api)

    def failing(*_: Any) -> None:
        from runtime.errors import StoreReadOnly

        raise StoreReadOnly(api.svc.store.url, "the database is read-only")

    real = api.svc.store.commit
    api.svc.store.commit = failing  # type: ignore[method-assign]
    try:
        r = api.post(f"/v1/tasks/{EXPORT}/start")
    finally:
        api.svc.store.commit = real  # type: ignore[method-assign]
    assert problem_of(r, 503) and r.headers["retry-after"] == "1"
    assert api.get(f"/v1/tasks/{EXPORT}").json()["status"] == "todo"


def test_ids_with_slashes_work_percent_encoded_too(api: Api) -> None:
    created(api)
    encoded = EXPORT.replace("/", "%2F")
    assert api.get(f"/v1/tasks/{encoded}").json()["task_id"] == EXPORT
    assert api.get(f"/v1/bundles/{VAT.replace('/', '%2F')}").json()["bundle"]["bundle_id"] == VAT


# ---- ETag and If-Match -----------------------------------------------------------------------


def test_if_match_of_a_stale_version_is_412_and_changes_nothing(api: Api) -> None:
    created(api)
    etag = api.get(f"/v1/tasks/{EXPORT}").headers["etag"]
    assert etag == '"1"'
    r = api.post(f"/v1/tasks/{EXPORT}/assign", {"assignee": "grace"}, headers={"If-Match": etag})
    assert r.status_code == 200 and r.headers["etag"] == '"2"'
    r = api.post(f"/v1/tasks/{EXPORT}/start", headers={"If-Match": etag})
    body = problem_of(r, 412)
    assert "version 2" in body["detail"]
    assert api.get(f"/v1/tasks/{EXPORT}").json()["status"] == "todo"
    assert api.post(f"/v1/tasks/{EXPORT}/start", headers={"If-Match": 'W/"2"'}).status_code == 200
    assert api.post(f"/v1/tasks/{EXPORT}/comments", {"body": "x"},
                    headers={"If-Match": "*"}).status_code == 200
    problem_of(api.post(f"/v1/tasks/{EXPORT}/start", headers={"If-Match": "yesterday"}), 422)
    b = api.get(f"/v1/bundles/{VAT}").headers["etag"]
    problem_of(api.post(f"/v1/bundles/{VAT}/cancel", {"reason": "x"},
                        headers={"If-Match": f'"{int(b.strip(chr(34))) + 5}"'}), 412)
    assert api.post(f"/v1/bundles/{VAT}/cancel", {"reason": "x"},
                    headers={"If-Match": b}).status_code == 200


def test_if_match_on_a_task_survives_a_race_lost_only_on_its_bundle(api: Api) -> None:
    """Two tasks of one bundle closing at once conflict on the bundle: the loser re-reads; its
    task is still at the version named, so it goes through rather than failing with 412."""
    view = created(api)
    ids = [t["task_id"] for t in view["tasks"][:2]]
    for tid in ids:
        api.post(f"/v1/tasks/{tid}/start")
    barrier = threading.Barrier(2)
    results: list[int] = []

    def cancel(tid: str) -> None:
        etag = api.get(f"/v1/tasks/{tid}").headers["etag"]
        barrier.wait()
        results.append(api.post(f"/v1/tasks/{tid}/cancel", {"reason": "r"},
                                headers={"If-Match": etag}).status_code)

    threads = [threading.Thread(target=cancel, args=(t,)) for t in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [200, 200]


# ---- Idempotency-Key ----------------------------------------------------------------------------


def test_idempotency_key_replays_the_first_answer_and_writes_nothing(api: Api) -> None:
    created(api)
    key = {"Idempotency-Key": "c0ffee-1"}
    first = api.post(f"/v1/tasks/{EXPORT}/comments", {"body": "once"}, headers=key)
    again = api.post(f"/v1/tasks/{EXPORT}/comments", {"body": "once"}, headers=key)
    assert first.status_code == again.status_code == 200
    assert again.content == first.content and again.headers["etag"] == first.headers["etag"]
    assert again.headers["idempotent-replayed"] == "true"
    assert len(api.get(f"/v1/tasks/{EXPORT}").json()["comments"]) == 1
    # a rejection is an answer too: replayed, not re-run
    rejected = api.post(f"/v1/tasks/{EXPORT}/done", headers={"Idempotency-Key": "k2"})
    assert rejected.status_code == 409
    assert api.post(f"/v1/tasks/{EXPORT}/done",
                    headers={"Idempotency-Key": "k2"}).content == rejected.content
    # bundle create with a key: 201 replayed as 201
    k3 = {"Idempotency-Key": "k3"}
    body = {"template_id": "podcast-episode", "anchor_date": "2026-12-01"}
    assert api.post("/v1/bundles", body, headers=k3).status_code == 201
    assert api.post("/v1/bundles", body, headers=k3).status_code == 201


def test_idempotency_key_misuse(api: Api) -> None:
    created(api)
    key = {"Idempotency-Key": "k"}
    api.post(f"/v1/tasks/{EXPORT}/comments", {"body": "one"}, headers=key)
    body = problem_of(api.post(f"/v1/tasks/{EXPORT}/comments", {"body": "two"}, headers=key), 422)
    assert "another request" in body["detail"]
    problem_of(api.post(f"/v1/tasks/{EXPORT}/start", headers=key), 422)  # another path
    problem_of(api.post(f"/v1/tasks/{EXPORT}/start", headers={"Idempotency-Key": ""}), 422)
    problem_of(api.post(f"/v1/tasks/{EXPORT}/start", headers={"Idempotency-Key": "x" * 300}), 422)
    # another actor's key of the same name is another key
    admin = api.post(f"/v1/tasks/{EXPORT}/comments", {"body": "two"}, headers=key, role="admin")
    assert admin.status_code == 200
    assert len(api.get(f"/v1/tasks/{EXPORT}").json()["comments"]) == 2


def test_a_key_still_running_is_409_and_a_try_again_answer_is_not_kept(api: Api) -> None:
    created(api)
    store, now = api.svc.store, api.svc.now()
    from runtime.server.idempotency import _key_id, fingerprint
    from runtime.store import Changes

    path = f"/v1/tasks/{EXPORT}/start"
    pending = IdempotencyKey(key_id=_key_id("otto", "busy"), actor="otto", method="POST",
                             path=path, request_sha256=fingerprint("POST", path, None, b""),
                             state="pending", created_at=now, expires_at=now, version=1)
    store.commit(Changes(creates=[pending.model_copy(update={"expires_at": utc(2026, 11, 26)})]))
    r = api.post(path, headers={"Idempotency-Key": "busy"})
    assert problem_of(r, 409)["type"].endswith("idempotency-key-in-use")
    assert r.headers["retry-after"] == "1"

    def busy(*_: Any) -> None:
        from runtime.errors import ThrottledError

        raise ThrottledError("busy")

    real = store.commit
    calls = {"n": 0}

    def once_busy(changes: Any) -> None:
        if any(isinstance(u, Task) for u, _ in changes.updates) and calls["n"] == 0:
            calls["n"] += 1
            busy()
        real(changes)

    store.commit = once_busy  # type: ignore[method-assign]
    try:
        assert api.post(path, headers={"Idempotency-Key": "retry-me"}).status_code == 503
        ok = api.post(path, headers={"Idempotency-Key": "retry-me"})
    finally:
        store.commit = real  # type: ignore[method-assign]
    assert ok.status_code == 200 and "idempotent-replayed" not in ok.headers


def test_the_sweep_purges_expired_keys(api: Api) -> None:
    created(api)
    api.post(f"/v1/tasks/{EXPORT}/comments", {"body": "x"}, headers={"Idempotency-Key": "old"})
    assert api.svc.store.page  # the key is kept ...
    later = Services(api.svc.store, FixedClock(utc(2026, 11, 26, 8, 1)), "scheduler",
                     api.svc.artifacts, api.svc.content_loader)
    report = sweep(later, [], schedules=False)
    assert report.keys_purged == 1
    again = api.post(f"/v1/tasks/{EXPORT}/comments", {"body": "x"},
                     headers={"Idempotency-Key": "old"})
    assert "idempotent-replayed" not in again.headers  # ... until 24 hours later (clock fixed)


# ---- uploads ------------------------------------------------------------------------------------


def test_an_uploaded_file_satisfies_an_artifact_proof(api: Api) -> None:
    created(api)
    api.post(f"/v1/tasks/{EXPORT}/start")
    csv = b"%PDF-1.4\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n"
    r = api.client.post(f"/v1/tasks/{EXPORT}/artifacts", headers=api.h(),
                        files={"file": ("invoices.pdf", csv, "application/octet-stream")})
    assert r.status_code == 201, r.text
    entry = r.json()["proof"][0]
    assert entry["kind"] == "artifact" and entry["value"] == "invoices.pdf"
    assert entry["content_type"] == "application/pdf"  # sniffed from the bytes
    from runtime.model import Artifact

    art = api.svc.store.get(Artifact, entry["artifact_id"])
    assert art.size_bytes == len(csv) and art.created_by == "otto"
    assert api.svc.artifacts is not None and api.svc.artifacts.get(art.location) == csv
    assert api.post(f"/v1/tasks/{EXPORT}/done").json()["status"] == "done"


def test_upload_errors(api: Api) -> None:
    created(api)
    url = f"/v1/tasks/{EXPORT}/artifacts"
    problem_of(api.client.post(url, headers=api.h(), files={"file": ("big.bin", b"x" * (2 << 20))}),
               413)
    problem_of(api.client.post(url, headers=api.h(), files={"other": ("a.txt", b"x")}), 422)
    problem_of(api.client.post(url, headers=api.h(), json={"file": "x"}), 422)
    problem_of(api.client.post("/v1/tasks/no/such/artifacts", headers=api.h(),
                               files={"file": ("a.txt", b"x")}), 404)
    problem_of(api.client.post(url, headers=api.h("viewer"), files={"file": ("a.txt", b"x")}), 403)

    def chunked() -> Any:  # no Content-Length: cut off while it streams in
        boundary = b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\"\r\n\r\n"
        yield boundary
        for _ in range(40):
            yield b"x" * 65536
        yield b"\r\n--b--\r\n"

    r = api.client.post(url, headers=api.h(**{"Content-Type": "multipart/form-data; boundary=b"}),
                        content=chunked())
    problem_of(r, 413)
    assert api.get(f"/v1/tasks/{EXPORT}").json()["proof"] == []


# ---- OpenAPI -------------------------------------------------------------------------------------


def test_openapi_lists_every_route_with_its_error_statuses(api: Api) -> None:
    doc = api.client.get("/openapi.json").json()
    paths = doc["paths"]
    for route in ("/v1/bundles", "/v1/tasks/{task_id}/wait", "/v1/tasks/{task_id}/artifacts",
                  "/v1/tasks/{task_id}/proof", "/v1/audit", "/v1/reminders", "/v1/health"):
        assert route in paths
    wait = paths["/v1/tasks/{task_id}/wait"]["post"]["responses"]
    for status in ("409", "412", "422", "401", "403", "404"):
        assert wait[status]["content"] == {PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}}
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    assert "actor" not in doc["components"]["schemas"]["CommentTaskBody"]["properties"]


# ---- assistant jobs -----------------------------------------------------------------------------


def test_job_routes_enqueue_claim_heartbeat_complete_with_a_file(api: Api) -> None:
    created(api)
    api.post(f"/v1/tasks/{EXPORT}/start")
    r = api.post("/v1/jobs", {"task_id": EXPORT, "kind": "fetch", "input": {"bank": "acme"}})
    assert r.status_code == 201 and r.json()["status"] == "queued"
    job_id = r.json()["assistant_job_id"]
    assert api.post("/v1/jobs/claim", {"kinds": ["other"]}).status_code == 204
    r = api.post("/v1/jobs/claim", {"kinds": ["fetch"], "lease_seconds": 60})
    assert r.status_code == 200 and r.json()["worker"] == "otto" and r.json()["attempts"] == 1
    r = api.post(f"/v1/jobs/{job_id}/heartbeat", {"worker": "otto", "lease_seconds": 120})
    assert r.status_code == 200 and r.headers["etag"] == f'"{r.json()["version"]}"'
    problem_of(api.post(f"/v1/jobs/{job_id}/heartbeat", {"worker": "mallory"}), 409)
    pdf = b"%PDF-1.4\n%%EOF\n"
    r = api.client.post(f"/v1/jobs/{job_id}/complete", headers=api.h(),
                        data={"output": '{"pages": 2}', "worker": "otto"},
                        files={"file": ("statement.pdf", pdf, "application/octet-stream")})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "succeeded" and r.json()["output"] == {"pages": 2}
    assert r.json()["output_artifact_id"]
    assert api.post(f"/v1/tasks/{EXPORT}/done").json()["status"] == "done"  # the file is proof
    assert api.get(f"/v1/jobs/{job_id}").json()["status"] == "succeeded"
    listed = api.get("/v1/jobs", params={"task_id": EXPORT}).json()
    assert [j["assistant_job_id"] for j in listed["items"]] == [job_id]


def test_job_routes_fail_cancel_and_errors(api: Api) -> None:
    created(api)
    job = api.post("/v1/jobs", {"task_id": EXPORT, "kind": "k", "max_attempts": 1}).json()
    api.post("/v1/jobs/claim", {})
    r = api.post(f"/v1/jobs/{job['assistant_job_id']}/fail", {"error": "boom"})
    assert r.json()["status"] == "failed" and r.json()["error"] == "boom"
    other = api.post("/v1/jobs", {"task_id": EXPORT, "kind": "k"}).json()
    r = api.post(f"/v1/jobs/{other['assistant_job_id']}/cancel")
    assert r.json()["status"] == "cancelled"
    problem_of(api.post(f"/v1/jobs/{other['assistant_job_id']}/cancel"), 409)
    problem_of(api.post("/v1/jobs", {"task_id": "no/such", "kind": "k"}), 404)
    problem_of(api.post("/v1/jobs", {"task_id": EXPORT, "kind": "k", "actor": "x"}), 422)
    problem_of(api.post("/v1/jobs/claim", {"lease_seconds": 0}), 422)
    problem_of(api.post("/v1/jobs/job-nope/heartbeat"), 404)
    problem_of(api.post(f"/v1/jobs/{other['assistant_job_id']}/fail", {}), 422)
    problem_of(api.client.post(f"/v1/jobs/{other['assistant_job_id']}/complete",
                               headers=api.h(), json={"output": [1]}), 422)
    problem_of(api.get("/v1/jobs", params={"status": "odd"}), 422)
    problem_of(api.post("/v1/jobs", {"task_id": EXPORT, "kind": "k"}, role="viewer"), 403)
