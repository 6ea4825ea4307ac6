"""A corpus of client events shaped exactly as real Caret clients send them.

Built from ``real-clients.md`` (the catalogue of Cline v3.38.2 = Caret 0.4.x and of Cline
2026, with their sources): event names verbatim, Cline's camelCase properties verbatim,
the metadata every Cline event carries, the distinct id switching from the machine id to
the account id at login (mid-session), ``task.completed`` repeating when the user
continues a task, ``task.restarted``, MCP calls as started/success pairs, provider errors
as ``extension.message`` (0.4.x) and ``task.provider_api_error`` (2026), and the plan's
own example event. A few events of types no client has yet (a future client version)
are mixed in: they must be rejected one by one while the rest is accepted.

The corpus is deterministic (no randomness) and carries the client's own totals (tokens
by type, cost) so tests can compare what the backend counted with what the client
reported. Input tokens are counted the registry's way: uncached input + cache reads +
cache writes (upstream ``gen_ai.usage.input_tokens`` includes cached tokens).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

CARET_VERSION = "0.4.5"
CLINE_2026_VERSION = "3.71.0"
FUTURE_EVENT_TYPES = ("task.hook_executed", "worktree.created")
"""Types no registry lists: rejected per event (code invalid_event_type)."""

_HOST_APPS = ("Visual Studio Code", "Cursor", "Windsurf", "VSCodium")
_OS = (("Darwin", "Darwin Kernel Version 24.1.0: Thu Oct 10 21:03:15 PDT 2024; root:xnu-11215"),
       ("Windows_NT", "Windows 11 Pro"), ("Linux", "#1 SMP PREEMPT_DYNAMIC Debian 6.1.106-3"))  # fmt: skip
_MODELS = (
    ("anthropic", "claude-sonnet-4-5-20250929"),
    ("caret", "gemini/gemini-2.5-flash"),
    ("openrouter", "anthropic/claude-sonnet-4.5"),
    ("gemini", "gemini-2.5-pro"),
)


@dataclass
class Totals:
    """The client's own totals of what it reported."""

    input_tokens: int = 0
    """Uncached input + cache reads + cache writes."""
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cost: float = 0.0

    def add(self, tokens_in: int, tokens_out: int, cache_read: int, cache_write: int,
            cost: float) -> None:  # fmt: skip
        self.input_tokens += tokens_in + cache_read + cache_write
        self.output_tokens += tokens_out
        self.cache_read_tokens += cache_read
        self.cache_write_tokens += cache_write
        self.cost += cost


@dataclass
class Corpus:
    events: list[dict[str, Any]] = field(default_factory=list)
    totals: Totals = field(default_factory=Totals)
    people: int = 0
    """Distinct persons (a machine id and the account it logs into are one person)."""
    logins: list[tuple[str, str]] = field(default_factory=list)
    """(machine id, account id) of every mid-session login."""
    task_runs: int = 0
    """task.completed events: each closes one task run (one span)."""
    mcp_calls: int = 0
    provider_errors: int = 0

    @property
    def future_events(self) -> int:
        return sum(1 for e in self.events if e["event_type"] in FUTURE_EVENT_TYPES)


