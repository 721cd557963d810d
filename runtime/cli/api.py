"""`dataops token ...` and `dataops serve`: the HTTP API's tokens and its server."""

from __future__ import annotations

import os
from typing import Any

from runtime.cli import render
from runtime.cli.context import Ctx

OK = 0


def cmd_token_create(ctx: Ctx) -> int:
    from runtime import engine
    from runtime.model.commands import CreateToken, build

    rec, token = engine.handle(ctx.services(), build(CreateToken, actor=ctx.args.actor_name,
                                                     role=ctx.args.role))
    if ctx.args.json:
        render.emit_json({"token_id": rec.token_id, "token": token, "actor": rec.actor,
                          "role": str(rec.role)})
    else:
        render.out(f"token {rec.token_id} for {rec.actor} ({rec.role}); shown once, keep it "
                   "secret:")
        render.out(token)
    return OK


def _public(rec: object) -> dict[str, object]:
    from runtime.model import ApiToken

    assert isinstance(rec, ApiToken)
    return {k: v for k, v in rec.to_json().items() if k != "token_sha256"}


def cmd_token_list(ctx: Ctx) -> int:
    from runtime.engine.tokens import list_tokens

    svc = ctx.services()
    tokens, more = ctx.page(lambda n, cur: list_tokens(svc, limit=n, cursor=cur))
    if ctx.args.json:
        render.emit_json([_public(t) for t in tokens])
    else:
        render.table([(t.token_id, t.actor, t.role, t.created_at.isoformat(),
                       f"revoked {t.revoked_at.isoformat()}" if t.revoked_at else "active")
                      for t in tokens], ("token_id", "actor", "role", "created_at", "status"))
    render.more(len(tokens), None, more)
    return OK


def cmd_token_revoke(ctx: Ctx) -> int:
    from runtime import engine
    from runtime.model.commands import RevokeToken, build

    rec = engine.handle(ctx.services(), build(RevokeToken, token_id=ctx.args.token_id))
    if ctx.args.json:
        render.emit_json(_public(rec))
    else:
        assert rec.revoked_at is not None
        render.out(f"token {rec.token_id} of {rec.actor} is revoked (since "
                   f"{rec.revoked_at.isoformat()}); every server refuses it now")
    return OK


def cmd_serve(ctx: Ctx) -> int:
    """Run the API under uvicorn. The options reach the app (and each worker process) through
    the environment, so that ``--workers N`` starts N identical servers on one store."""
    from runtime.errors import InputError

    args = ctx.args
    if not 1 <= args.workers <= 64:
        raise InputError(f"--workers {args.workers}: give 1 to 64 worker processes")
    if not 0 <= args.port <= 65535:
        raise InputError(f"--port {args.port}: give a TCP port (0 to 65535)")
    if args.max_upload_mb <= 0:
        raise InputError(f"--max-upload-mb {args.max_upload_mb}: give a positive size")
    ctx.content()  # fail here, in one line, on a content folder or a store that cannot be read
    store = ctx.services().store
    shown = store.url  # a password in the URL is masked
    store.close()
    ctx._svc = None
    os.environ.update({
        "DATAOPS_STORE": ctx.store_url, "DATAOPS_CONTENT": ctx.content_dir,
        "DATAOPS_MAX_UPLOAD_BYTES": str(int(args.max_upload_mb * 1024 * 1024)),
    })
    for name, value in (("DATAOPS_NOW", ctx.now_text), ("DATAOPS_ARTIFACTS", ctx.artifacts_url)):
        if value:
            os.environ[name] = value
    import signal

    import uvicorn

    # uvicorn stops gracefully on SIGTERM or Ctrl-C, then raises the signal again for the
    # handler it found: let that be a no-op, so that a requested stop exits 0
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    render.warn(f"serving the dataops API on http://{args.host}:{args.port} "
                f"({args.workers} worker{'s' if args.workers > 1 else ''}; store {shown})")
    options: dict[str, Any] = dict(factory=True, host=args.host, port=args.port,
                                   workers=args.workers, log_level=args.log_level,
                                   timeout_graceful_shutdown=10, server_header=False)
    app = "runtime.server.app:from_environment"
    if args.workers == 1:
        uvicorn.run(app, **options)
        return OK
    # Several workers share one listening socket, bound here with IPPROTO_TCP: uvicorn binds
    # it with protocol 0, and asyncio then leaves Nagle's algorithm on for the connections it
    # accepts, which adds ~40 ms (the client's delayed ACK) to every answer after the first
    # on a connection (uvicorn issue #3149).
    from uvicorn.supervisors import Multiprocess

    config = uvicorn.Config(app, **options)
    Multiprocess(config, sockets=[_listen(args.host, args.port)]).run()
    return OK


def _listen(host: str, port: int) -> Any:
    import socket

    from runtime.errors import InputError

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise InputError(f"--host {host} --port {port}: cannot listen there ({e.strerror}); "
                         "pick a free port or an address of this machine") from None
    sock.set_inheritable(True)
    return sock
