"""The registry is the single source of truth: names are never typed by hand, the
docs cover every client event, and the policy and schema agree with the registry."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from caret_otel.registry.model import default_registry_dir, load_registry
from caret_otel.semconv import events, metrics, spans
from caret_otel.semconv.policy import load_policy, load_schema

REPO = default_registry_dir().parent
PACKAGE_DIRS = (
    "core/src",
    "semconv/src",
    "processors/privacy/src",
    "sdk/src",
    "exporters/postgres/src",
    "receivers/gateway/src",
    "src",
)
SEMCONV = REPO / "semconv" / "src" / "caret_otel" / "semconv"
GENERATED = {SEMCONV / f"{name}.py" for name in ("attributes", "metrics", "events", "spans")}

# Client events the plan and issue name; each must map to documented signals.
CLIENT_EVENTS = [
    "task.created",
    "task.completed",
    "task.conversation_turn",
    "task.tokens",
    "task.provider_api_error",
    "task.tool_used",
    "task.mcp_tool_called",
    "task.browser_tool_start",
    "task.browser_tool_end",
    "task.focus_chain_*",
    "ui.model_selected",
    "user.opt_out",
    "user.opt_in",
    "user.signed_up",
    "plan.changed",
    "credits.purchased",
    "credits.consumed",
    "session.started",
    "session.ended",
]


def registry_names() -> set[str]:
    reg = load_registry()
    names = set(reg.attributes) | set(reg.metrics) | set(reg.events)
    names |= {s.name for s in reg.spans.values()}
    return names


def package_files() -> list[Path]:
    files = []
    for folder in PACKAGE_DIRS:
        files += [p for p in (REPO / folder).rglob("*.py") if p not in GENERATED]
    return sorted(files)


def test_no_registry_name_is_a_string_literal_outside_generated_code() -> None:
    names = registry_names()
    offenders = []
    for path in package_files():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and node.value in names
            ):
                offenders.append(f"{path.relative_to(REPO)}:{node.lineno}: {node.value!r}")
    assert not offenders, "use caret_otel.semconv constants instead of:\n" + "\n".join(offenders)


def test_the_grep_would_catch_a_literal(tmp_path: Path) -> None:
    # Guard against a test that cannot fail: the detector flags a planted literal.
    planted = 'MODEL = "gen_ai.request.model"\n'
    tree = ast.parse(planted)
    found = [
        n.value
        for n in ast.walk(tree)
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and n.value in registry_names()
    ]
    assert found == ["gen_ai.request.model"]


@pytest.mark.parametrize("client_event", CLIENT_EVENTS)
def test_docs_map_every_client_event_to_signals(client_event: str) -> None:
    docs = (REPO / "docs" / "semantic-conventions.md").read_text(encoding="utf-8")
    rows = [line for line in docs.splitlines() if line.startswith(f"| `{client_event}` |")]
    assert len(rows) == 1, f"{client_event} missing from the mapping table"
    assert "metric `" in rows[0]
    assert "event `" in rows[0]


@pytest.mark.parametrize("client_event", [e for e in CLIENT_EVENTS if not e.endswith("*")])
def test_client_events_resolve(client_event: str) -> None:
    resolved = events.for_client_event(client_event)
    assert resolved is not None
    assert resolved[0].client_event == client_event


def test_focus_chain_family_yields_its_action() -> None:
    resolved = events.for_client_event("task.focus_chain_progress_update")
    assert resolved is not None
    spec, action = resolved
    assert spec is events.CARET_TASK_FOCUS_CHAIN
    assert action == "progress_update"
    assert events.for_client_event("task.focus_chain_") is None
    assert events.for_client_event("task.unknown") is None


def test_upstream_genai_metrics_keep_upstream_bucket_advice() -> None:
    duration = metrics.GEN_AI_CLIENT_OPERATION_DURATION
    assert duration.unit == "s"
    assert duration.instrument == "histogram"
    assert duration.buckets is not None
    assert duration.buckets[0] == 0.01
    assert duration.buckets[-1] == 81.92
    usage = metrics.GEN_AI_CLIENT_TOKEN_USAGE
    assert usage.buckets is not None
    assert list(usage.buckets) == [float(4**i) for i in range(14)]


def test_active_sessions_is_an_updowncounter() -> None:
    assert metrics.CARET_SESSION_ACTIVE.instrument == "updowncounter"


def test_policy_matches_registry() -> None:
    reg = load_registry()
    policy = load_policy()
    assert set(policy.attributes) == set(reg.attributes)
    for name, attr in reg.attributes.items():
        assert policy.attributes[name].privacy == attr.privacy
        assert policy.attributes[name].metric == attr.metric
    assert policy.retention == {
        "raw_events_days": 30,
        "aggregates_days": 365,
        "trends_days": 1095,
        "trends_min_users_per_cell": 10,
    }
    assert all(policy.attributes[target] for target in policy.client_properties.values())


def test_forbidden_content_is_declared() -> None:
    policy = load_policy()
    forbidden = {n for n, r in policy.attributes.items() if r.privacy == "forbidden"}
    # code, file names and paths, prompts/responses, commands, e-mails and IPs
    for client_key in ("code", "path", "filename", "prompt", "response", "command", "email", "ip"):
        assert policy.client_properties[client_key] in forbidden, client_key


def test_schema_lists_every_collected_attribute_with_its_class() -> None:
    schema = load_schema()
    listed = {
        a["name"]: a["privacy_class"] for g in schema["attribute_groups"] for a in g["attributes"]
    }
    assert listed == {n: r.privacy for n, r in load_policy().attributes.items()}
    assert schema["retention"]["raw_events_days"] == 30
    assert all(g["purpose"] for g in schema["attribute_groups"])


def test_span_names() -> None:
    assert spans.GEN_AI_CLIENT.count("{") == 2
    assert spans.CARET_TASK.startswith("caret.")
