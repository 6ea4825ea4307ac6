"""Bearer-token authentication with three roles.

- **client** (``CARET_OTEL_INGEST_TOKENS``): the VS Code extension ships these, so they are
  public. ``POST /telemetry/events`` and opting a user *out*.
- **service** (``CARET_OTEL_SERVICE_TOKENS``): Caret's own services. OTLP ``/v1/*`` (the
  only callers whose pseudonyms are kept, and only when their keyed tag verifies) and
  consent changes in both directions.
- **admin** (``CARET_OTEL_ADMIN_TOKEN``): deletions and consent lookups.

A known token of another role gets 403 naming the role the route needs; an unknown one
401. Tokens are compared with :func:`hmac.compare_digest` against every configured token
(no early exit), so response timing says nothing about how close a guess was.
"""

from __future__ import annotations

import enum
import hmac

from caret_otel.core.environment_variables import (
    CARET_OTEL_ADMIN_TOKEN,
    CARET_OTEL_INGEST_TOKENS,
    CARET_OTEL_SERVICE_TOKENS,
)
from caret_otel.receivers.gateway.errors import RequestError


class Role(enum.Enum):
    CLIENT = "client"
    SERVICE = "service"
    ADMIN = "admin"
    INGEST = "client"  # the former name of the client role (an alias of CLIENT)


_TOKEN_VARIABLE = {
    Role.CLIENT: CARET_OTEL_INGEST_TOKENS,
    Role.SERVICE: CARET_OTEL_SERVICE_TOKENS,
    Role.ADMIN: CARET_OTEL_ADMIN_TOKEN,
}


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


def _names(roles: tuple[Role, ...]) -> str:
    return " or ".join(f"a {role.value} token" for role in roles)


class Authenticator:
    """Decides which role a request's bearer token holds and whether a route allows it."""

    def __init__(
        self,
        ingest_tokens: tuple[str, ...],
        admin_token: str | None,
        service_tokens: tuple[str, ...] = (),
    ) -> None:
        self._tokens: dict[Role, tuple[bytes, ...]] = {
            Role.CLIENT: tuple(t.encode() for t in ingest_tokens),
            Role.SERVICE: tuple(t.encode() for t in service_tokens),
            Role.ADMIN: (admin_token.encode(),) if admin_token else (),
        }

    def role_of(self, authorization: str | None) -> Role:
        """The role the header's token holds, or a 401."""
        token = bearer_token(authorization).encode()
        found: Role | None = None
        for role, known in self._tokens.items():  # every role is compared, always
            if _matches_any(token, known):
                found = role
        if found is None:
            raise RequestError.unauthorized("unknown bearer token")
        return found

    def require(self, authorization: str | None, *roles: Role) -> Role:
        """The token's role when it is one of ``roles``; a 401 or 403 otherwise."""
        bearer_token(authorization)  # 401 without credentials, whatever the route
        if not any(self._tokens[r] for r in roles):
            variables = ", ".join(_TOKEN_VARIABLE[r] for r in roles)
            raise RequestError.forbidden(
                f"this route is disabled: the gateway has no {_names(roles)} ({variables})"
            )
        role = self.role_of(authorization)
        if role in roles:
            return role
        raise RequestError.forbidden(
            f"this route needs {_names(roles)}; a {role.value} token is not allowed here"
        )
