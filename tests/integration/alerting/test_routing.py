"""Routing as code, checked by Alertmanager's own tools and a running Alertmanager:
``amtool check-config`` accepts the configs, ``amtool config routes test`` sends every
alert of the rule files to the receiver its severity calls for, and the inhibition
rules mute what an ``CaretIngestionStopped`` or a fast burn already says."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from caret_otel.dashboards import rules
from caret_otel.dashboards.paths import repo_root
from caret_otel.stack import alertmanager as am
from caret_otel.stack.alertmanager import AlertmanagerServer, AlertReceiverError, Receivers

ROOT = repo_root()
CHECKED_IN = ROOT / am.CONFIG_PATH
ALL_ALERTS = [*rules.alerts(), *rules.slo_alerts()]


def _check(path: Path) -> str:
    result = am.amtool("check-config", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_checked_in_config_passes_amtool() -> None:
    out = _check(CHECKED_IN)
    assert "2 inhibit rules" in out
    assert "2 receivers" in out
    assert "1 templates" in out


def test_config_with_every_receiver_passes_amtool(tmp_path: Path) -> None:
    password = tmp_path / "smtp-password"
    password.write_text("not-a-real-password\n")
    receivers = Receivers.from_env(
        {
            "CARET_OTEL_ALERT_PAGE_WEBHOOK_URL": "https://pager.example.org/hook",
            "CARET_OTEL_ALERT_CHAT_WEBHOOK_URL": "http://127.0.0.1:9/chat",
            "CARET_OTEL_ALERT_SLACK_WEBHOOK_URL": "https://hooks.slack.example/T0/B0/x",
            "CARET_OTEL_ALERT_SLACK_CHANNEL": "#caret-alerts",
            "CARET_OTEL_ALERT_EMAIL_TO": "oncall@example.org",
            "CARET_OTEL_ALERT_EMAIL_FROM": "alertmanager@example.org",
            "CARET_OTEL_ALERT_SMTP_SMARTHOST": "relay.example.org:587",
            "CARET_OTEL_ALERT_SMTP_USERNAME": "alertmanager",
            "CARET_OTEL_ALERT_SMTP_PASSWORD_FILE": str(password),
            "CARET_OTEL_ALERT_RUNBOOK_BASE_URL": "https://git.example.org/caret-otel/blob/main/",
        }
    )
    path = am.write_config(tmp_path / "am", receivers)
    assert path.stat().st_mode & 0o777 == 0o600  # it holds secrets
    text = path.read_text()
    assert "not-a-real-password" in text  # read from the file, not the environment
    out = _check(path)
    assert "2 receivers" in out
    template = (tmp_path / "am" / "templates" / "caret.tmpl").read_text()
    assert "https://git.example.org/caret-otel/blob/main/{{ end }}" in template
    assert receivers.configured() == [
        "page: webhook",
        "page: e-mail to oncall@example.org",
        "chat: webhook",
        "chat: Slack-compatible webhook",
    ]


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"CARET_OTEL_ALERT_PAGE_WEBHOOK_URL": "pager.example.org/secret-token"},
         "CARET_OTEL_ALERT_PAGE_WEBHOOK_URL"),
        ({"CARET_OTEL_ALERT_EMAIL_TO": "a@example.org", "CARET_OTEL_ALERT_EMAIL_FROM": "b@example.org"},
         "CARET_OTEL_ALERT_SMTP_SMARTHOST"),
        ({"CARET_OTEL_ALERT_SLACK_WEBHOOK_URL_FILE": "/nonexistent/slack-url"},
         "CARET_OTEL_ALERT_SLACK_WEBHOOK_URL_FILE"),
    ],
)  # fmt: skip
def test_bad_receiver_settings_name_the_variable_not_the_value(
    env: dict[str, str], named: str
) -> None:
    with pytest.raises(AlertReceiverError) as caught:
        Receivers.from_env(env)
    message = str(caught.value)
    assert named in message
    assert "secret-token" not in message


@pytest.mark.parametrize("alert", ALL_ALERTS, ids=lambda a: a.name)
def test_each_alert_lands_on_its_receiver(alert: rules.Alert) -> None:
    expected = am.SEVERITY_ROUTES[alert.severity]
    labels = [f"alertname={alert.name}", f"severity={alert.severity}"]
    labels += [f"{k}={v}" for k, v in alert.labels.items()]
    result = am.amtool(
        "config", "routes", "test", f"--config.file={CHECKED_IN}",
        f"--verify.receivers={expected}", *labels,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == expected


def test_critical_pages_and_warning_goes_to_chat() -> None:
    severities = {a.severity for a in ALL_ALERTS}
    assert severities == {"critical", "warning"}
    for severity, receiver in (("critical", "page"), ("warning", "chat"), ("info", "chat")):
        result = am.amtool(
            "config", "routes", "test", f"--config.file={CHECKED_IN}",
            f"--verify.receivers={receiver}", "alertname=Any", f"severity={severity}",
        )  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr


def _post(server: AlertmanagerServer, *alerts: dict[str, str]) -> None:
    now = datetime.now(UTC)
    body = [
        {
            "labels": labels,
            "annotations": {"summary": "test"},
            "startsAt": now.isoformat(),
            "endsAt": (now + timedelta(minutes=5)).isoformat(),
        }
        for labels in alerts
    ]
    response = httpx.post(f"{server.base_url}/api/v2/alerts", json=body, trust_env=False)
    assert response.status_code == 200, response.text


def _states(server: AlertmanagerServer, environment: str, timeout: float = 10.0) -> dict[str, str]:
    """alertname -> state of the alerts of ``environment``, once none is unprocessed."""
    deadline = time.monotonic() + timeout
    while True:
        found = {
            a["labels"]["alertname"]: a["status"]["state"]
            for a in server.alerts()
            if a["labels"].get("deployment_environment_name") == environment
        }
        if found and "unprocessed" not in found.values():
            return found
        if time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def test_ingestion_stopped_mutes_what_it_causes(alertmanager: AlertmanagerServer) -> None:
    env = "inhibition-test"
    caused = rules.caused_by_ingestion_stopped()
    _post(
        alertmanager,
        {"alertname": rules.INGESTION_STOPPED, "severity": "critical",
         "deployment_environment_name": env},
        *({"alertname": name, "severity": "critical", "deployment_environment_name": env}
          for name in caused),
        {"alertname": "CaretScrapeTargetDown", "severity": "critical",
         "deployment_environment_name": env},
    )  # fmt: skip

    def settled() -> dict[str, str]:
        deadline = time.monotonic() + 15
        while True:
            states = _states(alertmanager, env)
            if all(states.get(n) == "suppressed" for n in caused) or time.monotonic() > deadline:
                return states

    states = settled()
    assert states[rules.INGESTION_STOPPED] == "active"
    assert states["CaretScrapeTargetDown"] == "active"  # not caused by it: still notified
    assert {n: states[n] for n in caused} == dict.fromkeys(caused, "suppressed")


def test_fast_burn_mutes_the_slow_burn_of_the_same_slo(alertmanager: AlertmanagerServer) -> None:
    env = "burn-test"
    slo = rules.slos()[0]
    fast, slow = (slo.alert_name(b) for b in rules.BURN_ALERTS)
    other_slow = rules.slos()[1].alert_name(rules.BURN_ALERTS[1])
    common = {"deployment_environment_name": env}
    _post(
        alertmanager,
        {"alertname": fast, "severity": "critical", "slo": slo.name, "burn": "fast", **common},
        {"alertname": slow, "severity": "warning", "slo": slo.name, "burn": "slow", **common},
        {"alertname": other_slow, "severity": "warning", "slo": rules.slos()[1].name,
         "burn": "slow", **common},
    )  # fmt: skip
    deadline = time.monotonic() + 15
    states = _states(alertmanager, env)
    while states.get(slow) != "suppressed" and time.monotonic() < deadline:
        time.sleep(0.2)
        states = _states(alertmanager, env)
    assert states == {fast: "active", slow: "suppressed", other_slow: "active"}


def test_up_refuses_a_malformed_receiver_before_starting_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from caret_otel.stack.local import LocalStack, StackStartError

    monkeypatch.setenv("CARET_OTEL_ALERT_CHAT_WEBHOOK_URL", "chat.example.org/secret-token")
    stack = LocalStack(tmp_path / "stack")
    with pytest.raises(StackStartError) as caught:
        stack.start()
    assert "CARET_OTEL_ALERT_CHAT_WEBHOOK_URL" in str(caught.value)
    assert "secret-token" not in str(caught.value)
    assert not (tmp_path / "stack").exists()  # nothing was started or written
