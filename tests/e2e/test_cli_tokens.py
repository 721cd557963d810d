"""`dataops token create|list|revoke`: the token shown once, only its hash stored, audited."""

from __future__ import annotations

import hashlib

from runtime.model import ApiToken
from runtime.store import open_store


def test_create_prints_the_token_once_and_stores_only_its_hash(cli, tmp_path) -> None:
    r = cli("token", "create", "--actor", "ada", "--role", "operator", "--json")
    assert r.code == 0, r.err
    made = r.json()
    assert set(made) == {"token_id", "token", "actor", "role"}
    assert made["actor"] == "ada" and made["role"] == "operator"
    assert made["token"].startswith(f"dop.{made['token_id']}.")
    store = open_store(f"sqlite:///{tmp_path / 'cli.db'}")
    try:
        rec = store.get(ApiToken, made["token_id"])
        assert rec.token_sha256 == hashlib.sha256(made["token"].encode()).hexdigest()
        assert rec.created_by == "tester"
        assert made["token"].split(".")[2] not in (tmp_path / "cli.db").read_bytes().decode(
            "latin-1")
    finally:
        store.close()
    plain = cli("token", "create", "--actor", "bob", "--role", "viewer")
    assert plain.code == 0 and plain.out.splitlines()[1].startswith("dop.tok-")


def test_list_shows_no_secret_and_revoke_is_audited(cli) -> None:
    made = cli("token", "create", "--actor", "ada", "--role", "admin", "--json").json()
    listed = cli("token", "list", "--json").json()
    assert [t["token_id"] for t in listed] == [made["token_id"]]
    assert "token_sha256" not in listed[0] and "token" not in listed[0]
    r = cli("token", "revoke", made["token_id"])
    assert r.code == 0 and "revoked" in r.out
    again = cli("token", "revoke", made["token_id"], "--json")
    assert again.code == 0 and again.json()["revoked_by"] == "tester"  # unchanged
    log = cli("audit", "log", "--entity", made["token_id"], "--json").json()
    assert [e["action"] for e in log] == ["create", "revoke"]
    assert cli("audit", "verify").code == 0
    table = cli("token", "list")
    assert "revoked" in table.out and made["token"] not in table.out


def test_token_mistakes_are_one_line_errors(cli) -> None:
    r = cli("token", "revoke", "tok-nope")
    assert r.code == 5 and r.err.startswith("error: no api_token 'tok-nope'")
    r = cli("token", "create", "--actor", "ada", "--role", "root")
    assert r.code == 2 and r.err.startswith("error:")
    r = cli("token", "create", "--actor", "  ", "--role", "viewer")
    assert r.code == 2 and "actor" in r.err and r.err.count("\n") == 1
