"""Our Collector distribution contains what the manifest promises, and both configs load.

These run the real ``build/otelcol-caret``: ``components`` for the build, ``validate``
for the configs (which builds every component from the config, not just YAML parsing).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from caret_otel.stack import CollectorConfigEnv, SinkConfigEnv
from caret_otel.stack import collector as collector_mod

pytestmark = pytest.mark.integration

# builder manifest section -> section of `otelcol-caret components`
KINDS = {
    "receivers": "receivers",
    "processors": "processors",
    "exporters": "exporters",
    "connectors": "connectors",
    "extensions": "extensions",
    "providers": "providers",
}

# The component types the project needs (issue "Foundation"), under the names this
# release uses (otlp -> otlp_grpc, otlphttp -> otlp_http, ... were renamed upstream).
REQUIRED = {
    "receivers": {"otlp"},
    "processors": {
        "memory_limiter", "batch", "resource", "attributes", "transform", "filter", "redaction",
    },
    "exporters": {"otlp_grpc", "otlp_http", "debug", "file", "prometheus_remote_write"},
    "connectors": {"span_metrics", "count", "forward"},
    "extensions": {"health_check", "file_storage"},
}  # fmt: skip
REQUIRED_PROVIDERS = {"env", "file", "yaml"}

PLACEHOLDER = re.compile(r"\$\{env:([A-Za-z0-9_]+)(?::-([^}]*))?\}")


@pytest.fixture(scope="module")
def manifest() -> dict[str, Any]:
    path = collector_mod.repo_root() / "collector" / "builder-config.yaml"
    loaded: dict[str, Any] = yaml.safe_load(path.read_text())
    return loaded


@pytest.fixture(scope="module")
def components(collector_binary: Path) -> dict[str, Any]:
    return collector_mod.components(collector_binary)


def test_binary_lists_every_manifest_module(
    manifest: dict[str, Any], components: dict[str, Any]
) -> None:
    for kind, section in KINDS.items():
        wanted = {entry["gomod"] for entry in manifest[kind]}
        built = {entry["module"] for entry in components[section]}
        assert built == wanted, f"{kind}: built {sorted(built)} != manifest {sorted(wanted)}"


def test_binary_has_the_required_component_types(components: dict[str, Any]) -> None:
    for kind, names in REQUIRED.items():
        built = {entry["name"] for entry in components[kind]}
        assert names <= built, f"{kind}: missing {sorted(names - built)}"
    schemes = {entry["scheme"] for entry in components["providers"]}
    assert schemes >= REQUIRED_PROVIDERS


def test_manifest_pins_one_release(manifest: dict[str, Any], components: dict[str, Any]) -> None:
    """Components and builder at v0.161.0, confmap providers on the paired v1.67.0."""
    version = manifest["dist"]["version"]
    assert version == "0.161.0"
    assert components["buildinfo"]["version"] == version
    for kind in KINDS:
        expected = "v1.67.0" if kind == "providers" else f"v{version}"
        for entry in manifest[kind]:
            assert entry["gomod"].split()[1] == expected, entry["gomod"]
    builder = collector_mod.repo_root() / "build" / "tools" / f"builder-v{version}"
    assert builder.is_file(), "the builder is pinned to the same release as the components"


@pytest.mark.parametrize(
    ("config_files", "env_class"),
    [
        (collector_mod.config_files(collector_mod.default_config_path()), CollectorConfigEnv),
        ((collector_mod.sink_config_path(),), SinkConfigEnv),
    ],
    ids=["production", "sink"],
)
def test_placeholders_match_the_python_side(
    config_files: tuple[Path, ...], env_class: type[CollectorConfigEnv] | type[SinkConfigEnv]
) -> None:
    """Every ${env:...} has a default - except secrets, which must have none - and the
    names and defaults are the ones caret_otel.stack.collector knows (so fixtures and
    `up` set what the config reads)."""
    # Comment lines may mention the ${env:NAME:-default} syntax itself; skip them.
    text = "\n".join(
        line
        for path in config_files
        for line in path.read_text().splitlines()
        if not line.lstrip().startswith("#")
    )
    found: dict[str, set[str]] = {}
    for name, default in PLACEHOLDER.findall(text):
        found.setdefault(name, set()).add(default)
    assert all(name.startswith("CARET_OTEL_") for name in found)
    secret_fields: frozenset[str] = getattr(env_class, "SECRET_FIELDS", frozenset())
    secrets = {env_class.ENV_NAMES[field] for field in secret_fields}
    missing_default = sorted(
        name for name, defaults in found.items() if "" in defaults and name not in secrets
    )
    assert not missing_default, f"placeholders without a default: {missing_default}"
    for name in secrets:
        assert found.get(name) == {""}, f"secret {name} must be read without a default"
    python_defaults = env_class().as_env()
    assert set(found) == set(python_defaults)
    for name, defaults in found.items():
        if name not in secrets:
            assert defaults == {python_defaults[name]}, name


def test_main_config_validates_with_fixture_env(collector_binary: Path, tmp_path: Path) -> None:
    env = CollectorConfigEnv.with_free_ports(storage_dir=str(tmp_path / "storage"))
    collector_mod.validate_config(
        collector_mod.default_config_path(), env.as_env(), binary=collector_binary
    )


def test_main_config_validates_with_its_defaults(
    collector_binary: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only the secret has to be given; everything else has a working default."""
    for name in CollectorConfigEnv.ENV_NAMES.values():
        monkeypatch.delenv(name, raising=False)
    key = {CollectorConfigEnv.ENV_NAMES["hmac_key"]: "k" * CollectorConfigEnv.MIN_HMAC_KEY_BYTES}
    collector_mod.validate_config(collector_mod.default_config_path(), key, binary=collector_binary)


