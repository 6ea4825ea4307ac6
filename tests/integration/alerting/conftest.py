"""Fixtures of the alerting tests: a webhook receiver on 127.0.0.1 that records what
Alertmanager sends."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from integration.alerting.alerting_support import WebhookReceiver


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as receiver:
        yield receiver
