"""Alertmanager (Debian's 0.25): routing as code, receivers from the environment, a runner.

The routing tree is written here once: severity ``critical`` pages (receiver ``page``),
``warning`` goes to the chat channel (receiver ``chat``); alerts are grouped by alert name
and environment; an ``CaretIngestionStopped`` mutes the alerts it causes and a fast SLO
burn mutes the slow burn of the same SLO. ``caret-otel generate`` writes the config with
receivers that deliver nowhere to ``alertmanager/alertmanager.yml`` (what ``amtool config
routes test`` and the docs read); :func:`render_config` fills the receivers from the
environment (:class:`Receivers`) for a running Alertmanager, whose config file is written
mode 0600 into the stack's data directory - a webhook URL or SMTP password is a secret and
never lands in the repository.

:class:`AlertmanagerServer` runs ``alertmanager`` on 127.0.0.1 (clustering off, data in a
directory we own); :func:`prometheus_alerting` is the ``alerting:`` block that points a
Prometheus at it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import httpx
import yaml

from caret_otel.contracts.checkout import repo_root
from caret_otel.core import environment_variables as ev
from caret_otel.core.errors import ConfigurationError
from caret_otel.dashboards import expressions as x
from caret_otel.dashboards import rules
from caret_otel.stack.process import ManagedProcess, ServiceRunner, resolve_executable

INSTALL_HINT: Final = "run `make services` (or: apt-get install -y prometheus-alertmanager)"
CONFIG_PATH: Final = Path("alertmanager") / "alertmanager.yml"
TEMPLATES_DIR: Final = Path("alertmanager") / "templates"

PAGE: Final = "page"
"""Receiver of ``severity="critical"``: someone is woken up."""
CHAT: Final = "chat"
"""Receiver of ``severity="warning"`` (and of anything unrouted): the team's channel."""
RECEIVERS: Final = (PAGE, CHAT)
SEVERITY_ROUTES: Final = {"critical": PAGE, "warning": CHAT}
GROUP_BY: Final = ("alertname", x.ENVIRONMENT)


class AlertReceiverError(ConfigurationError):
    """A receiver variable is malformed; the message names it, never its value."""


# --- timing ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class NotificationTiming:
    """How long Alertmanager batches before it notifies (production defaults); the
    end-to-end test uses seconds so a notification arrives at once."""

    group_wait: str = "30s"
    group_interval: str = "5m"
    repeat_interval: str = "4h"


DEFAULT_TIMING: Final = NotificationTiming()


# --- receivers from the environment ------------------------------------------------------------
def _value(environ: Mapping[str, str], name: str, file_name: str | None = None) -> str:
    """``$name``, else the content of the file named by ``$file_name`` ('' when neither)."""
    value = environ.get(name, "").strip()
    if value or file_name is None:
        return value
    path = environ.get(file_name, "").strip()
    if not path:
        return ""
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise AlertReceiverError(
            f"{file_name}: cannot read the file it names ({exc.strerror})"
        ) from None


def _url(environ: Mapping[str, str], name: str, file_name: str) -> str:
    url = _value(environ, name, file_name)
    if url and not url.startswith(("http://", "https://")):
        raise AlertReceiverError(f"{name} (or {file_name}): expected an http(s):// URL")
    return url


def _runbook_base(environ: Mapping[str, str]) -> str:
    base = _value(environ, ev.CARET_OTEL_ALERT_RUNBOOK_BASE_URL)
    if base and (not base.startswith(("http://", "https://")) or any(c in base for c in '{}<>"')):
        raise AlertReceiverError(
            f"{ev.CARET_OTEL_ALERT_RUNBOOK_BASE_URL}: expected an http(s):// URL without "
            "braces, angle brackets or quotes"
        )
    return base


@dataclass(frozen=True)
class EmailRelay:
    """An SMTP relay that mails critical alerts."""

    to: str
    sender: str
    smarthost: str
    username: str = ""
    password: str = ""
    require_tls: bool = True


