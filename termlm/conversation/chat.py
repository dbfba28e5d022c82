"""The open chat: its conversation, where it is saved, and the reply in flight. No Textual here.

``ChatCore`` is the one place that changes a conversation. Every change is saved as it is made:
a prompt when it is sent, a reply when its job stops, a branch when it is taken. The reply job's
state machine (``termlm.conversation.reply``) decides what exists at each moment, so quitting,
deleting or switching chats while a reply streams saves what was generated, and nothing is ever
saved under a chat that was deleted.

The widgets of the chat show a ``ChatCore`` and ask it to act; ``termlm generate`` runs its reply
through the same ``ReplyJob``.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from termlm.conversation.engine import ModelInfo
from termlm.conversation.reply import ReplyJob, ReplyState
from termlm.conversation.tree import (
    SPEECH_END,
    Conversation,
    Message,
    build_prompt,
    ended_speech,
    split_speaker,
    stop_strings,
)

if TYPE_CHECKING:
    from termlm.conversation.engine import Engine
    from termlm.conversation.settings import Settings
    from termlm.conversation.store import ChatStore
    from termlm.decoding.events import GenerationResult, TokenEvent
    from termlm.runtime.types import State

MAX_SEED = 2**31 - 1
SETTLE_SECONDS = 0.5  # quitting or switching: how long a running reply may take to end itself


@dataclass(frozen=True)
class Turn:
    """What one reply is fed: the prompt, the state it is read on, and kept reply tokens."""

    prompt: str | list[int]
    state: State | None
    prefix: tuple[TokenEvent, ...] = ()


class ChatCore:
    """One open conversation over a store, with at most one reply job running."""

    def __init__(self, engine: Engine, store: ChatStore, settings: Settings) -> None:
        self.engine = engine
        self.store = store
        self.settings = settings
        self.conversation = Conversation()
        self.model: ModelInfo | None = None  # the model loaded now
        self.chat_model: ModelInfo | None = None  # the model this chat's states belong to
        self.job: ReplyJob | None = None

    # ------------------------------------------------------------------ saving

    def append(self, message: Message) -> None:
        """Add a message at the end of the shown path, and save it (creating the chat first)."""
        conversation = self.conversation
        if conversation.chat_id is None:
            text = message.text.strip()
            title = text.splitlines()[0][:48] if text else "chat"
            model = self.model
            conversation.chat_id = self.store.create_chat(
                title,
                self.settings.mode,
                model.name if model else None,
                model.sha256 if model else None,
            )
            conversation.title = title
            self.chat_model = model
        position = len(conversation.messages)
        parent = conversation.messages[-1].id if conversation.messages else None
        conversation.messages.append(message)
        self.store.add_message(conversation.chat_id, position, message, parent_id=parent)

    def truncate(self, index: int) -> None:
        """Forget the messages from ``index`` on, with every branch below them."""
        conversation = self.conversation
        messages = conversation.messages
        parent = messages[index - 1].id if 0 < index <= len(messages) else None
        conversation.drop_from(index)
        if conversation.chat_id is None:
            return
        self.store.delete_after(conversation.chat_id, parent, index)
        newest = conversation.last_reply()  # the newest reply's state is kept on disk again
        if newest is not None and newest.state is not None and newest.id is not None:
            self.store.set_message_state(newest.id, newest.state)

    def drop_last_exchange(self) -> str | None:
        """Undo: remove the last prompt and its reply; the prompt's text (None: nothing to undo)."""
        exchange = self.conversation.last_exchange()
        if exchange is None:
            return None
        user_index, _ = exchange
        text = self.conversation.messages[user_index].text
        self.truncate(user_index)
        return text

    def switch_branch(self, position: int, index: int) -> None:
        """Show another version from ``position`` on; reopening the chat shows it too."""
        conversation = self.conversation
        conversation.switch_branch(position, index)
        shown = conversation.messages[position:]
        if conversation.chat_id is not None and shown and shown[0].id is not None:
            self.store.show_branch(shown[0].id)

    # ------------------------------------------------------------------ chats

    def new_chat(self) -> None:
        """Start an empty chat; a reply in flight is stopped and saved where it belongs."""
        self.settle()
        self.conversation = Conversation()
        self.chat_model = None

    def open_chat(self, chat_id: int) -> tuple[str, str | None, str | None]:
        """Open a saved chat: (mode, model name, model sha256). KeyError if it is gone.

        A reply in flight is stopped and saved in its own chat first.
        """
        conversation, mode, model_name, model_sha = self.store.load_chat(chat_id)
        self.settle()
        self.conversation = conversation
        self.chat_model = ModelInfo(
            name=model_name or "?", arch="?", level="?", sha256=model_sha or ""
        )
        return mode, model_name, model_sha

    def delete_chat(self, chat_id: int) -> bool:
        """Delete a saved chat; whether it was the open one (then a new, empty chat is open).

        A reply streaming into the deleted chat is dropped: nothing of it is saved anywhere.
        """
        self.store.delete_chat(chat_id)
        if self.conversation.chat_id != chat_id:
            return False
        if self.job is not None:
            self.job.discard()
            self.job = None
        self.conversation = Conversation()
        self.chat_model = None
        return True

    def close(self) -> None:
        """Quit: the reply in flight is stopped and saved with what exists, then the store shuts."""
        self.settle()
        self.store.close()

    # ------------------------------------------------------------------ replies

    def prompt_overflow(self, prompt: str | list[int]) -> int:
        """How many tokens of ``prompt`` the model cannot read (it keeps the last ``context``)."""
        context = self.model.context if self.model is not None else 0
        if not context:
            return 0
        length = len(prompt) if isinstance(prompt, list) else len(self.engine.encode(prompt))
        return max(0, length - context)

    def dialogue_problem(self) -> str | None:
        """Why dialogue mode cannot work with the model loaded (None: it can)."""
        model = self.model
        if model is None or self.settings.mode != "dialogue":
            return None
        written = "".join(self.engine.token_text(i) for i in self.engine.encode(SPEECH_END))
        if SPEECH_END in written:
            return None
        return (
            f"{model.name} cannot write the blank line that ends a speech (its vocabulary has no"
            " line breaks), so replies run to max tokens; use continue mode, or for dialogue a"
            " char or BPE model, or a word model trained with --keep-case --punctuation keep"
            " (shakespeare-dialogue is one)"
        )

    def turn_for(self, text: str) -> tuple[Message, Turn]:
        """The user message for ``text`` and what its reply is fed (nothing is changed yet)."""
        settings = self.settings
        dialogue = settings.mode == "dialogue"
        state = self.state_before(len(self.conversation.messages))
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
        return Message(role="user", text=shown, fed=prompt, speaker=speaker), Turn(prompt, state)

    def send(self, text: str, options: dict[str, Any]) -> ReplyJob:
        """Save the prompt, then start its reply."""
        message, turn = self.turn_for(text)
        self.append(message)
        return self.start_reply(turn, options)

    def regenerate_turn(self) -> tuple[int, Turn] | None:
        """(index of the last reply, what it was fed), to write it again; None if there is none."""
        exchange = self.conversation.last_exchange()
        if exchange is None or exchange[1] < 0:
            return None
        user_index, reply_index = exchange
        prompt = self.conversation.messages[user_index].fed
        return reply_index, Turn(prompt, self.state_before(user_index))

    def branch_turn(self, index: int, position: int, token_id: int) -> Turn:
        """Reply ``index`` again from token ``position``, with ``token_id`` there instead.

        The tokens before ``position`` and the new one are kept as the start of the reply: fed
        after the parent prompt on the parent state, counted as reply (not prompt).
        """
        from termlm.decoding.events import TokenEvent

        message = self.conversation.messages[index]
        prompt, state = self.parent_of(index)
        events = message.events
        if events:
            kept = list(events[:position])
            alternatives = events[position].alternatives if position < len(events) else ()
        else:
            ids = self.engine.encode(message.fed)
            kept = [
                TokenEvent(i, self.engine.token_text(i), 1.0, 0.0, index=k)
                for k, i in enumerate(ids[:position])
            ]
            alternatives = ()
        prob = next((a.prob for a in alternatives if a.token_id == token_id), 0.0)
        import math

        chosen = TokenEvent(
            token_id=token_id,
            text=self.engine.token_text(token_id),
            prob=prob,
            logprob=math.log(prob) if prob > 0 else float("-inf"),
            alternatives=alternatives,
            index=position,
        )
        return Turn(prompt, state, (*kept, chosen))

    def start_reply(
        self,
        turn: Turn,
        options: dict[str, Any],
        on_end: Callable[[], None] | None = None,
    ) -> ReplyJob:
        """Start a reply job for ``turn`` with the settings' strategy, seed and length.

        ``on_end`` is called from the job's thread when it has ended (the chat wakes to show the
        end at once instead of at its next frame).
        """
        settings = self.settings
        job = ReplyJob(
            prompt=turn.prompt,
            state=turn.state,
            strategy=settings.strategy,
            options=dict(options),
            seed=settings.seed if settings.seed is not None else secrets.randbelow(MAX_SEED),
            max_tokens=max(settings.max_tokens - len(turn.prefix), 1),
            stop=stop_strings(settings.mode),
            prefix=list(turn.prefix),
            on_end=on_end,
        )
        engine = self.engine
        prefix_ids = [e.token_id for e in turn.prefix]

        def run(job: ReplyJob) -> Any:
            return engine.generate(
                job.prompt,
                strategy=job.strategy,
                options=job.options,
                max_new_tokens=job.max_tokens,
                stop=job.stop,
                seed=job.seed,
                state=job.state,
                cancel=job.cancel,
                reply_prefix=prefix_ids,
            )

        self.job = job
        job.start(run)
        return job

    def finish(self, job: ReplyJob, result: GenerationResult) -> Message | None:
        """A reply ended (``job`` stopped with ``result``): save it, return the message.

        None: nothing to save (the engine refused before any token; the prompt is taken back by
        the caller), or the job was discarded.
        """
        if job.phase is ReplyState.DISCARDED:
            return None
        if job.running:
            job.end(result)
        if self.job is job:
            self.job = None
        nothing = result.state is None and not result.text and not job.prefix
        if result.stop_reason == "error" and nothing:
            job.mark_saved()  # nothing was generated: nothing to save
            return None
        message = self.reply_message(job, result)
        self.append(message)
        job.mark_saved()
        return message

    def reply_message(self, job: ReplyJob, result: GenerationResult) -> Message:
        """The model message a finished job makes."""
        settings = self.settings
        prefix = "".join(e.text for e in job.prefix)
        full = prefix + result.text
        if settings.mode == "dialogue":
            speaker, body = split_speaker(full, settings.bot_name)
        else:
            speaker, body = None, full
            for stop in job.stop:
                body = body.removesuffix(stop)
        tokens = len(job.prefix) + (len(result.token_ids) or len(job.events))
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
        message.events = reindexed([*job.prefix, *job.events])
        message.token_ids = [e.token_id for e in job.prefix] + list(result.token_ids)
        return message

    def settle(self, grace: float = SETTLE_SECONDS) -> Message | None:
        """Stop the reply in flight now and save what it produced (quit, switch, new chat)."""
        job = self.job
        if job is None:
            return None
        if job.phase is ReplyState.IDLE:
            job.discard()  # never started: nothing exists
        if job.phase in (ReplyState.SAVED, ReplyState.DISCARDED):
            self.job = None
            return None
        result = job.settle(grace)  # a stopped job keeps its result
        return self.finish(job, result)

    # ------------------------------------------------------------------ model states

    def parent_of(self, index: int) -> tuple[str, State | None]:
        """The prompt fed just before message ``index`` and the state it was fed on."""
        messages = self.conversation.messages
        user = index - 1
        while user >= 0 and messages[user].role != "user":
            user -= 1
        if user < 0:
            return "", self.state_before(index)
        return messages[user].fed, self.state_before(user)

    def parent_index(self, index: int) -> int:
        """The index whose ``state_before`` feeds message ``index``'s prompt (see ``parent_of``)."""
        messages = self.conversation.messages
        user = index - 1
        while user >= 0 and messages[user].role != "user":
            user -= 1
        return index if user < 0 else user

    def unread_before(self, index: int) -> Message | None:
        """The reply ``state_before(index)`` would have to read again from its tokens (a model
        call per token: the chat does it off the UI thread first); None when nothing is read."""
        messages = self.conversation.messages
        for k in range(min(index, len(messages)) - 1, -1, -1):
            if messages[k].role == "model":
                return messages[k] if messages[k].state is None else None
        return None

    def state_before(self, index: int) -> State | None:
        """The model state after ``messages[:index]`` (None: nothing was fed yet).

        A reply whose state was not kept (an older reply of a saved chat, or one cut short) is
        read again from its tokens on the state before it, once: a model call, no plugin code.
        """
        messages = self.conversation.messages
        for k in range(min(index, len(messages)) - 1, -1, -1):
            message = messages[k]
            if message.role != "model":
                continue
            if message.state is None:
                message.state = self._read_again(k)
            return message.state
        return None

    def _read_again(self, index: int) -> State | None:
        """Replay a reply as it was generated (prompt in one block, then token by token)."""
        message = self.conversation.messages[index]
        prompt, state = self.parent_of(index)
        engine = self.engine
        ids = list(message.token_ids) or (engine.encode(message.fed) if message.fed else [])
        if not prompt and not ids:
            return state
        return engine.replay(prompt, ids, state=state)

    def prefill(self, prompt: str | Sequence[int], state: State | None) -> State | None:
        """The state after reading ``prompt`` on ``state``: one model call, no strategy runs."""
        from termlm.decoding.events import DoneEvent

        events = self.engine.generate(
            prompt, strategy="greedy", options={}, max_new_tokens=0, state=state
        )
        done = [e for e in events if isinstance(e, DoneEvent)]
        if not done or done[-1].result.error:
            return None
        return done[-1].result.state

    def restate(self, message: Message) -> State | None:
        """The state of a reply that has none (cut short): read again from its parent.

        Call it off the UI thread (a model call); ``keep_state`` stores what it finds.
        """
        if message not in self.conversation.messages:
            return None
        return self._read_again(self.conversation.messages.index(message))

    def keep_state(self, message: Message, state: State | None) -> None:
        """Store a state found by ``restate`` (unless the message has since been dropped)."""
        if state is None or message not in self.conversation.messages:
            return
        message.state = state
        if message.id is not None:
            self.store.set_message_state(message.id, state)


def reindexed(events: Sequence[TokenEvent]) -> list[TokenEvent]:
    """The events of a reply numbered from 0 (a branch joins kept tokens and new ones)."""
    return [e if e.index == k else replace(e, index=k) for k, e in enumerate(events)]
