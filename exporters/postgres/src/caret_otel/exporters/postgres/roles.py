"""Passwords of the database roles, from the environment (never from files).

The migrations create ``caret_writer`` (the exporter, retention, ``forget``),
``caret_analyst`` (read-only, ``analytics.*`` and ``trends.*``) and ``caret_gateway``
(the internet-facing gateway: consent and the deletion function only) without
a password: over TCP they cannot log in until one is set. ``caret-otel db migrate`` sets
each password whose variable is present. The password is turned into a SCRAM verifier
on the client, so the clear text never reaches the server or its logs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Final

import psycopg
from psycopg import sql

from caret_otel.core.environment_variables import (
    CARET_OTEL_ANALYST_PASSWORD,
    CARET_OTEL_GATEWAY_PASSWORD,
    CARET_OTEL_WRITER_PASSWORD,
)

ROLE_PASSWORD_ENVS: Final = {
    "caret_writer": CARET_OTEL_WRITER_PASSWORD,
    "caret_analyst": CARET_OTEL_ANALYST_PASSWORD,
    # The internet-facing gateway: consent and the deletion function only (migration 0010).
    "caret_gateway": CARET_OTEL_GATEWAY_PASSWORD,
}


def set_role_passwords(conninfo: str, environ: Mapping[str, str] | None = None) -> list[str]:
    """Set the password of every role whose variable is set; return those roles.

    Needs a connection with the CREATEROLE privilege (the migrating administrator).
    """
    env = os.environ if environ is None else environ
    wanted = {role: env[var] for role, var in ROLE_PASSWORD_ENVS.items() if env.get(var)}
    if not wanted:
        return []
    with psycopg.connect(conninfo, autocommit=True) as conn:
        for role, password in wanted.items():
            verifier = conn.pgconn.encrypt_password(
                password.encode(), role.encode(), b"scram-sha-256"
            )
            conn.execute(
                sql.SQL("ALTER ROLE {} WITH LOGIN PASSWORD {}").format(
                    sql.Identifier(role), sql.Literal(verifier.decode())
                )
            )
    return sorted(wanted)
