"""Defaults that depend on the architecture, the data and the machine, each choice explained.

``build_options`` takes the level's defaults (``options.LEVEL_DEFAULTS``) and lays the
architecture's own over them (``ARCH_DEFAULTS``); once the corpus is tokenized, ``fit_to_data``
sizes what the user did not give for the vocabulary and the amount of text, and says what it
chose. The figures behind each value are in the README ("Choosing the defaults").
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

# (level, arch) -> model and optimisation values laid over the level's defaults.
ARCH_DEFAULTS: dict[tuple[str, str], dict[str, Any]] = {
    ("char", "attention"): {"lr": 3e-3},
    # 1e-2 beat 3e-3 and 1e-3 on tinyshakespeare and on a 237 KB text (about nine epochs)
    ("bpe", "lstm"): {"lr": 1e-2},
    ("word", "attention"): {"lr": 3e-3},
    # one 128-wide layer: under a few minutes on a CPU it beat 2 and 4 layers (more steps)
    **{
        (level, "transformer"): {
            "hidden": 128,
            "embed": 128,
            "layers": 1,
            "heads": 4,
            "lr": 1e-3,
            "dropout": 0.0 if level == "char" else 0.1,
        }
        for level in ("char", "word", "bpe")
    },
}

# Word level, rnn/lstm/gru: an adaptive softmax and the parts of AWD-LSTM's regularisation that
# paid off in a default-length run (about 10 epochs), as measured in benchmarks/word_models.py
# --ablate (the README's word-model section): embedding dropout and weight drop cost 4% of
# perplexity there, so they are off unless asked for (the bundled model's long recipe sets them).
WORD_RECURRENT: dict[str, Any] = {
    "softmax": "adaptive",
    "context": 64,
    "dropout": 0.4,
    "embed_dropout": 0.0,
    "weight_drop": 0.0,
    "locked_dropout": True,
    "ar": 2.0,
    "tar": 1.0,
}
ARCH_DEFAULTS.update({("word", arch): dict(WORD_RECURRENT) for arch in ("rnn", "lstm", "gru")})

MIN_CLUSTERED_VOCAB = 200
MIN_HEAD = 32  # the smallest head an automatic cluster start leaves
CLUSTER_STARTS = (24, 6, 2)  # clusters start at vocabulary / each of these

MODEL_KEYS = ("embed", "hidden", "layers", "heads", "context", "dropout", "tie")
WORD_VOCAB_CAP = 6000  # the capped, tied vocabulary that worked for the bundled word model
BIG_CHAR_VOCAB = (
    1000  # a character vocabulary this large (Chinese, Japanese) gets a wider embedding
)
# measured on 2 MB of Chinese (5,967 characters), 0.5 CPU-minutes: embed 64 5.50, 128 5.38,
# 256 5.29 nats/char
BIG_VOCAB_EMBED = 256
SMALL_TEXT_TOKENS = 100_000  # less text than this: a smaller model, more dropout
MIN_BATCHES_PER_EPOCH = 20
MAX_DEFAULT_THREADS = 4  # small models gain little beyond this, and lose much on a busy machine


def auto_cutoffs(vocab_size: int) -> list[int]:
    """Adaptive softmax clusters for a frequency-ordered vocabulary: the head holds the most
    frequent 24th (69% of tinyshakespeare's word tokens at 6,000 words), then three tails
    starting at a 24th, a sixth and a half (the head and each tail's share of the tokens times
    its width: 715 word vectors read per token, against 1,336 for a head of a sixth and two
    tails). A cluster start under MIN_HEAD words is dropped; under MIN_CLUSTERED_VOCAB tokens a
    full softmax costs little: no clusters."""
    if vocab_size < MIN_CLUSTERED_VOCAB:
        return []
    cuts = sorted({round(vocab_size / share) for share in CLUSTER_STARTS})
    return [c for c in cuts if MIN_HEAD <= c < vocab_size]


def arch_defaults(level: str, arch: str) -> dict[str, Any]:
    return dict(ARCH_DEFAULTS.get((level, arch), {}))


@dataclass(frozen=True)
class ThreadChoice:
    threads: int
    reason: str


def default_threads(cores: int | None = None, load: float | None = None) -> ThreadChoice:
    """The free cores (cores minus the 1-minute load average), at least 1 and at most 4.

    Using every core when other work runs makes each step wait for the slowest thread: on a busy
    2-core machine all cores gave a tenth of the steps of one thread.
    """
    if cores is None:
        try:
            cores = len(os.sched_getaffinity(0))
        except (AttributeError, OSError):
            cores = os.cpu_count() or 1
    if load is None:
        try:
            load = os.getloadavg()[0]
        except (AttributeError, OSError):
            load = 0.0
    free = max(1, min(cores, MAX_DEFAULT_THREADS, int(cores - load + 0.5)))
    return ThreadChoice(free, f"{cores} cores, load {load:.1f}; --threads to change")


def fit_to_data(
    model: dict[str, Any],
    *,
    level: str,
    given: set[str],
    vocab_size: int,
    train_tokens: int,
    context: int,
    batch_size: int,
) -> tuple[dict[str, Any], int, list[str]]:
    """Model values and batch size adjusted to the data, for what the user did not give.

    Returns (model values, batch size, one line per change saying what and why).
    """
    model = dict(model)
    notes: list[str] = []
    big_vocab = level == "char" and vocab_size > BIG_CHAR_VOCAB
    if big_vocab and "embed" not in given and model["embed"] < BIG_VOCAB_EMBED:
        model["embed"] = BIG_VOCAB_EMBED
        notes.append(
            f"embed {BIG_VOCAB_EMBED}: a large character vocabulary ({vocab_size:,}); "
            "--level bpe may suit this text better"
        )
    if train_tokens < SMALL_TEXT_TOKENS:
        if "hidden" not in given and model["hidden"] > 128:
            model["hidden"] = 128
            if model.get("tie") and "embed" not in given:
                model["embed"] = 128
            notes.append(f"hidden 128: a short text ({train_tokens:,} training tokens)")
        # at the char level dropout 0.2 lost to none on two short texts (Shakespeare, Python)
        if level != "char" and "dropout" not in given and model["dropout"] < 0.2:
            model["dropout"] = 0.2
            notes.append("dropout 0.2: a short text overfits quickly")
    if model.get("softmax") == "adaptive" and not model.get("cutoffs"):
        cuts = auto_cutoffs(vocab_size)
        if cuts:
            model["cutoffs"] = cuts
            notes.append(f"adaptive softmax clusters start at {', '.join(map(str, cuts))}")
        else:
            model["softmax"] = "full"
            notes.append(f"full softmax: {vocab_size} tokens are too few for clusters")
    chunks = max(1, train_tokens // max(context, 1))
    if "batch_size" not in given and chunks // batch_size < MIN_BATCHES_PER_EPOCH:
        smaller = max(1, chunks // MIN_BATCHES_PER_EPOCH)
        if smaller < batch_size:
            notes.append(
                f"batch {smaller}: at least {MIN_BATCHES_PER_EPOCH} steps per pass over the text"
            )
            batch_size = smaller
    return model, batch_size, notes
