"""``privacy scrub`` shows what the gateway would do: an event the gateway refuses as
too old (or from the future) is an error line, not a signal that would "leave"."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
from click.testing import CliRunner

from caret_otel.cli.main import _register_commands, cli

_register_commands()


def scrub(moment: datetime) -> tuple[int, dict[str, object]]:
    event = {
        "event_type": "task.created",
        "user_id_hash": "u1",
        "session_id": "s1",
        "timestamp": moment.isoformat().replace("+00:00", "Z"),
        "properties": {"task_id": "t1"},
        "client_info": {"version": "1.0.0", "platform": "vscode", "language": "ko"},
    }
    result = CliRunner().invoke(
        cli,
        ["privacy", "scrub", "--input", "-", "--format", "events", "--ephemeral-key"],
        input=orjson.dumps(event) + b"\n",
    )
    first_line = result.stdout.splitlines()[0]
    return result.exit_code, orjson.loads(first_line)


def test_an_event_older_than_the_raw_retention_is_rejected_as_the_gateway_does() -> None:
    code, line = scrub(datetime.now(UTC) - timedelta(days=31))
    assert code == 1
    assert line["error"] == {
        "field": "timestamp",
        "reason": "timestamp is older than the 30-day raw-event retention",
    }


def test_an_event_from_the_future_is_rejected_and_a_recent_one_passes() -> None:
    code, line = scrub(datetime.now(UTC) + timedelta(hours=1))
    assert code == 1
    assert line["error"]["field"] == "timestamp"  # type: ignore[index]
    code, line = scrub(datetime.now(UTC) - timedelta(days=29))
    assert code == 0
    assert "error" not in line
    assert line["signals"]
