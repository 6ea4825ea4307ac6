"""Caret client events: validated, mapped to registry attributes, scrubbed, consent-checked."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from caret_otel.processors.privacy import report as reasons
from caret_otel.processors.privacy.client_events import ClientEventError, ClientEventScrubber
from caret_otel.processors.privacy.consent import InMemoryConsentStore
from caret_otel.processors.privacy.engine import PrivacyEngine
from caret_otel.processors.privacy.pseudonyms import Pseudonymizer
from caret_otel.processors.privacy.report import ScrubReport
from caret_otel.semconv import attributes as attrs
from caret_otel.semconv import events
from caret_otel.semconv.policy import load_policy

# The example of section 2.1 of the telemetry plan, plus a task id.
PLAN_EXAMPLE: dict[str, Any] = {
    "event_type": "task.created",
    "user_id_hash": "hashed_user_id",
    "session_id": "session_uuid",
    "timestamp": "2025-01-11T10:00:00Z",
    "properties": {
        "api_provider": "anthropic",
        "model": "claude-sonnet-4",
        "context_size": 128000,
        "task_id": "01JH0000000000000000000000",
    },
    "client_info": {"version": "1.0.0", "platform": "vscode", "language": "ko"},
}


def event(**changes: Any) -> dict[str, Any]:
    raw = copy.deepcopy(PLAN_EXAMPLE)
    raw.update(changes)
    return raw


@pytest.fixture
def scrubber(engine: PrivacyEngine, consent: InMemoryConsentStore) -> ClientEventScrubber:
    return ClientEventScrubber(engine, consent)


def test_plan_example_maps_to_registry_attributes(
    scrubber: ClientEventScrubber, pseudonymizer: Pseudonymizer, report: ScrubReport
) -> None:
    out = scrubber.scrub(PLAN_EXAMPLE, report, country="kr")
    assert out is not None
    assert out.spec is events.CARET_TASK_CREATED
    assert out.timestamp == datetime(2025, 1, 11, 10, tzinfo=UTC)
    event_id = out.attributes.pop(attrs.CARET_EVENT_ID)
    assert isinstance(event_id, str)
    assert len(event_id) == 32
    assert out.attributes == {
        attrs.CARET_EVENT_CLIENT_TYPE: "task.created",
        attrs.ENDUSER_PSEUDO_ID: pseudonymizer.pseudonymize("hashed_user_id"),
        attrs.SESSION_ID: pseudonymizer.pseudonymize("session_uuid"),
        attrs.GEN_AI_PROVIDER_NAME: "anthropic",
        attrs.GEN_AI_REQUEST_MODEL: "claude-sonnet-4",
        attrs.CARET_CONTEXT_WINDOW_SIZE: 128000,
        attrs.CARET_TASK_ID: pseudonymizer.pseudonymize("01JH0000000000000000000000"),
        attrs.CARET_CLIENT_VERSION: "1.0.0",
        attrs.CARET_CLIENT_PLATFORM: "vscode",
        attrs.CARET_CLIENT_LANGUAGE: "ko",
        attrs.GEO_COUNTRY_ISO_CODE: "KR",
        attrs.GEO_CONTINENT_CODE: "AS",
    }
    assert report.total_dropped == 0


def test_event_id_is_deterministic_and_content_bound(
    scrubber: ClientEventScrubber, report: ScrubReport
) -> None:
    first = scrubber.scrub(PLAN_EXAMPLE, report)
    retry = scrubber.scrub(copy.deepcopy(PLAN_EXAMPLE), report)
    reordered = scrubber.scrub(dict(reversed(list(PLAN_EXAMPLE.items()))), report)
    later = scrubber.scrub(event(timestamp="2025-01-11T10:00:01Z"), report)
    scrubbed = [e for e in (first, retry, reordered, later) if e is not None]
    assert len(scrubbed) == 4
    ids = [e.attributes[attrs.CARET_EVENT_ID] for e in scrubbed]
    assert ids[0] == ids[1] == ids[2]
    assert ids[3] != ids[0]


def test_event_id_needs_the_key(engine: PrivacyEngine, report: ScrubReport) -> None:
    from unit.privacy.conftest import KEY_2, make_pseudonymizer

    other = ClientEventScrubber(
        PrivacyEngine(engine.policy, make_pseudonymizer(KEY_2)), InMemoryConsentStore()
    )
    ours = ClientEventScrubber(engine, InMemoryConsentStore()).scrub(PLAN_EXAMPLE, report)
    theirs = other.scrub(PLAN_EXAMPLE, report)
    assert ours is not None
    assert theirs is not None
    assert ours.attributes[attrs.CARET_EVENT_ID] != theirs.attributes[attrs.CARET_EVENT_ID]


def test_forbidden_unknown_and_misplaced_properties_are_dropped_and_counted(
    scrubber: ClientEventScrubber, report: ScrubReport
) -> None:
    raw = event(
        properties={
            **PLAN_EXAMPLE["properties"],
            "prompt": "refactor my code",
            "filePath": "/home/alice/app.py",
            "favourite_colour": "blue",
            "cost": 0.5,  # a registry attribute, but not one of task.created
            "modelId": "gpt-4o",  # second alias of gen_ai.request.model
            "event_id": "client-chosen",  # feeds the event hash only
        },
        client_info={**PLAN_EXAMPLE["client_info"], "hostname": "alice-laptop"},
    )
    out = scrubber.scrub(raw, report)
    assert out is not None
    assert out.attributes[attrs.GEN_AI_REQUEST_MODEL] == "claude-sonnet-4"
    assert "refactor" not in str(out.attributes)
    assert "alice" not in str(out.attributes)
    assert report.dropped == {
        (attrs.CARET_PROMPT_TEXT, reasons.FORBIDDEN): 1,
        (attrs.CARET_FILE_PATH, reasons.FORBIDDEN): 1,
        ("properties.favourite_colour", reasons.UNKNOWN): 1,
        (attrs.CARET_API_COST, reasons.NOT_IN_EVENT): 1,
        (attrs.GEN_AI_REQUEST_MODEL, reasons.DUPLICATE): 1,
        ("client_info.hostname", reasons.UNKNOWN): 1,
    }


def test_error_messages_are_redacted(scrubber: ClientEventScrubber, report: ScrubReport) -> None:
    raw = event(
        event_type="task.provider_api_error",
        properties={
            "api_provider": "openai",
            "error_type": "401",
            "error_message": "bad key sk-proj-ABCDEFGHIJKLMNOPQRSTUV for bob@corp.example",
        },
    )
    out = scrubber.scrub(raw, report)
    assert out is not None
    message = out.attributes[attrs.CARET_ERROR_MESSAGE]
    assert message == "bad key <redacted:api_key> for <redacted:email>"


def test_focus_chain_family_takes_its_action_from_the_suffix(
    scrubber: ClientEventScrubber, report: ScrubReport
) -> None:
    out = scrubber.scrub(
        event(event_type="task.focus_chain_progress_update", properties={"action": "forged"}),
        report,
    )
    assert out is not None
    assert out.spec is events.CARET_TASK_FOCUS_CHAIN
    assert out.attributes[attrs.CARET_FEATURE_NAME] == "focus_chain"
    assert out.attributes[attrs.CARET_FEATURE_ACTION] == "progress_update"
    assert out.attributes[attrs.CARET_EVENT_CLIENT_TYPE] == "task.focus_chain_progress_update"
    assert report.dropped == {(attrs.CARET_FEATURE_ACTION, reasons.SERVER_SET): 1}


def test_opted_out_user_is_dropped_from_the_next_event(
    engine: PrivacyEngine, pseudonymizer: Pseudonymizer, report: ScrubReport
) -> None:
    consent = InMemoryConsentStore()
    scrubber = ClientEventScrubber(engine, consent)
    assert scrubber.scrub(PLAN_EXAMPLE, report) is not None
    consent.set_consent(pseudonymizer.all_pseudonyms("hashed_user_id"), enabled=False)
    assert scrubber.scrub(PLAN_EXAMPLE, report) is None
    other_user = scrubber.scrub(event(user_id_hash="someone_else"), report)
    assert other_user is not None


def test_consent_events_pass_and_name_the_change(
    engine: PrivacyEngine, pseudonymizer: Pseudonymizer, report: ScrubReport
) -> None:
    consent = InMemoryConsentStore(pseudonymizer.all_pseudonyms("hashed_user_id"))
    scrubber = ClientEventScrubber(engine, consent)
    opt_in = scrubber.scrub(event(event_type="user.opt_in", properties={}), report)
    assert opt_in is not None
    assert opt_in.consent_change is True
    opt_out = scrubber.scrub(event(event_type="user.opt_out", properties={}), report)
    assert opt_out is not None
    assert opt_out.consent_change is False
    created = scrubber.scrub(PLAN_EXAMPLE, report)
    assert created is None


@pytest.mark.parametrize(
    ("raw", "field", "reason"),
    [
        ([], "event", "JSON object"),
        (event(event_type=None), "event_type", "required"),
        (event(event_type="task.exploded"), "event_type", "not a known event type"),
        (event(event_type="task.focus_chain_"), "event_type", "not a known event type"),
        (event(user_id_hash=""), "user_id_hash", "empty"),
        (event(user_id_hash=7), "user_id_hash", "string"),
        (event(session_id=None), "session_id", "required"),
        (event(timestamp="2025-01-11 10:00"), "timestamp", "RFC 3339"),
        (event(timestamp="2025-01-11T10:00:00"), "timestamp", "offset"),
        (event(timestamp="2025-13-11T10:00:00Z"), "timestamp", "not a valid"),
        (event(timestamp=1736589600), "timestamp", "string"),
        (event(properties=["x"]), "properties", "JSON object"),
        (event(client_info=None), "client_info", "required"),
        (
            event(client_info={"version": "1", "language": "ko"}),
            "client_info.platform",
            "required",
        ),
        (
            event(client_info={"version": 1, "platform": "x", "language": "ko"}),
            "client_info.version",
            "string",
        ),
    ],
)
def test_malformed_events_name_the_field(
    scrubber: ClientEventScrubber, report: ScrubReport, raw: Any, field: str, reason: str
) -> None:
    with pytest.raises(ClientEventError) as caught:
        scrubber.scrub(raw, report)
    assert caught.value.field == field
    assert reason in caught.value.reason


def test_errors_never_echo_values(scrubber: ClientEventScrubber, report: ScrubReport) -> None:
    with pytest.raises(ClientEventError) as caught:
        scrubber.scrub(event(event_type="alice@example.com"), report)
    assert "alice" not in str(caught.value)


def test_timestamp_offsets_are_normalised_to_utc(
    scrubber: ClientEventScrubber, report: ScrubReport
) -> None:
    out = scrubber.scrub(event(timestamp="2025-01-11T19:00:00.123456789+09:00"), report)
    assert out is not None
    assert out.timestamp == datetime(2025, 1, 11, 10, 0, 0, 123456, tzinfo=UTC)


def test_invalid_country_header_is_dropped(
    scrubber: ClientEventScrubber, report: ScrubReport
) -> None:
    out = scrubber.scrub(PLAN_EXAMPLE, report, country="XX")
    assert out is not None
    assert attrs.GEO_COUNTRY_ISO_CODE not in out.attributes
    assert report.dropped == {(attrs.GEO_COUNTRY_ISO_CODE, reasons.INVALID): 1}


def test_every_client_event_type_maps(scrubber: ClientEventScrubber, report: ScrubReport) -> None:
    aliases: dict[str, str] = {}
    for key, name in load_policy().client_properties.items():
        aliases.setdefault(name, key)
    for event_type, spec in events.CLIENT_EVENTS.items():
        raw = event(event_type=event_type)
        for name in spec.required:  # e.g. an experiment's key and variant
            if name in aliases:
                raw["properties"].setdefault(aliases[name], "control")
        out = scrubber.scrub(raw, report)
        assert out is not None
        assert out.spec is spec


def test_opt_out_survives_a_key_rotation(report: ScrubReport) -> None:
    from unit.privacy.conftest import KEY_1, KEY_2, make_pseudonymizer

    from caret_otel.semconv.policy import load_policy

    consent = InMemoryConsentStore(make_pseudonymizer(KEY_1).all_pseudonyms("hashed_user_id"))
    rotated = PrivacyEngine(load_policy(), make_pseudonymizer(KEY_1, KEY_2))
    assert ClientEventScrubber(rotated, consent).scrub(PLAN_EXAMPLE, report) is None


# --- Real clients (Caret 0.4.x = Cline v3.38.2, Cline 2026): see tests/real_client_corpus.py


def real(event_type: str, properties: dict[str, Any], **changes: Any) -> dict[str, Any]:
    metadata = {"extension_version": "0.4.5", "platform": "Visual Studio Code",
                "platform_version": "1.95.3", "os_type": "Darwin",
                "os_version": "Darwin Kernel Version 24.1.0: Thu Oct 10", "is_dev": False}  # fmt: skip
    raw = {
        "event_type": event_type,
        "user_id_hash": "ab" * 32,
        "session_id": "vscode-session",
        "timestamp": "2025-11-30T10:00:00.123Z",
        "properties": properties | metadata,
        "client_info": {"version": "0.4.5", "platform": "Visual Studio Code"},
    }
    raw.update(changes)
    return raw


def test_the_plan_example_is_accepted_as_written(
    scrubber: ClientEventScrubber, report: ScrubReport
) -> None:
    plan = copy.deepcopy(PLAN_EXAMPLE)
    del plan["properties"]["task_id"]
    out = scrubber.scrub(plan, report)
    assert out is not None
    assert out.attributes[attrs.GEN_AI_PROVIDER_NAME] == "anthropic"
    assert out.attributes[attrs.CARET_CONTEXT_WINDOW_SIZE] == 128000
    assert attrs.CARET_TASK_ID not in out.attributes


def test_an_assistant_turn_maps_camel_case_and_counts_cache_in_input(
    scrubber: ClientEventScrubber, report: ScrubReport
) -> None:
    props = {"ulid": "01JD" + "0" * 22, "provider": "anthropic", "model": "claude-sonnet-4-5",
             "source": "assistant", "mode": "act", "timestamp": "2025-11-30T10:00:00.000Z",
             "tokensIn": 1000, "tokensOut": 200, "cacheReadTokens": 500, "cacheWriteTokens": 50,
             "totalCost": 0.0123, "isNativeToolCall": False}  # fmt: skip
    out = scrubber.scrub(real("task.conversation_turn", props), report)
    assert out is not None
    a = out.attributes
    assert a[attrs.GEN_AI_USAGE_INPUT_TOKENS] == 1550  # uncached + cache reads + cache writes
    assert a[attrs.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] == 500
    assert a[attrs.GEN_AI_USAGE_OUTPUT_TOKENS] == 200
    assert a[attrs.CARET_API_COST] == 0.0123
    assert a[attrs.CARET_TASK_TURN_SOURCE] == "assistant"
    assert a[attrs.CARET_CLIENT_PLATFORM] == "vscode"
    assert a[attrs.OS_TYPE] == "darwin"
    assert a[attrs.CARET_CLIENT_PLATFORM_VERSION] == "1.95.3"
    assert attrs.CARET_CLIENT_LANGUAGE not in a  # absent on a first run: still accepted
    assert report.dropped[("timestamp", reasons.NOT_COLLECTED)] == 1
    assert report.dropped[("os_version", reasons.NOT_COLLECTED)] == 1
    assert "Darwin Kernel" not in repr(a)


def test_milliseconds_become_seconds_and_per_event_names_win(
    scrubber: ClientEventScrubber, report: ScrubReport
) -> None:
    completed = {"ulid": "01JD" + "1" * 22, "provider": "anthropic", "modelId": "m",
                 "mode": "act", "durationMs": 95_000, "source": "submit_and_exit", "apiFormat": 3}  # fmt: skip
    out = scrubber.scrub(real("task.completed", completed), report)
    assert out is not None
    assert out.attributes[attrs.CARET_TASK_DURATION] == 95.0
    assert out.attributes[attrs.CARET_TASK_COMPLETION_SOURCE] == "submit_and_exit"
    assert attrs.CARET_TASK_TURN_SOURCE not in out.attributes
    assert report.dropped[("apiFormat", reasons.NOT_COLLECTED)] == 1
    browser = {"ulid": "01JD" + "1" * 22, "actionCount": 4, "duration": 5300,
               "actions": ["navigate: http://localhost:3000/admin"]}  # fmt: skip
    out = scrubber.scrub(real("task.browser_tool_end", browser), report)
    assert out is not None
    assert out.attributes[attrs.CARET_OPERATION_DURATION] == 5.3
    assert out.attributes[attrs.CARET_ITEM_COUNT] == 4
    assert "localhost" not in repr(out.attributes)


@pytest.mark.parametrize(
    ("event_type", "properties", "dropped"),
    [
        ("task.rule_toggled", {"ruleFileName": "acme.md", "enabled": True, "isGlobal": False}, "ruleFileName"),
        ("task.slash_command_used", {"commandName": "deploy-prod.md", "commandType": "workflow"}, "commandName"),
        ("task.mcp_tool_called", {"status": "started", "argumentKeys": ["sql"], "serverName": "db"}, "argumentKeys"),
    ],
)  # fmt: skip
def test_content_properties_are_dropped_but_the_event_is_kept(
    scrubber: ClientEventScrubber, report: ScrubReport, event_type: str,
    properties: dict[str, Any], dropped: str,
) -> None:  # fmt: skip
    out = scrubber.scrub(real(event_type, {"ulid": "01JD" + "2" * 22} | properties), report)
    assert out is not None
    assert report.dropped[(dropped, reasons.NOT_COLLECTED)] == 1
    assert repr(properties[dropped]) not in repr(out.attributes)


def test_provider_errors_of_caret_0_4_carry_their_status(
    scrubber: ClientEventScrubber, report: ScrubReport
) -> None:
    message = "429 Too Many Requests: limit for jane@example.com reached"
    out = scrubber.scrub(real("extension.message", {"message": message, "level": "error"}), report)
    assert out is not None
    assert out.spec is events.CARET_EXTENSION_ERROR
    assert out.attributes[attrs.HTTP_RESPONSE_STATUS_CODE] == 429
    assert out.attributes[attrs.ERROR_TYPE] == "429"
    assert "jane@example.com" not in str(out.attributes[attrs.CARET_ERROR_MESSAGE])
    cline = {"ulid": "01JD" + "3" * 22, "model": "m", "provider": "anthropic",
             "errorMessage": "auth failed", "errorStatus": 401, "errorType": "auth",
             "failurePhase": "preflight", "requestId": "req_1"}  # fmt: skip
    out = scrubber.scrub(real("task.provider_api_error", cline), report)
    assert out is not None
    assert out.attributes[attrs.HTTP_RESPONSE_STATUS_CODE] == 401
    assert out.attributes[attrs.ERROR_TYPE] == "auth"
    assert out.attributes[attrs.CARET_ERROR_PHASE] == "preflight"
    assert report.dropped[("requestId", reasons.NOT_COLLECTED)] == 1


def test_family_suffixes_are_enumerated_never_copied(
    scrubber: ClientEventScrubber, report: ScrubReport
) -> None:
    known = scrubber.scrub(
        real("task.focus_chain_list_written", {"ulid": "01JD" + "4" * 22}), report
    )
    assert known is not None
    assert known.attributes[attrs.CARET_FEATURE_ACTION] == "list_written"
    novel = scrubber.scrub(real("task.focus_chain_secret_project_x", {}), report)
    assert novel is not None
    assert novel.attributes[attrs.CARET_FEATURE_ACTION] == events.OTHER_ACTION
    with pytest.raises(ClientEventError) as caught:
        scrubber.scrub(real("task.hook_executed", {}), report)
    assert caught.value.field == "event_type"


def test_every_real_client_event_type_is_in_the_registry() -> None:
    from real_client_corpus import FUTURE_EVENT_TYPES, build

    types = {e["event_type"] for e in build().events} - set(FUTURE_EVENT_TYPES)
    catalogue = {
        "task.created", "task.restarted", "task.completed", "task.conversation_turn",
        "task.tokens", "task.mode", "task.feedback", "task.tool_used", "task.mcp_tool_called",
        "task.checkpoint_used", "task.diff_edit_failed", "task.browser_tool_start",
        "task.browser_tool_end", "task.browser_error", "task.provider_api_error",
        "task.gemini_api_performance", "task.focus_chain_enabled", "task.focus_chain_disabled",
        "task.focus_chain_progress_first", "task.focus_chain_progress_update",
        "task.focus_chain_incomplete_on_completion", "task.focus_chain_list_opened",
        "task.focus_chain_list_written", "task.summarize_task", "task.initialization",
        "task.option_selected", "task.options_ignored", "task.slash_command_used",
        "task.rule_toggled", "task.feature_toggled", "task.auto_condense_toggled",
        "task.yolo_mode_toggled", "task.terminal_execution", "task.terminal_output_failure",
        "task.terminal_user_intervention", "task.terminal_hang", "task.mention_used",
        "task.mention_failed", "task.mention_search_results", "task.workspace_search_pattern",
        "workspace.initialized", "workspace.init_error", "workspace.multi_root_checkpoint",
        "workspace.path_resolved", "task.subagent_enabled", "ui.model_selected",
        "ui.button_clicked", "ui.model_favorite_toggled", "ui.rules_menu_opened",
        "user.telemetry_enabled", "user.extension_activated", "user.opt_out", "user.opt_in",
        "user.auth_started", "user.auth_succeeded", "user.auth_failed", "user.auth_logged_out",
        "user.onboarding_progress", "voice.recording_started", "extension.error",
        "extension.message", "ui.panel_opened", "ui.new_task_clicked", "ui.prompt_submitted",
        "task.skill_used", "task.mistake_limit_reached",
    }  # fmt: skip
    for event_type in catalogue | types:
        resolved = events.for_client_event(event_type)
        assert resolved is not None, event_type
        _, action = resolved
        assert action != events.OTHER_ACTION, event_type
