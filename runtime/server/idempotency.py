"""``Idempotency-Key`` on POST: the first answer is kept in the store and replayed.

The key is claimed with a conditional create (``pending``) before the command runs, and the
answer is written over it (``done``) after; every API server on the store sees both, so a
retried request never runs twice while its key lives (24 hours; the sweep removes it after).

* same key, same request, answered: the answer is replayed (``Idempotent-Replayed: true``);
* same key, another request (method, path, ``If-Match`` or body): 422;
* same key while the first request still runs: 409 with ``Retry-After``;
* an answer that says "try again" (a lost race after the retries, a busy or failing store) is
  not kept: the key is released so the retry runs the command.

A server that dies between claiming a key and answering leaves it ``pending``; after
:data:`PENDING_LEASE` another request with that key runs the command again. The write it made
may have landed: replaying then meets the record as changed (a transition rejected, a second
comment), which is the one case this cannot rule out without writing the key in the command's
own transaction.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable
from datetime import datetime, timedelta

from starlette.responses import Response

from runtime.engine.services import Services
from runtime.errors import ConflictError, IdempotencyKeyInUse, InputError
from runtime.model import IdempotencyKey
from runtime.store.base import Changes

TTL = timedelta(hours=24)
PENDING_LEASE = timedelta(seconds=60)
MAX_KEY = 255
REPLAYED = "Idempotent-Replayed"
KEPT_HEADERS = ("etag", "location")


def fingerprint(method: str, path: str, if_match: str | None, body: bytes) -> str:
    h = hashlib.sha256()
    for part in (method.encode(), path.encode(), (if_match or "").encode()):
        h.update(part + b"\0")
    h.update(body)
    return h.hexdigest()


def check_key(key: str) -> None:
    if not key or len(key) > MAX_KEY or not key.isascii() or not key.isprintable():
        raise InputError(f"Idempotency-Key: give 1 to {MAX_KEY} printable ASCII characters "
                         "(a UUID is a good key)")


def _key_id(actor: str, key: str) -> str:
    return hashlib.sha256(f"{actor}\0{key}".encode()).hexdigest()


def run(svc: Services, key: str, method: str, path: str, request_sha256: str,
        answer: Callable[[], tuple[Response, bool]]) -> Response:
    """The response to a POST carrying ``key``: replayed, refused, or made by ``answer``,
    which returns the response and whether it may be kept (False: "try again").

    :raises InputError: the key was used for another request (422).
    :raises IdempotencyKeyInUse: the first request with the key is still running (409).
    """
    check_key(key)
    store, now = svc.store, svc.now()
    key_id = _key_id(svc.actor, key)
    claim = IdempotencyKey(key_id=key_id, actor=svc.actor, method=method, path=path,
                           request_sha256=request_sha256, state="pending", created_at=now,
                           expires_at=now + TTL, version=1)
    held: IdempotencyKey | None = None
    for _ in range(3):
        old = store.find(IdempotencyKey, key_id)
        try:
            if old is None:
                store.commit(Changes(creates=[claim]))
                held = claim
            elif old.expires_at > now and old.request_sha256 != request_sha256:
                return _existing(old, key, request_sha256)  # raises: another request
            elif _stale(old, now):  # expired, released, or its server died: take it over
                held = claim.model_copy(update={"version": old.version + 1})
                store.commit(Changes(updates=[(held, old.version)]))
            else:
                return _existing(old, key, request_sha256)
            break
        except ConflictError:  # another server claimed or answered it just now: look again
            continue
    if held is None:
        raise IdempotencyKeyInUse(key)
    response, keep = answer()
    if keep:
        body = bytes(response.body)
        done = held.model_copy(update={
            "state": "done", "status_code": response.status_code, "response": body.decode(),
            "headers": {k: v for k, v in response.headers.items() if k in KEPT_HEADERS
                        or k == "content-type"}, "version": held.version + 1})
    else:  # released: expired at once, so the next request with the key runs
        done = held.model_copy(update={"expires_at": now, "version": held.version + 1})
    # taken over after PENDING_LEASE by another server: its answer is the one kept
    with contextlib.suppress(ConflictError):
        store.commit(Changes(updates=[(done, held.version)]))
    return response


def _stale(old: IdempotencyKey, now: datetime) -> bool:
    if old.expires_at <= now:
        return True
    return old.state == "pending" and old.created_at + PENDING_LEASE <= now


def _existing(old: IdempotencyKey, key: str, request_sha256: str) -> Response:
    if old.request_sha256 != request_sha256:
        raise InputError(f"Idempotency-Key {key!r} was used for another request ({old.method} "
                         f"{old.path} or another body) in the last 24 hours; use a new key")
    if old.state == "pending":
        raise IdempotencyKeyInUse(key)
    headers = {k: v for k, v in old.headers.items() if k != "content-type"}
    headers[REPLAYED] = "true"
    return Response(old.response or "", status_code=old.status_code or 200, headers=headers,
                    media_type=old.headers.get("content-type", "application/json"))
