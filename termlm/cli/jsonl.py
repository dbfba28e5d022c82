"""`--jsonl`: a generation as JSON Lines, one event per line, written as it happens.

    {"event": "token", "index": 0, "id": 17, "text": "e", "logprob": -0.4, "top": [...]}
    {"event": "beams", "step": 3, "beams": [{"text": ..., "score": ..., "ids": [...], ...}]}
    {"event": "done", "text": ..., "ids": [...], "stop_reason": "length", ...}

The key names are those of docs/json.md: ``id``/``ids`` for token ids, ``logprob`` in nats.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING, Any

from termlm.jsonout import dumps as json_dumps

if TYPE_CHECKING:
    from termlm.decoding.events import Event


def _logprob(prob: float) -> float | None:
    return math.log(prob) if prob > 0 else None


def event_json(event: Event) -> dict[str, Any] | None:
    """A token or beams event as JSON; None for the done event (the caller writes that one)."""
    from termlm.decoding.events import BeamsEvent, TokenEvent

    if isinstance(event, TokenEvent):
        return {
            "event": "token",
            "index": event.index,
            "id": event.token_id,
            "text": event.text,
            "logprob": event.logprob,
            "top": [
                {"id": a.token_id, "text": a.text, "logprob": _logprob(a.prob)}
                for a in event.alternatives
            ],
        }
    if isinstance(event, BeamsEvent):
        return {
            "event": "beams",
            "step": event.step,
            "beams": [
                {"text": b.text, "score": b.score, "ids": list(b.token_ids), "finished": b.finished}
                for b in event.beams
            ],
        }
    return None


def write_line(record: dict[str, Any], out: IO[str]) -> None:
    out.write(json_dumps(record, ensure_ascii=False) + "\n")
    out.flush()


def tee_jsonl(events: Iterator[Event], out: IO[str]) -> Iterator[Event]:
    """Pass ``events`` through, writing each token and beams event to ``out`` as it comes."""
    for event in events:
        record = event_json(event)
        if record is not None:
            write_line(record, out)
        yield event
