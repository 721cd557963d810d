"""Multipart artifact uploads, bounded while they stream in."""

from __future__ import annotations

from typing import Any

from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request

from runtime.errors import InputError, TooLarge

CHUNK = 1 << 20


async def read_upload(request: Request, limit: int) -> tuple[str, str, bytes]:
    """The one file of a ``multipart/form-data`` body (field ``file``): its name, declared
    content type and bytes. The app's body limit counts the body as it arrives (one without
    Content-Length included) and cuts it off past ``limit`` and the framing; parts are spooled
    to a temporary file beyond 1 MiB by Starlette's parser.

    :raises TooLarge: over ``limit`` bytes.
    :raises InputError: not multipart, no ``file`` part, or an empty file name.
    """
    ctype = request.headers.get("content-type", "")
    if not ctype.startswith("multipart/form-data"):
        raise InputError("artifacts: send the file as multipart/form-data in a part named "
                         f"'file' (got content type {ctype or 'none'!r})")
    form = await _form(request, "artifacts")
    try:
        part = form.get("file")
        if not isinstance(part, UploadFile):
            raise InputError("artifacts: no file part named 'file' in the form")
        if not part.filename or not part.filename.strip():
            raise InputError("artifacts: the file part has no filename; give one")
        return (part.filename.strip(), part.content_type or "application/octet-stream",
                await _bounded(part, limit))
    finally:
        await form.close()


async def read_completion(request: Request, limit: int) -> tuple[dict[str, Any], str]:
    """A job's completion: JSON ``{"output", "worker"}``, or multipart with the fields
    ``output`` (a JSON object as text), ``worker`` and an optional ``file``. The fields of a
    CompleteJob, and a fingerprint of them for the Idempotency-Key.

    :raises InputError: malformed. :raises TooLarge: a file over ``limit``.
    """
    import hashlib
    import json

    ctype = request.headers.get("content-type", "")
    raw: dict[str, Any] = {}
    data: bytes | None = None
    name = declared = None
    if ctype.startswith("multipart/form-data"):
        form = await _form(request, "complete")
        try:
            for key, value in form.multi_items():
                if isinstance(value, UploadFile):
                    if key != "file":
                        raise InputError(f"complete: the file part must be named 'file', not "
                                         f"{key!r}")
                    name = (value.filename or "").strip() or None
                    declared = value.content_type
                    data = await _bounded(value, limit)
                elif key in ("output", "worker"):
                    raw[key] = value
                else:
                    raise InputError(f"complete: unknown field {key!r} (output, worker, file)")
        finally:
            await form.close()
        if "output" in raw:
            try:
                raw["output"] = json.loads(raw["output"])
            except ValueError:
                raise InputError("complete: output is not JSON; give a JSON object") from None
        if data is not None and not name:
            raise InputError("complete: the file part has no filename; give one")
    else:
        body = await request.body()
        if body.strip():
            try:
                raw = json.loads(body)
            except ValueError:
                raise InputError("complete: the body is not JSON; send a JSON object") from None
        if not isinstance(raw, dict) or set(raw) - {"output", "worker"}:
            raise InputError("complete: send a JSON object with output and worker only (the "
                             "actor is the token's)")
    if "output" in raw and not isinstance(raw["output"], dict):
        raise InputError("complete: output must be a JSON object")
    fields = {"output": raw.get("output") or {}, "worker": raw.get("worker"), "data": data,
              "filename": name, "content_type": declared}
    digest = hashlib.sha256(json.dumps([fields["output"], fields["worker"], name, declared],
                                       sort_keys=True, default=str).encode())
    digest.update(data or b"")
    return fields, digest.hexdigest()


async def _form(request: Request, what: str) -> Any:
    """The parsed multipart form (one file at most).

    :raises InputError: the parser's own errors (a malformed body, too many parts)."""
    try:
        return await request.form(max_files=1, max_fields=8)
    except (TooLarge, HTTPException):  # the app's body limit
        raise
    except Exception as e:
        raise InputError(f"{what}: the multipart body cannot be read ({e})") from None


async def _bounded(part: UploadFile, limit: int) -> bytes:
    chunks, size = [], 0
    while chunk := await part.read(CHUNK):
        size += len(chunk)
        if size > limit:
            raise TooLarge(f"the file is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
