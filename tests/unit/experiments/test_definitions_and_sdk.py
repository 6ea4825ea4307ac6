"""Experiments as code (schema + rules), the SDK's exposure event, and the file the gateway
serves."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter

from caret_otel.cli.experiments import experiments as experiments_cli
from caret_otel.experiments import definitions
from caret_otel.experiments.metrics import CATALOG
from caret_otel.processors.privacy.consent import InMemoryConsentStore
from caret_otel.processors.privacy.pseudonyms import KEY_FILE_ENV, KEYS_ENV, generate_key_entry
from caret_otel.receivers.gateway.experiments_route import DefinitionsFile
from caret_otel.sdk import configure
from caret_otel.sdk import experiments as sdk_experiments
from caret_otel.semconv import attributes as attrs
from caret_otel.semconv import events as event_specs

REPO = definitions.default_directory()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    shutil.copy(REPO / definitions.SCHEMA_FILE, tmp_path)
    shutil.copy(REPO / "plan-mode-hint.yaml", tmp_path)
    return tmp_path


def test_the_repository_definitions_pass_and_the_schema_lists_the_catalog() -> None:
    found, problems = definitions.check()
    assert problems == []
    assert found
    schema = json.loads((REPO / definitions.SCHEMA_FILE).read_text())
    assert set(schema["$defs"]["metric"]["enum"]) == set(CATALOG)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("weight: 0.5\n    description: no hint", "weight: 0.6\n    description: no hint"), "weights must add up to 1"),
        (("key: control", "key: baseline"), "variants/0"),
        (('end: "2027-01-31"', 'end: "2026-10-01"'), "end: must be after start"),
        (("primary: task_completion_rate", "primary: cost_per_task"), "one role only"),
        (("primary: task_completion_rate", "primary: happiness"), "metrics/primary: enum"),
        (("minimum_detectable_effect: 0.05", "minimum_detectable_effect: 2"), "minimum_detectable_effect: maximum"),
        (("status: running", "status: running\nsurprise: 1"), "additionalProperties"),
        (('end: "2027-01-31"', ""), "planned_users: alpha spending needs planned_users or an end"),
        (("sequential_method: alpha-spending", "sequential_method: peeking"), "sequential_method: enum"),
        (("power: 0.8", "power: 0.8\nplanned_users: 5"), "planned_users: minimum"),
    ],
)  # fmt: skip
def test_each_broken_rule_is_named_by_file_and_field(
    folder: Path, change: tuple[str, str], expected: str
) -> None:
    path = folder / "plan-mode-hint.yaml"
    text = path.read_text()
    assert change[0] in text
    path.write_text(text.replace(change[0], change[1], 1))
    _, problems = definitions.check(folder)
    assert any(p.startswith("plan-mode-hint.yaml: ") and expected in p for p in problems), problems
    result = CliRunner().invoke(experiments_cli, ["check", "--dir", str(folder)])
    assert result.exit_code == 1


def test_alpha_spending_is_the_default_method_and_sequential_false_is_fixed_horizon(
    folder: Path,
) -> None:
    path = folder / "plan-mode-hint.yaml"
    text = path.read_text()
    without = "\n".join(line for line in text.splitlines() if "sequential_method" not in line)
    path.write_text(without)
    [experiment] = definitions.load(folder)
    assert experiment.method is definitions.Method.ALPHA_SPENDING
    assert experiment.planned_users is None
    path.write_text(without.replace("sequential: true", "sequential: false"))
    [experiment] = definitions.load(folder)
    assert experiment.method is definitions.Method.FIXED_HORIZON
    path.write_text(text.replace("alpha-spending", "always-valid"))
    [experiment] = definitions.load(folder)
    assert experiment.method is definitions.Method.ALWAYS_VALID


def test_the_file_name_must_be_the_key_and_yaml_errors_name_the_line(folder: Path) -> None:
    (folder / "plan-mode-hint.yaml").rename(folder / "other-name.yaml")
    (folder / "broken.yaml").write_text("key: [unclosed\n")
    _, problems = definitions.check(folder)
    assert "other-name.yaml: key: must equal the file name without .yaml" in problems
    assert any(p.startswith("broken.yaml: line") for p in problems)


def test_served_payload_holds_active_experiments_with_growthbook_fields() -> None:
    [experiment] = [e for e in definitions.load() if e.key == "plan-mode-hint"]
    assert definitions.served_payload([experiment], date(2026, 10, 1))["experiments"] == []
    [served] = definitions.served_payload([experiment], date(2026, 12, 1))["experiments"]
    assert served["hashVersion"] == 2
    assert served["condition"] == {
        "clientVersion": {"$vgte": "3.0.0"},
        "hostApp": {"$in": ["vscode", "cursor", "windsurf"]},
    }
    assert (
        sdk_experiments.parse_payload({"experiments": [served]})["plan-mode-hint"]
        == experiment.served()
    )


def test_the_gateway_serves_the_exported_file_for_today(folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "served.json"
    result = CliRunner().invoke(
        experiments_cli, ["export", "--dir", str(folder), "--output", str(out)]
    )
    assert result.exit_code == 0, result.output
    served = DefinitionsFile(out)
    [item] = served.active(date(2026, 12, 1))
    assert "status" not in item
    assert item["key"] == "plan-mode-hint"
    assert served.active(date(2027, 2, 1)) == []
    assert DefinitionsFile(None).active(date(2026, 12, 1)) == []


def test_record_exposure_emits_the_registry_event_pseudonymised(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(KEY_FILE_ENV, raising=False)
    monkeypatch.setenv(KEYS_ENV, generate_key_entry("t1"))
    logs = InMemoryLogRecordExporter()
    handle = configure(
        "test-service",
        set_global=False,
        log_exporters=[logs],
        batch=False,
        instrument_httpx=False,
        consent=InMemoryConsentStore(),
    )
    experiment = definitions.find("plan-mode-hint").served()
    user = sdk_experiments.UserContext("user-1", client_version="3.1.0", host_app="vscode")
    variant = sdk_experiments.assign(experiment, user)
    assert variant in experiment.variations
    at = datetime(2026, 12, 1, tzinfo=UTC)
    first = sdk_experiments.record_exposure(experiment, variant, "user-1", at=at, handle=handle)
    again = sdk_experiments.record_exposure(experiment, variant, "user-1", at=at, handle=handle)
    assert first == again  # stored once
    with pytest.raises(sdk_experiments.ExperimentDefinitionError, match="variant"):
        sdk_experiments.record_exposure(experiment, "nope", "user-1", handle=handle)
    handle.force_flush()
    [record, _] = [d.log_record for d in logs.get_finished_logs()]
    assert record.event_name == event_specs.CARET_EXPERIMENT_EXPOSURE.name
    values = dict(record.attributes or {})
    assert values[attrs.CARET_EXPERIMENT_KEY] == "plan-mode-hint"
    assert values[attrs.CARET_EXPERIMENT_VARIANT] == variant
    assert values[attrs.ENDUSER_PSEUDO_ID] != "user-1"  # the privacy processor ran
    handle.shutdown()


def test_targeting_leaves_out_users_without_a_targeted_attribute() -> None:
    experiment = definitions.find("plan-mode-hint").served()
    assert (
        sdk_experiments.assign(experiment, sdk_experiments.UserContext("u", host_app="vscode"))
        is None
    )
    old = sdk_experiments.UserContext("u", client_version="2.9.9", host_app="vscode")
    assert sdk_experiments.assign(experiment, old) is None
