"""The main screen: transcript, prompt, status line, side panel; generation in a thread worker.

Tokens travel from the worker to the screen through a ``ReplyJob`` buffer that the screen drains on
a timer (every ``FLUSH_SECONDS``), so a fast model cannot flood the UI with one message per token.

The worker is a plain daemon thread that owns its job. Escape asks it to stop; if it has not ended
within ``STOP_GRACE_SECONDS`` (a plugin stuck inside its own code), the screen ends the reply itself
with the text so far, reads the reply's state again from its parent state, and forgets the job:
whatever the stuck thread produces later lands in a buffer nobody drains.
"""

from __future__ import annotations

import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer

from termlm.conversation.engine import Engine, ModelInfo
from termlm.conversation.tree import (
    MODES,
    SPEECH_END,
    Conversation,
    Message,
    build_prompt,
    ended_speech,
    split_speaker,
    stop_strings,
    to_markdown,
)
from termlm.errors import PluginError, TermlmError
from termlm.tui.beams import BeamPanel
from termlm.tui.panel import SidePanel
from termlm.tui.screens import ChatsScreen, HelpScreen
from termlm.tui.tokenview import COLOUR_MODES, confidence_colour, surprise_colour
from termlm.tui.widgets import MessageView, PromptHints, PromptInput, StatusLine

if TYPE_CHECKING:
    from termlm.decoding.events import Beam, GenerationResult, TokenEvent
    from termlm.runtime.types import State
    from termlm.tui.app import ChatApp

FLUSH_SECONDS = 0.04
STOP_GRACE_SECONDS = 0.15  # Escape: how long the worker may take to end the reply itself
BEAMS_SECONDS = 0.2  # live beams are redrawn at most this often
MAX_SEED = 2**31 - 1

EXTRA_KEYS = (
    ("enter", "send the prompt"),
    ("ctrl+j", "new line in the prompt (also shift+enter, alt+enter)"),
    ("up / down", "recall earlier prompts (on the first / last line)"),
    ("ctrl+p", "command palette: every action, themes"),
    ("ctrl+q", "quit"),
)


@dataclass
class ReplyJob:
    """One reply in flight: what was asked, and a thread-safe buffer of what came back."""

    prompt: str | list[int]
    state: State | None
    strategy: str
    options: dict[str, Any]
    seed: int
    max_tokens: int
    stop: tuple[str, ...]
    started: float
    cancel: threading.Event = field(default_factory=threading.Event)
    tokens: int = 0
    finished: bool = False
    events: list[Any] = field(default_factory=list)  # the TokenEvents of this reply
    prefix_events: list[Any] = field(default_factory=list)  # a branch: the tokens kept before it
    beams_seen: bool = False
    live: Any = None  # the newest BeamsEvent drained
    stop_requested: float | None = None  # when Escape was pressed (time.monotonic)
    _pending: list[Any] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def push(self, item: Any) -> None:
        with self._lock:
            self._pending.append(item)

    def drain(self) -> list[Any]:
        with self._lock:
            items, self._pending = self._pending, []
        return items


def run_job(engine: Engine, job: ReplyJob) -> None:
    """The body of a reply's thread: stream the engine's events into the job's buffer."""
    try:
        events = engine.generate(
            job.prompt,
            strategy=job.strategy,
            options=job.options,
            max_new_tokens=job.max_tokens,
            stop=job.stop,
            seed=job.seed,
            state=job.state,
            cancel=job.cancel,
        )
        for event in events:
            job.push(event)
    except TermlmError as exc:
        job.push(exc)
    except Exception as exc:  # a broken engine must not take the chat down
        job.push(PluginError(f"generation failed: {type(exc).__name__}: {exc}"))
    finally:
        job.finished = True


