"""Artifact binaries in S3 (``--artifacts s3://BUCKET/prefix[?endpoint_url=URL&region=R]``):
content-addressed like the local folder (``PREFIX/sha256/ab/abcdef...``), written with a
conditional put (``If-None-Match: *``: the first writer wins, every later writer of the same
bytes finds them there), read back checked against their sha256. boto3 is imported only when an
``s3://`` location is opened (``pip install 'dataops-runtime[aws]'``).

Transient errors and throttling are retried by botocore's ``standard`` retry mode (not a loop of
ours); what still fails is one :class:`ArtifactsFault` line naming the bucket and what to do.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any
from urllib.parse import parse_qsl, urlparse

from runtime import aws
from runtime.artifacts import StoredBlob
from runtime.errors import DataopsError, InputError, NotFoundError, StoreFault


class ArtifactsFault(StoreFault):
    """The artifact store cannot do what was asked (no bucket, no access, unreachable)."""

    def __init__(self, url: str, detail: str) -> None:
        self.url = url
        DataopsError.__init__(self, f"artifacts {url}: {detail}")


OPTIONS = frozenset({"endpoint_url", "region"})


class S3ArtifactStore:
    def __init__(self, url: str, client: Any = None) -> None:
        parsed = urlparse(url)
        if parsed.scheme != "s3" or not parsed.netloc:
            raise InputError(f"artifacts URL {url!r}: write s3://BUCKET/prefix")
        options = dict(parse_qsl(parsed.query, keep_blank_values=True))
        unknown = sorted(set(options) - OPTIONS)
        if unknown:
            raise InputError(f"artifacts URL {url!r}: unknown option {unknown[0]!r}; s3:// takes "
                             "endpoint_url= and region=")
        self.bucket = parsed.netloc
        self.prefix = parsed.path.strip("/")
        self.url = f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"
        self._client = client if client is not None else aws.client(
            "s3", f"artifacts {url!r}", options, attempts=5)

    def _key(self, sha256: str) -> str:
        key = f"sha256/{sha256[:2]}/{sha256}"
        return f"{self.prefix}/{key}" if self.prefix else key

    def put(self, data: bytes) -> StoredBlob:
        digest = hashlib.sha256(data)
        sha = digest.hexdigest()
        key = self._key(sha)
        try:
            self._client.put_object(
                Bucket=self.bucket, Key=key, Body=data, IfNoneMatch="*",
                ChecksumSHA256=base64.b64encode(digest.digest()).decode("ascii"),
            )
        except Exception as e:
            code = _code(e)
            if code not in ("PreconditionFailed", "ConditionalRequestConflict"):
                raise self._fault(e, "write") from e
            # there already (PreconditionFailed), or being written by another writer of the same
            # bytes (ConditionalRequestConflict): content-addressed, so either way it is ours
        return StoredBlob(sha, len(data), f"s3://{self.bucket}/{key}")

    def get(self, location: str) -> bytes:
        parsed = urlparse(location)
        key = parsed.path.lstrip("/")
        sha = key.rsplit("/", 1)[-1]
        if parsed.scheme != "s3" or parsed.netloc != self.bucket or key != self._key(sha):
            raise NotFoundError("artifact binary", location, f"it is not under {self.url}")
        return self.get_sha256(sha)

    def get_sha256(self, sha256: str) -> bytes:
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise NotFoundError("artifact binary", sha256, "not a sha256")
        try:
            answer = self._client.get_object(Bucket=self.bucket, Key=self._key(sha256))
            data: bytes = answer["Body"].read()
        except Exception as e:
            if _code(e) in ("NoSuchKey", "404", "NotFound"):
                raise NotFoundError("artifact binary", sha256, f"not in {self.url}") from None
            raise self._fault(e, "read") from e
        if hashlib.sha256(data).hexdigest() != sha256:
            raise ArtifactsFault(self.url, f"the object for sha256 {sha256} holds other bytes "
                                           "(damaged or replaced); restore it from an export "
                                           "with --with-binaries")
        return data

    def _fault(self, e: Exception, doing: str) -> ArtifactsFault:
        code = _code(e)
        hints = {
            "NoSuchBucket": f"the bucket {self.bucket!r} does not exist; create it",
            "AccessDenied": "access denied; check the credentials and the bucket's policy",
            "InvalidAccessKeyId": "the access key is not known; check the AWS credentials",
            "SignatureDoesNotMatch": "the secret key does not match; check the AWS credentials",
        }
        if code in hints:
            return ArtifactsFault(self.url, f"cannot {doing}: {hints[code]}")
        if code is None:  # no answer at all: the endpoint is down or unreachable
            return ArtifactsFault(self.url, f"cannot {doing}: {type(e).__name__}: {e}; check "
                                            "the endpoint and the network")
        return ArtifactsFault(self.url, f"cannot {doing}: {code}: {e}")


def _code(e: Exception) -> str | None:
    response = getattr(e, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        return str(code) if code is not None else None
    return None


