"""A conversation as data: messages, the model state after each, and how prompts are built.

Pure standard library and numpy. Two modes:

* ``continue``: what you type is fed as is and the model continues the text.
* ``dialogue``: the play format of tinyshakespeare, ``"NAME:\\ntext\\n\\n"``. You speak as a
  character; the model answers as the next speaker (its name chosen by the model, or fixed) and
  stops at the blank line that ends a speech.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from termlm.decoding.events import TokenEvent
    from termlm.decoding.trace import Trace
    from termlm.runtime.types import State

MODES = ("continue", "dialogue")
SPEECH_END = "\n\n"


@dataclass
class Message:
    """One turn. ``fed`` is exactly what the model read for it; ``state`` the model state after."""

    role: str  # "user" | "model"
    text: str  # what is shown
    fed: str = ""  # the prompt fed (user) or the reply generated (model)
    speaker: str | None = None
    state: State | None = None  # model replies: the state after prompt and reply
    stop_reason: str | None = None
    strategy: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None
    max_tokens: int | None = None
    model_name: str | None = None
    model_sha256: str | None = None
    tokens: int = 0
    seconds: float = 0.0
    id: int | None = None  # row id once saved
    token_ids: list[int] = field(default_factory=list)  # model replies: the reply's tokens
    # Kept in memory only (not saved): the reply's tokens as generated, and a trace of them.
    events: list[TokenEvent] = field(default_factory=list, repr=False, compare=False)
    trace: Trace | None = field(default=None, repr=False, compare=False)


def build_prompt(
    mode: str,
    text: str,
    *,
    user_name: str = "",
    bot_name: str = "",
    fresh: bool = True,
    after_speech_end: bool = True,
) -> str:
    """What to feed the model for one user turn.

    ``fresh``: nothing was fed before (no state). ``after_speech_end``: the previous reply ended
    on a blank line, so a new speech can start right away.
    """
    if mode != "dialogue":
        return text
    lead = "" if fresh or after_speech_end else SPEECH_END
    name = user_name.strip() or "You"
    prompt = f"{lead}{name}:\n{text.strip()}{SPEECH_END}"
    if bot_name.strip():
        prompt += f"{bot_name.strip()}:\n"
    return prompt


def stop_strings(mode: str) -> tuple[str, ...]:
    """Where a reply ends: at the end of a speech in dialogue, nowhere special otherwise."""
    return (SPEECH_END,) if mode == "dialogue" else ()


def split_speaker(reply: str, bot_name: str = "") -> tuple[str | None, str]:
    """Split a dialogue reply into (speaker, speech). A fixed bot name was fed, not generated."""
    body = reply
    if body.endswith(SPEECH_END):
        body = body[: -len(SPEECH_END)]
    if bot_name.strip():
        return bot_name.strip(), body.strip("\n")
    head, sep, rest = body.lstrip("\n").partition(":\n")
    if sep and head and "\n" not in head and len(head) <= 40:
        return head, rest.strip("\n")
    return None, body.strip("\n")


def ended_speech(message: Message | None) -> bool:
    """Whether a reply finished its speech (so the next speaker can start at once)."""
    if message is None:
        return True
    return message.stop_reason == "stop" or message.fed.endswith(SPEECH_END)


@dataclass
class Branch:
    """One version of a conversation from a fork on: its messages and the forks inside it."""

    messages: list[Message]
    forks: dict[int, Fork] = field(default_factory=dict)


@dataclass
class Fork:
    """The versions of a conversation from one message position on (a node of the tree)."""

    branches: list[Branch]
    current: int = 0


@dataclass
class Conversation:
    """The turns of one chat, in order: the path shown, with the other branches in ``forks``."""

    messages: list[Message] = field(default_factory=list)
    chat_id: int | None = None
    title: str = "New chat"
    forks: dict[int, Fork] = field(default_factory=dict)  # message position -> its versions

    def _take_tail(self, position: int) -> Branch:
        tail = Branch(
            self.messages[position:], {k: v for k, v in self.forks.items() if k > position}
        )
        for key in tail.forks:
            del self.forks[key]
        self.messages = self.messages[:position]
        return tail

    def branch_at(self, position: int) -> None:
        """Keep ``messages[position:]`` as a branch and start a new, empty one there."""
        tail = self._take_tail(position)
        fork = self.forks.get(position)
        if fork is None:
            fork = self.forks[position] = Fork([tail])
        else:
            fork.branches[fork.current] = tail
        fork.branches.append(Branch([]))
        fork.current = len(fork.branches) - 1

    def switch_branch(self, position: int, index: int) -> None:
        """Show another version from ``position`` on (the one shown now is kept)."""
        fork = self.forks[position]
        fork.branches[fork.current] = self._take_tail(position)
        chosen = fork.branches[index % len(fork.branches)]
        fork.current = index % len(fork.branches)
        self.messages = self.messages + chosen.messages
        self.forks.update(chosen.forks)

    def drop_from(self, position: int) -> None:
        """Forget the messages from ``position`` on and every fork after it."""
        self.messages = self.messages[:position]
        self.forks = {k: v for k, v in self.forks.items() if k < position}

    def latest_fork(self) -> int | None:
        """The position of the fork nearest the end of the path shown."""
        inside = [k for k in self.forks if k <= len(self.messages)]
        return max(inside) if inside else None

    def branch_label(self, position: int) -> str:
        fork = self.forks.get(position)
        return "" if fork is None else f"branch {fork.current + 1}/{len(fork.branches)}"

    def last_state(self) -> State | None:
        """The model state after the whole conversation (None: nothing fed yet)."""
        return self.state_before(len(self.messages))

    def state_before(self, index: int) -> State | None:
        for message in reversed(self.messages[:index]):
            if message.state is not None:
                return message.state
        return None

    def last_reply(self) -> Message | None:
        for message in reversed(self.messages):
            if message.role == "model":
                return message
        return None

    def last_exchange(self) -> tuple[int, int] | None:
        """(index of the last user message, index of its reply or -1)."""
        for index in range(len(self.messages) - 1, -1, -1):
            if self.messages[index].role == "user":
                reply = index + 1 if index + 1 < len(self.messages) else -1
                return index, reply
        return None

    def user_prompts(self) -> list[str]:
        return [m.text for m in self.messages if m.role == "user"]

    def copy(self) -> Conversation:
        return replace(self, messages=list(self.messages), forks=dict(self.forks))


def to_markdown(conversation: Conversation) -> str:
    """The conversation as a Markdown document."""
    lines = [f"# {conversation.title}", ""]
    for message in conversation.messages:
        who = message.speaker or ("You" if message.role == "user" else "Model")
        lines.append(f"**{who}**")
        if message.role == "model" and message.strategy:
            extras = ", ".join(f"{k}={v}" for k, v in sorted(message.options.items()))
            meta = f"{message.model_name} · {message.strategy}"
            if extras:
                meta += f" ({extras})"
            if message.seed is not None:
                meta += f" · seed {message.seed}"
            lines.append(f"<sub>{meta}</sub>")
        lines.append("")
        lines.extend(f"> {line}" if line else ">" for line in message.text.split("\n"))
        lines.append("")
    return "\n".join(lines)
