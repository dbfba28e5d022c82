"""Where each token of a text lies in that text, token by token, for colouring the original text.

Byte-level tokenizers (bpe) are placed exactly by their bytes. Others are found by searching a
little ahead of the last one (word tokenizers lowercase and drop punctuation); unknown tokens take
the tokenizer's own unknown spans, in order. A token that cannot be placed gets no span.
"""

from __future__ import annotations

from typing import Any

SEARCH_AHEAD = 256  # characters looked through for the next token (punctuation, spaces skipped)


class TokenSpans:
    """Feed the text's token ids in order; get each one's (start, end) in the text, or None."""

    def __init__(self, text: str, tokenizer: Any) -> None:
        self.text = text
        self.tokenizer = tokenizer
        self.cursor = 0  # characters before this are placed
        self._bytes = hasattr(tokenizer, "token_bytes")
        self._lower = text.lower() if len(text.lower()) == len(text) else None
        self._unknown = list(tokenizer.unknown_spans(text)) if tokenizer.unk_id is not None else []
        if getattr(tokenizer, "kind", None) == "char":  # a run of unknown characters: one each
            self._unknown = [(i, i + 1) for a, b in self._unknown for i in range(a, b)]
        self._unknown_at = 0
        if self._bytes:
            # first[b]: the index of the first character whose first byte is at or after byte b
            data_len = len(text.encode("utf-8"))
            self._first = [0] * (data_len + 1)
            at = 0
            for index, char in enumerate(text):
                width = len(char.encode("utf-8"))
                self._first[at] = index
                for b in range(at + 1, at + width):
                    self._first[b] = index + 1
                at += width
            self._first[data_len] = len(text)
            self._byte = 0

    def next(self, token_id: int) -> tuple[int, int] | None:
        if self._bytes:
            return self._next_bytes(token_id)
        if token_id == self.tokenizer.unk_id:
            return self._next_unknown()
        piece = self.tokenizer.token_text(token_id)
        if not piece:
            return None
        limit = min(len(self.text), self.cursor + SEARCH_AHEAD + len(piece))
        places = [self.text.find(piece, self.cursor, limit)]
        if self._lower is not None:  # a tokenizer that lowercases: "To" is read as "to"
            places.append(self._lower.find(piece.lower(), self.cursor, limit))
        found = min((p for p in places if p >= 0), default=-1)
        if found < 0:
            return None
        self.cursor = found + len(piece)
        return found, self.cursor

    def _next_unknown(self) -> tuple[int, int] | None:
        while self._unknown_at < len(self._unknown):
            start, end = self._unknown[self._unknown_at]
            self._unknown_at += 1
            if start >= self.cursor:
                self.cursor = end
                return start, end
        return None

    def _next_bytes(self, token_id: int) -> tuple[int, int] | None:
        """The characters whose first byte lies in this token's bytes."""
        width = len(self.tokenizer.token_bytes(token_id))
        last = len(self._first) - 1
        if width == 0 or self._byte >= last:
            return None
        begin, self._byte = self._byte, min(self._byte + width, last)
        start, end = self._first[begin], self._first[self._byte]
        if end <= start:
            return None
        self.cursor = end
        return start, end
