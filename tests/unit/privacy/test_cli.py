"""``caret-otel privacy``: keygen and the scrub dry run, end to end through click."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from unit.privacy import otlp_docs as doc
from unit.privacy.conftest import KEY_1, make_pseudonymizer
from unit.privacy.test_client_events import PLAN_EXAMPLE

from caret_otel.cli.main import _register_commands, cli
from caret_otel.processors.privacy.pseudonyms import KEYS_ENV, parse_keys
from caret_otel.semconv import attributes as attrs
from caret_otel.semconv import events

_register_commands()


def run(args: list[str], env: dict[str, str] | None = None, stdin: str | None = None) -> Any:
    runner = CliRunner()
    return runner.invoke(cli, args, env={KEYS_ENV: "", **(env or {})}, input=stdin)


def lines(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def write_jsonl(path: Path, documents: list[Any]) -> Path:
    path.write_text("\n".join(json.dumps(d) for d in documents) + "\n")
    return path


def test_keygen_prints_one_usable_entry() -> None:
    result = run(["privacy", "keygen", "--id", "2025-01"])
    assert result.exit_code == 0
    entry = result.stdout.strip()
    (key,) = parse_keys(entry, source="keygen")
    assert key.id == "2025-01"
    assert "CARET_OTEL_PSEUDONYM_KEYS" in result.stderr


def test_keygen_rejects_a_bad_id() -> None:
    result = run(["privacy", "keygen", "--id", "no spaces"])
    assert result.exit_code == 2
    assert "--id" in result.stderr


def test_scrub_without_a_key_refuses_with_the_keygen_hint(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "e.jsonl", [PLAN_EXAMPLE])
    result = run(["privacy", "scrub", "--input", str(path), "--format", "events"])
    assert result.exit_code == 1
    assert "caret-otel privacy keygen" in result.stderr
    assert "--ephemeral-key" in result.stderr
    assert result.stdout == ""


def test_scrub_events_with_the_production_key(tmp_path: Path) -> None:
    # scrub applies the gateway's time window: the plan's example is dated to today
    today = datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    recent = {**PLAN_EXAMPLE, "timestamp": today}
    bad = {**PLAN_EXAMPLE, "timestamp": "yesterday"}
    path = write_jsonl(tmp_path / "e.jsonl", [recent, bad])
    with path.open("a") as stream:
        stream.write("\n{not json\n")
    result = run(
        [
            "privacy",
            "scrub",
            "--input",
            str(path),
            "--format",
            "events",
            "--explain",
            "--country",
            "kr",
        ],
        env={KEYS_ENV: KEY_1},
    )
    assert result.exit_code == 1  # two lines were rejected
    first, second, third = lines(result.stdout)
    (signal,) = first["signals"]
    assert signal["signal"] == "log"
    assert signal["name"] == events.CARET_TASK_CREATED.name
    assert signal["timestamp"] == today
    pseudonymizer = make_pseudonymizer(KEY_1)
    assert signal["attributes"][attrs.ENDUSER_PSEUDO_ID] == pseudonymizer.pseudonymize(
        "hashed_user_id"
    )
    assert signal["attributes"][attrs.GEO_COUNTRY_ISO_CODE] == "KR"
    assert first["explain"]["pseudonymised"][attrs.SESSION_ID] == 1
    assert second == {
        "line": 2,
        "error": {"field": "timestamp", "reason": second["error"]["reason"]},
    }
    assert third["line"] == 4
    assert third["error"]["field"] == "line"
    assert "3 lines" in result.stderr


def test_scrub_events_shows_opt_out_and_ephemeral_key(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "e.jsonl", [PLAN_EXAMPLE])
    result = run(
        [
            "privacy",
            "scrub",
            "--input",
            str(path),
            "--format",
            "events",
            "--ephemeral-key",
            "--opt-out",
            "hashed_user_id",
        ]
    )
    assert result.exit_code == 0
    assert "random pseudonym key" in result.stderr
    (line,) = lines(result.stdout)
    assert line["signals"] == []
    assert line["dropped"] == [{"signal": "log", "reason": "opted_out", "count": 1}]


def test_scrub_otlp_json_from_stdin() -> None:
    request = doc.traces(
        [
            doc.span(
                "chat gpt-4o",
                {attrs.GEN_AI_REQUEST_MODEL: "gpt-4o", attrs.EXCEPTION_MESSAGE: "bob@corp.io"},
            ),
            doc.span("gone", {attrs.ENDUSER_ID: "u-gone"}),
        ],
        resource={attrs.SERVICE_NAME: "proxy", attrs.HOST_NAME: "bob-pc"},
    )
    logs = doc.logs([doc.log_record({"message": "from 10.0.0.9"}, event_name="custom")])
    metrics = doc.metrics(
        [
            doc.metric(
                "caret.tokens",
                "sum",
                [doc.number_point(3, {attrs.GEN_AI_REQUEST_MODEL: "o3", attrs.SESSION_ID: "s"})],
            )
        ]
    )
    stdin = "\n".join(json.dumps(d) for d in (request, logs, metrics, {"resourceSpans": "x"}))
    result = run(
        ["privacy", "scrub", "--input", "-", "--format", "otlp-json", "--opt-out", "u-gone"],
        env={KEYS_ENV: KEY_1},
        stdin=stdin,
    )
    traces_line, logs_line, metrics_line, bad_line = lines(result.stdout)
    (span,) = traces_line["signals"]
    assert span["attributes"] == {
        attrs.GEN_AI_REQUEST_MODEL: "gpt-4o",
        attrs.EXCEPTION_MESSAGE: "<redacted:email>",
    }
    assert span["resource"] == {attrs.SERVICE_NAME: "proxy"}
    assert traces_line["dropped"] == [{"signal": "span", "reason": "opted_out", "count": 1}]
    (record,) = logs_line["signals"]
    assert record["body"] == {"message": "from <redacted:ipv4>"}
    (point,) = metrics_line["signals"]
    assert point == {
        "signal": "metric",
        "name": "caret.tokens",
        "attributes": {attrs.GEN_AI_REQUEST_MODEL: "o3"},
        "exemplars": [],
        "resource": {},
        "scope": {"name": "caret.test", "attributes": {}},
    }
    assert bad_line["error"]["field"] == "document"
    assert result.exit_code == 1


@pytest.mark.parametrize("command", [["privacy"], ["privacy", "scrub"], ["privacy", "keygen"]])
def test_help_has_examples(command: list[str]) -> None:
    result = run([*command, "--help"])
    assert result.exit_code == 0
    assert "Example" in result.stdout