class _Clock:
    def __init__(self, start: datetime) -> None:
        self._now = start

    def tick(self, seconds: float = 2.0) -> str:
        self._now += timedelta(seconds=seconds)
        return self._now.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class _Client:
    """One installation: its machine id, host app, OS and (after login) its account."""

    def __init__(self, corpus: Corpus, index: int, clock: _Clock, *, cline_2026: bool) -> None:
        self.corpus = corpus
        self.clock = clock
        self.cline_2026 = cline_2026
        self.machine = f"{index:02x}" * 32  # node-machine-id: SHA-256 hex of the machine GUID
        self.account = f"acct_{index:04d}"
        self.distinct = self.machine
        self.session = f"vscode-session-{index:04d}-{'n' if cline_2026 else 'c'}"
        self.app = _HOST_APPS[index % len(_HOST_APPS)]
        self.os_type, self.os_version = _OS[index % len(_OS)]
        self.language = None if index % 7 == 0 else ("ko", "en", "ja")[index % 3]
        self.provider, self.model = _MODELS[index % len(_MODELS)]
        self.version = CLINE_2026_VERSION if cline_2026 else CARET_VERSION
        self.ulids = (f"01JD{index:04d}{n:018d}"[:26] for n in itertools.count())

    def send(self, event_type: str, properties: dict[str, Any] | None = None, *,
             metadata: bool = True, at: str | None = None) -> None:  # fmt: skip
        props = dict(properties or {})
        if metadata:
            props |= {
                "extension_version": self.version, "platform": self.app,
                "platform_version": "1.95.3", "os_type": self.os_type,
                "os_version": self.os_version, "is_dev": False,
            }  # fmt: skip
            if self.cline_2026:
                props["device_id"] = self.machine
        client_info: dict[str, Any] = {"version": self.version, "platform": self.app}
        if self.language is not None:
            client_info["language"] = self.language
        self.corpus.events.append(
            {
                "event_type": event_type,
                "user_id_hash": self.distinct,
                "session_id": self.session,
                "timestamp": at or self.clock.tick(),
                "properties": props,
                "client_info": client_info,
            }
        )

    def start(self) -> None:
        self.send("user.telemetry_enabled")
        self.send("user.extension_activated", metadata=False)

    def login(self) -> None:
        self.send("user.auth_started", {"provider": "caret"})
        self.distinct = self.account  # the distinct id switches mid-session
        self.send("user.auth_succeeded", {"provider": "caret"})
        self.corpus.logins.append((self.machine, self.account))

    def request(self, ulid: str, n: int, mode: str) -> None:
        """One API request: user turn, usage, assistant turn."""
        base = {"ulid": ulid, "provider": self.provider, "model": self.model, "mode": mode}
        self.send(
            "task.conversation_turn", base | {"source": "user", "timestamp": self.clock.tick(0)}
        )
        tokens_in, tokens_out = 1200 + 37 * n, 300 + 11 * n
        cache_read, cache_write = 800 * (n % 3), 150 * (n % 2)
        cost = round(0.0031 * (n + 1), 6)
        self.corpus.totals.add(tokens_in, tokens_out, cache_read, cache_write, cost)
        usage = {"tokensIn": tokens_in, "tokensOut": tokens_out, "cacheWriteTokens": cache_write,
                 "cacheReadTokens": cache_read, "totalCost": cost}  # fmt: skip
        if self.cline_2026:
            # One task.tokens per usage chunk; the chunks add up to the request's usage.
            first = {"tokensIn": tokens_in // 2, "tokensOut": tokens_out // 2,
                     "cacheWriteTokens": cache_write, "cacheReadTokens": cache_read,
                     "totalCost": round(cost / 2, 6)}  # fmt: skip
            second = {k: round(usage[k] - first[k], 6) if k == "totalCost" else usage[k] - first[k]
                      for k in usage}  # fmt: skip
            for chunk in (first, second):
                self.send("task.tokens", {"ulid": ulid, "provider": self.provider,
                                          "model": self.model} | chunk)  # fmt: skip
            # 2026-05 legacy builds still put the usage on the turn too (n even); SDK turns don't.
            turn = usage if n % 2 == 0 else {}
        else:
            turn = usage
        self.send("task.conversation_turn", base | {"source": "assistant", "timestamp": self.clock.tick(0),
                                                    "isNativeToolCall": False} | turn)  # fmt: skip

    def task(self, number: int) -> None:
        ulid = next(self.ulids)
        mode = "plan" if number % 2 else "act"
        self.send("task.created", {"ulid": ulid, "apiProvider": self.provider,
                                   **({"openAiCompatibleDomain": "llm.corp.internal"} if number == 3 else {})})  # fmt: skip
        self.send("task.initialization", {"ulid": ulid, "taskId": "1733212345678", "durationMs": 412,
                                          "hasCheckpoints": True})  # fmt: skip
        self.send("task.mode", {"ulid": ulid, "mode": mode})
        for n in range(3):
            self.request(ulid, n + number, mode)
        self.send("task.tool_used", {"ulid": ulid, "tool": "read_file", "autoApproved": True,
                                     "success": True, "modelId": self.model,
                                     "provider": self.provider, "isNativeToolCall": False})  # fmt: skip
        self.send("task.mcp_tool_called", {"ulid": ulid, "serverName": "acme-db", "toolName": "query",
                                           "status": "started", "argumentKeys": ["sql"],
                                           "isNativeToolCall": False})  # fmt: skip
        self.send("task.mcp_tool_called", {"ulid": ulid, "serverName": "acme-db", "toolName": "query",
                                           "status": "success", "argumentKeys": ["sql"],
                                           "isNativeToolCall": False})  # fmt: skip
        self.corpus.mcp_calls += 1
        self.send(
            "task.checkpoint_used", {"ulid": ulid, "action": "commit_created", "durationMs": 88}
        )
        self.send("task.focus_chain_progress_update", {"ulid": ulid, "totalItems": 5,
                                                       "completedItems": 2, "completionPercentage": 40})  # fmt: skip
        self.send("task.mention_used", {"ulid": ulid, "mentionType": "file", "contentLength": 2048})
        self.send(
            "task.terminal_execution",
            {"ulid": ulid, "success": True, "method": "shell_integration"},
        )
        self.send("task.slash_command_used", {"ulid": ulid, "commandName": "my-release-workflow.md",
                                              "commandType": "workflow"})  # fmt: skip
        self.send("task.rule_toggled", {"ulid": ulid, "ruleFileName": "acme-secrets.md", "enabled": True,
                                        "isGlobal": False})  # fmt: skip
        self.send("ui.button_clicked", {"button": "codeAction_fixWithCline", "ulid": ulid})
        if number % 3 == 0:
            self.send("task.browser_tool_start", {"ulid": ulid, "viewport": {"width": 900, "height": 600},
                                                  "isRemote": False, "timestamp": self.clock.tick(0)})  # fmt: skip
            self.send("task.browser_error", {"ulid": ulid, "errorType": "navigation",
                                             "errorMessage": "net::ERR_CONNECTION_REFUSED at http://localhost:3000/admin",
                                             "context": {"isRemote": False, "action": "launch"},
                                             "timestamp": self.clock.tick(0)})  # fmt: skip
            self.send("task.browser_tool_end", {"ulid": ulid, "actionCount": 4, "duration": 5300,
                                                "actions": ["navigate: http://localhost:3000", "type:23 chars"],
                                                "timestamp": self.clock.tick(0)})  # fmt: skip
        self.provider_error(ulid)
        if self.cline_2026:
            self.send("task.completed", {"ulid": ulid, "provider": self.provider, "modelId": self.model,
                                         "mode": mode, "durationMs": 95_000, "source": "submit_and_exit"})  # fmt: skip
        else:
            self.send("task.completed", {"ulid": ulid})
        self.corpus.task_runs += 1
        self.send(
            "task.feedback",
            {"ulid": ulid, "feedbackType": "thumbs_up" if number % 4 else "thumbs_down"},
        )
        if number % 2 == 0:
            # The user continues the task: another request, another completion.
            self.request(ulid, number + 7, mode)
            self.send("task.completed", {"ulid": ulid})
            self.corpus.task_runs += 1
        if number % 3 == 1:
            self.send("task.restarted", {"ulid": ulid, "apiProvider": self.provider})
            self.request(ulid, number + 11, mode)
            self.send("task.completed", {"ulid": ulid})
            self.corpus.task_runs += 1

    def provider_error(self, ulid: str) -> None:
        self.corpus.provider_errors += 1
        if self.cline_2026:
            self.send("task.provider_api_error", {
                "ulid": ulid, "model": self.model, "provider": self.provider,
                "errorMessage": "429 Too Many Requests: rate limit for jane@example.com exceeded",
                "errorStatus": 429, "requestId": "req_011CUq", "errorType": "send_error",
                "failurePhase": "streaming"})  # fmt: skip
        else:
            # Caret 0.4.x: the first-chunk provider error goes to error tracking.
            self.send("extension.message", {"message": "429 Too Many Requests: rate limit exceeded",
                                            "level": "error"})  # fmt: skip


