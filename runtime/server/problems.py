"""The one table from the error tree to HTTP statuses, and problem+json (RFC 9457) bodies."""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict
from starlette.responses import Response

from runtime import errors as e

PROBLEM_JSON = "application/problem+json"


class Problem(BaseModel):
    """An error answer (RFC 9457). ``missing`` lists the unmet requirements of a rejected
    transition; ``errors`` the invalid fields of a 422."""

    model_config = ConfigDict(extra="allow")
    type: str
    title: str
    status: int
    detail: str
    missing: list[str] | None = None
    errors: list[dict[str, Any]] | None = None


# Most specific first: the first class an error is an instance of gives its answer.
STATUS: list[tuple[type[BaseException], int, str, str]] = [
    (e.TransitionRejected, 409, "transition-rejected", "Transition rejected"),
    (e.VersionMismatch, 412, "version-mismatch", "Precondition failed"),
    (e.IdempotencyKeyInUse, 409, "idempotency-key-in-use", "Request in progress"),
    (e.ConflictError, 409, "conflict", "Conflict"),
    (e.NotAuthenticated, 401, "unauthorized", "Unauthorized"),
    (e.NotAllowed, 403, "forbidden", "Forbidden"),
    (e.NotFoundError, 404, "not-found", "Not found"),
    (e.TooLarge, 413, "too-large", "Too large"),
    (e.InputError, 422, "invalid", "Invalid input"),
    (e.ThrottledError, 503, "busy", "Store busy"),
    (e.StoreFault, 503, "store-unavailable", "Store unavailable"),
    (e.RecordUnreadable, 500, "record-unreadable", "Record unreadable"),
    (e.DataopsError, 500, "internal", "Internal error"),
]
RETRY_LATER = (e.ConflictError, e.ThrottledError, e.StoreFault, e.IdempotencyKeyInUse)
"""Errors a client should retry after a pause (they answer with ``Retry-After``); an
idempotent request that met one may be sent again with the same key."""


def problem(status: int, slug: str, title: str, detail: str, headers: dict[str, str] | None = None,
            **extra: Any) -> Response:
    body = {"type": f"urn:dataops:problem:{slug}", "title": title, "status": status,
            "detail": detail, **{k: v for k, v in extra.items() if v is not None}}
    return Response(orjson.dumps(body), status_code=status, media_type=PROBLEM_JSON,
                    headers=headers)


def from_error(err: BaseException) -> Response:
    """The answer to an error of the runtime (anything else is a 500 with no detail)."""
    for cls, status, slug, title in STATUS:
        if isinstance(err, cls):
            headers: dict[str, str] = {}
            if isinstance(err, RETRY_LATER):
                headers["Retry-After"] = "1"
            if isinstance(err, e.NotAuthenticated):
                headers["WWW-Authenticate"] = 'Bearer realm="dataops"'
            detail = " ".join(str(err).split())
            missing = err.missing if isinstance(err, e.TransitionRejected) else None
            return problem(status, slug, title, detail, headers, missing=missing)
    return problem(500, "internal", "Internal error",
                   "the server failed unexpectedly; the error is in its log")


ERROR_STATUSES = {400: "Malformed JSON or header", 401: "No or bad token",
                  403: "Role not allowed", 404: "Not found", 409: "Transition rejected or conflict",
                  412: "Version mismatch (If-Match)", 413: "Upload too large",
                  422: "Invalid field (named)", 500: "A stored record that cannot be read, or a "
                  "fault of the server (logged)", 503: "Store busy or unavailable (Retry-After)"}
