"""API tokens: created, listed, revoked and checked (DESIGN.md "HTTP API").

A token reads ``dop.<token_id>.<secret>``. The store keeps the record under ``token_id`` with
only the sha256 of the whole token, so a server finds the record by ID (no index on hashes) and
compares the hashes in constant time; nobody can read a token back, and an export carries none.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from runtime.engine.services import Services
from runtime.engine.uow import UnitOfWork, retrying
from runtime.errors import NotAllowed, NotAuthenticated
from runtime.model import ApiToken, TokenRole, new_id
from runtime.model.commands import CreateToken, RevokeToken
from runtime.store.base import Page

PREFIX = "dop"
_DUMMY = hashlib.sha256(b"no such token").hexdigest()


def _sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(svc: Services, cmd: CreateToken) -> tuple[ApiToken, str]:
    """A new token for ``cmd.actor`` with ``cmd.role``: its record and the token itself, which
    is shown once and never stored."""
    token_id = new_id("tok")
    token = f"{PREFIX}.{token_id}.{secrets.token_urlsafe(32)}"
    uow = UnitOfWork(svc)
    rec = uow.create(ApiToken(
        token_id=token_id, actor=cmd.actor, role=cmd.role, token_sha256=_sha256(token),
        created_by=uow.actor, created_at=uow.now, updated_at=uow.now, version=1,
    ), f"API token {token_id} created for {cmd.actor} ({cmd.role})")
    uow.commit()
    return rec, token


def revoke_token(svc: Services, cmd: RevokeToken) -> ApiToken:
    """Revoke a token at once on every server (each checks the record on every request); a
    token revoked already stays as it is.

    :raises NotFoundError: no such token."""

    def attempt() -> ApiToken:
        uow = UnitOfWork(svc)
        rec = uow.get(ApiToken, cmd.token_id)
        if rec.revoked_at is not None:
            return rec
        new = uow.update(rec, {"revoked_at": uow.now, "revoked_by": uow.actor},
                         f"API token {rec.token_id} of {rec.actor} revoked", action="revoke")
        uow.commit()
        return new

    return retrying(attempt)


def list_tokens(svc: Services, *, limit: int = 100, cursor: str | None = None) -> Page[ApiToken]:
    return svc.store.page(ApiToken, limit=limit, cursor=cursor)


def authenticate(svc: Services, token: str | None) -> ApiToken:
    """The live token record that ``token`` is.

    :raises NotAuthenticated: none given, malformed, unknown or revoked (one message for the
        last three, so that a caller learns nothing about which tokens exist).
    """
    if not token:
        raise NotAuthenticated("no API token; send Authorization: Bearer TOKEN (dataops token "
                               "create makes one)")
    parts = token.split(".")
    rec = None
    if len(parts) == 3 and parts[0] == PREFIX and parts[1].startswith("tok-") \
            and len(parts[1]) <= 64:
        rec = svc.store.find(ApiToken, parts[1])
    # compared in constant time, against a dummy when there is no record
    good = hmac.compare_digest(_sha256(token), rec.token_sha256 if rec else _DUMMY)
    if rec is None or not good or rec.revoked_at is not None:
        raise NotAuthenticated("the API token is unknown or revoked; ask an admin for a new one")
    return rec


def require(token: ApiToken, role: TokenRole, what: str) -> None:
    """:raises NotAllowed: the token's role ranks below ``role``."""
    if token.role.rank < role.rank:
        raise NotAllowed(f"{what} needs the {role} role; the token of {token.actor} is "
                         f"{token.role}")
