"""Keyed pseudonyms: deterministic, canonical, rotating, and never without a key."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from unit.privacy.conftest import KEY_1, KEY_2, make_pseudonymizer

from caret_otel.processors.privacy.pseudonyms import (
    KEY_FILE_ENV,
    KEYS_ENV,
    PSEUDONYM_CACHE_SIZE,
    Pseudonymizer,
    PseudonymKeyError,
    generate_key_entry,
    is_pseudonym,
    parse_keys,
)


@given(identifier=st.text(min_size=1, max_size=64))
def test_same_id_and_key_give_the_same_pseudonym(identifier: str) -> None:
    first = make_pseudonymizer(KEY_1).pseudonymize(identifier)
    assert make_pseudonymizer(KEY_1).pseudonymize(identifier) == first
    assert first.startswith("v1:")
    assert is_pseudonym(first)


def test_different_keys_give_different_pseudonyms() -> None:
    assert make_pseudonymizer(KEY_1).pseudonymize("alice") != make_pseudonymizer(
        KEY_2
    ).pseudonymize("alice")


def test_canonical_form_trims_normalises_and_lowercases_emails() -> None:
    p = make_pseudonymizer(KEY_1)
    assert p.pseudonymize("  Alice@Example.COM ") == p.pseudonymize("alice@example.com")
    assert p.pseudonymize("Jose\u0301") == p.pseudonymize("Jos\u00e9")  # NFD == NFC
    assert p.pseudonymize("Alice") != p.pseudonymize("alice")  # not an e-mail: case matters


def test_rotation_signs_with_the_newest_key_and_finds_all() -> None:
    before = make_pseudonymizer(KEY_1)
    after = make_pseudonymizer(KEY_1, KEY_2)
    old = before.pseudonymize("alice")
    new = after.pseudonymize("alice")
    assert new.startswith("v2:")
    assert new != old
    assert after.all_pseudonyms("alice") == [old, new]
    assert after.is_live_pseudonym(old)
    assert after.is_live_pseudonym(new)
    assert not before.is_live_pseudonym(new)


def test_keyed_digest_depends_on_the_key() -> None:
    assert make_pseudonymizer(KEY_1).keyed_digest(b"x") != make_pseudonymizer(KEY_2).keyed_digest(
        b"x"
    )
    assert len(make_pseudonymizer(KEY_1).keyed_digest(b"x")) == 64


def test_without_a_key_it_refuses_with_how_to_make_one() -> None:
    with pytest.raises(PseudonymKeyError, match="caret-otel privacy keygen"):
        Pseudonymizer.from_env({})


def test_keys_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text(f"# rotated 2025-01\n{KEY_1}\n{KEY_2}\n")
    p = Pseudonymizer.from_env({KEY_FILE_ENV: str(path)})
    assert p.key_ids == ("1", "2")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1:" + "A" * 8, "at least 32"),
        ("1:not base64!", "base64"),
        ("nocolon", "<id>:<base64 key>"),
        (f"{KEY_1},{KEY_1}", "twice"),
    ],
)
def test_bad_keys_are_refused_clearly(text: str, message: str) -> None:
    with pytest.raises(PseudonymKeyError, match=message):
        parse_keys(text, source=KEYS_ENV)


def test_generated_entries_parse() -> None:
    keys = parse_keys(generate_key_entry("2025-01"), source="test")
    assert keys[0].id == "2025-01"
    assert len(keys[0].secret) == 32
    assert keys[0].secret.hex() not in repr(keys[0])
    assert str(keys[0].secret) not in repr(keys[0])


def test_a_full_cache_keeps_its_newer_half_and_stays_bounded() -> None:
    pseudonymizer = make_pseudonymizer()
    first = [pseudonymizer.pseudonymize(f"task-{i}") for i in range(PSEUDONYM_CACHE_SIZE)]
    newest = pseudonymizer.pseudonymize("one-more")
    cached = pseudonymizer._pseudonyms
    assert len(cached) == PSEUDONYM_CACHE_SIZE // 2 + 1
    assert "task-0" not in cached
    assert f"task-{PSEUDONYM_CACHE_SIZE - 1}" in cached
    assert cached["one-more"] == newest
    # evicted or kept, an id always gets the same pseudonym
    assert pseudonymizer.pseudonymize("task-0") == first[0]
    assert pseudonymizer.live_pseudonyms("task-1") == (first[1],)
