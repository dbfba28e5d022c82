"""The main screen: transcript, prompt, status line, side panel. It shows a ``ChatCore`` and asks
it to act; the core saves, the reply job streams.

Tokens travel from the reply's thread to the screen through the job's buffer, drained on a timer
(every ``FLUSH_SECONDS``), so a fast model cannot flood the UI with one message per token; a
``FramePacer`` skips a tick when drawing would take more than its share of the time (the model and
the UI share one interpreter lock), and the job's end wakes the screen at once. Escape
asks the job to stop; if it has not ended within ``STOP_GRACE_SECONDS`` (a plugin stuck inside its
own code), the screen ends the reply itself with the text so far, and its state is read again
from its tokens in a worker.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.message import Message as TextualMessage
from textual.screen import Screen
from textual.widgets import Footer

from termlm.conversation.chat import ChatCore, Turn
from termlm.conversation.reply import ReplyJob
from termlm.conversation.tree import MODES, Conversation, Message
from termlm.errors import TermlmError
from termlm.tui.actions import ChatActions
from termlm.tui.beams import BeamPanel
from termlm.tui.loading import ModelLoading
from termlm.tui.pacing import FramePacer, HeldBack
from termlm.tui.panel import SidePanel
from termlm.tui.readback import ReadBack
from termlm.tui.transcript import Transcript, subtitle
from termlm.tui.views import ModelViews
from termlm.tui.widgets import MessageView, PromptHints, PromptInput, StatusLine

if TYPE_CHECKING:
    from collections.abc import Callable

    from termlm.conversation.engine import ModelInfo
    from termlm.decoding.events import Beam, GenerationResult

FLUSH_SECONDS = 0.1  # the streamed text is drawn at most this often (the GIL is shared)
STATUS_SECONDS = 0.5  # the status line's count and rate, at most this often
STOP_GRACE_SECONDS = 0.15  # Escape: how long the worker may take to end the reply itself
BEAMS_SECONDS = 0.2  # live beams are redrawn at most this often


class ChatScreen(ModelLoading, ModelViews, ChatActions, ReadBack, Screen[None]):
    """Everything a person sees while chatting."""

    class ReplyEnded(TextualMessage):
        """Posted from a reply's thread when it has ended: show the end now."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "stop", "Stop"),
        Binding("f1", "help", "Help"),
        Binding("f2", "toggle_panel", "Panel"),
        Binding("f3", "inspect", "Inspect", priority=True),
        Binding("ctrl+o", "chats", "Chats", priority=True),
        Binding("ctrl+r", "regenerate", "Regenerate", priority=True),
        Binding("ctrl+z", "undo", "Undo", priority=True, show=False),
        Binding("ctrl+t", "toggle_mode", "Mode", priority=True, show=False),
        Binding("ctrl+n", "new_chat", "New", priority=True, show=False),
        Binding("ctrl+y", "copy_reply", "Copy", priority=True, show=False),
        Binding("ctrl+s", "export", "Export", priority=True, show=False),
        Binding("f4", "colour", "Colour", priority=True, show=False),
        Binding("f5", "score", "Score", priority=True, show=False),
        Binding("f6", "arena", "Arena", priority=True, show=False),
        Binding("f7", "tokens", "Tokens", priority=True, show=False),
        Binding("f8", "next_branch", "Branch", priority=True, show=False),
        Binding("f9", "beams", "Beams", priority=True, show=False),
        Binding("f10", "train", "Train", priority=True, show=False),
    ]

    def __init__(
        self,
        core: ChatCore,
        *,
        requested_model: str | None = None,
        persist: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        super().__init__()
        self.core = core
        self.requested_model = requested_model
        self._persist = persist
        self.clock = clock
        self.model_loading = True  # the model is loaded right after the first paint
        self.send_when_ready = False  # a prompt submitted while the model was loading
        self.previous_model: ModelInfo | None = None  # loaded before the latest load
        self.gone_noticed: set[str] = set()  # models whose missing file was already reported
        self.restating: Message | None = None  # a stopped reply whose state is being read again
        self.last_tokens = 0
        self.last_rate: float | None = None
        self.n_best: list[Beam] = []
        self.beams_open = False
        self.beams_drawn = 0.0  # when the live beams were last drawn
        self.status_drawn = 0.0  # when the status line was last drawn while streaming
        self.busy_noticed = False  # "a reply is running" was said for this reply
        self.dialogue_warned: set[str] = set()  # models told they cannot end a speech
        self.pacer = FramePacer()
        self.held = HeldBack()  # what the UI does not do while a reply streams

    # ------------------------------------------------------------------ what tests and views read

    @property
    def conversation(self) -> Conversation:
        return self.core.conversation

    @property
    def model(self) -> ModelInfo | None:
        return self.core.model

    @property
    def chat_model(self) -> ModelInfo | None:
        return self.core.chat_model

    @property
    def job(self) -> ReplyJob | None:
        return self.core.job

    @property
    def transcript(self) -> Transcript:
        return self.query_one(Transcript)

    @property
    def views(self) -> list[MessageView]:
        return self.transcript.views

    @property
    def reply_view(self) -> MessageView | None:
        return self.transcript.reply

    @property
    def generating(self) -> bool:
        """A reply is running (or a stopped one's state is still being read)."""
        return self.core.job is not None or self.restating is not None

    def persist(self) -> None:
        if self._persist is not None:
            self._persist()

    # ------------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        settings = self.core.settings
        with Horizontal(id="body"):
            with Vertical(id="main"):
                yield Transcript(id="transcript")
                yield BeamPanel(id="beams")
                yield PromptInput(id="prompt")
                yield PromptHints(id="hints")
                yield StatusLine(id="status")
            yield SidePanel(
                seed=settings.seed,
                max_tokens=settings.max_tokens,
                mode=settings.mode,
                user_name=settings.user_name,
                bot_name=settings.bot_name,
                id="panel",
            )
        yield Footer()

    def on_mount(self) -> None:
        settings = self.core.settings
        self.query_one(SidePanel).display = settings.panel
        self.query_one(BeamPanel).display = False
        self.query_one(PromptHints).display = False
        self.ticker = self.set_interval(FLUSH_SECONDS, self._flush, pause=True)
        self.query_one(PromptInput).focus()
        requested = self.requested_model
        # the engine may already be loading it (ChatApp starts a prefetch): the worker joins it
        self.start_load(requested or settings.model, fallback=requested is None)

    def refresh_status(self, activity: str = "") -> None:
        core = self.core
        if core.model is not None:
            model = core.model.name
        else:
            model = "loading…" if self.model_loading else "no model: pick one with F2"
        welcome = (core.model.name if core.model else None, self.model_loading)
        if self.transcript.welcomed != welcome:
            self.transcript.welcome(*welcome)
        self.query_one(StatusLine).show(
            model=model,
            strategy=core.settings.strategy,
            mode=core.settings.mode,
            tokens=self.last_tokens,
            rate=self.last_rate,
            activity=activity,
        )

    # ------------------------------------------------------------------ settings from the panel

    async def on_side_panel_changed(self, event: SidePanel.Changed) -> None:
        settings = self.core.settings
        if event.field == "model":
            if self.core.model is None or event.value != self.core.model.name:
                settings.model = event.value
                self.settle_reply()  # what the reply has so far is saved in its chat
                self.start_load(event.value)
        elif event.field == "preset":
            await self.apply_preset(event.value)
            return
        elif event.field == "strategy":
            settings.strategy = event.value
            self.query_one(SidePanel).show_preset(None)  # the decoding is no longer the preset's
            self.persist()
            await self.show_option_fields()
        elif event.field == "option":
            name, value = event.value
            settings.options.setdefault(settings.strategy, {})[name] = value
            self.query_one(SidePanel).show_preset(None)
        elif event.field in ("seed", "max_tokens", "mode", "user_name", "bot_name"):
            setattr(settings, event.field, event.value)
            if event.field == "mode":
                self.warn_dialogue()
        self.persist()
        self.refresh_status()

    # ------------------------------------------------------------------ sending and streaming

    def on_prompt_input_submitted(self, event: PromptInput.Submitted) -> None:
        text = event.text
        if not text.strip():
            return
        if self.core.job is not None:
            if not self.busy_noticed:  # said once per reply, not once per Enter
                self.busy_noticed = True
                self.notify("a reply is still running; Esc stops it", severity="warning")
            return
        if self.restating is not None:  # sent as soon as the stopped reply is read back
            self.send_when_ready = True
            self.refresh_status("reading the stopped reply back… (your prompt goes next)")
            return
        if self.core.model is None:
            if self.model_loading:  # sent as soon as the model is ready; the text stays put
                self.send_when_ready = True
                self.refresh_status("loading the model… (your prompt goes next)")
            else:
                self.notify(
                    "no model is loaded; pick one in the side panel (F2)", severity="warning"
                )
            return
        options = self.reply_options()
        if options is None:
            return
        count = len(self.core.conversation.messages)
        waiting = "reading the last reply back… (your prompt goes next)"
        if self.read_back_first(count, self.send_queued, waiting):
            self.send_when_ready = True  # sent when the reply before it is read back
            return
        message, turn = self.core.turn_for(text)
        self._warn_if_cut(turn)
        self.warn_dialogue()
        prompt_box = self.query_one(PromptInput)
        prompt_box.remember(text)
        prompt_box.clear()
        self.core.append(message)
        self.transcript.add(message)
        self.begin_reply(turn, options)

    def _warn_if_cut(self, turn: Turn) -> None:
        """Say so when the model cannot read the whole prompt (like `termlm generate`)."""
        try:
            cut = self.core.prompt_overflow(turn.prompt)
        except TermlmError:
            return
        model = self.core.model
        if cut and model is not None:
            self.notify(
                f"the prompt is {cut + model.context} tokens and {model.name} reads"
                f" {model.context}; it keeps the last {model.context}",
                title="prompt cut",
                severity="warning",
            )

    def warn_dialogue(self) -> None:
        """Dialogue mode with a model that cannot end a speech: say so, once per model."""
        problem = self.core.dialogue_problem()
        model = self.core.model
        if problem and model is not None and model.name not in self.dialogue_warned:
            self.dialogue_warned.add(model.name)
            self.notify(problem, title="dialogue mode", severity="warning", timeout=12)

    def begin_reply(
        self, turn: Turn, options: dict[str, Any], branch_at: int | None = None
    ) -> None:
        """Start a reply: ``branch_at`` keeps the messages from there on as another branch."""
        core = self.core
        if branch_at is not None:
            core.conversation.branch_at(branch_at)
            self.transcript.cut(branch_at)
        settings = core.settings
        fixed = settings.bot_name.strip() if settings.mode == "dialogue" else ""
        self.transcript.start_reply(fixed or None, "".join(e.text for e in turn.prefix))
        core.start_reply(turn, options, on_end=self._reply_ended)
        self.pacer.start()
        self._streaming(True)
        self.query_one(BeamPanel).searching()
        self.n_best = []
        self.busy_noticed = False
        self.last_tokens, self.last_rate = 0, None
        self.ticker.resume()
        self.refresh_status("generating… (Esc stops)")

    def _streaming(self, on: bool) -> None:
        if on:
            self.held.hold(self.query_one(PromptInput))
        else:
            self.held.release(self.query_one(PromptInput))

    def on_unmount(self) -> None:
        self.held.release(None)  # quit while a reply streams

    def _reply_ended(self) -> None:
        """From the reply's thread: wake the screen (post_message is thread-safe)."""
        self.post_message(self.ReplyEnded())

    def on_chat_screen_reply_ended(self, event: ReplyEnded) -> None:
        self._flush()

    def _flush(self) -> None:
        """Move what the reply's thread produced into the transcript (runs on a timer)."""
        job, view = self.core.job, self.transcript.reply
        if job is None or view is None:
            self.ticker.pause()
            self._streaming(False)
            return
        if not job.finished and job.stop_requested is None and not self.pacer.due():
            return  # drawing now would take more than the UI's share: the next tick draws
        text, result = job.take(job.drain())
        if job.live is not None:
            self._show_live(job, view)
        elif text:
            self.transcript.grow(text)
        if result is not None:
            self._finish(job, result)
            return
        if (
            job.stop_requested is not None
            and time.monotonic() - job.stop_requested >= STOP_GRACE_SECONDS
        ):
            self._finish(job, job.cut_short())
            return
        self.last_tokens = len(job.live.beams[0].token_ids) if job.live else len(job.events)
        elapsed = self.clock() - job.started
        self.last_rate = self.last_tokens / elapsed if elapsed > 0 else None
        now = time.monotonic()
        if now - self.status_drawn >= STATUS_SECONDS or job.cancel.is_set():
            self.status_drawn = now
            self.refresh_status("stopping…" if job.cancel.is_set() else "generating… (Esc stops)")

    def _show_live(self, job: ReplyJob, view: MessageView) -> None:
        live = job.live
        assert live is not None
        view.set_body("".join(e.text for e in job.prefix) + live.beams[0].text)
        now = self.clock()
        if self.beams_open and now - self.beams_drawn >= BEAMS_SECONDS:
            self.beams_drawn = now
            panel = self.query_one(BeamPanel)
            panel.display = True
            panel.show_live(live.step, live.beams)

    def _finish(self, job: ReplyJob, result: GenerationResult) -> None:
        """The reply ended: the core saves it; the streamed view becomes its message."""
        self.ticker.pause()
        self._streaming(False)
        view = self.transcript.reply
        self.transcript.reply = None
        self.transcript.let_go()
        panel = self.query_one(BeamPanel)
        panel.finish(list(result.n_best))  # the live header goes, whatever happens next
        if result.stop_reason == "error":
            self.notify(
                result.error or "the decoding strategy failed",
                title="cannot generate" if job.failure else "generation failed",
                severity="error",
                timeout=10,
            )
        message = self.core.finish(job, result)
        tokens = message.tokens if message is not None else 0
        new = max(tokens - len(job.prefix), 0)  # a branch's kept tokens were not generated now
        elapsed = self.clock() - job.started
        self.last_tokens = tokens
        self.last_rate = new / elapsed if elapsed > 0 and new else None
        if message is None:  # nothing came back: the prompt returns to the box
            if view is not None:
                view.remove()
            self._undo_last(restore=True)
            self.refresh_status("failed")
            return
        if view is None:  # the screen was rebuilt meanwhile
            view = self.transcript.start_reply(message.speaker)
            self.transcript.reply = None
        view.set_body(message.text, speaker=message.speaker)
        view.border_subtitle = subtitle(job.strategy, message.tokens, message.stop_reason)
        self.n_best = list(result.n_best)
        self.transcript.add(message, view=view)
        if not self.colour_view(message, view):
            self._trace_messages([message])
        label = self.core.conversation.branch_label(len(self.core.conversation.messages) - 1)
        if label:
            view.border_subtitle = f"{view.border_subtitle} · {label} (F8)"
        if message.state is None and message.stop_reason != "error" and self.core.model:
            self.read_back_stopped(message)
            return
        activity = {"cancelled": "stopped", "error": "failed"}.get(result.stop_reason, "")
        self.refresh_status(activity)

    def settle_reply(self) -> None:
        """Stop the reply in flight and keep what it has (before a switch of model or chat)."""
        job = self.core.job
        if job is None:
            return
        result = job.settle(STOP_GRACE_SECONDS)
        self._finish(job, result)

    # ------------------------------------------------------------------ the transcript

    def _undo_last(self, restore: bool) -> None:
        count = len(self.core.conversation.messages)
        text = self.core.drop_last_exchange()
        if text is None:
            return
        self.transcript.cut(min(count, len(self.core.conversation.messages)))
        prompt_box = self.query_one(PromptInput)
        if restore and not prompt_box.text.strip():
            prompt_box.load_text(text)
            prompt_box.move_cursor(prompt_box.document.end)

    def show_conversation(self) -> None:
        self.transcript.show(self.core.conversation)
        prompt_box = self.query_one(PromptInput)
        for text in self.core.conversation.user_prompts():
            prompt_box.remember(text)
        self.apply_colours()

    def new_chat(self) -> None:
        self.settle_reply()
        self.core.new_chat()
        self.show_conversation()

    def open_chat(self, chat_id: int | None) -> None:
        if chat_id is None:
            return
        self.settle_reply()
        try:
            mode, model_name, model_sha = self.core.open_chat(chat_id)
        except KeyError:
            self.notify("that chat is gone", severity="warning")
            return
        self.show_conversation()
        settings = self.core.settings
        if mode in MODES:
            settings.mode = mode
            self.query_one("#mode-select").value = mode  # type: ignore[attr-defined]
        model = self.core.model
        if model_sha and (model is None or model.sha256 != model_sha) and model_name:
            self.start_load(model_name)
        self.refresh_status()

    def delete_chat(self, chat_id: int) -> None:
        """Delete a saved chat (from the chats list); the open one leaves an empty chat."""
        if self.core.delete_chat(chat_id):
            self.ticker.pause()
            self._streaming(False)
            self.transcript.drop_reply()
            self.show_conversation()
            self.refresh_status("chat deleted")

    # ------------------------------------------------------------------ actions

    def action_stop(self) -> None:
        job = self.core.job
        if job is not None:
            job.request_stop()
            self.refresh_status("stopping…")
        self.query_one(PromptInput).focus()


__all__ = ["ChatScreen"]
