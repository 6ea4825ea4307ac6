"""Fixtures of the privacy tests: a fixed test key, the shipped policy, real engines."""

from __future__ import annotations

import base64

import pytest

from caret_otel.processors.privacy.consent import InMemoryConsentStore
from caret_otel.processors.privacy.engine import PrivacyEngine
from caret_otel.processors.privacy.pseudonyms import Pseudonymizer, parse_keys
from caret_otel.processors.privacy.report import ScrubReport
from caret_otel.semconv.policy import load_policy

KEY_1 = "1:" + base64.b64encode(bytes(range(32))).decode()
KEY_2 = "2:" + base64.b64encode(bytes(range(100, 132))).decode()


def make_pseudonymizer(*entries: str) -> Pseudonymizer:
    return Pseudonymizer(parse_keys(",".join(entries or (KEY_1,)), source="test"))


@pytest.fixture
def pseudonymizer() -> Pseudonymizer:
    return make_pseudonymizer(KEY_1)


@pytest.fixture
def engine(pseudonymizer: Pseudonymizer) -> PrivacyEngine:
    return PrivacyEngine(load_policy(), pseudonymizer)


@pytest.fixture
def consent() -> InMemoryConsentStore:
    return InMemoryConsentStore()


@pytest.fixture
def report() -> ScrubReport:
    return ScrubReport()
