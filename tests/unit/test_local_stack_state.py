"""A second ``caret-otel up`` on a data directory in use leaves the first stack's state
alone: it is refused, and its shutdown path must not remove the running stack's
``stack.json`` (``simulate``, ``report`` and ``demo`` find the stack through it)."""

from __future__ import annotations

import fcntl
from pathlib import Path

import pytest

from caret_otel.stack.local import LOCK_FILE, LocalStack, StackStartError
from caret_otel.stack.state import state_path


def test_a_refused_second_up_keeps_the_running_stacks_state(tmp_path: Path) -> None:
    data_dir = tmp_path / "stack"
    data_dir.mkdir()
    running = state_path(data_dir)
    running.write_text('{"pid": 4242}', encoding="utf-8")
    with (data_dir / LOCK_FILE).open("a+") as first_up:  # the running stack's lock
        fcntl.flock(first_up, fcntl.LOCK_EX | fcntl.LOCK_NB)
        first_up.write("4242")
        first_up.flush()
        second = LocalStack(data_dir)
        with pytest.raises(StackStartError, match="in use"):
            second.start()
        second.stop()  # what `up` does on every way out
        assert running.read_text(encoding="utf-8") == '{"pid": 4242}'


def test_the_stack_holding_the_lock_removes_its_state_on_stop(tmp_path: Path) -> None:
    stack = LocalStack(tmp_path)
    stack._lock()  # as start() does before anything runs
    state_path(tmp_path).write_text("{}", encoding="utf-8")
    stack.stop()
    assert not state_path(tmp_path).exists()
