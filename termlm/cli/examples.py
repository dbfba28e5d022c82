"""One or two examples for the end of every command's help (`termlm COMMAND --help`)."""

from __future__ import annotations

EXAMPLES: dict[str, tuple[str, ...]] = {
    "train": (
        "termlm train poems.txt --minutes 5",
        "termlm train poems.txt --level word --arch transformer --json > result.json",
    ),
    "bakeoff": ("termlm bakeoff poems.txt --minutes 2 --archs lstm,gru,transformer",),
    "export": (
        "termlm export runs/poems-char-lstm-0101-1200",
        "termlm export runs/poems-char-lstm-0101-1200 --quantize int8 -o poems.onnx",
    ),
    "generate": (
        'termlm generate -p "ROMEO:" -n 100 --seed 1',
        'echo "Once upon a time" | termlm generate shakespeare-word -p - --echo',
    ),
    "score": (
        'termlm score shakespeare-char "To be, or not to be"',
        "termlm score shakespeare-char --file speech.txt --compare shakespeare-word",
    ),
    "eval": ("termlm eval shakespeare-char tinyshakespeare.txt --split val --json",),
    "models": ("termlm models", "termlm models --json"),
    "bench": ("termlm bench shakespeare-char --tokens 500 --threads 2",),
    "chat": ("termlm chat", "termlm chat shakespeare-word"),
    "plugins": ("termlm plugins", "termlm plugins --plugins-dir ./my-plugins --json"),
    "runs": ("termlm runs", "termlm runs show runs/A runs/B --x seconds --bpc"),
    "cache": ("termlm cache", "termlm cache --clear"),
}


def epilog(command: str) -> str | None:
    """The help epilog of a command: its examples, one per line."""
    lines = EXAMPLES.get(command)
    if not lines:
        return None
    return "Examples:\n" + "\n".join(f"$ {line}" for line in lines)
