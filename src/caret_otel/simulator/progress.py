"""Progress bars for ``caret-otel simulate``, ``replay`` and ``demo`` (rich)."""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.progress import Progress as RichBars
from rich.text import Text

from caret_otel.simulator.run import Progress


class RateColumn(ProgressColumn):
    """Items per second, averaged over rich's speed window."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        if speed is None:
            return Text("    -/s", style="progress.data.speed")
        return Text(f"{speed:>7,.0f}/s", style="progress.data.speed")


class BarProgress(Progress):
    """Two bars (client events, provider calls) and a status line for the phases."""

    def __init__(self, events_total: int, calls_total: int, console: Console | None = None) -> None:
        self._bars = RichBars(
            TextColumn("{task.description:<22}"),
            BarColumn(),
            MofNCompleteColumn(),
            RateColumn(),
            TimeElapsedColumn(),
            console=console or Console(stderr=True),
            transient=False,
        )
        self._events: TaskID = self._bars.add_task("client events sent", total=events_total)
        self._calls: TaskID | None = (
            self._bars.add_task("provider calls", total=calls_total) if calls_total else None
        )
        self._console = self._bars.console

    def __enter__(self) -> BarProgress:
        self._bars.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._bars.stop()

    def events_sent(self, count: int) -> None:
        self._bars.advance(self._events, count)

    def provider_call_done(self, count: int) -> None:
        if self._calls is not None:
            self._bars.advance(self._calls, count)

    def phase(self, text: str) -> None:
        self._console.print(f"[dim]·[/dim] {escape(text)}")
