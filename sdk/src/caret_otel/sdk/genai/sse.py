"""Incremental server-sent-events decoder that keeps only the events a reader wants.

Bytes are fed as they reach the caller; nothing is held back from the caller. The
decoder holds at most one unfinished line plus the data lines of the current event,
and drops the data of events the reader does not want (content deltas) as soon as the
event's name is known. A line longer than ``max_line_bytes`` is skipped whole, so a
misbehaving server cannot make the observer grow without bound.

Lines end with LF or CRLF (what every provider sends); a lone CR is not a terminator.
"""

from __future__ import annotations

from collections.abc import Callable

DEFAULT_MAX_LINE_BYTES = 1 << 20


class SseDecoder:
    """Feeds complete events to ``on_event(name, data)`` when ``wants(name)`` is true.

    ``name`` is ``None`` for events without an ``event:`` field. ``data`` is the event's
    data lines joined with LF, as the SSE specification defines.
    """

    def __init__(
        self,
        wants: Callable[[str | None], bool],
        on_event: Callable[[str | None, bytes], None],
        *,
        skippable: Callable[[bytes], bool] | None = None,
        max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    ) -> None:
        """``skippable(chunk)``: a cheap test that a chunk of whole events holds no event
        the reader wants; such chunks are not decoded at all (the common case: content
        deltas). It may answer False when unsure, never True wrongly."""
        self._wants = wants
        self._skippable = skippable
        self._on_event = on_event
        self._max_line = max_line_bytes
        self._partial = bytearray()
        self._skipping_line = False
        self._event: str | None = None
        self._data: list[bytes] = []
        self._has_data = False
        self._keep_data = True
        self.skipped_lines = 0
        """Lines dropped for exceeding ``max_line_bytes`` (visible to tests and debug logs)."""

    def feed(self, chunk: bytes) -> None:
        if (
            self._skippable is not None
            and chunk.endswith(b"\n\n")
            and self._between_events()
            and self._skippable(chunk)
        ):
            return
        lines = chunk.split(b"\n")
        tail = lines.pop()  # the unfinished last line ("" when the chunk ends a line)
        if lines:
            if self._skipping_line:  # this chunk ends an over-long line: drop its rest
                self._skipping_line = False
                del lines[0]
            elif self._partial:
                self._partial += lines[0]
                lines[0] = bytes(self._partial)
                self._partial.clear()
            self._lines(lines)
        self._keep_partial(tail)

    def close(self) -> None:
        """End of stream: a final event without its blank line still counts."""
        if self._partial and not self._skipping_line:
            line = bytes(self._partial)
            self._partial.clear()
            self._lines([line])
        self._dispatch()

    def _between_events(self) -> bool:
        return not (
            self._partial or self._skipping_line or self._has_data or self._event is not None
        )

    def _keep_partial(self, tail: bytes) -> None:
        if self._skipping_line or not tail:
            return
        if len(self._partial) + len(tail) > self._max_line:
            self._partial.clear()
            self._skipping_line = True
            self.skipped_lines += 1
            return
        self._partial += tail

    def _lines(self, lines: list[bytes]) -> None:
        # One tight loop over complete lines: this runs for every line of every stream.
        max_line = self._max_line
        for line in lines:
            if len(line) > max_line:
                self.skipped_lines += 1
                continue
            if line.endswith(b"\r"):
                line = line[:-1]
            if not line:
                self._dispatch()
            elif line.startswith(b"data:"):
                self._has_data = True
                # Until the event's name is known its data must be kept; afterwards only
                # wanted events keep theirs.
                if self._keep_data:
                    value = line[5:]
                    self._data.append(value[1:] if value.startswith(b" ") else value)
            elif line.startswith(b"event:"):
                value = line[6:]
                self._event = (value[1:] if value.startswith(b" ") else value).decode(
                    "utf-8", "replace"
                )
                self._keep_data = self._wants(self._event)
                if not self._keep_data:
                    self._data.clear()
            # Comments (":...") and other fields (id, retry) carry nothing we read.

    def _dispatch(self) -> None:
        event, data, has_data = self._event, self._data, self._has_data
        self._event, self._data, self._has_data, self._keep_data = None, [], False, True
        if has_data and self._wants(event):
            self._on_event(event, data[0] if len(data) == 1 else b"\n".join(data))