PLAN_EXAMPLE: dict[str, Any] = {
    "event_type": "task.created",
    "user_id_hash": "hashed_user_id",
    "session_id": "session_uuid",
    "timestamp": "2025-01-11T10:00:00Z",
    "properties": {"api_provider": "anthropic", "model": "claude-sonnet-4", "context_size": 128000},
    "client_info": {"version": "1.0.0", "platform": "vscode", "language": "ko"},
}
"""Section 2.1 of the telemetry plan, verbatim (no task id); its timestamp is moved
into the retention window by :func:`build`."""


def build(
    now: datetime | None = None, *, clients_per_shape: int = 4, tasks: int = 4, tag: str = ""
) -> Corpus:
    """Several hundred events over both shapes, ending a little before ``now``; ``tag``
    suffixes model names and ids (a test run's own metric series)."""
    now = now or datetime.now(UTC)
    corpus = Corpus()
    clock = _Clock(now - timedelta(hours=2))
    for cline_2026 in (False, True):
        for i in range(clients_per_shape):
            client = _Client(corpus, i + (100 if cline_2026 else 0), clock, cline_2026=cline_2026)
            if tag:
                client.model = f"{client.model}-{tag}"
                client.machine, client.account = (
                    f"{client.machine}-{tag}",
                    f"{client.account}-{tag}",
                )
                client.distinct = client.machine
                client.session = f"{client.session}-{tag}"
            corpus.people += 1
            client.start()
            for number in range(tasks):
                if number == 1:
                    client.login()  # mid-session: the distinct id becomes the account id
                client.task(number)
            client.send(FUTURE_EVENT_TYPES[i % len(FUTURE_EVENT_TYPES)], {"ulid": "x"})
    plan = dict(PLAN_EXAMPLE, timestamp=clock.tick())
    corpus.events.append(plan)
    corpus.people += 1
    return corpus


def batches(corpus: Corpus, size: int = 50) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, len(corpus.events), size):
        yield corpus.events[start : start + size]