def test_main_config_refuses_to_run_without_a_pseudonym_key(
    collector_binary: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fail closed: no HMAC key, no Collector (rather than identifiers passing un-hashed)."""
    for name in CollectorConfigEnv.ENV_NAMES.values():
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(collector_mod.CollectorConfigError, match="hmac_key must not be empty"):
        collector_mod.validate_config(collector_mod.default_config_path(), binary=collector_binary)


def test_main_config_always_runs_with_its_privacy_pass() -> None:
    main = collector_mod.default_config_path()
    privacy = collector_mod.privacy_pass_path()
    assert collector_mod.config_files(main) == (main, privacy)
    assert collector_mod.config_files([main, privacy]) == (main, privacy)
    sink = collector_mod.sink_config_path()
    assert collector_mod.config_files(sink) == (sink,)


def test_sink_config_validates(collector_binary: Path, tmp_path: Path) -> None:
    env = SinkConfigEnv.in_dir(tmp_path)
    collector_mod.validate_config(
        collector_mod.sink_config_path(), env.as_env(), binary=collector_binary
    )


def test_every_pipeline_starts_with_memory_limiter() -> None:
    config = yaml.safe_load(collector_mod.default_config_path().read_text())
    pipelines = config["service"]["pipelines"]
    assert {"traces/in", "metrics/in", "logs/in", "metrics/business", "logs/business"} <= set(
        pipelines
    )
    for name, pipeline in pipelines.items():
        assert pipeline["processors"][0] == "memory_limiter", name


def test_business_leg_is_durable() -> None:
    config = yaml.safe_load(collector_mod.default_config_path().read_text())
    business = config["exporters"]["otlp_http/business"]
    assert business["sending_queue"]["storage"] in config["service"]["extensions"]
    assert business["retry_on_failure"]["max_elapsed_time"] == 0
    for name in ("metrics/business", "logs/business"):
        assert "batch" not in config["service"]["pipelines"][name]["processors"]


def test_invalid_config_is_reported(collector_binary: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        collector_mod.default_config_path()
        .read_text()
        .replace("memory_limiter:\n", "memory_limitr:\n", 1)
    )
    with pytest.raises(collector_mod.CollectorConfigError, match="memory_limit"):
        collector_mod.validate_config(
            [broken, collector_mod.privacy_pass_path()], binary=collector_binary
        )
