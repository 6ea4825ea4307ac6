"""``caret-otel gateway`` with a database it cannot reach: ``--check`` does not call the
configuration fine, and starting prints one ``Error:`` line instead of a traceback."""

from __future__ import annotations

import logging

from click.testing import CliRunner

from caret_otel.cli.main import _register_commands, cli
from caret_otel.core.environment_variables import (
    CARET_OTEL_INGEST_TOKENS,
    CARET_OTEL_PSEUDONYM_KEYS,
    DATABASE_URL,
)
from caret_otel.processors.privacy.pseudonyms import generate_key_entry
from caret_otel.stack.ports import free_port

_register_commands()


def run(*args: str) -> tuple[int, str]:
    unreachable = f"postgresql://caret_writer@127.0.0.1:{free_port()}/caret"
    env = {
        CARET_OTEL_INGEST_TOKENS: "ingest-token-for-tests-0123456789",
        CARET_OTEL_PSEUDONYM_KEYS: generate_key_entry("1"),
        DATABASE_URL: unreachable,
    }
    result = CliRunner().invoke(cli, ["gateway", *args], env=env)
    return result.exit_code, result.output


def test_check_with_an_unreachable_database_is_not_ok() -> None:
    code, out = run("--check")
    assert code == 1
    assert "configuration ok" not in out
    assert "Error: the database of DATABASE_URL is not usable" in out
    assert "Traceback" not in out


def test_start_with_an_unreachable_database_says_so_in_one_line() -> None:
    code, out = run("--port", str(free_port()))
    assert code == 1
    errors = [line for line in out.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1
    assert "the database of DATABASE_URL is not usable" in errors[0]
    assert "Traceback" not in out


def test_the_gateway_log_has_no_line_per_successful_export_request() -> None:
    # httpx logs every request to the Collector at INFO; the gateway keeps it to warnings.
    logging.getLogger("httpx").setLevel(logging.NOTSET)
    run("--check")
    assert logging.getLogger("httpx").getEffectiveLevel() == logging.WARNING
