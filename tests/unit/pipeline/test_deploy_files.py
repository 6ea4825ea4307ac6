"""deploy/ cannot run here (no container engine), so its files are checked for what they
must hold: every service of the design, the Collector on both production files with
every variable it reads, Loki's three index labels, Grafana's provisioning."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from caret_otel.semconv import attributes as attrs
from caret_otel.stack import CollectorConfigEnv
from caret_otel.stack import collector as collector_mod

DEPLOY = collector_mod.repo_root() / "deploy"


def _load(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DEPLOY / name).read_text())
    return loaded


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return _load("docker-compose.yaml")


def test_every_component_of_the_design_is_a_service(compose: dict[str, Any]) -> None:
    assert {
        "collector", "gateway", "exporter", "postgres", "prometheus", "tempo", "loki", "grafana",
    } <= set(compose["services"])  # fmt: skip


def test_mounted_files_exist(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                assert (DEPLOY / source).resolve().exists(), f"{name}: {source}"
        build = service.get("build")
        if build:
            assert (DEPLOY / build["context"] / build["dockerfile"]).is_file(), name


def test_collector_runs_both_production_files(compose: dict[str, Any]) -> None:
    collector = compose["services"]["collector"]
    mounted = {v.split(":")[0]: v.split(":")[1] for v in collector["volumes"]}
    assert mounted["../otel-collector-config.yaml"].endswith("otel-collector-config.yaml")
    assert mounted["../collector/privacy-pass.yaml"].endswith("privacy-pass.yaml")
    dockerfile = (DEPLOY / "collector.Dockerfile").read_text()
    for target in mounted.values():
        if target.endswith(".yaml"):
            assert f"--config={target}" in dockerfile, target


def test_collector_env_is_what_the_config_reads(compose: dict[str, Any]) -> None:
    env = compose["services"]["collector"]["environment"]
    known = set(CollectorConfigEnv.ENV_NAMES.values())
    assert set(env) <= known, sorted(set(env) - known)
    # Listeners and destinations are all set for the compose network.
    for field in ("grpc_endpoint", "http_endpoint", "prometheus_remote_write_url",
                  "tempo_endpoint", "loki_endpoint", "business_exporter_endpoint", "storage_dir"):  # fmt: skip
        assert CollectorConfigEnv.ENV_NAMES[field] in env, field
    # The secret is required (compose refuses to start without it), never defaulted.
    key = env[CollectorConfigEnv.ENV_NAMES["hmac_key"]]
    assert re.fullmatch(r"\$\{CARET_OTEL_COLLECTOR_HMAC_KEY:\?[^}]+\}", key), key
    example = (DEPLOY / ".env.example").read_text()
    assert "CARET_OTEL_COLLECTOR_HMAC_KEY=\n" in example  # documented, left empty
    # The queue lives on a named volume, where the storage directory points.
    assert env[CollectorConfigEnv.ENV_NAMES["storage_dir"]].startswith("/var/lib/otelcol-caret")
    assert any(v.startswith("collector-queue:/var/lib/otelcol-caret") for v in compose["services"]["collector"]["volumes"])  # fmt: skip


def test_loki_indexes_exactly_three_resource_attributes() -> None:
    loki = _load("loki-config.yaml")
    resource = loki["limits_config"]["otlp_config"]["resource_attributes"]
    assert resource["ignore_defaults"] is True
    labels = [a for rule in resource["attributes_config"] if rule["action"] == "index_label"
              for a in rule["attributes"]]  # fmt: skip
    assert sorted(labels) == sorted(
        [attrs.SERVICE_NAME, attrs.SERVICE_NAMESPACE, attrs.DEPLOYMENT_ENVIRONMENT]
    )
    assert loki["limits_config"]["allow_structured_metadata"] is True


def test_tempo_receives_otlp_where_the_collector_sends(compose: dict[str, Any]) -> None:
    tempo = _load("tempo.yaml")
    grpc = tempo["distributor"]["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"]
    port = grpc.rsplit(":", 1)[1]
    target = compose["services"]["collector"]["environment"]["CARET_OTEL_TEMPO_ENDPOINT"]
    assert target == f"tempo:{port}"


def test_grafana_mounts_provisioning_and_dashboards(compose: dict[str, Any]) -> None:
    volumes = compose["services"]["grafana"]["volumes"]
    assert "../grafana/provisioning:/etc/grafana/provisioning:ro" in volumes
    provider = yaml.safe_load(
        (DEPLOY.parent / "grafana" / "provisioning" / "dashboards" / "caret.yaml").read_text()
    )
    path = provider["providers"][0]["options"]["path"]
    assert f"../grafana/dashboards:{path}:ro" in volumes
    # Every variable the datasources file interpolates is set.
    datasources = (DEPLOY.parent / "grafana/provisioning/datasources/datasources.yaml").read_text()
    wanted = set(re.findall(r"(?<!\$)\$\{(CARET_[A-Z_]+)\}", datasources))
    assert wanted <= set(compose["services"]["grafana"]["environment"])


def test_prometheus_accepts_remote_write(compose: dict[str, Any]) -> None:
    command = compose["services"]["prometheus"]["command"]
    assert "--web.enable-remote-write-receiver" in command


def test_python_image_builds_every_distribution() -> None:
    dockerfile = Path(DEPLOY / "Dockerfile").read_text()
    root = DEPLOY.parent
    distributions = sorted(
        path.parent.relative_to(root).as_posix()
        for path in root.glob("*/**/pyproject.toml")
        if "src" in {p.name for p in path.parent.iterdir()}
        and not {"build", ".venv", "node_modules"} & set(path.parts)
    )
    assert distributions, "no distribution found"
    copied = set(re.findall(r"^COPY (\S+) \./", dockerfile, re.M))
    built = re.search(r"for dist in ([^;]+); do", dockerfile)
    assert built is not None, "the build stage builds no wheels"
    for folder in distributions:
        assert folder.split("/")[0] in copied, folder
        assert folder in built.group(1).split(), folder
    assert "src" in copied
    assert "." in built.group(1).split()
    assert "python -m build --wheel" in dockerfile
