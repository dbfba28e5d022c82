"""The ``termlm`` metadata JSON of a model file (docs/model-format.md), built from plain data.

Pure standard library: ``termlm.modelfile.parse_meta`` is the reader it must satisfy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from termlm import __version__
from termlm.config import LEVELS, ModelConfig

FORMAT = 1
META_KEY = "termlm"
SPECIAL = ("pad", "unk", "eos")
PAD, UNK = "<pad>", "<unk>"
CARD_KEYS = (
    "corpus",
    "corpus_sha256",
    "val_loss",
    "val_ppl",
    "val_bpc",
    "params",
    "command",
    "train_seconds",
    "sample",
    "created",
)


@dataclass(frozen=True)
class TokenizerFacts:
    """What the model file needs to know about its tokenizer."""

    level: str | None
    vocab_size: int | None
    special: dict[str, int | None]


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def tokenizer_facts(tokenizer: Mapping[str, Any]) -> TokenizerFacts:
    """Level, vocabulary size and ``{pad, unk, eos}`` ids of a tokenizer's JSON.

    Asks the tokenizer itself (``termlm.tokenizers.tokenizer_from_json``; a ``TokenizerError``
    for an unreadable one) and reads the JSON by hand where that module is not there.
    """
    try:
        from termlm import tokenizers
    except ImportError:
        tokenizers = None  # type: ignore[assignment]
    tokenizer_from_json = getattr(tokenizers, "tokenizer_from_json", None)
    if tokenizer_from_json is not None:
        tok = tokenizer_from_json(dict(tokenizer))
        level = getattr(tok, "kind", None) or getattr(tok, "level", None)
        return TokenizerFacts(
            level=level if level in LEVELS else None,
            vocab_size=_int_or_none(getattr(tok, "vocab_size", None)),
            special={k: _int_or_none(getattr(tok, f"{k}_id", None)) for k in SPECIAL},
        )
    level = next(
        (tokenizer[k] for k in ("type", "level", "kind") if tokenizer.get(k) in LEVELS), None
    )
    vocab = tokenizer.get("vocab")
    vocab_list = vocab if isinstance(vocab, list) else []
    return TokenizerFacts(
        level=level,
        vocab_size=len(vocab_list) if vocab_list else None,
        special={
            "pad": vocab_list.index(PAD) if PAD in vocab_list else None,
            "unk": vocab_list.index(UNK) if UNK in vocab_list else None,
            "eos": _int_or_none(tokenizer.get("eos_id")),
        },
    )


def build_card(card: Mapping[str, Any]) -> dict[str, Any]:
    """The provenance card: every documented key present (null when unknown), plus any extra."""
    out: dict[str, Any] = {key: card.get(key) for key in CARD_KEYS}
    out.update({k: v for k, v in card.items() if k not in out})
    if not out["created"]:
        out["created"] = datetime.now(timezone.utc).replace(microsecond=0).isoformat()
    return out


def build_metadata(
    *,
    config: ModelConfig,
    tokenizer: Mapping[str, Any],
    level: str,
    name: str,
    state: Sequence[Mapping[str, Any]],
    extras: Sequence[str],
    special: Mapping[str, int | None],
    card: Mapping[str, Any],
    quantized: str | None = None,
) -> dict[str, Any]:
    """The metadata object stored under ``metadata_props["termlm"]``."""
    return {
        "format": FORMAT,
        "termlm_version": __version__,
        "name": name,
        "config": config.to_dict(),
        "level": level,
        "tokenizer": dict(tokenizer),
        "stateful": config.stateful,
        "context": config.context,
        "state": [dict(entry) for entry in state],
        "extras": list(extras),
        "special": {key: special.get(key) for key in SPECIAL},
        "quantized": quantized,
        "card": build_card(card),
    }
