"""Gateway configuration from the environment, and bearer-token roles."""

from __future__ import annotations

from pathlib import Path

import pytest

from caret_otel.receivers.gateway.auth import Authenticator, Role
from caret_otel.receivers.gateway.config import (
    ENV_HELP,
    GatewayConfig,
    GatewayConfigError,
    IngestLimits,
)
from caret_otel.receivers.gateway.errors import RequestError

INGEST = "ingest-token-0123456789"
ADMIN = "admin-token-0123456789ab"


def test_minimal_environment_gives_documented_defaults() -> None:
    config = GatewayConfig.from_env({"CARET_OTEL_INGEST_TOKENS": INGEST})
    assert config.ingest_tokens == (INGEST,)
    assert config.admin_token is None
    assert config.database_url is None
    assert config.country_header == "CF-IPCountry"
    assert config.limits == IngestLimits()
    assert config.otlp.endpoints == {
        "traces": "http://localhost:4318/v1/traces",
        "metrics": "http://localhost:4318/v1/metrics",
        "logs": "http://localhost:4318/v1/logs",
    }
    assert config.otlp.timeout_s == 10.0
    assert config.otlp.compression is None


def test_otlp_variables_follow_the_exporter_spec() -> None:
    config = GatewayConfig.from_env(
        {
            "CARET_OTEL_INGEST_TOKENS": INGEST,
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/",
            "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": "http://loki-path/custom/logs",
            "OTEL_EXPORTER_OTLP_HEADERS": "x-api-key=a%3Db,other=2",
            "OTEL_EXPORTER_OTLP_TIMEOUT": "2500",
            "OTEL_EXPORTER_OTLP_COMPRESSION": "gzip",
        }
    )
    assert config.otlp.endpoints["traces"] == "http://collector:4318/v1/traces"
    assert config.otlp.endpoints["logs"] == "http://loki-path/custom/logs"
    assert config.otlp.headers == {"x-api-key": "a=b", "other": "2"}
    assert config.otlp.timeout_s == 2.5
    assert config.otlp.compression == "gzip"


def test_tokens_from_files(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text(f"# comment\n{INGEST}\n\nsecond-token-0123456789\n")
    admin = tmp_path / "admin"
    admin.write_text(ADMIN + "\n")
    config = GatewayConfig.from_env(
        {"CARET_OTEL_INGEST_TOKENS_FILE": str(tokens), "CARET_OTEL_ADMIN_TOKEN_FILE": str(admin)}
    )
    assert config.ingest_tokens == (INGEST, "second-token-0123456789")
    assert config.admin_token == ADMIN


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "CARET_OTEL_INGEST_TOKENS"),
        ({"CARET_OTEL_INGEST_TOKENS": "short"}, "at least 16"),
        ({"CARET_OTEL_INGEST_TOKENS": INGEST, "CARET_OTEL_ADMIN_TOKEN": INGEST}, "must differ"),
        (
            {"CARET_OTEL_INGEST_TOKENS": INGEST, "CARET_OTEL_MAX_BODY_BYTES": "lots"},
            "CARET_OTEL_MAX_BODY_BYTES",
        ),
        (
            {"CARET_OTEL_INGEST_TOKENS": INGEST, "CARET_OTEL_MAX_EVENTS_PER_REQUEST": "0"},
            "greater than 0",
        ),
        (
            {"CARET_OTEL_INGEST_TOKENS": INGEST, "OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4318"},
            "http://",
        ),
        (
            {"CARET_OTEL_INGEST_TOKENS": INGEST, "OTEL_EXPORTER_OTLP_TIMEOUT": "soon"},
            "milliseconds",
        ),
        (
            {"CARET_OTEL_INGEST_TOKENS": INGEST, "OTEL_EXPORTER_OTLP_HEADERS": "novalue"},
            "key=value",
        ),
        ({"CARET_OTEL_INGEST_TOKENS_FILE": "/nonexistent/tokens"}, "cannot read"),
    ],
)
def test_bad_configuration_names_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(GatewayConfigError, match=message):
        GatewayConfig.from_env(env)


def test_limits_are_read() -> None:
    config = GatewayConfig.from_env(
        {"CARET_OTEL_INGEST_TOKENS": INGEST, "CARET_OTEL_MAX_BODY_BYTES": "1000",
         "CARET_OTEL_EXPORT_GRACE_SECONDS": "0.5", "CARET_OTEL_COUNTRY_HEADER": ""}
    )  # fmt: skip
    assert config.limits.max_body_bytes == 1000
    assert config.limits.export_grace_s == 0.5
    assert config.country_header is None


def test_repr_hides_secrets() -> None:
    config = GatewayConfig.from_env(
        {"CARET_OTEL_INGEST_TOKENS": INGEST, "CARET_OTEL_ADMIN_TOKEN": ADMIN,
         "DATABASE_URL": "postgresql://u:secretpw@h/db", "OTEL_EXPORTER_OTLP_HEADERS": "k=hidden"}
    )  # fmt: skip
    text = repr(config)
    for secret in (INGEST, ADMIN, "secretpw", "hidden"):
        assert secret not in text


def status_of(auth: Authenticator, header: str | None, role: Role) -> int:
    try:
        auth.require(header, role)
    except RequestError as exc:
        return exc.status
    return 200


def test_roles() -> None:
    auth = Authenticator((INGEST,), ADMIN)
    assert status_of(auth, f"Bearer {INGEST}", Role.INGEST) == 200
    assert status_of(auth, f"bearer {INGEST}", Role.INGEST) == 200
    assert status_of(auth, None, Role.INGEST) == 401
    assert status_of(auth, "Basic abc", Role.INGEST) == 401
    assert status_of(auth, "Bearer ", Role.INGEST) == 401
    assert status_of(auth, "Bearer wrong-token-0123456789", Role.INGEST) == 401
    assert status_of(auth, f"Bearer {ADMIN}", Role.INGEST) == 403
    assert status_of(auth, f"Bearer {ADMIN}", Role.ADMIN) == 200
    assert status_of(auth, f"Bearer {INGEST}", Role.ADMIN) == 403
    assert status_of(auth, None, Role.ADMIN) == 401
    assert status_of(auth, "Bearer wrong-token-0123456789", Role.ADMIN) == 401


def test_without_admin_token_deletion_is_forbidden() -> None:
    auth = Authenticator((INGEST,), None)
    assert status_of(auth, f"Bearer {INGEST}", Role.ADMIN) == 403
    assert status_of(auth, "Bearer anything-at-all-0123", Role.ADMIN) == 403


def test_unauthorized_carries_www_authenticate() -> None:
    auth = Authenticator((INGEST,), None)
    with pytest.raises(RequestError) as caught:
        auth.require(None, Role.INGEST)
    assert caught.value.headers["WWW-Authenticate"].startswith("Bearer")
    assert caught.value.field == "Authorization"


def test_every_variable_is_documented() -> None:
    docs = (Path(__file__).resolve().parents[3] / "docs" / "gateway.md").read_text(encoding="utf-8")
    missing = [name for name, _ in ENV_HELP if f"`{name}`" not in docs]
    assert not missing, f"add to docs/gateway.md: {missing}"
