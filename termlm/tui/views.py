"""The chat screen's views into the model: inspector and branching, confidence colours, beams,
the score and arena screens, and the prompt's token hints.

A mixin of ``ChatScreen`` (kept apart so each file stays readable); what it changes in the
conversation goes through the screen's ``core``.
"""

from __future__ import annotations

from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING, Any

from textual import work

from termlm.conversation.tree import Message, split_speaker
from termlm.errors import TermlmError
from termlm.tui.beams import BeamPanel
from termlm.tui.panel import SidePanel
from termlm.tui.threads import hand_to_ui
from termlm.tui.tokenview import COLOUR_MODES, confidence_colour, surprise_colour
from termlm.tui.transcript import Transcript, subtitle
from termlm.tui.widgets import MessageView, PromptHints, PromptInput

if TYPE_CHECKING:
    from collections.abc import Callable

    from termlm.conversation.chat import ChatCore, Turn
    from termlm.decoding.events import Beam
    from termlm.runtime.types import State


class ModelViews:
    """F3 inspector, F4 colours, F5 score, F6 arena, F7 tokens, F8 branches, F9 beams."""

    core: ChatCore
    n_best: list[Beam]
    beams_open: bool

    if TYPE_CHECKING:  # provided by the screen

        def refresh_status(self, activity: str = "") -> None: ...
        def read_back_first(self, index: int, then: Callable[[], None], activity: str) -> bool: ...
        def persist(self) -> None: ...
        def reply_options(self) -> dict[str, Any] | None: ...
        def show_option_fields(self) -> Any: ...
        def begin_reply(
            self, turn: Turn, options: dict[str, Any], branch_at: int | None = None
        ) -> None: ...
        @property
        def transcript(self) -> Transcript: ...

    # --- inspector and branching

    def action_inspect(self, index: int | None = None) -> None:
        from termlm.tui.inspect_screen import InspectScreen, reply_tokens

        core = self.core
        target = self._reply_index() if index is None else index
        if target is None or core.model is None:
            self.notify("no reply to look inside yet" if core.model else "no model is loaded")  # type: ignore[attr-defined]
            return
        message = core.conversation.messages[target]
        again = partial(self.action_inspect, target)
        if self.read_back_first(core.parent_index(target), again, "reading back…"):
            return
        try:
            tokens = reply_tokens(message, core.engine)
            prompt, state = core.parent_of(target)
        except TermlmError as exc:
            self.notify(str(exc), severity="error")  # type: ignore[attr-defined]
            return
        screen = InspectScreen(
            core.engine,
            tokens,
            prompt=prompt,
            state=state,
            extras=core.model.extras,
            can_branch=core.job is None,
        )

        def done(choice: tuple[int, int] | None) -> None:
            if choice is not None:
                self.branch_from(target, choice[0], choice[1])

        self.app.push_screen(screen, done)  # type: ignore[attr-defined]

    def branch_from(self, index: int, position: int, token_id: int) -> None:
        """Continue reply ``index`` from token ``position`` with ``token_id`` instead."""
        if self.core.job is not None:
            self.notify("a reply is running; Esc stops it first", severity="warning")  # type: ignore[attr-defined]
            return
        options = self.reply_options()
        if options is None:
            return
        again = partial(self.branch_from, index, position, token_id)
        if self.read_back_first(self.core.parent_index(index), again, "reading back…"):
            return
        turn = self.core.branch_turn(index, position, token_id)
        self.begin_reply(turn, options, branch_at=index)
        label = self.core.conversation.branch_label(index)
        self.notify(label + " · F8 switches", title="new branch")  # type: ignore[attr-defined]

    def action_next_branch(self) -> None:
        core = self.core
        if core.job is not None:
            self.notify("a reply is running; Esc stops it first", severity="warning")  # type: ignore[attr-defined]
            return
        position = core.conversation.latest_fork()
        if position is None:
            self.notify("no branches yet: pick another token in the inspector (F3)")  # type: ignore[attr-defined]
            return
        fork = core.conversation.forks[position]
        core.switch_branch(position, fork.current + 1)
        self.transcript.show(core.conversation, position)
        self.apply_colours()
        self.refresh_status(core.conversation.branch_label(position))

    def _reply_index(self) -> int | None:
        messages = self.core.conversation.messages
        for index in range(len(messages) - 1, -1, -1):
            if messages[index].role == "model":
                return index
        return None

    # --- confidence colouring

    def action_colour(self) -> None:
        settings = self.core.settings
        mode = COLOUR_MODES[(COLOUR_MODES.index(settings.colour) + 1) % len(COLOUR_MODES)]
        settings.colour = mode
        self.persist()
        self.apply_colours()
        self.notify(f"colour: {mode}" + ("  (red: unsure, green: sure)" if mode != "off" else ""))  # type: ignore[attr-defined]

    def apply_colours(self) -> None:
        missing = []
        for message, view in zip(
            self.core.conversation.messages, self.transcript.views, strict=False
        ):
            if message.role == "model" and not self.colour_view(message, view):
                missing.append(message)
        if missing and self.core.model is not None:
            self._trace_messages(missing)

    def colour_view(self, message: Message, view: MessageView) -> bool:
        """Colour one reply in the current mode; False when it needs a trace first."""
        mode = self.core.settings.colour
        if message.role != "model" or mode == "off":
            view.plain()
            return True
        trace = message.trace
        if mode == "probability" and message.events:
            pieces = [e.text for e in message.events]
            colours: list[str | None] = [confidence_colour(e.prob) for e in message.events]
        elif trace is not None:
            pieces = [e.text for e in message.events] or [
                self.core.engine.token_text(i) for i in trace.new_ids
            ]
            values = trace.entropy if mode == "entropy" else trace.surprisal
            colours = [surprise_colour(float(v), 4.0) for v in values.tolist()]
        else:
            return False
        joined = "".join(pieces)
        offset = max(joined.find(message.text), 0)
        view.show_tokens(pieces, colours[: len(pieces)], offset)
        return True

    @work(thread=True, exclusive=True, group="colour")
    def _trace_messages(self, messages: list[Message]) -> None:
        core = self.core
        for message in messages:
            try:
                index = core.conversation.messages.index(message)
                prompt, state = core.parent_of(index)
                ids = [e.token_id for e in message.events] or message.token_ids
                ids = ids or core.engine.encode(message.fed)
                message.trace = core.engine.trace(prompt, ids, state=state)
            except Exception:
                continue
        hand_to_ui(self.app, self.apply_colours_known)  # type: ignore[attr-defined]

    def apply_colours_known(self) -> None:
        for message, view in zip(
            self.core.conversation.messages, self.transcript.views, strict=False
        ):
            self.colour_view(message, view)

    # --- beams

    def action_beams(self) -> None:
        panel = self.query_one(BeamPanel)  # type: ignore[attr-defined]
        self.beams_open = not self.beams_open
        panel.display = self.beams_open
        if self.beams_open:
            if self.n_best:
                panel.show_n_best(self.n_best)
                panel.query_one("#beams-list").focus()
            elif self.core.job is None:
                self.notify("beams show here while beam search runs (strategy: beam)")  # type: ignore[attr-defined]
        else:
            self.query_one(PromptInput).focus()  # type: ignore[attr-defined]

    def on_beam_panel_chosen(self, event: BeamPanel.Chosen) -> None:
        """Take one of the n-best as the reply: its state is read again from the parent."""
        index = self._reply_index()
        if index is None or self.core.job is not None:
            return
        again = partial(self.on_beam_panel_chosen, event)
        if self.read_back_first(self.core.parent_index(index), again, "reading back…"):
            return
        prompt, state = self.core.parent_of(index)
        self._take_beam_worker(index, prompt, state, event.beam)

    @work(thread=True, exclusive=True, group="beam-choice")
    def _take_beam_worker(self, index: int, prompt: str, state: State | None, beam: Beam) -> None:
        core = self.core
        try:
            ids = core.engine.encode(prompt) + list(beam.token_ids)
            new_state = core.prefill(ids, state)
        except Exception as exc:
            hand_to_ui(self.app, self.notify, str(exc), severity="error")  # type: ignore[attr-defined]
            return
        hand_to_ui(self.app, self._took_beam, index, beam, new_state)  # type: ignore[attr-defined]

    def _took_beam(self, index: int, beam: Beam, state: State | None) -> None:
        core = self.core
        old = core.conversation.messages[index]
        settings = core.settings
        if settings.mode == "dialogue":
            speaker, body = split_speaker(beam.text, settings.bot_name)
        else:
            speaker, body = old.speaker, beam.text
        message = replace(
            old,
            text=body,
            fed=beam.text,
            speaker=speaker,
            state=state,
            tokens=len(beam.token_ids),
            token_ids=list(beam.token_ids),
        )
        message.events, message.trace = [], None
        core.conversation.branch_at(index)
        self.transcript.cut(index)
        core.append(message)
        view = self.transcript.add(message)
        label = core.conversation.branch_label(index)
        view.border_subtitle = (
            f"{subtitle(message.strategy or '?', message.tokens, None)} · {label}"
        )
        self.colour_view(message, view)
        self.notify(f"took beam with score {beam.score:.3f} as the reply")  # type: ignore[attr-defined]

    # --- score, arena, tokens

    def action_score(self) -> None:
        from termlm.tui.score_screen import ScoreScreen

        if self.core.model is None:
            self.notify("no model is loaded", severity="warning")  # type: ignore[attr-defined]
            return
        self.app.push_screen(ScoreScreen(self.core.engine))  # type: ignore[attr-defined]

    def action_arena(self) -> None:
        from termlm.tui.arena import ArenaScreen, preset_name

        core = self.core
        if core.model is None:
            self.notify("no model is loaded", severity="warning")  # type: ignore[attr-defined]
            return
        settings = core.settings
        prompts = core.conversation.user_prompts()
        prompt = self.query_one(PromptInput).text or (prompts[-1] if prompts else "")  # type: ignore[attr-defined]

        def keep(strategy: str, options: dict[str, Any], label: str) -> None:
            name = preset_name(label, settings.presets)
            settings.presets[name] = {"strategy": strategy, "options": dict(options)}
            settings.strategy = strategy
            settings.options[strategy] = dict(options)
            self.persist()
            panel = self.query_one(SidePanel)  # type: ignore[attr-defined]
            panel.show_strategies(core.engine.strategies(), strategy)
            panel.show_presets(list(settings.presets), name)
            self.call_later(self.show_option_fields)  # type: ignore[attr-defined]
            self.refresh_status()

        self.app.push_screen(  # type: ignore[attr-defined]
            ArenaScreen(
                core.engine,
                prompt=prompt,
                seed=settings.seed if settings.seed is not None else 0,
                max_tokens=min(settings.max_tokens, 200),
                on_save=keep,
            )
        )

    def action_tokens(self) -> None:
        hints = self.query_one(PromptHints)  # type: ignore[attr-defined]
        hints.tokens_shown = not hints.tokens_shown
        self.update_hints()

    def update_hints(self) -> None:
        hints = self.query_one(PromptHints)  # type: ignore[attr-defined]
        text = self.query_one(PromptInput).text  # type: ignore[attr-defined]
        engine = self.core.engine
        if self.core.model is None or not text:
            hints.show("", [], [])
            return
        try:
            unknown = engine.unknown_spans(text)
            pieces = (
                [engine.token_text(i) for i in engine.encode(text)] if hints.tokens_shown else []
            )
        except TermlmError:
            return
        hints.show(text, unknown, pieces)
