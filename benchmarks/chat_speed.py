"""Tokens per second that reach the screen in the chat, against `termlm generate`, side by side.

    python benchmarks/chat_speed.py exported/shakespeare-char.onnx --tokens 1500 --rounds 3

Both run the same model, strategy and seed in this process, alternating, ``--rounds`` times each:

* generate: the CLI's own path (its reply job and printing loop), output to /dev/null;
* chat: the Textual app run headless by ``run_test`` (side panel and views closed): from Enter to
  the moment the whole reply is in the transcript (the app is left to settle after loading the
  model first, as a person takes a moment to type; nothing polls the app while it streams);
* chat, every tick: the same with the frame budget off (``FramePacer(share=1.0)``: the reply is
  drawn at every tick of the screen's timer, as before the budget existed).

The figures are medians; the ratio is the goal's measure (the chat at 80% or more of generate).
The main thread's CPU seconds per 1000 tokens say what the UI cost, whatever the machine's load.
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
from typing import Any

PROMPT = "ROMEO:\n"


def generate_rate(model: Path, strategy: str, seed: int, tokens: int) -> float:
    from termlm.cli.generate import _consume, events_in_thread
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
            result = _consume(events_in_thread(lambda: events, cancel), stream=True)
        finally:
            sys.stdout = saved
    return len(result.token_ids) / (time.perf_counter() - started)


async def chat_rate(
    model: Path, strategy: str, seed: int, tokens: int, share: float | None
) -> tuple[float, float]:
    """(tokens per second on screen, UI thread CPU seconds per 1000 tokens)."""
    from textual import events

    from termlm.conversation.engine import OnnxEngine
    from termlm.conversation.settings import Settings
    from termlm.conversation.store import MEMORY, ChatStore
    from termlm.tui.app import ChatApp
    from termlm.tui.pacing import FramePacer
    from termlm.tui.widgets import PromptInput

    settings = Settings(seed=seed, strategy=strategy, max_tokens=tokens, panel=False)
    engine = OnnxEngine(entry_points=False, user_dir=False)
    app = ChatApp(engine, model=str(model), store=ChatStore(MEMORY), settings=settings)
    app.remember = False
    async with app.run_test(size=(120, 40)) as pilot:
        chat = app.chat
        while chat.model is None:
            await pilot.pause(0.01)
        if share is not None:
            chat.pacer = FramePacer(share=share)
        box = chat.query_one(PromptInput)
        box.load_text(PROMPT)
        box.focus()
        await pilot.pause(0.5)  # what the app does after loading a model is not the reply's
        done = asyncio.Event()
        finish = chat._finish

        def finished(job: Any, result: Any) -> None:  # the reply is in the transcript
            finish(job, result)
            done.set()

        chat._finish = finished  # type: ignore[method-assign]
        started, cpu = time.perf_counter(), time.thread_time()
        # Enter, as the terminal driver delivers it (``pilot.press`` would then poll the process
        # for idleness every 20 ms while the reply streams: the harness's cost, not the chat's)
        app.post_message(events.Key("enter", "\r"))
        await done.wait()  # no polling: the UI thread does only what the chat itself does
        seconds, cpu = time.perf_counter() - started, time.thread_time() - cpu
        reply = chat.conversation.messages[-1]
        assert chat.views[-1].body == reply.text  # it reached the transcript
        return reply.tokens / seconds, 1000 * cpu / reply.tokens


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
        arms: dict[str, float | None] = {"chat": None, "chat, every tick": 1.0}
        cli: list[float] = []
        rates: dict[str, list[float]] = {name: [] for name in arms}
        costs: dict[str, list[float]] = {name: [] for name in arms}
        for _ in range(args.rounds):
            cli.append(generate_rate(args.model, args.strategy, args.seed, args.tokens))
            for name, share in arms.items():
                rate, cost = asyncio.run(
                    chat_rate(args.model, args.strategy, args.seed, args.tokens, share)
                )
                rates[name].append(rate)
                costs[name].append(cost)
    gen = statistics.median(cli)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"model {args.model.name}, {args.strategy}, seed {args.seed}, {args.tokens} tokens")
    print(f"load average: {load}; medians of {args.rounds} alternating rounds")
    print(f"{'arm':<18}{'tok/s':>8}{'of generate':>13}{'UI CPU s/1k tok':>17}   rounds (tok/s)")
    print(f"{'generate':<18}{gen:8.0f}{'100%':>13}{'':>17}   {_rounds(cli)}")
    for name in arms:
        rate, cost = statistics.median(rates[name]), statistics.median(costs[name])
        print(f"{name:<18}{rate:8.0f}{rate / gen:13.0%}{cost:17.3f}   {_rounds(rates[name])}")


def _rounds(values: list[float]) -> str:
    return ", ".join(f"{v:.0f}" for v in values)


if __name__ == "__main__":
    main()
