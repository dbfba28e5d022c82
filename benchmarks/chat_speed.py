"""Tokens per second that reach the screen in the chat, against `termlm generate`, side by side.

    python benchmarks/chat_speed.py exported/shakespeare-char.onnx --tokens 1500 --rounds 3

Both run the same model, strategy and seed in this process, alternating, ``--rounds`` times each:

* generate: the CLI's own path (its reply job and printing loop), output to /dev/null;
* chat: the Textual app driven by the pilot (headless, side panel and views closed): from Enter to
  the moment the whole reply is in the transcript.

The figures are medians; the ratio is the goal's measure (the chat at 80% or more of generate).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

PROMPT = "ROMEO:\n"


def generate_rate(model: Path, strategy: str, seed: int, tokens: int) -> float:
    from termlm.cli.generate import _consume, events_in_thread
    from termlm.conversation.reply import stream
    from termlm.decoding import build_plugin_manager, generate
    from termlm.runtime.onnx_model import load_model

    lm = load_model(model)
    registry = build_plugin_manager(entry_points=False, user_dir=False)
    cancel = threading.Event()
    started = time.perf_counter()
    events = generate(
        lm,
        lm.tokenizer,
        PROMPT,
        registry=registry,
        strategy=strategy,
        options={},
        max_new_tokens=tokens,
        seed=seed,
        cancel=cancel,
    )
    saved = sys.stdout
    with open(os.devnull, "w", encoding="utf-8") as sink:
        sys.stdout = sink
        try:
            result = _consume(stream(events_in_thread(lambda: events, cancel)), stream=True)
        finally:
            sys.stdout = saved
    return len(result.token_ids) / (time.perf_counter() - started)


async def chat_rate(model: Path, strategy: str, seed: int, tokens: int) -> float:
    from termlm.conversation.engine import OnnxEngine
    from termlm.conversation.settings import Settings
    from termlm.conversation.store import MEMORY, ChatStore
    from termlm.tui.app import ChatApp
    from termlm.tui.widgets import PromptInput

    settings = Settings(seed=seed, strategy=strategy, max_tokens=tokens, panel=False)
    engine = OnnxEngine(entry_points=False, user_dir=False)
    app = ChatApp(engine, model=str(model), store=ChatStore(MEMORY), settings=settings)
    app.remember = False
    async with app.run_test(size=(120, 40)) as pilot:
        chat = app.chat
        while chat.model is None:
            await pilot.pause(0.01)
        box = chat.query_one(PromptInput)
        box.load_text(PROMPT)
        box.focus()
        started = time.perf_counter()
        await pilot.press("enter")
        while chat.generating or len(chat.conversation.messages) < 2:
            await pilot.pause(0.05)
        seconds = time.perf_counter() - started
        reply = chat.conversation.messages[-1]
        assert chat.views[-1].body == reply.text  # it reached the transcript
        return reply.tokens / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--tokens", type=int, default=1500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--strategy", default="sample")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["TERMLM_CONFIG_DIR"] = tmp  # the chat's settings file stays out of the way
        cli: list[float] = []
        tui: list[float] = []
        for _ in range(args.rounds):
            cli.append(generate_rate(args.model, args.strategy, args.seed, args.tokens))
            tui.append(asyncio.run(chat_rate(args.model, args.strategy, args.seed, args.tokens)))
    gen, chat = statistics.median(cli), statistics.median(tui)
    print(f"model {args.model.name}, {args.strategy}, seed {args.seed}, {args.tokens} tokens")
    print(f"generate: {gen:8.0f} tok/s   (rounds: {', '.join(f'{r:.0f}' for r in cli)})")
    print(f"chat:     {chat:8.0f} tok/s   (rounds: {', '.join(f'{r:.0f}' for r in tui)})")
    print(f"chat / generate: {chat / gen:.0%}")


if __name__ == "__main__":
    main()
