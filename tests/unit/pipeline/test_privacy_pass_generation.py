"""The Collector's privacy pass is rendered from the registry (so it cannot disagree with
the Python processor), and the production config uses it as designed."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from caret_otel.processors.privacy import redaction as python_redaction
from caret_otel.registry import collector_privacy as cp
from caret_otel.registry.model import default_registry_dir, load_registry
from caret_otel.semconv import attributes as attrs
from caret_otel.semconv import metrics
from caret_otel.semconv.policy import load_policy
from caret_otel.stack import CollectorConfigEnv
from caret_otel.stack import collector as collector_mod


def _processors(text: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(text)["processors"]
    return loaded


@pytest.fixture(scope="module")
def privacy() -> dict[str, Any]:
    return _processors(collector_mod.privacy_pass_path().read_text())


@pytest.fixture(scope="module")
def main_config() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(collector_mod.default_config_path().read_text())
    return loaded


def _unescape(text: str) -> str:
    return text.replace("$$", "$")


def _statements(processor: dict[str, Any], signal: str) -> list[str]:
    return [s for group in processor.get(f"{signal}_statements", []) for s in group["statements"]]


def test_the_file_on_disk_is_the_rendering_of_the_registry() -> None:
    reg = load_registry()
    assert collector_mod.privacy_pass_path().read_text() == cp.render_collector_privacy(reg)
    assert cp.default_collector_privacy_path(reg) == collector_mod.privacy_pass_path()


def test_allow_list_is_every_registry_key_but_the_forbidden(privacy: dict[str, Any]) -> None:
    policy = load_policy()
    allowlist = privacy[cp.ALLOWLIST]
    assert allowlist["allow_all_keys"] is False
    kept = set(allowlist["allowed_keys"]) | set(allowlist["ignored_keys"])
    assert kept == {n for n, r in policy.attributes.items() if r.privacy != "forbidden"}
    forbidden = {n for n, r in policy.attributes.items() if r.privacy == "forbidden"}
    assert forbidden, "the registry declares forbidden content"
    assert not kept & forbidden
    # Only route templates skip the scan (transform/privacy scans them instead).
    assert allowlist["ignored_keys"] == [attrs.HTTP_ROUTE]
    assert allowlist["redact_all_types"] is True
    assert allowlist["summary"] == "silent"


def test_hmac_applies_to_exactly_the_pseudonymous_keys(privacy: dict[str, Any]) -> None:
    policy = load_policy()
    pseudonyms = privacy[cp.PSEUDONYMS]
    assert pseudonyms["hash_function"] == "hmac-sha256"
    assert pseudonyms["hmac_key"] == "${env:CARET_OTEL_COLLECTOR_HMAC_KEY}"  # no default
    (pattern,) = pseudonyms["blocked_key_patterns"]
    matcher = re.compile(_unescape(pattern))
    for name, rule in policy.attributes.items():
        assert bool(matcher.match(name)) == (rule.privacy == "pseudonymous"), name
    for name in policy.attributes:  # no partial matches (user.id vs user.id.x)
        assert not matcher.match(name + ".x")


def test_pseudonym_shape_is_the_python_one(privacy: dict[str, Any]) -> None:
    """Values the Collector leaves alone are exactly what the Python side calls pseudonyms."""
    from caret_otel.processors.privacy.pseudonyms import is_pseudonym

    (allowed,) = privacy[cp.PSEUDONYMS]["allowed_values"]
    shape = re.compile(_unescape(allowed))
    samples = [
        "v1:" + "a" * 64,
        "vcollector:" + "0" * 64,
        "v_k-9:" + "f" * 64,
        "v1:" + "A" * 64,
        "1:" + "a" * 64,
        "v1:" + "a" * 63,
        "v" + "x" * 33 + ":" + "a" * 64,
        "v1:" + "a" * 64 + "\n",
        "user-42",
    ]
    for sample in samples:
        assert bool(shape.match(sample)) == is_pseudonym(sample), sample


def test_pseudonym_format_statements_cover_every_pseudonymous_key(
    privacy: dict[str, Any],
) -> None:
    pseudonymous = {n for n, r in load_policy().attributes.items() if r.privacy == "pseudonymous"}
    transform = privacy[cp.PSEUDONYM_FORMAT]
    assert transform["error_mode"] == "propagate"
    for signal, contexts in (("trace", 4), ("log", 3)):
        statements = [s for s in _statements(transform, signal) if "log.body" not in s]
        formats = [s for s in statements if s.startswith("replace_pattern(")]
        # A value hashed line by line is no pseudonym: deleted.
        deletes = [s for s in statements if s.startswith("delete_key(")]
        assert len(formats) == contexts * len(pseudonymous)
        assert len(deletes) == contexts * len(pseudonymous)
        for key in pseudonymous:
            assert sum(f'["{key}"]' in s for s in formats) == contexts, key
    # Map bodies are hashed too (redaction/pseudonyms reaches them): formatted as well.
    body = [s for s in _statements(transform, "log") if "log.body" in s]
    assert len(body) == 2 * len(pseudonymous)


def test_metric_labels_are_limited_to_metric_safe_keys(privacy: dict[str, Any]) -> None:
    safe = load_policy().metric_attributes
    statements = _statements(privacy[cp.PRIVACY], "metric")
    keeps = [s for s in statements if s.startswith("keep_keys(")]
    targets = {s.split(",", 1)[0].removeprefix("keep_keys(") for s in keeps}
    assert targets == {"datapoint.attributes", "exemplar.filtered_attributes", "scope.attributes"}
    for statement in keeps:
        listed = set(re.findall(r'"([^"]+)"', statement.split(",", 1)[1]))
        assert listed == safe, statement
    pseudonymous = [n for n, r in load_policy().attributes.items() if r.privacy == "pseudonymous"]
    assert not set(pseudonymous) & safe


def test_every_privacy_statement_fails_closed(privacy: dict[str, Any]) -> None:
    for name in (cp.PSEUDONYM_FORMAT, cp.PRIVACY):
        assert privacy[name]["error_mode"] == "propagate", name
    traces = _statements(privacy[cp.PRIVACY], "trace")
    assert "set(span.links, nil)" in traces
    masked = {s.split(",", 1)[0] for s in traces if s.startswith("replace_pattern(")}
    assert {
        "replace_pattern(span.name",
        "replace_pattern(span.status.message",
        "replace_pattern(spanevent.name",
        "replace_pattern(scope.name",
    } <= masked


def test_every_secret_kind_of_the_python_processor_has_a_pattern() -> None:
    assert {p.kind for p in cp.SECRET_PATTERNS} == set(python_redaction.KINDS)
    assert cp.blocked_values() == [p.regex for p in cp.SECRET_PATTERNS]
    # Routes are scanned with everything but the patterns that match route templates.
    assert cp.secrets_pattern(for_routes=True).count("(?:") < cp.secrets_pattern().count("(?:")


def test_dollar_signs_are_escaped_for_the_config_resolver(privacy: dict[str, Any]) -> None:
    """A lone `$` would be read as a placeholder; only our two env placeholders remain."""
    text = collector_mod.privacy_pass_path().read_text()
    body = "\n".join(line for line in text.splitlines() if not line.startswith("#"))
    lone = re.findall(r"(?<!\$)\$(?!\$)\{?[A-Za-z:_]*", body.replace("$$", ""))
    assert set(lone) == {
        "${env:CARET_OTEL_COLLECTOR_HMAC_KEY",
        "${env:CARET_OTEL_COLLECTOR_HMAC_KEY_ID:",
    }


def _copy_registry(tmp_path: Path) -> Path:
    root = tmp_path / "semantic_conventions"
    shutil.copytree(default_registry_dir(), root, ignore=shutil.ignore_patterns("__pycache__"))
    return root


def test_a_registry_change_changes_the_collector_policy(tmp_path: Path) -> None:
    """Declare a new pseudonymous attribute and make an allowed one forbidden: the
    rendering follows, with no hand edit anywhere."""
    root = _copy_registry(tmp_path)
    path = root / "registry" / "caret.yaml"
    data = yaml.safe_load(path.read_text())
    group = next(g for g in data["groups"] if g["id"] == "registry.caret.client")
    group["attributes"].append(
        {
            "id": "caret.client.install_id",
            "type": "string",
            "brief": "Installation id.",
            "examples": ["abc"],
            "stability": "development",
            "requirement_level": "recommended",
            "annotations": {"caret": {"privacy": "pseudonymous", "metric": False}},
        }
    )
    for attribute in group["attributes"]:
        if attribute["id"] == attrs.CARET_CLIENT_LANGUAGE:
            attribute["annotations"]["caret"] = {"privacy": "forbidden", "metric": False}
    path.write_text(yaml.safe_dump(data, sort_keys=False))

    processors = _processors(cp.render_collector_privacy(load_registry(root)))
    allowed = processors[cp.ALLOWLIST]["allowed_keys"]
    assert "caret.client.install_id" in allowed
    assert attrs.CARET_CLIENT_LANGUAGE not in allowed
    (pattern,) = processors[cp.PSEUDONYMS]["blocked_key_patterns"]
    assert re.match(_unescape(pattern), "caret.client.install_id")
    assert any(
        '"caret.client.install_id"' in s
        for s in _statements(processors[cp.PSEUDONYM_FORMAT], "log")
    )
    keep = next(
        s
        for s in _statements(processors[cp.PRIVACY], "metric")
        if s.startswith("keep_keys(datapoint")
    )
    assert f'"{attrs.CARET_CLIENT_LANGUAGE}"' not in keep


# --- the production config uses the pass --------------------------------------------------------
INGRESS = {"traces": "traces/in", "metrics": "metrics/in", "logs": "logs/in"}


def test_ingress_pipelines_run_memory_limiter_then_the_privacy_pass(
    main_config: dict[str, Any], privacy: dict[str, Any]
) -> None:
    pipelines = main_config["service"]["pipelines"]
    used: set[str] = set()
    for signal, name in INGRESS.items():
        expected = ["memory_limiter", *cp.INGRESS_PROCESSORS[signal]]
        assert pipelines[name]["processors"] == expected, name
        assert pipelines[name]["receivers"] == ["otlp"], name
        used |= set(cp.INGRESS_PROCESSORS[signal])
    assert used == set(privacy)
    # Only the ingress pipelines take data from outside the Collector.
    for name, pipeline in pipelines.items():
        if name not in INGRESS.values():
            assert "otlp" not in pipeline["receivers"], name
    # The main file does not define privacy processors itself (one source: the pass).
    assert not set(privacy) & set(main_config["processors"])


def test_span_metrics_are_the_registry_metrics(main_config: dict[str, Any]) -> None:
    connector = main_config["connectors"]["span_metrics"]
    calls, duration = metrics.CARET_GEN_AI_SPAN_CALLS, metrics.CARET_GEN_AI_SPAN_DURATION
    namespace = connector["namespace"]
    assert f"{namespace}.calls" == calls.name
    assert f"{namespace}.duration" == duration.name
    dimensions = tuple(d["name"] for d in connector["dimensions"])
    assert dimensions == calls.attributes == duration.attributes
    assert set(connector["exclude_dimensions"]) >= {"span.name", "span.kind", "status.code"}
    assert connector["histogram"]["unit"] == duration.unit
    seconds = [
        int(b.removesuffix("ms")) / 1000 for b in connector["histogram"]["explicit"]["buckets"]
    ]
    assert tuple(seconds) == duration.buckets
    unit = main_config["processors"]["transform/span_metrics"]["metric_statements"][0]
    assert unit["statements"] == [
        f'set(metric.unit, "{calls.unit}") where metric.name == "{calls.name}"'
    ]
    # No dimension is user-level.
    policy = load_policy()
    assert all(policy.attributes[d].metric for d in dimensions)


def test_dashboard_labels_copied_onto_points_are_metric_safe(main_config: dict[str, Any]) -> None:
    statements = main_config["processors"]["transform/prometheus"]["metric_statements"][0]
    target = re.compile(r'^set\(datapoint\.attributes\["([^"]+)"\]')
    copied = {m.group(1) for s in statements["statements"] if (m := target.match(s))}
    assert len(copied) == len(statements["statements"])
    assert copied == {
        attrs.DEPLOYMENT_ENVIRONMENT_NAME,
        attrs.SERVICE_NAME,
        attrs.SERVICE_NAMESPACE,
    }
    assert copied <= load_policy().metric_attributes


# --- CollectorConfigEnv ------------------------------------------------------------------------
def test_hmac_key_is_a_secret_in_the_env_class() -> None:
    env = CollectorConfigEnv.with_free_ports()
    assert len(env.hmac_key.encode()) >= CollectorConfigEnv.MIN_HMAC_KEY_BYTES
    assert env.hmac_key not in repr(env)
    assert CollectorConfigEnv.with_free_ports().hmac_key != env.hmac_key  # throw-away keys
    assert env.as_env()["CARET_OTEL_COLLECTOR_HMAC_KEY"] == env.hmac_key


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"hmac_key": "too-short"}, "at least 32 bytes"),
        ({"hmac_key_id": "has:colon"}, "hmac_key_id"),
        ({"hmac_key_id": ""}, "hmac_key_id"),
        ({"hmac_key_id": "x" * 33}, "hmac_key_id"),
    ],
)
def test_bad_key_settings_are_refused(fields: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CollectorConfigEnv(**fields)  # type: ignore[arg-type]
