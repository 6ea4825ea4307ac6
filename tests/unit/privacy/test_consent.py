"""Consent: the in-memory store and the rule that finds a record's user."""

from __future__ import annotations

from caret_otel.processors.privacy.consent import ConsentStore, InMemoryConsentStore, opted_out_user
from caret_otel.processors.privacy.engine import PrivacyEngine
from caret_otel.processors.privacy.pseudonyms import Pseudonymizer
from caret_otel.semconv import attributes as attrs


def test_in_memory_store_records_both_directions() -> None:
    store = InMemoryConsentStore()
    assert isinstance(store, ConsentStore)
    store.set_consent(["v1:a", "v2:a"], enabled=False)
    assert store.is_opted_out("v1:a")
    assert store.is_opted_out("v2:a")
    store.set_consent(["v1:a"], enabled=True)
    assert not store.is_opted_out("v1:a")
    assert store.is_opted_out("v2:a")


def test_user_is_found_under_any_user_attribute_raw_or_keyed(
    engine: PrivacyEngine, pseudonymizer: Pseudonymizer
) -> None:
    store = InMemoryConsentStore(pseudonymizer.all_pseudonyms("alice"))
    for key in (attrs.ENDUSER_PSEUDO_ID, attrs.ENDUSER_ID, attrs.USER_ID, attrs.USER_HASH):
        assert opted_out_user(engine, store, {key: "alice"})
    assert opted_out_user(engine, store, {}, {attrs.USER_ID: "alice"})
    assert not opted_out_user(engine, store, {attrs.USER_ID: "bob"})
    assert not opted_out_user(engine, store, {attrs.SESSION_ID: "alice"})


def test_opt_out_recorded_before_a_key_rotation_still_holds(engine: PrivacyEngine) -> None:
    from unit.privacy.conftest import KEY_1, KEY_2, make_pseudonymizer

    before = make_pseudonymizer(KEY_1)
    store = InMemoryConsentStore(before.all_pseudonyms("alice"))  # only v1 is stored
    rotated = PrivacyEngine(engine.policy, make_pseudonymizer(KEY_1, KEY_2))
    assert rotated.pseudonymizer.pseudonymize("alice").startswith("v2:")
    assert opted_out_user(rotated, store, {attrs.USER_ID: "alice"})
    assert not opted_out_user(rotated, store, {attrs.USER_ID: "bob"})
