"""What a generation yields, event by event. The CLI prints these; the chat renders them.

Contract shared by the decoding strategies (producers) and the CLI and TUI (consumers).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from termlm.runtime.types import State


@dataclass(frozen=True)
class Alternative:
    """A candidate the model weighed at one position."""

    token_id: int
    text: str
    prob: float


@dataclass(frozen=True)
class TokenEvent:
    """One token chosen (greedy, sample), or a settled piece of text (beam).

    ``text`` is the new visible text; it may be empty while a multi-byte character is incomplete.
    """

    token_id: int
    text: str
    prob: float
    logprob: float
    alternatives: tuple[Alternative, ...] = ()
    index: int = 0  # position in the reply, from 0


@dataclass(frozen=True)
class Beam:
    """One hypothesis of a search as the listener sees it: its text so far and its score."""

    text: str
    score: float  # length-penalised sum of log-probabilities
    token_ids: tuple[int, ...] = ()
    finished: bool = False


@dataclass(frozen=True)
class BeamsEvent:
    """Every live beam after a beam-search step: a live view of the search."""

    step: int
    beams: tuple[Beam, ...]


@dataclass
class GenerationResult:
    """The whole reply, in ``DoneEvent.result``: its text, token ids (the eos token is not one of
    them), log-probabilities, why it stopped and how long it took; ``state`` continues it."""

    text: str
    token_ids: list[int]
    logprobs: list[float]
    stop_reason: str  # "length" | "stop" | "eos" | "cancelled" | "error" | "no_allowed_token"
    seconds: float
    n_best: list[Beam] = field(default_factory=list)  # beam search's n best, best first
    state: State | None = None  # the model's state after prompt and reply: continue from here
    error: str | None = None  # a plugin that raised: its message
    prompt_tokens_dropped: int = 0  # prompt tokens cut from the left to fit the model's context


@dataclass(frozen=True)
class DoneEvent:
    """The last event of every generation, exactly once: ``result`` holds the whole reply."""

    result: GenerationResult


Event = TokenEvent | BeamsEvent | DoneEvent
