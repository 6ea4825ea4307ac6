"""Exporter settings from flags and environment, with errors that name the setting."""

from __future__ import annotations

import pytest

from caret_otel.exporters.postgres.config import (
    LISTEN_ENV,
    SettingsError,
    listen_from_env,
    parse_listen,
    require_database_url,
)


def test_the_database_url_comes_from_the_flag_then_the_caret_variable_then_database_url() -> None:
    env = {"DATABASE_URL": "postgresql://b", "CARET_OTEL_DATABASE_URL": "postgresql://a"}
    assert require_database_url("postgresql://flag", env) == "postgresql://flag"
    assert require_database_url(None, env) == "postgresql://a"
    assert require_database_url(None, {"DATABASE_URL": "postgresql://b"}) == "postgresql://b"


def test_a_missing_database_url_names_the_flag_and_both_variables() -> None:
    with pytest.raises(
        SettingsError, match=r"--database-url.*CARET_OTEL_DATABASE_URL.*DATABASE_URL"
    ):
        require_database_url(None, {"DATABASE_URL": "  "})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:4320", ("127.0.0.1", 4320)),
        ("[::1]:9", ("::1", 9)),
        ("0.0.0.0:65535", ("0.0.0.0", 65535)),
    ],
)
def test_listen_addresses_parse(text: str, expected: tuple[str, int]) -> None:
    assert parse_listen(text) == expected


@pytest.mark.parametrize("text", ["4320", ":4320", "host:", "host:0", "host:70000", "host:http"])
def test_bad_listen_addresses_name_the_variable(text: str) -> None:
    with pytest.raises(SettingsError, match=LISTEN_ENV):
        parse_listen(text)


def test_listen_is_optional_in_the_environment() -> None:
    assert listen_from_env({}) is None
    assert listen_from_env({LISTEN_ENV: "127.0.0.1:1234"}) == ("127.0.0.1", 1234)