@dataclass(frozen=True)
class Receivers:
    """Where notifications go. Empty fields deliver nowhere (the alert is still listed in
    Alertmanager's UI and API).

    - ``page_webhook``: a generic webhook (a paging bridge) for critical alerts;
    - ``chat_webhook``: a generic webhook for warnings;
    - ``slack_webhook`` (+ ``slack_channel``): a Slack-compatible incoming webhook
      (Slack, Mattermost, Rocket.Chat) for warnings;
    - ``email``: an SMTP relay for critical alerts.
    """

    page_webhook: str = ""
    chat_webhook: str = ""
    slack_webhook: str = ""
    slack_channel: str = ""
    email: EmailRelay | None = None
    runbook_base_url: str = ""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Receivers:
        env = os.environ if environ is None else environ
        email = None
        to = _value(env, ev.CARET_OTEL_ALERT_EMAIL_TO)
        if to:
            smarthost = _value(env, ev.CARET_OTEL_ALERT_SMTP_SMARTHOST)
            sender = _value(env, ev.CARET_OTEL_ALERT_EMAIL_FROM)
            if ":" not in smarthost:
                raise AlertReceiverError(
                    f"{ev.CARET_OTEL_ALERT_SMTP_SMARTHOST}: expected host:port of the mail "
                    f"relay (needed because {ev.CARET_OTEL_ALERT_EMAIL_TO} is set)"
                )
            if "@" not in sender:
                raise AlertReceiverError(
                    f"{ev.CARET_OTEL_ALERT_EMAIL_FROM}: expected the sender's address "
                    f"(needed because {ev.CARET_OTEL_ALERT_EMAIL_TO} is set)"
                )
            tls = _value(env, ev.CARET_OTEL_ALERT_SMTP_REQUIRE_TLS) or "true"
            if tls not in {"true", "false"}:
                raise AlertReceiverError(
                    f"{ev.CARET_OTEL_ALERT_SMTP_REQUIRE_TLS}: expected true or false"
                )
            email = EmailRelay(
                to=to,
                sender=sender,
                smarthost=smarthost,
                username=_value(env, ev.CARET_OTEL_ALERT_SMTP_USERNAME),
                password=_value(
                    env, ev.CARET_OTEL_ALERT_SMTP_PASSWORD, ev.CARET_OTEL_ALERT_SMTP_PASSWORD_FILE
                ),
                require_tls=tls == "true",
            )
        return cls(
            page_webhook=_url(
                env, ev.CARET_OTEL_ALERT_PAGE_WEBHOOK_URL, ev.CARET_OTEL_ALERT_PAGE_WEBHOOK_URL_FILE
            ),
            chat_webhook=_url(
                env, ev.CARET_OTEL_ALERT_CHAT_WEBHOOK_URL, ev.CARET_OTEL_ALERT_CHAT_WEBHOOK_URL_FILE
            ),
            slack_webhook=_url(
                env,
                ev.CARET_OTEL_ALERT_SLACK_WEBHOOK_URL,
                ev.CARET_OTEL_ALERT_SLACK_WEBHOOK_URL_FILE,
            ),
            slack_channel=_value(env, ev.CARET_OTEL_ALERT_SLACK_CHANNEL),
            email=email,
            runbook_base_url=_runbook_base(env),
        )

    def configured(self) -> list[str]:
        """What delivers, for the ``up`` banner (no URLs: they are secrets)."""
        found = []
        if self.page_webhook:
            found.append("page: webhook")
        if self.email is not None:
            found.append(f"page: e-mail to {self.email.to}")
        if self.chat_webhook:
            found.append("chat: webhook")
        if self.slack_webhook:
            found.append("chat: Slack-compatible webhook")
        return found


# --- the config -----------------------------------------------------------------------------
def _matcher(label: str, value: str, op: str = "=") -> str:
    return f"{label}{op}{value}" if op == "=~" else f'{label}{op}"{value}"'


def route() -> dict[str, Any]:
    """The routing tree (without timing)."""
    return {
        "receiver": CHAT,
        "group_by": list(GROUP_BY),
        "routes": [
            {"receiver": receiver, "matchers": [_matcher("severity", severity)]}
            for severity, receiver in SEVERITY_ROUTES.items()
        ],
    }


