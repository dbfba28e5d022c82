"""Vocabulary extension for fine-tuning: tokens of a new text that a trained model does not
know get new ids after the known ones, and new embedding and output rows.

Known ids, and their rows, stay exactly as they were. A new output row starts at the mean of
the known rows (the specials ``<pad>`` and ``<unk>`` left out): an average token, so each new
token's first logit is about the average logit and the known tokens' probabilities barely move.
A new *input* embedding row is drawn around that mean with the known rows' spread in each
dimension: the mean alone is short (its norm is a fraction of a row's) and the same for every
new token, so the model would at first see every new character as one faint input; a drawn row
is as strong as a known one and tells the new tokens apart from the first step. A byte-level
BPE tokenizer knows every text already and is kept as it is.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import torch

from termlm.errors import ConfigError
from termlm.tokenizers import Tokenizer, tokenizer_from_json
from termlm.tokenizers.common import UNK_ID

WORD_MIN_COUNT = 2  # a word seen once in the new text stays <unk>: one example teaches no row


@dataclass(frozen=True)
class Extension:
    tokenizer: Tokenizer
    known: int  # the source's vocabulary size: ids below it are the source's own
    added: tuple[str, ...]  # the new tokens, in id order from ``known``


def _new_chars(tokenizer: Any, text: str) -> list[str]:
    normal = text.lower() if tokenizer.lowercase else text
    known = set(tokenizer.vocab)
    counts = Counter(char for char in normal if char not in known)
    return [char for char, _ in sorted(counts.items(), key=lambda item: (-item[1], item[0]))]


def _new_words(tokenizer: Any, text: str) -> list[str]:
    known = set(tokenizer.vocab)
    counts = Counter(word for word in tokenizer.split(text) if word not in known)
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return [word for word, count in ranked if count >= WORD_MIN_COUNT]


def extend_vocabulary(
    tokenizer_json: dict[str, Any], text: str, *, max_vocab: int | None = None
) -> Extension:
    """The source tokenizer with the new text's unknown characters (or words) appended, the
    most frequent first; ``max_vocab`` caps the whole vocabulary (the source's part is kept)."""
    source = tokenizer_from_json(tokenizer_json)
    if source.kind == "bpe":
        return Extension(source, source.vocab_size, ())
    new = _new_chars(source, text) if source.kind == "char" else _new_words(source, text)
    if max_vocab is not None:
        new = new[: max(0, max_vocab - source.vocab_size)]
    if not new:
        return Extension(source, source.vocab_size, ())
    if source.kind == "char":
        new = sorted(new)  # ids in code point order, as a fitted char tokenizer has them
    data = dict(tokenizer_json)
    data["vocab"] = [*tokenizer_json["vocab"], *new]
    extended = tokenizer_from_json(data)
    added = tuple(data["vocab"][source.vocab_size :])
    return Extension(extended, source.vocab_size, added)


def describe_added(added: tuple[str, ...], level: str, limit: int = 12) -> str:
    """A short, printable list of the added tokens."""
    shown = [repr(token) for token in added[:limit]]
    more = f" and {len(added) - limit} more" if len(added) > limit else ""
    what = "characters" if level == "char" else "words"
    return f"{len(added)} new {what}: {' '.join(shown)}{more}"


def extend_state(
    source: dict[str, torch.Tensor],
    target: dict[str, torch.Tensor],
    known: int,
    *,
    sampled: tuple[str, ...] = (),
    seed: int = 0,
) -> dict[str, torch.Tensor]:
    """``source`` (a state dict with ``known`` vocabulary rows) grown to the shapes of
    ``target`` (the same architecture with a larger vocabulary).

    A tensor whose first axis grew from ``known`` keeps its first ``known`` rows exactly; the
    rows after them are the mean of the known rows (ids above ``<unk>``), or, for the tensors
    named in ``sampled``, drawn from a normal distribution with the known rows' mean and
    standard deviation in each column (seeded by ``seed``). A tensor of the last words only (an
    adaptive softmax's last cluster) that grew by as many rows keeps its rows, the new ones at
    their mean. Every other tensor must keep its shape.
    """
    generator = torch.Generator().manual_seed(seed)
    embedding = target.get("embedding.weight")  # every architecture's token embedding
    added = embedding.shape[0] - known if embedding is not None else 0
    out: dict[str, torch.Tensor] = {}
    for name, want in target.items():
        have = source.get(name)
        if have is None:
            raise ConfigError(f"the source model has no weight {name!r}")
        if have.shape == want.shape:
            out[name] = have.detach().clone()
            continue
        tail = have.shape[0] != known and want.shape[0] - have.shape[0] == added > 0
        rows_fit = tail or (have.shape[0] == known and want.shape[0] >= known)
        if have.shape[1:] != want.shape[1:] or not rows_fit:
            raise ConfigError(
                f"the source's {name} has shape {tuple(have.shape)}, this model needs "
                f"{tuple(want.shape)}",
                "fine-tuning keeps the source's architecture; drop the flags that change it",
            )
        grown = torch.empty(want.shape, dtype=have.dtype)
        kept = have.shape[0]
        grown[:kept] = have
        rows = have[UNK_ID + 1 :] if not tail and known > UNK_ID + 1 else have
        mean = rows.mean(dim=0, keepdim=True)
        if name in sampled and not tail and len(rows) > 1:
            spread = rows.std(dim=0, keepdim=True)
            shape = (want.shape[0] - kept, *want.shape[1:])
            noise = torch.randn(shape, generator=generator, dtype=have.dtype)
            grown[kept:] = mean + spread * noise
        else:
            grown[kept:] = mean
        out[name] = grown
    return out
