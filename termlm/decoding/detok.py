"""Streaming detokenization: the new visible text each token adds, without O(n^2) decoding.

Only a short tail of ids is decoded at each token. Text ending in an incomplete multi-byte
character (U+FFFD at the end) is held back until the character is complete, so a byte-level bpe
model never shows a replacement character mid-stream. Word tokenizers get their spaces from
decoding the previous piece together with the new one.

A tokenizer whose ``decode`` is the concatenation of each id's own text (``concatenative``
True, the char tokenizer) costs a dictionary look-up per token instead.
"""

from __future__ import annotations

from collections.abc import Sequence

from termlm.decoding.contracts import TokenizerLike

REPLACEMENT = "\ufffd"
MAX_HELD = 4  # a UTF-8 character has at most 4 bytes: give up holding after that many tokens
CONTEXT = 4  # prompt tokens decoded with the first reply token (for spacing)


class StreamDecoder:
    """Feed token ids one by one; get the text each one adds."""

    def __init__(self, tokenizer: TokenizerLike, context_ids: Sequence[int] = ()) -> None:
        self._tokenizer = tokenizer
        self._ids: list[int] = list(context_ids)[-CONTEXT:]
        self._prefix = 0  # start of the decoded tail
        self._read = len(self._ids)  # end of the text already emitted
        self._pieces: dict[int, str] | None = (
            {} if getattr(tokenizer, "concatenative", False) is True else None
        )

    def push(self, token_id: int) -> str:
        """The text that ``token_id`` completes ("" while a character is incomplete)."""
        pieces = self._pieces
        if pieces is not None and self._read == len(self._ids):  # nothing held back
            piece = pieces.get(token_id)
            if piece is None:
                piece = pieces[token_id] = self._tokenizer.decode([int(token_id)])
            if piece and not piece.endswith(REPLACEMENT):  # what the general path gives
                self._ids, self._prefix, self._read = [int(token_id)], 0, 1
                return piece
        self._ids.append(int(token_id))
        decode = self._tokenizer.decode
        before = decode(self._ids[self._prefix : self._read])
        after = decode(self._ids[self._prefix :])
        held = len(self._ids) - self._read
        if after.endswith(REPLACEMENT) and held < MAX_HELD:
            return ""
        if len(after) <= len(before) and after.startswith(before) and held < MAX_HELD:
            return ""
        piece = after[len(before) :] if after.startswith(before) else _tail_diff(before, after)
        self._ids = self._ids[self._read :]
        self._prefix, self._read = 0, len(self._ids)
        return piece


def _tail_diff(before: str, after: str) -> str:
    """When a tokenizer's decode is not prefix-stable, the part of ``after`` past the common prefix."""
    common = 0
    for a, b in zip(before, after, strict=False):
        if a != b:
            break
        common += 1
    return after[common:]
