"""Byte-level BPE tokenizer, trained and run by HuggingFace ``tokenizers``.

Text is split with the GPT-2 byte-level pre-tokenizer (no prefix space, no offset trimming) and
every one of the 256 bytes is in the vocabulary, so nothing is unknown and
``decode(encode(s)) == s`` for any string. Id 0 is ``<pad>``; text that happens to contain
"<pad>" is encoded as ordinary bytes. Decoding is done here, from each token's bytes, so a
single token holding part of a multi-byte character decodes to U+FFFD instead of failing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from termlm.errors import TokenizerError
from termlm.tokenizers.bpewords import WordCache, can_cache
from termlm.tokenizers.bytelevel import BYTE_TO_CHAR, token_bytes
from termlm.tokenizers.common import (
    PAD,
    PAD_ID,
    check_ids,
    check_version,
    eos_from_json,
    get_field,
    require_text,
    short,
)

DEFAULT_VOCAB = 2000
MIN_VOCAB = 260  # <pad>, the 256 bytes, and room for a few merges

# Long texts are encoded in parallel, in pieces cut where the byte-level split rule would cut
# anyway: after a newline that has printable ASCII on both sides. The ids are the same.
CHUNK_CHARS = 1 << 15
_CUT_RE = re.compile(r"(?<=[!-~]\n)(?=[!-~])")


class BpeTokenizer:
    """Byte-level BPE; ``unk_id`` is None because every byte has a token."""

    kind = "bpe"

    def __init__(self, hf_json: str, *, eos_id: int | None = None) -> None:
        """``hf_json``: a ``tokenizers.Tokenizer`` serialised with ``to_str()``, already checked."""
        from tokenizers import Tokenizer as HfTokenizer

        self._hf_json = hf_json
        self._hf = HfTokenizer.from_str(hf_json)
        self._hf.encode_special_tokens = True  # "<pad>" in the text is text, not the pad token
        self._hf.no_truncation()
        self._hf.no_padding()
        spec = json.loads(hf_json)
        vocab: dict[str, int] = spec["model"]["vocab"]
        self.vocab_size = len(vocab)
        self.pad_id = PAD_ID
        self.unk_id: int | None = None
        self.eos_id = eos_id
        self.lowercase = spec.get("normalizer") is not None  # Lowercase is the only one allowed
        by_id = sorted(vocab.items(), key=lambda item: item[1])
        self._bytes: list[bytes] = [b"" if i == PAD_ID else token_bytes(t) or b"" for t, i in by_id]
        self._words = WordCache(self._hf) if can_cache(spec) else None

    @classmethod
    def fit(
        cls, text: str, *, vocab_size: int | None = None, lowercase: bool = False
    ) -> BpeTokenizer:
        return cls.fit_pieces([require_text(text)], vocab_size=vocab_size, lowercase=lowercase)

    @classmethod
    def fit_pieces(
        cls, pieces: Iterable[str], *, vocab_size: int | None = None, lowercase: bool = False
    ) -> BpeTokenizer:
        """Train on a text given in pieces cut where the byte-level split cuts anyway (the same
        merges as one text): the trainer holds word counts, not the text."""
        from tokenizers import Tokenizer as HfTokenizer
        from tokenizers import decoders, models, normalizers, pre_tokenizers, trainers

        hf = HfTokenizer(models.BPE())
        if lowercase:
            hf.normalizer = normalizers.Lowercase()
        hf.pre_tokenizer = pre_tokenizers.ByteLevel(
            add_prefix_space=False, trim_offsets=False, use_regex=True
        )
        hf.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size or DEFAULT_VOCAB,
            min_frequency=2,
            special_tokens=[PAD],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        hf.train_from_iterator(pieces, trainer)
        return cls(hf.to_str())

    def encode(self, text: str) -> list[int]:
        return encode_chunked(self._hf, text, CHUNK_CHARS)

    def encode_array(self, text: str) -> np.ndarray:
        """``encode`` as an int64 array [len]; long texts go faster, each word encoded once."""
        if self._words is None or len(text) <= CHUNK_CHARS:
            return np.asarray(self.encode(text), dtype=np.int64)
        return self._words.encode(text)

    def token_bytes(self, token_id: int) -> bytes:
        """The raw bytes of one token (b"" for <pad>), for streaming detokenizers."""
        check_ids((token_id,), self.vocab_size)
        return self._bytes[token_id]

    def decode(self, ids: Sequence[int]) -> str:
        check_ids(ids, self.vocab_size)
        table = self._bytes
        return b"".join(table[i] for i in ids).decode("utf-8", errors="replace")

    def token_text(self, token_id: int) -> str:
        if token_id == PAD_ID:
            return PAD
        return self.token_bytes(token_id).decode("utf-8", errors="replace")

    def unknown_spans(self, text: str) -> list[tuple[int, int]]:
        return []

    def to_json(self) -> dict[str, Any]:
        return {"type": self.kind, "version": 1, "eos_id": self.eos_id, "hf": self._hf_json}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BpeTokenizer:
        where = "bpe tokenizer"
        check_version(data, where)
        hf_json = get_field(data, "hf", str, where)
        vocab_size = check_hf_json(hf_json)
        eos_id = eos_from_json(data, vocab_size, where)
        try:
            return cls(hf_json, eos_id=eos_id)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as error:  # the Rust side raises its own kinds, even panics
            raise TokenizerError(
                f"{where}: the embedded tokenizer cannot be loaded ({error})"
            ) from None


def encode_chunked(hf: Any, text: str, chunk_chars: int) -> list[int]:
    """Encode with ``hf``, in parallel pieces when ``text`` is longer than ``chunk_chars``."""
    if len(text) <= chunk_chars:
        return list(hf.encode(text).ids)
    pieces = []
    start = 0
    while start < len(text):
        cut = _CUT_RE.search(text, start + chunk_chars) if start + chunk_chars < len(text) else None
        end = cut.start() if cut else len(text)
        pieces.append(text[start:end])
        start = end
    return [i for encoding in hf.encode_batch(pieces) for i in encoding.ids]


def check_hf_json(hf_json: str) -> int:
    """Check an embedded ``tokenizers`` description is byte-level BPE with <pad> at 0.

    Returns the vocabulary size; raises ``TokenizerError`` saying what is wrong.
    """
    where = "bpe tokenizer"
    try:
        spec = json.loads(hf_json)
    except ValueError:
        raise TokenizerError(f"{where}: the embedded tokenizer is not valid JSON") from None
    if not isinstance(spec, dict):
        raise TokenizerError(f"{where}: the embedded tokenizer must be a JSON object")
    model = get_field(spec, "model", dict, where)
    if model.get("type") != "BPE":
        raise TokenizerError(
            f"{where}: the embedded model must be BPE, got {short(model.get('type'))}"
        )
    for key in ("dropout", "unk_token", "continuing_subword_prefix", "end_of_word_suffix"):
        if model.get(key) not in (None, ""):
            raise TokenizerError(f"{where}: the BPE model's {key!r} must be unset")
    if model.get("byte_fallback") not in (None, False):
        raise TokenizerError(f"{where}: the BPE model's 'byte_fallback' must be false")
    normalizer = spec.get("normalizer")
    if normalizer is not None and normalizer != {"type": "Lowercase"}:
        raise TokenizerError(f"{where}: the only normalizer allowed is Lowercase")
    pre = spec.get("pre_tokenizer")
    if (
        not isinstance(pre, dict)
        or pre.get("type") != "ByteLevel"
        or pre.get("add_prefix_space") is not False
    ):
        raise TokenizerError(f"{where}: the pre-tokenizer must be ByteLevel without a prefix space")
    if spec.get("post_processor") is not None:
        raise TokenizerError(f"{where}: the embedded tokenizer must have no post-processor")
    vocab = get_field(model, "vocab", dict, where)
    ids = sorted(v for v in vocab.values() if isinstance(v, int) and not isinstance(v, bool))
    if ids != list(range(len(vocab))):
        raise TokenizerError(
            f"{where}: the vocabulary ids must be 0 to {len(vocab) - 1}, each once"
        )
    if vocab.get(PAD) != PAD_ID:
        raise TokenizerError(f"{where}: {PAD!r} must have id {PAD_ID}")
    for token in vocab:
        if token != PAD and (not token or token_bytes(token) is None):
            raise TokenizerError(f"{where}: {short(token)} is not a byte-level token")
    missing = [byte for byte, char in BYTE_TO_CHAR.items() if char not in vocab]
    if missing:
        raise TokenizerError(f"{where}: the vocabulary lacks {len(missing)} of the 256 bytes")
    added = get_field(spec, "added_tokens", list, where)
    if added != [
        t
        for t in added
        if isinstance(t, dict) and t.get("content") == PAD and t.get("id") == PAD_ID
    ]:
        raise TokenizerError(f"{where}: the only added token allowed is {PAD!r} with id {PAD_ID}")
    return len(vocab)