def inhibit_rules() -> list[dict[str, Any]]:
    """Mute the alerts that only repeat what a more telling one already says."""
    caused = "|".join(rules.caused_by_ingestion_stopped())
    return [
        {
            # No events accepted at all: collection success and its SLO fall with it.
            "source_matchers": [_matcher("alertname", rules.INGESTION_STOPPED)],
            "target_matchers": [f'alertname=~"{caused}"'],
            "equal": [x.ENVIRONMENT],
        },
        {
            # A fast burn is already paging: the slow burn of the same SLO adds nothing.
            "source_matchers": [_matcher(rules.BURN_LABEL, "fast")],
            "target_matchers": [_matcher(rules.BURN_LABEL, "slow")],
            "equal": [rules.SLO_LABEL, x.ENVIRONMENT, x.PROVIDER],
        },
    ]


def _receivers(receivers: Receivers) -> list[dict[str, Any]]:
    page: dict[str, Any] = {"name": PAGE}
    chat: dict[str, Any] = {"name": CHAT}
    if receivers.page_webhook:
        page["webhook_configs"] = [{"url": receivers.page_webhook, "send_resolved": True}]
    if receivers.email is not None:
        mail = receivers.email
        config: dict[str, Any] = {
            "to": mail.to,
            "from": mail.sender,
            "smarthost": mail.smarthost,
            "require_tls": mail.require_tls,
            "send_resolved": True,
            "headers": {"Subject": '{{ template "caret.title" . }}'},
            "html": '{{ template "caret.html" . }}',
        }
        if mail.username:
            config["auth_username"] = mail.username
            config["auth_password"] = mail.password
        page["email_configs"] = [config]
    if receivers.chat_webhook:
        chat["webhook_configs"] = [{"url": receivers.chat_webhook, "send_resolved": True}]
    if receivers.slack_webhook:
        slack: dict[str, Any] = {
            "api_url": receivers.slack_webhook,
            "send_resolved": True,
            "title": '{{ template "caret.title" . }}',
            "text": '{{ template "caret.text" . }}',
        }
        if receivers.slack_channel:
            slack["channel"] = receivers.slack_channel
        chat["slack_configs"] = [slack]
    return [page, chat]


def config(
    receivers: Receivers = Receivers(),
    *,
    timing: NotificationTiming = DEFAULT_TIMING,
    templates_dir: str = "templates",
) -> dict[str, Any]:
    tree = {
        **route(),
        "group_wait": timing.group_wait,
        "group_interval": timing.group_interval,
        "repeat_interval": timing.repeat_interval,
    }
    tree["routes"] = tree.pop("routes")  # children after the timing, as people write it
    return {
        "global": {"resolve_timeout": "5m"},
        "templates": [f"{templates_dir}/*.tmpl"],
        "route": tree,
        "inhibit_rules": inhibit_rules(),
        "receivers": _receivers(receivers),
    }


def _runbook_template(base_url: str) -> str:
    """The definition of ``caret.runbook_base``, which the notification templates print
    before each alert's relative ``runbook_url``."""
    return f'{{{{ define "caret.runbook_base" }}}}{base_url}{{{{ end }}}}'


def checked_in_config() -> str:
    """``alertmanager/alertmanager.yml``: the routing tree with receivers that deliver
    nowhere (``caret-otel up`` fills them from the environment)."""
    header = (
        "# Alertmanager routing of the Caret telemetry pipeline.\n"
        "# Generated by `caret-otel generate` from src/caret_otel/stack/alertmanager.py. "
        "Do not edit.\n"
        "# The receivers here deliver nowhere: `caret-otel up` writes a copy whose receivers\n"
        "# come from CARET_OTEL_ALERT_* variables (docs/alerts.md) into its data directory.\n"
        "# Check it with: amtool check-config alertmanager/alertmanager.yml\n"
    )
    return header + _dump(config())


