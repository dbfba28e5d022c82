"""Tokens per second that reach the screen in the chat, against `termlm generate`, side by side.

    python benchmarks/chat_speed.py exported/shakespeare-char.onnx --tokens 1500 --rounds 3

Both run the same model, strategy and seed in this process, alternating, ``--rounds`` times each:

* generate: the CLI's own path (its reply job and printing loop), output to /dev/null;
* chat: the Textual app run headless by ``run_test`` (side panel and views closed): from Enter to
  the moment the whole reply has been painted (the screen's first refresh after the reply is in
  the transcript; the app is left to settle after loading the model first, as a person takes a
  moment to type; nothing polls the app while it streams);
* chat, every tick: the same with the frame budget off (``FramePacer(share=1.0)``: the reply is
  drawn at every tick of the screen's timer, as before the budget existed).

The figures are medians; the ratio is the goal's measure (the chat at 80% or more of generate).
The main thread's CPU seconds per 1000 tokens say what the UI cost, whatever the machine's load;
the process's CPU seconds per 1000 tokens, and generate's over the arm's ("CPU of gen."), are the
same comparison by CPU time, which a loaded machine does not blur as it blurs wall time.
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


def generate_rate(model: Path, strategy: str, seed: int, tokens: int) -> tuple[float, float]:
    """(tokens per second, process CPU seconds per 1000 tokens)."""
    from termlm.cli.generate import _consume, events_in_thread
    from termlm.decoding import build_plugin_manager, generate
    from termlm.runtime.onnx_model import load_model

    lm = load_model(model)
    registry = build_plugin_manager(entry_points=False, user_dir=False)
    cancel = threading.Event()
    started, cpu = time.perf_counter(), time.process_time()
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
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    return len(result.token_ids) / seconds, 1000 * cpu / len(result.token_ids)


async def chat_rate(
    model: Path, strategy: str, seed: int, tokens: int, share: float | None
) -> tuple[float, float, float]:
    """(tokens per second on screen, UI thread and process CPU seconds per 1000 tokens)."""
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
            chat.call_after_refresh(done.set)  # and on the screen: its last frame is painted

        chat._finish = finished  # type: ignore[method-assign]
        started, cpu, total = time.perf_counter(), time.thread_time(), time.process_time()
        # Enter, as the terminal driver delivers it (``pilot.press`` would then poll the process
        # for idleness every 20 ms while the reply streams: the harness's cost, not the chat's)
        app.post_message(events.Key("enter", "\r"))
        await done.wait()  # no polling: the UI thread does only what the chat itself does
        seconds, cpu = time.perf_counter() - started, time.thread_time() - cpu
        total = time.process_time() - total
        reply = chat.conversation.messages[-1]
        assert chat.views[-1].body == reply.text  # it reached the transcript
        return reply.tokens / seconds, 1000 * cpu / reply.tokens, 1000 * total / reply.tokens


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
        cli_cpu: list[float] = []
        rates: dict[str, list[float]] = {name: [] for name in arms}
        costs: dict[str, list[float]] = {name: [] for name in arms}
        cpus: dict[str, list[float]] = {name: [] for name in arms}
        for _ in range(args.rounds):
            rate, cpu = generate_rate(args.model, args.strategy, args.seed, args.tokens)
            cli.append(rate)
            cli_cpu.append(cpu)
            for name, share in arms.items():
                rate, cost, cpu = asyncio.run(
                    chat_rate(args.model, args.strategy, args.seed, args.tokens, share)
                )
                rates[name].append(rate)
                costs[name].append(cost)
                cpus[name].append(cpu)
    gen, gen_cpu = statistics.median(cli), statistics.median(cli_cpu)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"model {args.model.name}, {args.strategy}, seed {args.seed}, {args.tokens} tokens")
    print(f"load average: {load}; medians of {args.rounds} alternating rounds")
    print(
        f"{'arm':<18}{'tok/s':>7}{'of gen.':>9}{'UI CPU/1k':>11}{'CPU/1k':>8}{'CPU of gen.':>13}"
        "   rounds (tok/s)"
    )
    print(
        f"{'generate':<18}{gen:7.0f}{'100%':>9}{'':>11}{gen_cpu:8.3f}{'100%':>13}   {_rounds(cli)}"
    )
    for name in arms:
        rate, cost = statistics.median(rates[name]), statistics.median(costs[name])
        cpu = statistics.median(cpus[name])
        print(
            f"{name:<18}{rate:7.0f}{rate / gen:9.0%}{cost:11.3f}{cpu:8.3f}{gen_cpu / cpu:13.0%}"
            f"   {_rounds(rates[name])}"
        )


def _rounds(values: list[float]) -> str:
    return ", ".join(f"{v:.0f}" for v in values)


if __name__ == "__main__":
    main()
