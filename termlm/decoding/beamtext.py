"""The text of a search's beams, kept as they grow instead of decoded whole at every step."""

from __future__ import annotations

from collections.abc import Sequence

from termlm.decoding.contracts import Hypothesis, TokenizerLike
from termlm.decoding.detok import REPLACEMENT
from termlm.decoding.events import Beam
from termlm.decoding.paths import TokenPath

_TAIL = 4  # tokens decoded before a beam's new one, for its spacing


def final_beam(tokenizer: TokenizerLike, hyp: Hypothesis) -> Beam:
    """A finished search's hypothesis as a ``Beam``: decoded whole, the eos token left out."""
    ids = [int(i) for i in hyp.token_ids]
    eos = getattr(tokenizer, "eos_id", None)
    visible = ids[:-1] if hyp.finished and ids and ids[-1] == eos else ids
    return Beam(
        text=tokenizer.decode(visible),
        score=float(hyp.score),
        token_ids=tuple(visible),
        finished=hyp.finished,
    )


class BeamTexts:
    """The text of each live beam, kept as the beams grow (a beam that names the beam it
    extends by one token costs the decoding of that token, not of the whole beam).

    A beam's ``token_ids`` may be a ``TokenPath`` (a path in the search's tree): it is passed on
    as it is, so the beam's tokens are not copied at each step either."""

    def __init__(self, tokenizer: TokenizerLike) -> None:
        self._tokenizer = tokenizer
        self._eos = getattr(tokenizer, "eos_id", None)
        self._last: list[tuple[Sequence[int], str]] = []  # (visible ids, text) per beam
        concatenative = getattr(tokenizer, "concatenative", False) is True
        self._pieces: dict[int, str] | None = {} if concatenative else None

    def update(self, hyps: Sequence[Hypothesis]) -> tuple[Beam, ...]:
        beams: list[Beam] = []
        kept: list[tuple[Sequence[int], str]] = []
        for hyp in hyps:
            ids: Sequence[int] = hyp.token_ids
            if type(ids) is not TokenPath and not _plain(ids):
                ids = tuple(int(i) for i in ids)
            visible = ids[:-1] if hyp.finished and ids and ids[-1] == self._eos else ids
            text = self._text(visible, hyp.parent)
            kept.append((visible, text))
            beams.append(Beam(text, float(hyp.score), visible, hyp.finished))  # type: ignore[arg-type]
        self._last = kept
        return tuple(beams)

    def _text(self, ids: Sequence[int], parent: int | None) -> str:
        decode = self._tokenizer.decode
        if parent is not None and 0 <= parent < len(self._last) and ids:
            before_ids, before = self._last[parent]
            n = len(before_ids)
            if n + 1 == len(ids) and _extends(ids, before_ids):
                last = int(ids[-1])
                pieces = self._pieces
                if pieces is not None:  # decode is a concatenation: add the token's own text
                    piece = pieces.get(last)
                    if piece is None:
                        piece = pieces[last] = decode([last])
                    return before + piece
                tail = tuple(ids[max(0, n - _TAIL) : n])
                head = decode(tail)
                whole = decode((*tail, last))
                if whole.startswith(head) and not head.endswith(REPLACEMENT):
                    return before + whole[len(head) :]
        return decode(list(ids))


def _extends(ids: Sequence[int], before: Sequence[int]) -> bool:
    """Whether ``ids`` is ``before`` and one more token (its length already checked)."""
    if type(ids) is TokenPath and type(before) is TokenPath:
        return ids.node.parent is before.node
    n = len(before)
    return n == 0 or ids[n - 1] == before[-1]


def _plain(ids: Sequence[int]) -> bool:
    return type(ids) is tuple and (not ids or type(ids[-1]) is int)
