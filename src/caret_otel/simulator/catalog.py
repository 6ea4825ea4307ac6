"""The simulated world: who Caret's users are and what they use, with plausible shares.

Shares are estimates for a Korean-made VS Code extension with an international
audience (Korean users and the Korean UI dominate; English, Japanese and Chinese
follow), models and providers follow the popularity order coding assistants reported
in 2025, and provider error rates differ per provider the way public status pages do
(a smaller provider fails more often, rate limits are the most common failure).
Everything here is data: the behaviour that uses it lives in :mod:`.behaviour`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True)
class Country:
    """Where users are, the UI languages they pick and their working hours' offset."""

    code: str
    """ISO 3166-1 alpha-2, as the edge's trusted country header carries it."""
    share: float
    languages: tuple[tuple[str, float], ...]
    """UI language (BCP 47 primary tag) -> probability within the country."""
    utc_offset_hours: int


COUNTRIES: Final[tuple[Country, ...]] = (
    Country("KR", 0.46, (("ko", 0.93), ("en", 0.07)), 9),
    Country("US", 0.14, (("en", 0.96), ("ko", 0.04)), -6),
    Country("JP", 0.09, (("ja", 0.88), ("en", 0.12)), 9),
    Country("CN", 0.05, (("zh", 0.9), ("en", 0.1)), 8),
    Country("TW", 0.03, (("zh", 0.85), ("en", 0.15)), 8),
    Country("VN", 0.04, (("vi", 0.6), ("en", 0.4)), 7),
    Country("IN", 0.04, (("en", 1.0),), 5),
    Country("DE", 0.03, (("de", 0.55), ("en", 0.45)), 1),
    Country("GB", 0.02, (("en", 1.0),), 0),
    Country("CA", 0.02, (("en", 0.8), ("fr", 0.2)), -5),
    Country("SG", 0.02, (("en", 0.8), ("zh", 0.2)), 8),
    Country("FR", 0.02, (("fr", 0.6), ("en", 0.4)), 1),
    Country("BR", 0.02, (("pt", 0.7), ("en", 0.3)), -3),
    Country("AU", 0.02, (("en", 1.0),), 10),
)


@dataclass(frozen=True)
class Model:
    """A model a user can pick, with what a request to it typically costs and takes."""

    provider: str
    """Upstream ``gen_ai.provider.name`` value."""
    name: str
    popularity: float
    """Relative weight when a user picks a favourite model."""
    context_window: int
    usd_per_mtok_in: float
    usd_per_mtok_out: float
    median_latency_s: float


MODELS: Final[tuple[Model, ...]] = (
    Model("anthropic", "claude-sonnet-4-5", 30.0, 200_000, 3.0, 15.0, 6.5),
    Model("anthropic", "claude-sonnet-4", 16.0, 200_000, 3.0, 15.0, 6.0),
    Model("anthropic", "claude-opus-4-1", 4.0, 200_000, 15.0, 75.0, 11.0),
    Model("anthropic", "claude-haiku-4-5", 5.0, 200_000, 1.0, 5.0, 2.5),
    Model("openai", "gpt-5", 12.0, 400_000, 1.25, 10.0, 9.0),
    Model("openai", "gpt-5-mini", 5.0, 400_000, 0.25, 2.0, 4.0),
    Model("openai", "gpt-4.1", 4.0, 1_047_576, 2.0, 8.0, 5.0),
    Model("openai", "o4-mini", 2.0, 200_000, 1.1, 4.4, 7.5),
    Model("gcp.gemini", "gemini-2.5-pro", 8.0, 1_048_576, 1.25, 10.0, 8.0),
    Model("gcp.gemini", "gemini-2.5-flash", 5.0, 1_048_576, 0.3, 2.5, 3.0),
    Model("deepseek", "deepseek-chat", 4.0, 128_000, 0.28, 0.42, 7.0),
    Model("deepseek", "deepseek-reasoner", 1.5, 128_000, 0.28, 0.42, 14.0),
    Model("x_ai", "grok-code-fast-1", 2.5, 256_000, 0.2, 1.5, 3.5),
    Model("mistral_ai", "devstral-medium-2507", 1.0, 128_000, 0.4, 2.0, 4.5),
)


