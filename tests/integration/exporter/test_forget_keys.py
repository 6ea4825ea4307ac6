"""``caret-otel forget`` never reports a deletion it did not do: keys that never wrote to
the database (a freshly generated one, as the missing-key error advises) are refused
with exit status 1 and nothing deleted or recorded; the local stack's keys are found
with ``--data-dir``."""

from __future__ import annotations

import base64
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from integration.exporter.exporter_helpers import KEY_ENTRIES, PSEUDONYMIZER, load, query
from integration.exporter.synthetic import synthetic_events

from caret_otel.cli.main import _register_commands, cli
from caret_otel.core.environment_variables import (
    CARET_OTEL_PSEUDONYM_KEY_FILE,
    CARET_OTEL_PSEUDONYM_KEYS,
)
from caret_otel.exporters.postgres.key_fingerprints import register
from caret_otel.processors.privacy.pseudonyms import generate_key_entry
from caret_otel.stack.credentials import KEYS_FILE, SECRETS_DIR

pytestmark = pytest.mark.integration

_register_commands()


def run(*args: str, keys: str) -> tuple[int, str]:
    env = {CARET_OTEL_PSEUDONYM_KEYS: keys, CARET_OTEL_PSEUDONYM_KEY_FILE: ""}
    result = CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)
    return result.exit_code, result.output


@pytest.fixture
def loaded(database: str) -> str:
    now = datetime.now(UTC)
    load(database, synthetic_events(now - timedelta(minutes=1), users=6, days=2), now=now)
    return database


def user_rows(url: str, name: str) -> int:
    found = query(
        url,
        "SELECT count(*) FROM core.users WHERE user_pseudonym = ANY (%s)",
        (PSEUDONYMIZER.all_pseudonyms(name),),
    )
    return int(found[0][0])


def recorded(url: str) -> tuple[int, int]:
    requests = query(url, "SELECT count(*) FROM privacy.deletion_requests")[0][0]
    forgotten = query(url, "SELECT count(*) FROM privacy.forgotten_pseudonyms")[0][0]
    return int(requests), int(forgotten)


def test_a_fresh_key_with_the_same_id_is_refused_and_nothing_is_recorded(loaded: str) -> None:
    register(loaded, PSEUDONYMIZER)
    assert user_rows(loaded, "user-3") == 1
    fresh = generate_key_entry("2")  # the id of the key that signed the stored data
    code, out = run("forget", "user-3", "--database-url", loaded, keys=fresh)
    assert code == 1, out
    assert "key id(s) 2 wrote here, but with a different secret" in out
    assert "nothing was deleted and no deletion was recorded" in out
    assert "--data-dir" in out
    assert recorded(loaded) == (0, 0)
    assert user_rows(loaded, "user-3") == 1


def test_without_fingerprints_a_key_id_nothing_was_stored_under_is_refused(loaded: str) -> None:
    code, out = run("forget", "user-3", "--database-url", loaded, keys=generate_key_entry("7"))
    assert code == 1, out
    assert "no stored pseudonym was made with the pseudonym keys given (id 7)" in out
    assert recorded(loaded) == (0, 0)


def test_unverifiable_keys_that_find_no_user_record_nothing(loaded: str) -> None:
    # Same key id as the stored pseudonyms, another secret, no fingerprint recorded:
    # the keys cannot be confirmed, and they find nobody.
    code, out = run("forget", "user-3", "--database-url", loaded, keys=generate_key_entry("2"))
    assert code == 1, out
    assert "cannot be confirmed" in out
    assert recorded(loaded) == (0, 0)
    assert user_rows(loaded, "user-3") == 1


def test_the_right_keys_delete_and_record(loaded: str) -> None:
    register(loaded, PSEUDONYMIZER)
    code, out = run("forget", "user-3", "--database-url", loaded, keys=KEY_ENTRIES)
    assert code == 0, out
    assert user_rows(loaded, "user-3") == 0
    assert recorded(loaded)[0] == 1
    # a user with nothing stored, under keys that are proven right: recorded (events
    # still in flight are refused), and said so
    code, out = run("forget", "nobody-ever", "--database-url", loaded, keys=KEY_ENTRIES)
    assert code == 0, out
    assert "nothing of this user was stored" in out
    assert recorded(loaded)[0] == 2


def test_data_dir_supplies_the_local_stacks_keys(loaded: str, tmp_path: Path) -> None:
    register(loaded, PSEUDONYMIZER)
    secrets = tmp_path / SECRETS_DIR
    secrets.mkdir(mode=0o700)
    key_file = secrets / KEYS_FILE
    descriptor = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(KEY_ENTRIES.replace(",", "\n") + "\n")
    wrong = "9:" + base64.b64encode(b"w" * 32).decode()  # the environment's keys are ignored
    code, out = run(
        "forget", "user-4", "--data-dir", str(tmp_path), "--database-url", loaded, keys=wrong
    )
    assert code == 0, out
    assert "pseudonyms searched: 2" in out
    assert user_rows(loaded, "user-4") == 0
    assert recorded(loaded)[0] == 1


def test_no_keys_anywhere_says_how_to_get_them(loaded: str, tmp_path: Path) -> None:
    code, out = run("forget", "user-3", "--data-dir", str(tmp_path), "--database-url", loaded,
                    keys="")  # fmt: skip
    assert code == 1
    assert CARET_OTEL_PSEUDONYM_KEYS in out
    assert str(tmp_path / SECRETS_DIR / KEYS_FILE) in out
    assert recorded(loaded) == (0, 0)


def test_the_gateway_roles_may_record_fingerprints(database: str) -> None:
    for role in ("caret_writer", "caret_gateway"):
        allowed = query(
            database,
            "SELECT has_table_privilege(%s, 'privacy.pseudonym_key_fingerprints', 'INSERT')",
            (role,),
        )
        assert allowed == [(True,)], role
    register(database, PSEUDONYMIZER)
    register(database, PSEUDONYMIZER)  # idempotent
    assert query(database, "SELECT count(*) FROM privacy.pseudonym_key_fingerprints") == [(2,)]
