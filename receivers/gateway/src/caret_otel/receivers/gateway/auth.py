"""Bearer-token authentication: ingest tokens for data, one admin token for deletions.

Tokens are compared with :func:`hmac.compare_digest` against every configured token
(no early exit), so response timing says nothing about how close a guess was.
"""

from __future__ import annotations

import enum
import hmac

from caret_otel.receivers.gateway.errors import RequestError


class Role(enum.Enum):
    INGEST = "ingest"
    ADMIN = "admin"


def bearer_token(authorization: str | None) -> str:
    """The token of an ``Authorization: Bearer <token>`` header, or a 401."""
    if not authorization:
        raise RequestError.unauthorized("missing Authorization header; send 'Bearer <token>'")
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise RequestError.unauthorized("Authorization must be 'Bearer <token>'")
    return token.strip()


def _matches_any(candidate: bytes, known: tuple[bytes, ...]) -> bool:
    found = False
    for token in known:
        # `|` rather than `or`: compare against every token whatever the outcome.
        found |= hmac.compare_digest(candidate, token)
    return found


class Authenticator:
    """Decides whether a request's bearer token grants a role."""

    def __init__(self, ingest_tokens: tuple[str, ...], admin_token: str | None) -> None:
        self._ingest = tuple(t.encode() for t in ingest_tokens)
        self._admin = (admin_token.encode(),) if admin_token else ()

    def require(self, authorization: str | None, role: Role) -> None:
        """Return when the header grants ``role``; raise a 401 or 403 otherwise.

        401: no credentials or an unknown token. 403: a known token of the other role
        (an ingest token cannot delete; the admin token does not ingest).
        """
        token = bearer_token(authorization).encode()
        is_ingest = _matches_any(token, self._ingest)
        is_admin = _matches_any(token, self._admin)
        if role is Role.INGEST:
            if is_ingest:
                return
            if is_admin:
                raise RequestError.forbidden(
                    "the admin token cannot send telemetry; use an ingest token"
                )
        else:
            if is_admin:
                return
            if not self._admin:
                raise RequestError.forbidden(
                    "deletion is disabled: the gateway has no admin token (CARET_OTEL_ADMIN_TOKEN)"
                )
            if is_ingest:
                raise RequestError.forbidden(
                    "this route needs the admin token; an ingest token is not enough"
                )
        raise RequestError.unauthorized("unknown bearer token")