@dataclass(frozen=True)
class ProviderReliability:
    """How often calls to a provider fail, and how (HTTP status -> share of failures).

    Statuses are the three failure classes providers share (400 bad request, 429 rate
    limit or overload, 500 server error), so the client's error events and the server's
    GenAI spans of the same call agree on ``error.type``.
    """

    error_rate: float
    statuses: tuple[tuple[int, float], ...]
    rate_limit_message: str
    """What the provider's 429 body typically says (free text: scanned and redacted)."""

    def message(self, status: int) -> str:
        """The error message a client shows for ``status``."""
        if status == 429:
            return self.rate_limit_message
        return ERROR_MESSAGES.get(status, "Unexpected error")


ERROR_MESSAGES: Final[dict[int, str]] = {
    400: "Invalid request: prompt is too long",
    500: "Internal server error",
}

RELIABILITY: Final[dict[str, ProviderReliability]] = {
    "anthropic": ProviderReliability(0.025, ((429, 0.5), (500, 0.42), (400, 0.08)), "Overloaded"),
    "openai": ProviderReliability(
        0.015, ((429, 0.6), (500, 0.3), (400, 0.1)), "Rate limit reached for requests"
    ),
    "gcp.gemini": ProviderReliability(
        0.03, ((429, 0.55), (500, 0.3), (400, 0.15)), "Resource has been exhausted"
    ),
    "deepseek": ProviderReliability(
        0.06, ((500, 0.6), (429, 0.4)), "Server is busy, please try again later"
    ),
    "x_ai": ProviderReliability(0.025, ((429, 0.6), (500, 0.4)), "Too many requests"),
    "mistral_ai": ProviderReliability(
        0.02, ((429, 0.5), (500, 0.4), (400, 0.1)), "Requests rate limit exceeded"
    ),
}

FREE_PLAN: Final = "free"
PAID_PLAN_SHARES: Final = (("pro", 0.85), ("team", 0.15))
"""Which paid plan a converting user picks."""
SIGNUP_CHANNELS: Final = (
    ("marketplace", 0.58),
    ("website", 0.22),
    ("referral", 0.12),
    ("community", 0.08),
)

PLATFORMS: Final = (("vscode", 0.86), ("cursor", 0.09), ("vscodium", 0.05))
OPERATING_SYSTEMS: Final = (("windows", 0.46), ("darwin", 0.38), ("linux", 0.16))

CLIENT_VERSIONS: Final = ("3.20.1", "3.21.0", "3.22.0", "3.22.1")
"""Extension versions, oldest first; users upgrade over the simulated period."""

TASK_MODES: Final = (("act", 0.72), ("plan", 0.28))
TASK_OUTCOMES: Final = (("success", 0.78), ("cancelled", 0.12), ("abandoned", 0.06))
"""Outcomes of tasks that did not end in a provider error."""

BUILT_IN_TOOLS: Final = (
    ("read_file", 0.26),
    ("replace_in_file", 0.2),
    ("write_to_file", 0.1),
    ("execute_command", 0.14),
    ("search_files", 0.1),
    ("list_files", 0.08),
    ("list_code_definition_names", 0.04),
    ("ask_followup_question", 0.04),
    ("attempt_completion", 0.04),
)
"""Caret's (Cline's) built-in agent tools and how often the agent calls each."""

FOCUS_CHAIN_ACTIONS: Final = ("enabled", "list_written", "progress_update")
"""Suffixes of ``task.focus_chain_*`` client events, in the order they happen."""

CREDIT_PACKS: Final = (500.0, 1000.0, 5000.0)
"""Credit packs users buy (credits)."""
CREDITS_PER_USD: Final = 100.0
"""Credits charged per US dollar of provider cost."""

