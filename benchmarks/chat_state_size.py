"""Bytes per saved chat message, before and after bounding the saved model states.

    python benchmarks/chat_state_size.py exported/*.onnx --transformer --exchanges 20

For each model a chat of ``--exchanges`` prompts and replies is written through the conversation
core into a fresh database. "before" is what the old store kept: every reply's whole state as an
uncompressed ``np.savez``. "after" is what the database holds now: the newest reply's state
(compressed) and every reply's token ids. ``--transformer`` adds a 4-layer, 128-wide Transformer
with a 256-token context (random weights; needs ``termlm[train]`` to export it).
"""

from __future__ import annotations

import argparse
import io
import sqlite3
import tempfile
import time
from pathlib import Path

import numpy as np

from termlm.conversation.chat import ChatCore
from termlm.conversation.engine import OnnxEngine
from termlm.conversation.settings import Settings
from termlm.conversation.store import ChatStore

PROMPTS = (
    "ROMEO:\nWhat light through yonder window breaks?\n\n",
    "JULIET:\nO Romeo, Romeo, wherefore art thou Romeo?\n\n",
    "KING:\nNow is the winter of our discontent.\n\n",
    "HAMLET:\nTo be, or not to be, that is the question.\n\n",
)


def export_transformer(folder: Path) -> Path:
    import torch

    from termlm.config import ModelConfig
    from termlm.export import export_model
    from termlm.tokenizers import fit_tokenizer
    from termlm.training.models import build_model

    text = "".join(PROMPTS) * 4 + "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ,.;:!?'\n"
    tokenizer = fit_tokenizer("char", text)
    torch.manual_seed(0)
    config = ModelConfig(
        arch="transformer",
        vocab_size=tokenizer.vocab_size,
        context=256,
        embed=128,
        hidden=128,
        layers=4,
        heads=4,
        dropout=0.0,
    )
    path = folder / "transformer-4x128.onnx"
    export_model(
        build_model(config).eval(),
        tokenizer.to_json(),
        card={"corpus": "benchmark", "val_loss": 4.0},
        name="transformer-4x128",
        out_path=path,
    )
    return path


def savez_bytes(state: dict[str, np.ndarray]) -> int:
    buffer = io.BytesIO()
    np.savez(buffer, **state)  # type: ignore[arg-type]
    return len(buffer.getvalue())


def measure(model: Path, exchanges: int, max_tokens: int, folder: Path) -> dict[str, float]:
    engine = OnnxEngine(entry_points=False, user_dir=False)
    db_path = folder / f"{model.stem}.db"
    store = ChatStore(db_path)
    core = ChatCore(engine, store, Settings(seed=1, max_tokens=max_tokens, strategy="sample"))
    core.model = engine.load(str(model))
    before_states = 0
    for k in range(exchanges):
        job = core.send(PROMPTS[k % len(PROMPTS)], {})
        while True:
            _, result = job.take(job.wait_items(0.1))
            if result is not None:
                break
        reply = core.finish(job, result)
        assert reply is not None and reply.state is not None
        before_states += savez_bytes(reply.state)
    messages = len(core.conversation.messages)
    after_states = store.state_bytes()
    store.close()
    with sqlite3.connect(db_path) as db:
        db.execute("VACUUM")
    after_file = db_path.stat().st_size
    return {
        "messages": messages,
        "state_bytes_whole": savez_bytes(core.conversation.messages[-1].state or {}),
        "before_per_message": (after_file - after_states + before_states) / messages,
        "after_per_message": after_file / messages,
        "before_states_per_message": before_states / messages,
        "after_states_per_message": after_states / messages,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", type=Path)
    parser.add_argument("--transformer", action="store_true")
    parser.add_argument("--exchanges", type=int, default=20)
    parser.add_argument("--max-tokens", type=int, default=60)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        models = list(args.models)
        if args.transformer:
            models.append(export_transformer(folder))
        print(
            f"{'model':<28} {'msgs':>5} {'whole state':>12} {'before B/msg':>13}"
            f" {'after B/msg':>12} {'ratio':>6}"
        )
        for model in models:
            started = time.perf_counter()
            row = measure(model, args.exchanges, args.max_tokens, folder)
            ratio = row["before_per_message"] / row["after_per_message"]
            print(
                f"{model.stem:<28} {row['messages']:>5.0f} {row['state_bytes_whole']:>12,.0f}"
                f" {row['before_per_message']:>13,.0f} {row['after_per_message']:>12,.0f}"
                f" {ratio:>5.1f}x   ({time.perf_counter() - started:.1f} s)"
            )


if __name__ == "__main__":
    main()
