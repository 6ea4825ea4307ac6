"""The two-tier Collector configs (collector/edge-config.yaml, collector/processing-config.yaml)
load in our Collector, read only the variables the Python side knows, scrub everything before
Kafka and route exactly as the single-tier production config does."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from caret_otel.contracts.collector import (
    KafkaTierEnv,
    edge_config_path,
    processing_config_path,
)
from caret_otel.semconv import attributes as attrs
from caret_otel.stack import CollectorConfigEnv
from caret_otel.stack import collector as collector_mod

pytestmark = pytest.mark.integration

PLACEHOLDER = re.compile(r"\$\{env:([A-Za-z0-9_]+)(?::-([^}]*))?\}")
TIERS = {"edge": edge_config_path(), "processing": processing_config_path()}


def _load(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(path.read_text())
    return loaded


@pytest.fixture(scope="module")
def production() -> dict[str, Any]:
    return _load(collector_mod.default_config_path())


@pytest.mark.parametrize("tier", sorted(TIERS))
def test_tier_config_validates(tier: str, collector_binary: Path, tmp_path: Path) -> None:
    env = CollectorConfigEnv.with_free_ports(storage_dir=str(tmp_path / "storage"))
    kafka = KafkaTierEnv(brokers="127.0.0.1:19092,127.0.0.1:29092")
    collector_mod.validate_config(
        TIERS[tier], {**env.as_env(), **kafka.as_env()}, binary=collector_binary
    )


@pytest.mark.parametrize("tier", sorted(TIERS))
def test_tier_config_refuses_to_run_without_a_pseudonym_key(
    tier: str, collector_binary: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [*CollectorConfigEnv.ENV_NAMES.values(), *KafkaTierEnv.ENV_NAMES.values()]:
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(collector_mod.CollectorConfigError, match="hmac_key must not be empty"):
        collector_mod.validate_config(TIERS[tier], binary=collector_binary)


@pytest.mark.parametrize("tier", sorted(TIERS))
def test_tier_placeholders_match_the_python_side(tier: str) -> None:
    """Same names and defaults as the single-tier config's, plus the Kafka ones."""
    text = "\n".join(
        line
        for path in collector_mod.config_files(TIERS[tier])
        for line in path.read_text().splitlines()
        if not line.lstrip().startswith("#")
    )
    known = {**CollectorConfigEnv().as_env(), **KafkaTierEnv().as_env()}
    secret = CollectorConfigEnv.ENV_NAMES["hmac_key"]
    found: dict[str, set[str]] = {}
    for name, default in PLACEHOLDER.findall(text):
        found.setdefault(name, set()).add(default)
    assert set(found) <= set(known), sorted(set(found) - set(known))
    needed = {"brokers", "topic_prefix"} | ({"consumer_group"} if tier == "processing" else set())
    assert {KafkaTierEnv.ENV_NAMES[field] for field in needed} <= set(found)
    assert found[secret] == {""}, "the pseudonym key is read without a default"
    for name, defaults in found.items():
        if name != secret:
            assert defaults == {known[name]}, name


def test_tier_configs_run_with_their_privacy_pass() -> None:
    privacy = collector_mod.privacy_pass_path()
    for path in TIERS.values():
        assert collector_mod.config_files(path) == (path, privacy)


def test_edge_scrubs_everything_before_kafka(production: dict[str, Any]) -> None:
    """Every edge pipeline is a production `*/in` pipeline whose one exporter is Kafka."""
    edge = _load(edge_config_path())
    pipelines = edge["service"]["pipelines"]
    assert set(pipelines) == {"traces/in", "metrics/in", "logs/in"}
    for name, pipeline in pipelines.items():
        single = production["service"]["pipelines"][name]
        assert pipeline["receivers"] == single["receivers"] == ["otlp"]
        assert pipeline["exporters"] == ["kafka"]
        extra = ["groupbyattrs/user"] if name == "logs/in" else []
        assert pipeline["processors"] == single["processors"] + extra, name
    assert edge["processors"]["groupbyattrs/user"]["keys"] == [attrs.ENDUSER_PSEUDO_ID]
    kafka = edge["exporters"]["kafka"]
    assert kafka["partition_traces_by_id"] is True
    assert kafka["partition_logs_by_resource_attributes"] is True
    assert kafka["sending_queue"]["storage"] in edge["service"]["extensions"]
    assert kafka["retry_on_failure"]["max_elapsed_time"] == 0


def test_processing_routes_like_the_single_tier_config(production: dict[str, Any]) -> None:
    """Components and pipelines after `*/in` are copies of otel-collector-config.yaml's."""
    processing = _load(processing_config_path())
    for section in ("processors", "connectors", "exporters"):
        for name, body in processing[section].items():
            if name in {"transform/user_from_resource", "otlp_http/business"}:
                continue
            assert body == production[section][name], f"{section}.{name} differs"
        shared = set(production[section]) - {"batch"} if section == "processors" else set()
        assert shared - set(processing[section]) <= {
            "redaction/pseudonyms", "transform/pseudonym_format", "redaction/allowlist",
        }  # fmt: skip
    business = processing["exporters"]["otlp_http/business"]
    single_business = production["exporters"]["otlp_http/business"]
    assert business["endpoint"] == single_business["endpoint"]
    assert business["sending_queue"] == {"enabled": False}, "offsets commit after the export"
    assert business["retry_on_failure"]["max_elapsed_time"] == 0
    pipelines = processing["service"]["pipelines"]
    for name, pipeline in production["service"]["pipelines"].items():
        if name.endswith("/in"):
            signal = name.split("/")[0]
            assert pipelines[name]["receivers"] == [f"kafka/{signal}"]
            assert pipelines[name]["exporters"] == pipeline["exporters"]
        else:
            assert pipelines[name] == pipeline, name
    for signal in KafkaTierEnv.SIGNALS:
        receiver = processing["receivers"][f"kafka/{signal}"]
        assert receiver["message_marking"] == {
            "after": True, "on_error": False, "on_permanent_error": False,
        }  # fmt: skip
        assert receiver["error_backoff"]["enabled"] is True
        assert receiver["initial_offset"] == "earliest"
