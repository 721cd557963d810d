"""Multipart artifact uploads, bounded while they stream in."""

from __future__ import annotations

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
    try:
        form = await request.form(max_files=1, max_fields=8)
    except (TooLarge, HTTPException):  # the app's body limit
        raise
    except Exception as e:  # the parser's own errors (a malformed body, too many parts)
        raise InputError(f"artifacts: the multipart body cannot be read ({e})") from None
    try:
        part = form.get("file")
        if not isinstance(part, UploadFile):
            raise InputError("artifacts: no file part named 'file' in the form")
        if not part.filename or not part.filename.strip():
            raise InputError("artifacts: the file part has no filename; give one")
        chunks = []
        size = 0
        while chunk := await part.read(CHUNK):
            size += len(chunk)
            if size > limit:
                raise TooLarge(f"the file is over the limit of {limit} bytes")
            chunks.append(chunk)
        return (part.filename.strip(), part.content_type or "application/octet-stream",
                b"".join(chunks))
    finally:
        await form.close()
