"""The decoding arena: one prompt, several strategies or settings, side by side, with measures.

Each line of the contestants box is ``strategy [name=value ...]``. Ctrl+R runs them one after the
other from the same fresh state and seed; each column shows its text and measures. Tab to the
winner and press Ctrl+S: its strategy and options become the chat's, saved as a preset.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static, TextArea

from termlm.errors import TermlmError
from termlm.tui.measures import Measures, measure
from termlm.tui.threads import hand_to_ui

if TYPE_CHECKING:
    from termlm.conversation.engine import Engine

DEFAULT_CONTESTANTS = "greedy\nsample temperature=0.7\nsample temperature=1.2\nbeam"


@dataclass(frozen=True)
class Contestant:
    strategy: str
    options: dict[str, Any]

    @property
    def label(self) -> str:
        extras = " ".join(f"{k}={v}" for k, v in self.options.items())
        return f"{self.strategy} {extras}".strip()


def parse_contestants(text: str) -> list[Contestant]:
    """``strategy name=value ...`` per line; values stay strings (the strategy coerces them)."""
    out: list[Contestant] = []
    for number, line in enumerate(text.splitlines(), start=1):
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        options: dict[str, Any] = {}
        for word in words[1:]:
            name, sep, value = word.partition("=")
            if not sep or not name:
                raise ValueError(f"line {number}: {word!r} is not name=value")
            options[name] = value
        out.append(Contestant(words[0], options))
    return out


@dataclass
class Entry:
    contestant: Contestant
    options: dict[str, Any]  # validated
    text: str = ""
    measures: Measures | None = None
    error: str | None = None


class ArenaColumn(Static, can_focus=True):
    """One contestant's result. Focus it (Tab, click) to choose it as the winner."""

    def __init__(self, entry: Entry) -> None:
        super().__init__(classes="arena-column")
        self.entry = entry
        self.border_title = entry.contestant.label

    def on_mount(self) -> None:
        self.show()

    def show(self) -> None:
        entry = self.entry
        out = Text()
        if entry.error:
            out.append(entry.error, style="red")
        elif entry.measures is None:
            out.append("waiting…", style="dim")
        else:
            out.append(entry.text + "\n\n")
            out.append("\n".join(entry.measures.lines()), style="dim")
        self.update(out)


class ArenaScreen(ModalScreen[None]):
    """Several decoding strategies on one prompt."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,f6", "dismiss(None)", "Close"),
        Binding("ctrl+r", "run", "Run", priority=True),
        Binding("ctrl+s", "save", "Save the focused one", priority=True),
    ]

    def __init__(
        self,
        engine: Engine,
        *,
        prompt: str,
        seed: int,
        max_tokens: int,
        contestants: str = DEFAULT_CONTESTANTS,
        on_save: Any = None,
    ) -> None:
        super().__init__()
        self.engine = engine
        self.prompt = prompt
        self.seed = seed
        self.max_tokens = max_tokens
        self.contestants_text = contestants
        self.on_save = on_save  # (strategy, options, label) -> None
        self.entries: list[Entry] = []
        self.running = False

    def compose(self) -> ComposeResult:
        with Vertical(id="arena-box"):
            yield Label(
                "Decoding arena · Ctrl+R run · Tab to the winner, Ctrl+S keep it · Esc close",
                classes="hint",
            )
            with Horizontal(id="arena-inputs"):
                yield Input(self.prompt, placeholder="prompt", id="arena-prompt")
                yield TextArea(self.contestants_text, id="arena-contestants")
            yield Horizontal(id="arena-columns")

    def on_mount(self) -> None:
        self.query_one("#arena-prompt", Input).focus()

    async def action_run(self) -> None:
        if self.running:
            return
        try:
            contestants = parse_contestants(self.query_one("#arena-contestants", TextArea).text)
        except ValueError as exc:
            self.notify(str(exc), severity="error")
            return
        if not contestants:
            self.notify("write one strategy per line, e.g. 'sample temperature=0.8'")
            return
        entries = []
        for c in contestants:
            try:
                options = self.engine.validate(c.strategy, c.options)
                entries.append(Entry(c, dict(options)))
            except TermlmError as exc:
                entries.append(Entry(c, {}, error=str(exc)))
        self.entries = entries
        columns = self.query_one("#arena-columns", Horizontal)
        await columns.remove_children()
        await columns.mount_all([ArenaColumn(e) for e in entries])
        self.running = True
        self._run_worker(self.query_one("#arena-prompt", Input).value, entries)

    @work(thread=True, exclusive=True, group="arena")
    def _run_worker(self, prompt: str, entries: list[Entry]) -> None:
        from termlm.decoding.events import DoneEvent

        for index, entry in enumerate(entries):
            if entry.error:
                continue
            try:
                events = self.engine.generate(
                    prompt,
                    strategy=entry.contestant.strategy,
                    options=entry.options,
                    max_new_tokens=self.max_tokens,
                    seed=self.seed,
                )
                done = [e for e in events if isinstance(e, DoneEvent)][-1].result
                entry.text = done.text
                entry.measures = measure(done.token_ids, done.logprobs, done.seconds)
                if done.error:
                    entry.error = done.error
            except Exception as exc:
                entry.error = str(exc)
            hand_to_ui(self.app, self._update, index)
        hand_to_ui(self.app, self._finished)

    def _update(self, index: int) -> None:
        columns = list(self.query(ArenaColumn))
        if index < len(columns):
            columns[index].show()

    def _finished(self) -> None:
        self.running = False

    def action_save(self) -> None:
        focused = self.focused
        if not isinstance(focused, ArenaColumn):
            self.notify("Tab to the winning column first, then Ctrl+S")
            return
        entry = focused.entry
        if entry.error or entry.measures is None:
            self.notify("that one has no result to keep", severity="warning")
            return
        if self.on_save is not None:
            self.on_save(entry.contestant.strategy, entry.options, entry.contestant.label)
        self.notify(f"kept {entry.contestant.label!r} as the chat's decoding (preset saved)")


def preset_name(label: str, existing: Mapping[str, Any]) -> str:
    """A preset name from a contestant label, unique among ``existing``."""
    name, n = label, 2
    while name in existing:
        name, n = f"{label} ({n})", n + 1
    return name