def render_config(
    receivers: Receivers,
    *,
    timing: NotificationTiming = DEFAULT_TIMING,
    templates_dir: Path | None = None,
) -> str:
    """The config a running Alertmanager reads: receivers filled in (secrets: write it
    with :func:`write_config`, mode 0600), templates by absolute path."""
    folder = templates_dir or repo_root() / TEMPLATES_DIR
    text = _dump(config(receivers, timing=timing, templates_dir=str(Path(folder).absolute())))
    return "# Written by caret_otel.stack.alertmanager; holds secrets - never commit it.\n" + text


def write_config(
    directory: Path,
    receivers: Receivers,
    *,
    timing: NotificationTiming = DEFAULT_TIMING,
) -> Path:
    """Write ``alertmanager.yml`` (mode 0600) and the runbook-base template into
    ``directory``; return the config's path."""
    directory.mkdir(parents=True, exist_ok=True)
    templates = directory / "templates"
    templates.mkdir(exist_ok=True)
    for source in sorted((repo_root() / TEMPLATES_DIR).glob("*.tmpl")):
        text = source.read_text(encoding="utf-8")
        (templates / source.name).write_text(
            text.replace(_runbook_template(""), _runbook_template(receivers.runbook_base_url))
        )
    path = directory / "alertmanager.yml"
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(render_config(receivers, timing=timing, templates_dir=templates))
    return path


def _dump(data: Mapping[str, Any]) -> str:
    return yaml.safe_dump(dict(data), sort_keys=False, width=1000, allow_unicode=True)


def prometheus_alerting(target: str) -> str:
    """The ``alerting:`` block (appended to a Prometheus config) that sends to the
    Alertmanager at ``host:port``."""
    return "\n# Firing and resolved alerts go to the stack's Alertmanager.\n" + _dump(
        {"alerting": {"alertmanagers": [{"static_configs": [{"targets": [target]}]}]}}
    )


# --- binaries -------------------------------------------------------------------------------
def unpacked_binary(name: str) -> Path:
    """Where ``make services`` unpacks Debian's prometheus-alertmanager package when the
    machine has none: ``<checkout>/build/alertmanager/usr/bin/<name>``."""
    return repo_root() / "build" / "alertmanager" / "usr" / "bin" / name


def _find(override_env: str, names: Sequence[str], unpacked: str) -> Path:
    override = os.environ.get(override_env)
    if override is None:
        found = next((n for n in names if shutil.which(n)), None)
        override = found or str(unpacked_binary(unpacked))
    return resolve_executable(override, install_hint=INSTALL_HINT)


DEBIAN_ASSETS: Final = b"/usr/share/prometheus/alertmanager"
"""Where Debian's build reads ``default.tmpl`` from (a fixed path, no flag changes it)."""
RELOCATED_ASSETS: Final = b"./share/prometheus/alertmanager/./"
"""The same length, relative: the relocated copy runs with ``cwd`` = the unpacked ``usr/``."""
RELOCATED_NAME: Final = "prometheus-alertmanager-relocated"


def binary_path() -> Path:
    """``$CARET_OTEL_ALERTMANAGER_BIN``, ``prometheus-alertmanager`` or ``alertmanager``
    on ``PATH``, or the copy ``make services`` unpacked into ``build/``.

    Debian's binary reads its default notification templates from the fixed path
    ``/usr/share/prometheus/alertmanager``, which an unpacked (not installed) package does
    not have. For the unpacked copy this returns ``build/alertmanager/usr/bin/`` +
    :data:`RELOCATED_NAME`: the same program with that one path string replaced by a
    relative one of equal length, run from ``build/alertmanager/usr`` (see
    :func:`working_directory`). Nothing outside ``build/`` is touched.
    """
    found = _find(
        ev.CARET_OTEL_ALERTMANAGER_BIN,
        ("prometheus-alertmanager", "alertmanager"),
        "prometheus-alertmanager",
    )
    if found != unpacked_binary("prometheus-alertmanager"):
        return found
    relocated = found.with_name(RELOCATED_NAME)
    if not relocated.is_file() or relocated.stat().st_mtime < found.stat().st_mtime:
        data = found.read_bytes()
        # The literal stands alone in Go's string table (not followed by "/ui/" etc.).
        at = next(
            (i for i in _occurrences(data, DEBIAN_ASSETS) if data[i + len(DEBIAN_ASSETS)] != 47),
            -1,
        )
        if at < 0:
            return found  # another build: use it as it is
        patched = data[:at] + RELOCATED_ASSETS + data[at + len(DEBIAN_ASSETS) :]
        partial = relocated.with_name(f"{RELOCATED_NAME}.{os.getpid()}.partial")
        partial.write_bytes(patched)
        partial.chmod(0o755)
        partial.replace(relocated)
    return relocated