class ChatScreen(Screen[None]):
    """Everything a person sees while chatting."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "stop", "Stop"),
        Binding("ctrl+r", "regenerate", "Regenerate", priority=True),
        Binding("ctrl+z", "undo", "Undo", priority=True),
        Binding("f2", "toggle_panel", "Panel"),
        Binding("ctrl+t", "toggle_mode", "Mode", priority=True, show=False),
        Binding("ctrl+o", "chats", "Chats", priority=True),
        Binding("ctrl+n", "new_chat", "New", priority=True, show=False),
        Binding("ctrl+y", "copy_reply", "Copy", priority=True, show=False),
        Binding("ctrl+s", "export", "Export", priority=True, show=False),
        Binding("f1", "help", "Help"),
        Binding("f3", "inspect", "Inspect", priority=True),
        Binding("f4", "colour", "Colour", priority=True, show=False),
        Binding("f5", "score", "Score", priority=True, show=False),
        Binding("f6", "arena", "Arena", priority=True, show=False),
        Binding("f7", "tokens", "Tokens", priority=True, show=False),
        Binding("f8", "next_branch", "Branch", priority=True, show=False),
        Binding("f9", "beams", "Beams", priority=True, show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.conversation = Conversation()
        self.chat_model: ModelInfo | None = None  # the model the saved states belong to
        self.model: ModelInfo | None = None
        self.model_loading = True  # the model is loaded right after the first paint
        self.send_when_ready = False  # a prompt submitted while the model was loading
        self.job: ReplyJob | None = None
        self.previous_model: ModelInfo | None = None  # the model loaded before the latest load
        self.gone_noticed: set[str] = set()  # models whose missing file was already reported
        self.restating: Message | None = None  # a stopped reply whose state is being read again
        self.views: list[MessageView] = []
        self.reply_view: MessageView | None = None
        self.last_tokens = 0
        self.last_rate: float | None = None
        self.n_best: list[Beam] = []
        self.beams_open = False
        self.beams_drawn = 0.0  # when the live beams were last drawn

    @property
    def chat_app(self) -> ChatApp:
        from termlm.tui.app import ChatApp

        assert isinstance(self.app, ChatApp)
        return self.app

    # ------------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        with Horizontal(id="body"):
            with Vertical(id="main"):
                yield VerticalScroll(id="transcript")
                yield BeamPanel(id="beams")
                yield PromptInput(id="prompt")
                yield PromptHints(id="hints")
                yield StatusLine(id="status")
            settings = self.chat_app.settings
            yield SidePanel(
                seed=settings.seed,
                max_tokens=settings.max_tokens,
                mode=settings.mode,
                user_name=settings.user_name,
                bot_name=settings.bot_name,
                id="panel",
            )
        yield Footer()

    def on_unmount(self) -> None:
        if self.job is not None:  # the app is closing: let the reply's thread end on its own
            self.job.cancel.set()

    def on_mount(self) -> None:
        settings = self.chat_app.settings
        self.query_one(SidePanel).display = settings.panel
        self.query_one(BeamPanel).display = False
        self.query_one(PromptHints).display = False
        self.ticker = self.set_interval(FLUSH_SECONDS, self._flush, pause=True)
        self.query_one(PromptInput).focus()
        requested = self.chat_app.requested_model
        # the engine may already be loading it (ChatApp starts a prefetch): the worker joins it
        self.start_load(requested or settings.model, fallback=requested is None)

    @property
    def generating(self) -> bool:
        """A reply is running (or a stopped one's state is still being read)."""
        return self.job is not None or self.restating is not None

    def refresh_status(self, activity: str = "") -> None:
        settings = self.chat_app.settings
        if self.model is not None:
            model = self.model.name
        else:
            model = "loading…" if self.model_loading else "no model"
        self.query_one(StatusLine).show(
            model=model,
            strategy=settings.strategy,
            mode=settings.mode,
            tokens=self.last_tokens,
            rate=self.last_rate,
            activity=activity,
        )

    # ------------------------------------------------------------------ loading a model

    def start_load(self, name: str | None, fallback: bool = False) -> None:
        if self.model is not None:
            self.previous_model = self.model  # still in the engine's memory if the load fails
        self.model_loading = True
        self.model = None
        self.refresh_status("loading the model…")
        self._load_worker(name, fallback)

    @work(thread=True, exclusive=True, group="load")
    def _load_worker(self, name: str | None, fallback: bool) -> None:
        engine = self.chat_app.engine
        try:
            try:
                info = engine.load(name)
            except TermlmError:
                if not fallback or name is None:
                    raise
                info = engine.load(None)  # a remembered model that is gone: the default one
            try:
                models = engine.models()
            except Exception:  # a listing that fails must not undo a load that worked
                models = [info]
            strategies = engine.strategies()
        except Exception as exc:
            self.app.call_from_thread(self._load_failed, name, exc)
            return
        self.app.call_from_thread(self._loaded, info, models, strategies)  # type: ignore[arg-type]

    def _load_failed(self, name: str | None, exc: Exception) -> None:
        """A load that failed leaves the engine's model as it was: keep using it if we may."""
        self.model_loading = False
        what = name or "the default model"
        message = str(exc) if isinstance(exc, TermlmError) else f"{type(exc).__name__}: {exc}"
        previous = self.previous_model
        made_with = self.chat_model
        keep = previous is not None and (
            not self.conversation.messages
            or made_with is None
            or made_with.sha256 == previous.sha256
        )
        if keep and previous is not None:
            self.model = previous
            settings = self.chat_app.settings
            settings.model = previous.name
            self.chat_app.persist_settings()
            self.query_one(SidePanel).select_model(previous.name)
            advice = f"Still using {previous.name} (loaded in memory)."
        else:
            self.send_when_ready = False
            self.query_one(SidePanel).select_model(None)
            advice = "Pick another model in the side panel (F2)."
        self.notify(
            f"{message}\n{advice}", title=f"cannot load {what}", severity="error", timeout=10
        )
        self.refresh_status()
        if keep:
            self._send_queued()

    async def _loaded(
        self, info: ModelInfo, models: list[ModelInfo], strategies: list[str]
    ) -> None:
        self.model_loading = False
        self.model = info
        settings = self.chat_app.settings
        if settings.strategy not in strategies and strategies:
            settings.strategy = "sample" if "sample" in strategies else strategies[0]
        panel = self.query_one(SidePanel)
        panel.show_models(models, info.name)
        panel.show_strategies(strategies, settings.strategy)
        panel.show_presets(list(settings.presets))
        await self._show_option_fields()
        made_with = self.chat_model
        if self.conversation.messages and made_with and made_with.sha256 != info.sha256:
            self.notify(
                f"this chat was made with {made_with.name}; a new chat starts with {info.name}",
                severity="warning",
            )
            self.new_chat()
        self.refresh_status()
        self._send_queued()

    async def _show_option_fields(self) -> None:
        settings = self.chat_app.settings
        engine = self.chat_app.engine
        try:
            specs = list(engine.options_for(settings.strategy))
        except TermlmError as exc:
            self.notify(str(exc), severity="error")
            specs = []
        await self.query_one(SidePanel).show_options(
            specs, settings.options_for(settings.strategy), self._check_option
        )

    def _check_option(self, name: str, value: Any) -> str | None:
        """The strategy's own verdict on one option value, with the others as they are."""
        settings = self.chat_app.settings
        values = self._known_options(settings.strategy)
        values[name] = value
        try:
            self.chat_app.engine.validate(settings.strategy, values)
        except TermlmError as exc:
            return exc.message
        return None

    def _known_options(self, strategy: str) -> dict[str, Any]:
        """The remembered options of a strategy that it still has."""
        names = {spec.name for spec in self.chat_app.engine.options_for(strategy)}
        stored = self.chat_app.settings.options_for(strategy)
        return {key: value for key, value in stored.items() if key in names}

    # ------------------------------------------------------------------ settings from the panel

    async def on_side_panel_changed(self, event: SidePanel.Changed) -> None:
        settings = self.chat_app.settings
        if event.field == "model":
            if self.model is None or event.value != self.model.name:
                settings.model = event.value
                self._abandon_job()
                self.start_load(event.value)
        elif event.field == "preset":
            await self.apply_preset(event.value)
            return
        elif event.field == "strategy":
            settings.strategy = event.value
            self.query_one(SidePanel).show_preset(None)  # the decoding is no longer the preset's
            self.chat_app.persist_settings()
            await self._show_option_fields()
        elif event.field == "option":
            name, value = event.value
            settings.options.setdefault(settings.strategy, {})[name] = value
            self.query_one(SidePanel).show_preset(None)
        elif event.field in ("seed", "max_tokens", "mode", "user_name", "bot_name"):
            setattr(settings, event.field, event.value)
        self.chat_app.persist_settings()
        self.refresh_status()

    async def apply_preset(self, name: str) -> bool:
        """Make a saved preset's strategy and options the chat's (the form shows them)."""
        settings = self.chat_app.settings
        panel = self.query_one(SidePanel)
        try:
            strategy, options, strategies = self._checked_preset(name)
        except TermlmError as exc:
            panel.show_preset(None)
            self.notify(exc.message, title="cannot use the preset", severity="error")
            return False
        settings.strategy = strategy
        settings.options[strategy] = options
        self.chat_app.persist_settings()
        panel.show_strategies(strategies, strategy)
        panel.show_preset(name)
        await self._show_option_fields()
        self.refresh_status(f"preset {name}")
        return True

    def _checked_preset(self, name: str) -> tuple[str, dict[str, Any], list[str]]:
        """(strategy, options, installed strategies) of a preset; TermlmError if unusable."""
        engine = self.chat_app.engine
        preset = self.chat_app.settings.presets.get(name)
        strategy = preset.get("strategy") if isinstance(preset, dict) else None
        options = preset.get("options", {}) if isinstance(preset, dict) else None
        if not isinstance(strategy, str) or not isinstance(options, dict):
            raise PluginError(
                f"the preset {name!r} is missing or damaged in chat.json; save it again (F6)"
            )
        strategies = list(engine.strategies())
        if strategy not in strategies:
            raise PluginError(
                f"the preset {name!r} uses the strategy {strategy!r}, which is not installed;"
                " install its plugin or pick another preset"
            )
        try:
            engine.validate(strategy, options)
        except TermlmError as exc:
            refused = f"the preset {name!r} has options {strategy} refuses: {exc.message}"
            raise PluginError(refused) from exc
        return strategy, dict(options), strategies

    def pick_preset(self, name: str) -> None:
        """Use a preset (from the command palette): applied after this call returns."""
        self.call_later(self.apply_preset, name)

    # ------------------------------------------------------------------ sending and streaming

    def on_prompt_input_submitted(self, event: PromptInput.Submitted) -> None:
        text = event.text
        if not text.strip():
            return
        if self.job is not None:
            self.notify("a reply is still running; Esc stops it", severity="warning")
            return
        if self.restating is not None:  # sent as soon as the stopped reply is read back
            self.send_when_ready = True
            self.refresh_status("reading the stopped reply back… (your prompt goes next)")
            return
        if self.model is None:
            if self.model_loading:  # sent as soon as the model is ready; the text stays put
                self.send_when_ready = True
                self.refresh_status("loading the model… (your prompt goes next)")
            else:
                self.notify(
                    "no model is loaded; pick one in the side panel (F2)", severity="warning"
                )
            return
        options = self._reply_options()
        if options is None:
            return
        prompt_box = self.query_one(PromptInput)
        prompt_box.remember(text)
        prompt_box.clear()
        settings = self.chat_app.settings
        dialogue = settings.mode == "dialogue"
        state = self.conversation.last_state()
        prompt = build_prompt(
            settings.mode,
            text,
            user_name=settings.user_name,
            bot_name=settings.bot_name,
            fresh=state is None,
            after_speech_end=ended_speech(self.conversation.last_reply()),
        )
        speaker = (settings.user_name.strip() or "You") if dialogue else None
        shown = text.strip() if dialogue else text
        self._append(Message(role="user", text=shown, fed=prompt, speaker=speaker))
        self._start_reply(prompt, state, options)

    def _reply_options(self) -> dict[str, Any] | None:
        """The options for the next reply, checked; None (and a notification) if they are bad."""
        strategy = self.chat_app.settings.strategy
        try:
            return self.chat_app.engine.validate(strategy, self._known_options(strategy))
        except TermlmError as exc:
            self.notify(str(exc), title="bad decoding options", severity="error")
            return None

    def _start_reply(
        self,
        prompt: str | list[int],
        state: State | None,
        options: dict[str, Any],
        prefix_events: list[Any] | None = None,
    ) -> None:
        settings = self.chat_app.settings
        fixed_name = settings.bot_name.strip() if settings.mode == "dialogue" else ""
        view = MessageView("model", speaker=fixed_name or None)
        self.reply_view = view
        self.query_one("#transcript", VerticalScroll).mount(view)
        self._follow(force=True)
        self.job = ReplyJob(
            prompt=prompt,
            state=state,
            strategy=settings.strategy,
            options=options,
            seed=settings.seed if settings.seed is not None else secrets.randbelow(MAX_SEED),
            max_tokens=max(settings.max_tokens - len(prefix_events or ()), 1),
            stop=stop_strings(settings.mode),
            started=self.chat_app.clock(),
            prefix_events=list(prefix_events or []),
        )
        if prefix_events:
            view.set_body("".join(e.text for e in prefix_events))
        self.n_best = []
        self.last_tokens, self.last_rate = 0, None
        self.ticker.resume()
        self.refresh_status("generating… (Esc stops)")
        # A daemon thread, not a Textual worker: a plugin stuck forever must not hold the
        # executor or the app's exit.
        threading.Thread(
            target=run_job, args=(self.chat_app.engine, self.job), name="reply", daemon=True
        ).start()

    def _flush(self) -> None:
        """Move what the worker produced into the transcript (runs on a timer)."""
        from termlm.decoding.events import BeamsEvent, DoneEvent, TokenEvent

        job, view = self.job, self.reply_view
        if job is None or view is None:
            self.ticker.pause()
            return
        finished = job.finished  # read before draining: nothing can arrive after it is set
        text = ""
        live: BeamsEvent | None = None
        for item in job.drain():
            if isinstance(item, TokenEvent):
                job.events.append(item)
                if not job.beams_seen:  # beam search settles its text at the end
                    text += item.text
                job.tokens += 1
            elif isinstance(item, BeamsEvent) and item.beams:
                job.beams_seen = True
                job.live = live = item
            elif isinstance(item, DoneEvent):
                view.append(text)
                self._finish(job, item.result)
                return
            elif isinstance(item, Exception):
                self._fail(job, item)
                return
        if live is not None:  # only the newest beams of this tick are drawn
            prefix = "".join(e.text for e in job.prefix_events)
            view.set_body(prefix + live.beams[0].text)
            now = self.chat_app.clock()
            if self.beams_open and now - self.beams_drawn >= BEAMS_SECONDS:
                self.beams_drawn = now
                panel = self.query_one(BeamPanel)
                panel.display = True
                panel.show_live(live.step, live.beams)
        if text:
            follow = self._at_bottom()
            view.append(text)
            self._follow(force=follow)
        if finished:  # the engine ended without a DoneEvent
            self._finish(job, _broken_result(view.body))
            return
        if (
            job.stop_requested is not None
            and time.monotonic() - job.stop_requested >= STOP_GRACE_SECONDS
        ):
            self._force_stop(job)
            return
        self.last_tokens = job.tokens
        elapsed = self.chat_app.clock() - job.started
        self.last_rate = job.tokens / elapsed if elapsed > 0 else None
        self.refresh_status("stopping…" if job.cancel.is_set() else "generating… (Esc stops)")

    def _finish(self, job: ReplyJob, result: GenerationResult) -> None:
        self.job = None
        self.ticker.pause()
        view = self.reply_view
        assert view is not None
        self.reply_view = None
        settings = self.chat_app.settings
        tokens = len(result.token_ids) or job.tokens
        elapsed = self.chat_app.clock() - job.started
        self.last_tokens = tokens
        self.last_rate = tokens / elapsed if elapsed > 0 else None
        if result.stop_reason == "error":
            self.notify(
                result.error or "the decoding strategy failed",
                title="generation failed",
                severity="error",
                timeout=10,
            )
            if result.state is None and not result.text:
                self._drop_last_exchange(restore=True)
                self.refresh_status("failed")
                return
        prefix = "".join(e.text for e in job.prefix_events)
        full = prefix + result.text
        if settings.mode == "dialogue":
            speaker, body = split_speaker(full, settings.bot_name)
        else:
            speaker, body = None, full
            for stop in job.stop:
                body = body.removesuffix(stop)
        view.set_body(body, speaker=speaker)
        view.border_subtitle = _subtitle(job.strategy, tokens, result.stop_reason)
        model = self.model
        message = Message(
            role="model",
            text=body,
            fed=full,
            speaker=speaker,
            state=result.state,
            stop_reason=result.stop_reason,
            strategy=job.strategy,
            options=dict(job.options),
            seed=job.seed,
            max_tokens=job.max_tokens,
            model_name=model.name if model else None,
            model_sha256=model.sha256 if model else None,
            tokens=tokens,
            seconds=result.seconds,
        )
        message.events = reindexed(job.prefix_events + job.events)
        self.n_best = list(result.n_best)
        if self.n_best and self.beams_open:
            panel = self.query_one(BeamPanel)
            panel.display = True
            panel.show_n_best(self.n_best)
        self._append(message, view=view)
        if not self._colour_view(message, view):
            self._trace_messages([message])
        label = self.conversation.branch_label(len(self.conversation.messages) - 1)
        if label:
            view.border_subtitle = f"{view.border_subtitle} · {label} (F8)"
        activity = {"cancelled": "stopped", "error": "failed"}.get(result.stop_reason, "")
        self.refresh_status(activity)

    def _force_stop(self, job: ReplyJob) -> None:
        """Escape, and the worker has not ended: end the reply here with the text so far.

        The job is forgotten (its thread may still push into it; nobody reads it again). The
        reply's state is read again from its parent state in a worker; the next prompt waits
        for it.
        """
        from termlm.decoding.events import GenerationResult

        if job.beams_seen and job.live is not None:
            best = job.live.beams[0]
            ids, text = [int(i) for i in best.token_ids], str(best.text)
            logprobs = [0.0] * len(ids)
        else:
            ids = [e.token_id for e in job.events]
            text = "".join(e.text for e in job.events)
            logprobs = [e.logprob for e in job.events]
        result = GenerationResult(
            text=text,
            token_ids=ids,
            logprobs=logprobs,
            stop_reason="cancelled",
            seconds=self.chat_app.clock() - job.started,
            state=None,
        )
        self._finish(job, result)
        message = self.conversation.messages[-1]
        if message.role == "model" and message.state is None and self.model is not None:
            self.restating = message
            self.refresh_status("stopped (the strategy is still busy; reading the reply back)")
            self._restate_worker(message, job.prompt, job.state, ids)

    @work(thread=True, group="restate")
    def _restate_worker(
        self, message: Message, prompt: str | list[int], state: State | None, ids: list[int]
    ) -> None:
        """Read prompt + reply again from ``state`` (no plugin code runs): the reply's state."""
        from termlm.decoding.events import DoneEvent

        engine = self.chat_app.engine
        try:
            prompt_ids = engine.encode(prompt) if isinstance(prompt, str) else list(prompt)
            events = engine.generate(
                prompt_ids + ids, strategy="greedy", options={}, max_new_tokens=0, state=state
            )
            done = [e for e in events if isinstance(e, DoneEvent)][-1].result
            new_state = done.state
            error = done.error
        except Exception as exc:
            new_state, error = None, f"{type(exc).__name__}: {exc}"
        self.app.call_from_thread(self._restated, message, new_state, error)

    def _restated(self, message: Message, state: State | None, error: str | None) -> None:
        if self.restating is not message:
            return
        self.restating = None
        if state is not None:
            message.state = state
            if message.id is not None:
                self.chat_app.store.set_message_state(message.id, state)
        else:
            self.notify(
                f"cannot read the stopped reply back ({error}); the next prompt continues from"
                " the reply before it",
                severity="warning",
            )
        self.refresh_status("stopped")
        self._send_queued()

    def _send_queued(self) -> None:
        """Send the prompt that was submitted while the chat was busy."""
        if self.send_when_ready:
            self.send_when_ready = False
            prompt_box = self.query_one(PromptInput)
            if prompt_box.text.strip():
                prompt_box.post_message(PromptInput.Submitted(prompt_box.text))

    def _fail(self, job: ReplyJob, exc: Exception) -> None:
        """generate refused before any token: undo the turn, keep what was typed."""
        self.job = None
        self.ticker.pause()
        if self.reply_view is not None:
            self.reply_view.remove()
            self.reply_view = None
        self._drop_last_exchange(restore=True)
        self.notify(str(exc), title="cannot generate", severity="error", timeout=10)
        self.refresh_status("failed")

    # ------------------------------------------------------------------ the transcript

    def _append(self, message: Message, view: MessageView | None = None) -> None:
        """Add a message to the conversation, the database and (unless given) the transcript."""
        app = self.chat_app
        conversation = self.conversation
        if conversation.chat_id is None:
            title = message.text.strip().splitlines()[0][:48] if message.text.strip() else "chat"
            model = self.model
            conversation.chat_id = app.store.create_chat(
                title,
                app.settings.mode,
                model.name if model else None,
                model.sha256 if model else None,
            )
            conversation.title = title
            self.chat_model = model
        position = len(conversation.messages)
        parent = conversation.messages[-1].id if conversation.messages else None
        conversation.messages.append(message)
        app.store.add_message(conversation.chat_id, position, message, parent_id=parent)
        if view is None:
            view = MessageView(message.role, message.text, speaker=message.speaker)
            self.query_one("#transcript", VerticalScroll).mount(view)
            self._follow(force=True)
        self.views.append(view)

    def _at_bottom(self) -> bool:
        transcript = self.query_one("#transcript", VerticalScroll)
        return transcript.scroll_y >= transcript.max_scroll_y - 1

    def _follow(self, force: bool) -> None:
        """Keep the newest text in view, unless the reader has scrolled up."""
        if force:
            self.query_one("#transcript", VerticalScroll).scroll_end(animate=False)

    def _truncate(self, index: int) -> None:
        """Forget the messages from ``index`` on: in memory, on disk and on screen."""
        conversation = self.conversation
        parent = (
            conversation.messages[index - 1].id if 0 < index <= len(conversation.messages) else None
        )
        conversation.drop_from(index)
        if conversation.chat_id is not None:  # every branch from there on goes too
            self.chat_app.store.delete_after(conversation.chat_id, parent, index)
        for view in self.views[index:]:
            view.remove()
        self.views = self.views[:index]

    def _drop_last_exchange(self, restore: bool) -> None:
        exchange = self.conversation.last_exchange()
        if exchange is None:
            return
        user_index, _ = exchange
        text = self.conversation.messages[user_index].text
        self._truncate(user_index)
        prompt_box = self.query_one(PromptInput)
        if restore and not prompt_box.text.strip():
            prompt_box.load_text(text)
            prompt_box.move_cursor(prompt_box.document.end)

    def show_conversation(self, conversation: Conversation) -> None:
        transcript = self.query_one("#transcript", VerticalScroll)
        transcript.remove_children()
        self.conversation = conversation
        self.views = [MessageView(m.role, m.text, speaker=m.speaker) for m in conversation.messages]
        for view, message in zip(self.views, conversation.messages, strict=True):
            if message.role == "model" and message.strategy:
                view.border_subtitle = _subtitle(
                    message.strategy, message.tokens, message.stop_reason
                )
        for position in conversation.forks:
            if position < len(self.views):
                label = conversation.branch_label(position)
                current = self.views[position].border_subtitle or ""
                self.views[position].border_subtitle = f"{current} · {label}" if current else label
        if self.views:
            transcript.mount_all(self.views)
        self._follow(force=True)
        prompt_box = self.query_one(PromptInput)
        for text in conversation.user_prompts():
            prompt_box.remember(text)

    def _abandon_job(self) -> None:
        """Stop the reply in flight and forget it: nothing it produces will be shown or saved."""
        job, view = self.job, self.reply_view
        if job is None:
            return
        job.cancel.set()
        self.job = self.reply_view = None
        self.ticker.pause()
        if view is not None:
            view.remove()

    def new_chat(self) -> None:
        self._abandon_job()
        self.show_conversation(Conversation())
        self.chat_model = None

    def open_chat(self, chat_id: int | None) -> None:
        if chat_id is None:
            return
        if self.job is not None:
            self.notify("stop the reply first (Esc)", severity="warning")
            return
        try:
            conversation, mode, model_name, model_sha = self.chat_app.store.load_chat(chat_id)
        except KeyError:
            self.notify("that chat is gone", severity="warning")
            return
        self.show_conversation(conversation)
        settings = self.chat_app.settings
        if mode in MODES:
            settings.mode = mode
            self.query_one("#mode-select").value = mode  # type: ignore[attr-defined]
        self.chat_model = ModelInfo(
            name=model_name or "?", arch="?", level="?", sha256=model_sha or ""
        )
        if model_sha and (self.model is None or self.model.sha256 != model_sha) and model_name:
            self.start_load(model_name)
        self.refresh_status()

    # ------------------------------------------------------------------ actions

    def action_stop(self) -> None:
        job = self.job
        if job is not None:
            job.cancel.set()
            if job.stop_requested is None:
                job.stop_requested = time.monotonic()
            self.refresh_status("stopping…")

    def action_undo(self) -> None:
        if self.job is not None:
            self.notify("a reply is running; Esc stops it first", severity="warning")
            return
        if self.conversation.last_exchange() is None:
            self.notify("nothing to undo")
            return
        self._drop_last_exchange(restore=True)
        self.refresh_status("undone")

    def action_regenerate(self) -> None:
        if self.job is not None:
            self.notify("a reply is running; Esc stops it first", severity="warning")
            return
        exchange = self.conversation.last_exchange()
        if exchange is None or exchange[1] < 0:
            self.notify("no reply to regenerate")
            return
        if self.model is None:
            self.notify("no model is loaded", severity="warning")
            return
        options = self._reply_options()
        if options is None:
            return
        user_index, reply_index = exchange
        prompt = self.conversation.messages[user_index].fed
        self._branch_views(reply_index)  # the old reply stays, as another branch (F8)
        self._start_reply(prompt, self.conversation.state_before(user_index), options)

    def action_toggle_panel(self) -> None:
        panel = self.query_one(SidePanel)
        at_bottom = self._at_bottom()
        panel.display = not panel.display
        if not panel.display:  # typing goes back to the prompt, not to a hidden field
            self.query_one(PromptInput).focus()
        self._follow(force=at_bottom)  # the transcript re-wraps to its new width
        self.chat_app.settings.panel = bool(panel.display)
        self.chat_app.persist_settings()
        if panel.display and not self.model_loading:
            self._list_models_worker()

    @work(thread=True, exclusive=True, group="models")
    def _list_models_worker(self) -> None:
        """Read the model files again for the picker (files come and go while the chat runs)."""
        try:
            models = self.chat_app.engine.models()
        except Exception as exc:
            message = str(exc) if isinstance(exc, TermlmError) else f"{type(exc).__name__}: {exc}"
            self.app.call_from_thread(
                self.notify, message, title="cannot list the models", severity="warning"
            )
            return
        self.app.call_from_thread(self._show_models, models)

    def _show_models(self, models: list[ModelInfo]) -> None:
        """Fill the picker; the model in use stays in it even when its file is gone."""
        current = self.model
        if current is not None:
            entry = next((m for m in models if m.name == current.name), None)
            if entry is None or entry.error is not None:
                models = [current, *(m for m in models if m.name != current.name)]
                if current.name not in self.gone_noticed:
                    self.gone_noticed.add(current.name)
                    what = "is gone" if entry is None else "cannot be read any more"
                    self.notify(
                        f"the file of {current.name} {what}; it stays loaded for this session,"
                        " but cannot be loaded again once you switch to another model",
                        title="model file changed",
                        severity="warning",
                        timeout=10,
                    )
        self.query_one(SidePanel).show_models(models, current.name if current else None)

    def action_toggle_mode(self) -> None:
        settings = self.chat_app.settings
        settings.mode = "dialogue" if settings.mode == "continue" else "continue"
        self.query_one("#mode-select").value = settings.mode  # type: ignore[attr-defined]
        self.chat_app.persist_settings()
        self.refresh_status()
        self.notify(f"mode: {settings.mode}")

    def action_chats(self) -> None:
        self.app.push_screen(ChatsScreen(self.chat_app.store), self.open_chat)

    def action_new_chat(self) -> None:
        self.new_chat()
        self.refresh_status("new chat")

    def action_copy_reply(self) -> None:
        reply = self.conversation.last_reply()
        if reply is None:
            self.notify("no reply to copy")
            return
        self.app.copy_to_clipboard(reply.text)
        self.notify("reply copied to the clipboard")

    def action_export(self) -> None:
        if not self.conversation.messages:
            self.notify("nothing to export yet")
            return
        slug = re.sub(r"[^a-z0-9]+", "-", self.conversation.title.lower()).strip("-") or "chat"
        path = Path.cwd() / f"termlm-{self.conversation.chat_id}-{slug[:40]}.md"
        try:
            path.write_text(to_markdown(self.conversation), encoding="utf-8")
        except OSError as exc:
            self.notify(f"cannot write {path}: {exc}", severity="error")
            return
        self.notify(f"saved {path.name}", title="exported as Markdown")

    # ------------------------------------------------------------------ seeing inside the model

    def _branch_views(self, position: int) -> None:
        """Keep messages[position:] as a branch (also in the database); clear them from the screen."""
        self.conversation.branch_at(position)
        for view in self.views[position:]:
            view.remove()
        self.views = self.views[:position]

    def _reply_index(self) -> int | None:
        for index in range(len(self.conversation.messages) - 1, -1, -1):
            if self.conversation.messages[index].role == "model":
                return index
        return None

    def _parent_of(self, index: int) -> tuple[str, State | None]:
        """The prompt fed just before message ``index`` and the state it was fed on."""
        messages = self.conversation.messages
        user = index - 1
        while user >= 0 and messages[user].role != "user":
            user -= 1
        if user < 0:
            return "", self.conversation.state_before(index)
        return messages[user].fed, self.conversation.state_before(user)

    def action_inspect(self, index: int | None = None) -> None:
        from termlm.tui.inspect_screen import InspectScreen, reply_tokens

        target = self._reply_index() if index is None else index
        if target is None or self.model is None:
            self.notify("no reply to look inside yet" if self.model else "no model is loaded")
            return
        message = self.conversation.messages[target]
        try:
            tokens = reply_tokens(message, self.chat_app.engine)
        except TermlmError as exc:
            self.notify(str(exc), severity="error")
            return
        prompt, state = self._parent_of(target)
        screen = InspectScreen(
            self.chat_app.engine,
            tokens,
            prompt=prompt,
            state=state,
            extras=self.model.extras,
            can_branch=self.job is None,
        )

        def done(choice: tuple[int, int] | None) -> None:
            if choice is not None:
                self.branch_from(target, choice[0], choice[1], tokens.ids)

        self.app.push_screen(screen, done)

    def branch_from(self, index: int, position: int, token_id: int, ids: list[int]) -> None:
        """Continue reply ``index`` from token ``position`` with ``token_id`` instead."""
        from termlm.decoding.events import TokenEvent

        if self.job is not None:
            self.notify("a reply is running; Esc stops it first", severity="warning")
            return
        options = self._reply_options()
        if options is None:
            return
        message = self.conversation.messages[index]
        prompt, state = self._parent_of(index)
        engine = self.chat_app.engine
        kept = list(message.events[:position]) if message.events else []
        if not kept:
            kept = [
                TokenEvent(token_id=i, text=engine.token_text(i), prob=1.0, logprob=0.0, index=k)
                for k, i in enumerate(ids[:position])
            ]
        alternatives = message.events[position].alternatives if message.events else ()
        prob = next((a.prob for a in alternatives if a.token_id == token_id), 0.0)
        chosen = TokenEvent(
            token_id=token_id,
            text=engine.token_text(token_id),
            prob=prob,
            logprob=float(np.log(prob)) if prob > 0 else float("-inf"),
            alternatives=alternatives,
            index=position,
        )
        prompt_ids = engine.encode(prompt) + [e.token_id for e in kept] + [token_id]
        self._branch_views(index)
        self._start_reply(prompt_ids, state, options, prefix_events=[*kept, chosen])
        self.notify(self.conversation.branch_label(index) + " · F8 switches", title="new branch")

    def action_next_branch(self) -> None:
        if self.job is not None:
            self.notify("a reply is running; Esc stops it first", severity="warning")
            return
        position = self.conversation.latest_fork()
        if position is None:
            self.notify("no branches yet: pick another token in the inspector (F3)")
            return
        fork = self.conversation.forks[position]
        self.conversation.switch_branch(position, fork.current + 1)
        self._show_tail(position)
        self.refresh_status(self.conversation.branch_label(position))

    def _show_tail(self, position: int) -> None:
        """Redraw the messages from ``position`` on after a branch switch (and save which)."""
        conversation = self.conversation
        for view in self.views[position:]:
            view.remove()
        self.views = self.views[:position]
        shown = conversation.messages[position:]
        if conversation.chat_id is not None and shown and shown[0].id is not None:
            self.chat_app.store.show_branch(shown[0].id)  # reopening the chat shows this branch
        transcript = self.query_one("#transcript", VerticalScroll)
        for message in conversation.messages[position:]:
            view = MessageView(message.role, message.text, speaker=message.speaker)
            if message.role == "model" and message.strategy:
                view.border_subtitle = _subtitle(
                    message.strategy, message.tokens, message.stop_reason
                )
            self.views.append(view)
            transcript.mount(view)
            self._colour_view(message, view)
        if position < len(self.views):
            label = conversation.branch_label(position)
            current = self.views[position].border_subtitle or ""
            self.views[position].border_subtitle = f"{current} · {label}" if label else current
        self._follow(force=True)

    # --- confidence colouring

    def action_colour(self) -> None:
        settings = self.chat_app.settings
        mode = COLOUR_MODES[(COLOUR_MODES.index(settings.colour) + 1) % len(COLOUR_MODES)]
        settings.colour = mode
        self.chat_app.persist_settings()
        self.apply_colours()
        self.notify(f"colour: {mode}" + ("  (red: unsure, green: sure)" if mode != "off" else ""))

    def apply_colours(self) -> None:
        missing = []
        for message, view in zip(self.conversation.messages, self.views, strict=False):
            if message.role == "model" and not self._colour_view(message, view):
                missing.append(message)
        if missing and self.model is not None:
            self._trace_messages(missing)

    def _colour_view(self, message: Message, view: MessageView) -> bool:
        """Colour one reply in the current mode; False when it needs a trace first."""
        mode = self.chat_app.settings.colour
        if message.role != "model" or mode == "off":
            view.plain()
            return True
        trace = message.trace
        if mode == "probability" and message.events:
            pieces = [e.text for e in message.events]
            colours: list[str | None] = [confidence_colour(e.prob) for e in message.events]
        elif trace is not None:
            pieces = [e.text for e in message.events] or [
                self.chat_app.engine.token_text(i) for i in trace.new_ids
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
        engine = self.chat_app.engine
        for message in messages:
            try:
                index = self.conversation.messages.index(message)
            except ValueError:
                continue
            prompt, state = self._parent_of(index)
            ids = [e.token_id for e in message.events] or engine.encode(message.fed)
            try:
                message.trace = engine.trace(prompt, ids, state=state)
            except Exception:
                continue
        self.app.call_from_thread(self.apply_colours_known)

    def apply_colours_known(self) -> None:
        for message, view in zip(self.conversation.messages, self.views, strict=False):
            self._colour_view(message, view)

    # --- beams, score, arena, tokens

    def action_beams(self) -> None:
        panel = self.query_one(BeamPanel)
        self.beams_open = not self.beams_open
        panel.display = self.beams_open
        if self.beams_open:
            if self.n_best:
                panel.show_n_best(self.n_best)
                panel.query_one("#beams-list").focus()
            elif self.job is None:
                self.notify("beams show here while beam search runs (strategy: beam)")
        else:
            self.query_one(PromptInput).focus()

    def on_beam_panel_chosen(self, event: BeamPanel.Chosen) -> None:
        """Take one of the n-best as the reply: its state is read again from the parent."""
        index = self._reply_index()
        if index is None or self.job is not None:
            return
        prompt, state = self._parent_of(index)
        self._take_beam_worker(index, prompt, state, event.beam)

    @work(thread=True, exclusive=True, group="beam-choice")
    def _take_beam_worker(self, index: int, prompt: str, state: State | None, beam: Beam) -> None:
        from termlm.decoding.events import DoneEvent

        engine = self.chat_app.engine
        try:
            ids = engine.encode(prompt) + list(beam.token_ids)
            events = engine.generate(
                ids, strategy="greedy", options={}, max_new_tokens=0, state=state
            )
            done = [e for e in events if isinstance(e, DoneEvent)][-1].result
        except Exception as exc:
            self.app.call_from_thread(self.notify, str(exc), severity="error")
            return
        self.app.call_from_thread(self._took_beam, index, beam, done.state)

    def _took_beam(self, index: int, beam: Beam, state: State | None) -> None:
        from dataclasses import replace

        old = self.conversation.messages[index]
        settings = self.chat_app.settings
        if settings.mode == "dialogue":
            speaker, body = split_speaker(beam.text, settings.bot_name)
        else:
            speaker, body = old.speaker, beam.text
        message = replace(
            old, text=body, fed=beam.text, speaker=speaker, state=state, tokens=len(beam.token_ids)
        )
        message.events, message.trace = [], None
        self._branch_views(index)
        self._append(message)
        view = self.views[-1]
        label = self.conversation.branch_label(index)
        view.border_subtitle = (
            f"{_subtitle(message.strategy or '?', message.tokens, None)} · {label}"
        )
        self._colour_view(message, view)
        self.notify(f"took beam with score {beam.score:.3f} as the reply")

    def action_score(self) -> None:
        from termlm.tui.score_screen import ScoreScreen

        if self.model is None:
            self.notify("no model is loaded", severity="warning")
            return
        self.app.push_screen(ScoreScreen(self.chat_app.engine))

    def action_arena(self) -> None:
        from termlm.tui.arena import ArenaScreen, preset_name

        if self.model is None:
            self.notify("no model is loaded", severity="warning")
            return
        settings = self.chat_app.settings
        prompts = self.conversation.user_prompts()
        prompt = self.query_one(PromptInput).text or (prompts[-1] if prompts else "")

        def keep(strategy: str, options: dict[str, Any], label: str) -> None:
            name = preset_name(label, settings.presets)
            settings.presets[name] = {"strategy": strategy, "options": dict(options)}
            settings.strategy = strategy
            settings.options[strategy] = dict(options)
            self.chat_app.persist_settings()
            panel = self.query_one(SidePanel)
            panel.show_strategies(self.chat_app.engine.strategies(), strategy)
            panel.show_presets(list(settings.presets), name)
            self.call_later(self._show_option_fields)
            self.refresh_status()

        self.app.push_screen(
            ArenaScreen(
                self.chat_app.engine,
                prompt=prompt,
                seed=settings.seed if settings.seed is not None else 0,
                max_tokens=min(settings.max_tokens, 200),
                on_save=keep,
            )
        )

    def action_tokens(self) -> None:
        hints = self.query_one(PromptHints)
        hints.tokens_shown = not hints.tokens_shown
        self._update_hints()

    def on_text_area_changed(self, event: Any) -> None:
        if isinstance(event.text_area, PromptInput):
            self._update_hints()

    def _update_hints(self) -> None:
        hints = self.query_one(PromptHints)
        text = self.query_one(PromptInput).text
        if self.model is None or not text:
            hints.show("", [], [])
            return
        engine = self.chat_app.engine
        try:
            unknown = engine.unknown_spans(text)
            pieces = (
                [engine.token_text(i) for i in engine.encode(text)] if hints.tokens_shown else []
            )
        except TermlmError:
            return
        hints.show(text, unknown, pieces)

    def action_help(self) -> None:
        self.app.push_screen(HelpScreen(key_table()))


ACTION_HELP = {
    "stop": "stop the reply now",
    "regenerate": "write the last reply again (with the current settings)",
    "undo": "remove the last prompt and reply; the prompt returns to the input box",
    "toggle_panel": "show or hide the side panel: model, strategy, options, seed",
    "toggle_mode": "switch between continue and dialogue",
    "chats": "saved chats: open, rename, delete",
    "new_chat": "start a new chat",
    "copy_reply": "copy the last reply to the clipboard",
    "export": "save this chat as a Markdown file in the current folder",
    "help": "keys and modes",
    "inspect": "inside the last reply: candidates per token, attention, hidden units; branch",
    "colour": "colour replies by confidence: off, probability, entropy",
    "score": "score a pasted text: every token coloured by surprisal",
    "arena": "decoding arena: several strategies side by side, with measures",
    "tokens": "show how the prompt is cut into tokens (unknown ones are always marked)",
    "next_branch": "switch to the next branch of the conversation",
    "beams": "live beam search panel, then the n-best (Enter takes one as the reply)",
}


def key_table() -> list[tuple[str, str]]:
    """Every key of the chat and what it does, for the help screen."""
    rows = [
        (str(b.key), ACTION_HELP.get(str(b.action), str(b.description)))
        for b in ChatScreen.BINDINGS
        if isinstance(b, Binding)
    ]
    return list(EXTRA_KEYS[:3]) + rows + list(EXTRA_KEYS[3:])


def reindexed(events: list[TokenEvent]) -> list[TokenEvent]:
    """The events of a reply numbered from 0 (a branch joins kept tokens and new ones)."""
    from dataclasses import replace

    return [e if e.index == k else replace(e, index=k) for k, e in enumerate(events)]


def _subtitle(strategy: str, tokens: int, stop_reason: str | None) -> str:
    text = f"{strategy} · {tokens} tokens"
    if stop_reason in ("cancelled", "error"):
        text += " · stopped" if stop_reason == "cancelled" else " · failed"
    return text


def _broken_result(text: str) -> GenerationResult:
    from termlm.decoding.events import GenerationResult

    return GenerationResult(
        text=text,
        token_ids=[],
        logprobs=[],
        stop_reason="error",
        seconds=0.0,
        error="the generation ended without a result",
    )


__all__ = ["ACTION_HELP", "SPEECH_END", "ChatScreen", "ReplyJob", "key_table"]