# The real client (real-clients.md): metadata on every event and two event shapes.
HOST_APP_NAMES: Final = {
    "vscode": "Visual Studio Code",
    "cursor": "Cursor",
    "vscodium": "VSCodium",
    "windsurf": "Windsurf",
}
"""Short platform -> ``vscode.env.appName``, as the client's ``platform`` metadata says it."""
NODE_OS_TYPES: Final = {"windows": "Windows_NT", "darwin": "Darwin", "linux": "Linux"}
"""OS family -> Node's ``os.type()``, as the client's ``os_type`` metadata says it."""
OS_VERSIONS: Final = {
    "windows": "Windows 11 Pro",
    "darwin": "Darwin Kernel Version 24.1.0: Thu Oct 10 21:03:15 PDT 2024",
    "linux": "#1 SMP PREEMPT_DYNAMIC Debian 6.1.106-3",
}
"""Full ``os.version()`` strings: sent by the client, dropped by the gateway."""
HOST_APP_VERSION: Final = "1.95.3"
CARET_04_SHARE: Final = 0.7
"""Users on Caret 0.4.x (= Cline v3.38.2): tokens and cost on the assistant
conversation turn of each request, provider errors as ``extension.message``. The others
run a Caret that merged Cline 2026: ``task.tokens`` per request and
``task.provider_api_error`` with status and type."""
CHECKPOINT_ACTIONS: Final = (("commit_created", 0.7), ("diff_generated", 0.2), ("restored", 0.1))
THUMBS_UP_RATE: Final = 0.78
FEEDBACK_SHARE: Final = 0.15
"""Completed tasks that get a thumbs up or down."""
REAL_CLIENT_EXTRAS: Final[tuple[tuple[str, tuple[tuple[str, object], ...], bool, float], ...]] = (
    ("task.restarted", (), True, 4.0),
    ("task.diff_edit_failed", (("errorType", "search_not_found"), ("isNativeToolCall", False)), True, 5.0),
    ("task.browser_error", (("errorType", "navigation"),), True, 1.0),
    ("task.gemini_api_performance", (("ttftSec", 0.8), ("totalDurationSec", 4.2), ("apiSuccess", True)), True, 2.0),
    ("task.summarize_task", (("currentTokens", 150_000), ("maxContextWindow", 200_000)), True, 2.0),
    ("task.option_selected", (("qty", 3), ("mode", "act")), True, 4.0),
    ("task.slash_command_used", (("commandType", "builtin"),), True, 3.0),
    ("task.rule_toggled", (("enabled", True), ("isGlobal", False)), True, 1.0),
    ("task.feature_toggled", (("featureName", "focus_chain"), ("enabled", True)), True, 1.0),
    ("task.terminal_execution", (("success", True), ("method", "shell_integration")), True, 8.0),
    ("task.mention_used", (("mentionType", "file"), ("contentLength", 2048)), True, 8.0),
    ("task.subagent_enabled", (("enabled", True),), True, 0.5),
    ("task.skill_used", (), True, 1.0),
    ("task.mistake_limit_reached", (("qty", 3),), True, 0.5),
    ("ui.button_clicked", (("button", "webview_openWalkthrough"),), True, 3.0),
    ("ui.prompt_submitted", (("textLength", 120), ("hasImages", False), ("hasFiles", False)), True, 6.0),
    ("user.extension_activated", (), False, 2.0),
    ("user.auth_started", (("provider", "caret"),), False, 1.0),
    ("user.onboarding_progress", (("step", "welcome"), ("completed", True)), False, 0.5),
    ("voice.recording_started", (), True, 0.5),
    ("workspace.initialized", (("root_count", 2),), True, 1.0),
    ("extension.error", (("message", "TypeError: cannot read properties of undefined"),
                         ("error_type", "exception"), ("name", "TypeError")), False, 1.0),
)  # fmt: skip
"""Rarer real client events: (event type, properties by the client's keys, carries the
task id, weight). One may follow a task (see ``behaviour._task``)."""
EXTRA_EVENT_SHARE: Final = 0.5