def _occurrences(data: bytes, needle: bytes) -> list[int]:
    found, start = [], data.find(needle)
    while start >= 0:
        found.append(start)
        start = data.find(needle, start + 1)
    return found


def working_directory(binary: Path) -> Path | None:
    """Where ``binary`` must run: the unpacked ``usr/`` for the relocated copy."""
    return binary.parent.parent if binary.name == RELOCATED_NAME else None


def amtool_path() -> Path:
    """``$CARET_OTEL_AMTOOL_BIN``, ``amtool`` on ``PATH``, or ``build/``'s copy."""
    return _find(ev.CARET_OTEL_AMTOOL_BIN, ("amtool",), "amtool")


def amtool(*args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Run ``amtool`` (output captured, never raises on a non-zero status)."""
    return subprocess.run(
        [str(amtool_path()), *args], capture_output=True, text=True, check=False, timeout=timeout
    )


# --- the server -------------------------------------------------------------------------------
class AlertmanagerServer(ServiceRunner):
    """Alertmanager on 127.0.0.1:``port``, gossip clustering off.

    Args:
        data_dir: notification log and silences (created if missing).
        config_path: ``--config.file`` (see :func:`write_config`).
        port: listen port; a free one when None.
        log_path: defaults to ``<data_dir>/../alertmanager.log``.
    """

    service = "alertmanager"
    install_hint = INSTALL_HINT

    def __init__(
        self,
        data_dir: Path,
        config_path: Path,
        port: int | None = None,
        *,
        log_path: Path | None = None,
        ready_timeout: float = 60.0,
    ) -> None:
        super().__init__(data_dir, port, log_path=log_path, ready_timeout=ready_timeout)
        self.config_path = Path(config_path).absolute()

    @property
    def target(self) -> str:
        """``host:port``, for a Prometheus ``alerting`` block."""
        return f"{self.host}:{self.port}"

    def _command(self) -> ManagedProcess:
        """Alertmanager, ready once ``/-/ready`` answers 200."""
        binary = binary_path()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        argv = [
            str(binary),
            f"--config.file={self.config_path}",
            f"--storage.path={self.data_dir}",
            f"--web.listen-address={self.host}:{self.port}",
            f"--web.external-url={self.base_url}",
            "--cluster.listen-address=",
        ]
        ui = binary.parent.parent / "share" / "prometheus" / "alertmanager" / "ui"
        if ui.is_dir():  # the unpacked package's UI (the default path is /usr/share/...)
            argv.append(f"--web.ui-path={ui}/")
        return self._managed(argv, ready=f"{self.base_url}/-/ready", cwd=working_directory(binary))

    def reload(self) -> None:
        """Re-read the config (``POST /-/reload``)."""
        response = httpx.post(f"{self.base_url}/-/reload", timeout=30.0, trust_env=False)
        if response.status_code != 200:
            raise RuntimeError(
                f"alertmanager reload failed: {response.status_code} {response.text}"
            )

    def alerts(self) -> list[dict[str, Any]]:
        """The alerts Alertmanager holds (``GET /api/v2/alerts``)."""
        response = httpx.get(f"{self.base_url}/api/v2/alerts", timeout=10.0, trust_env=False)
        response.raise_for_status()
        found: list[dict[str, Any]] = response.json()
        return found
