"""Artifact binaries in S3 (`--artifacts s3://BUCKET/prefix?endpoint_url=URL`), against a moto
server on 127.0.0.1 (its S3 over HTTP; nothing patches boto3 inside the process): attach a file,
read it back by the artifact's location, export it with --with-binaries and import it into a
store whose binaries live in another bucket; a missing bucket or a damaged object is one line
naming the bucket and what to do."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import boto3  # a dev dependency: a missing one fails loudly, it is never skipped
import pytest

from runtime.artifacts_s3 import ArtifactsFault, S3ArtifactStore
from runtime.errors import NotFoundError

TASK = "vat-return/2026-11-02/collect-invoices"


@pytest.fixture
def endpoint(moto_endpoint: str) -> str:
    return moto_endpoint


@pytest.fixture
def s3(endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    return boto3.client("s3", endpoint_url=endpoint)


def bucket(s3: Any, name: str) -> str:
    s3.create_bucket(Bucket=name)
    return name


def test_put_is_content_addressed_idempotent_and_checked_on_read(s3: Any, endpoint: str) -> None:
    store = S3ArtifactStore(f"s3://{bucket(s3, 'blobs-a')}/team/x?endpoint_url={endpoint}")
    data = b"%PDF-1.4 the invoices\n"
    sha = hashlib.sha256(data).hexdigest()
    first = store.put(data)
    assert first.location == f"s3://blobs-a/team/x/sha256/{sha[:2]}/{sha}"
    assert (first.sha256, first.size_bytes) == (sha, len(data))
    # a second put of the same bytes: S3 refuses it (If-None-Match: *), which is success
    assert store.put(data) == first
    assert store.get(first.location) == data == store.get_sha256(sha)
    with pytest.raises(NotFoundError):
        store.get_sha256("0" * 64)
    with pytest.raises(NotFoundError, match="not under s3://blobs-a/team/x"):
        store.get(f"s3://other/team/x/sha256/{sha[:2]}/{sha}")
    # an object that no longer holds its bytes is refused, naming what to do
    s3.put_object(Bucket="blobs-a", Key=f"team/x/sha256/{sha[:2]}/{sha}", Body=b"tampered")
    with pytest.raises(ArtifactsFault, match="holds other bytes"):
        store.get_sha256(sha)


def test_a_missing_bucket_is_one_line_naming_it(s3: Any, endpoint: str) -> None:
    store = S3ArtifactStore(f"s3://no-such-bucket/p?endpoint_url={endpoint}")
    with pytest.raises(ArtifactsFault) as err:
        store.put(b"x")
    assert str(err.value) == ("artifacts s3://no-such-bucket/p: cannot write: the bucket "
                              "'no-such-bucket' does not exist; create it")


def test_the_cli_attaches_to_s3_and_the_export_carries_the_binary(
        s3: Any, endpoint: str, cli: Any, tmp_path: Path) -> None:
    src = f"s3://{bucket(s3, 'team-src')}/artifacts?endpoint_url={endpoint}"
    dst = f"s3://{bucket(s3, 'team-dst')}/moved?endpoint_url={endpoint}"
    assert cli("bundle", "create", "vat-return", "--anchor", "2026-11-02").code == 0
    pdf = tmp_path / "invoices.pdf"
    pdf.write_bytes(b"%PDF-1.4 invoices of the quarter\n")
    r = cli("--artifacts", src, "task", "attach", TASK, "--file", str(pdf), "--json")
    assert r.code == 0, r.err
    [proof] = [p for p in r.json()["proof"] if p["kind"] == "artifact"]
    sha = hashlib.sha256(pdf.read_bytes()).hexdigest()
    listed = s3.list_objects_v2(Bucket="team-src")["Contents"]
    assert [o["Key"] for o in listed] == [f"artifacts/sha256/{sha[:2]}/{sha}"]
    out = tmp_path / "export"
    r = cli("--artifacts", src, "export", "--out", str(out), "--with-binaries")
    assert r.code == 0, r.err
    [artifact] = [json.loads(line) for line in (out / "artifacts.jsonl").read_text().splitlines()]
    assert artifact["artifact_id"] == proof["artifact_id"]
    assert artifact["location"] == f"s3://team-src/artifacts/sha256/{sha[:2]}/{sha}"
    assert (out / "blobs" / sha).read_bytes() == pdf.read_bytes()
    # into another store whose binaries live in another bucket
    other = f"sqlite:///{tmp_path / 'other.db'}"
    r = cli("--store", other, "--artifacts", dst, "import", str(out), "--quiet")
    assert r.code == 0, r.err
    assert s3.get_object(Bucket="team-dst", Key=f"moved/sha256/{sha[:2]}/{sha}")["Body"].read() \
        == pdf.read_bytes()


def test_a_misspelt_option_is_one_line_and_writes_nothing(cli: Any, tmp_path: Path,
                                                             s3: Any) -> None:
    assert cli("bundle", "create", "vat-return", "--anchor", "2026-11-02").code == 0
    pdf = tmp_path / "a.pdf"
    pdf.write_bytes(b"%PDF-1.4\n")
    r = cli("--artifacts", "s3://b/p?endpont_url=http://127.0.0.1:9", "task", "attach", TASK,
            "--file", str(pdf))
    assert r.code == 2 and r.err.startswith("error:") and "unknown option 'endpont_url'" in r.err
    assert len(r.err.strip().splitlines()) == 1
    shown = cli("task", "show", TASK, "--json").json()
    assert [p for p in shown["proof"] if p["kind"] == "artifact"] == []


def test_an_unreachable_endpoint_is_one_line_naming_it(s3: Any) -> None:
    from botocore.config import Config

    from tests.smtp import free_port

    closed = f"http://127.0.0.1:{free_port()}"
    # the store's own client retries 5 times with backoff; one attempt shows the same answer
    client = boto3.client("s3", endpoint_url=closed,
                          config=Config(retries={"mode": "standard", "max_attempts": 1},
                                        connect_timeout=2, read_timeout=2))
    store = S3ArtifactStore(f"s3://blobs/p?endpoint_url={closed}", client=client)
    with pytest.raises(ArtifactsFault) as err:
        store.put(b"x")
    message = str(err.value)
    assert message.startswith("artifacts s3://blobs/p: cannot write: ")
    assert "check the endpoint and the network" in message and "\n" not in message
