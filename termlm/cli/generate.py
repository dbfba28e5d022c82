"""`termlm generate`: continue a prompt with a model, streaming the text as it comes."""

from __future__ import annotations

import collections
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import typer

from termlm.errors import ConfigError
from termlm.jsonout import dumps as json_dumps

if TYPE_CHECKING:
    from termlm.decoding.events import Event, GenerationResult

_END = object()
BATCH_SECONDS = 0.02  # how often streamed text reaches the terminal, at most 50 times a second


def parse_settings(items: list[str]) -> dict[str, str]:
    """`--set KEY=VALUE` pairs; values stay strings (the decoder's options coerce them)."""
    values: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(
                f"--set expects KEY=VALUE, got {item!r}",
                "for example: --set temperature=0.7 --set top_k=40",
            )
        values[key.strip()] = value.strip()
    return values


def read_prompt(prompt: str) -> str:
    return sys.stdin.read() if prompt == "-" else prompt


def events_in_thread(
    start: Callable[[], Iterator[Event]], cancel: threading.Event
) -> Iterator[Event]:
    """Run a generation in a worker thread so that Ctrl-C here only asks it to stop.

    The first Ctrl-C sets `cancel`; the generation ends at its next step with a DoneEvent
    ("cancelled") carrying the text so far. A second Ctrl-C gives up at once. Events are handed
    over in batches: this thread looks every `BATCH_SECONDS` (and at once when the generation
    ends), so a fast model is not slowed by a thread switch per token.
    """
    events: collections.deque[Any] = collections.deque()
    ended = threading.Event()

    def work() -> None:
        try:
            for event in start():
                events.append(event)
        except BaseException as exc:  # handed to the main thread, raised there
            events.append(exc)
        finally:
            events.append(_END)
            ended.set()

    def interrupted(signum: int, frame: Any) -> None:
        if cancel.is_set():
            raise KeyboardInterrupt
        cancel.set()

    previous = _on_sigint(interrupted)
    threading.Thread(target=work, name="termlm-generate", daemon=True).start()
    try:
        while True:
            while events:
                item = events.popleft()
                if item is _END:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
            try:
                ended.wait(BATCH_SECONDS)
            except KeyboardInterrupt:  # no handler of ours (not the main thread)
                if cancel.is_set():
                    raise
                cancel.set()
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


def _on_sigint(handler: Callable[[int, Any], None]) -> Any:
    """Install a Ctrl-C handler for the generation; the one it replaces (None: could not)."""
    if threading.current_thread() is not threading.main_thread():
        return None
    try:
        return signal.signal(signal.SIGINT, handler)
    except ValueError:
        return None


def result_json(result: GenerationResult, tokenizer: Any, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "text": result.text,
        "ids": list(result.token_ids),
        "tokens": list(result.token_ids),  # the older name of "ids", kept for existing readers
        "token_text": [tokenizer.token_text(i) for i in result.token_ids],
        "logprobs": list(result.logprobs),
        "seconds": result.seconds,
        "stop_reason": result.stop_reason,
        **extra,
    }
    if result.n_best:
        out["n_best"] = [
            {
                "text": b.text,
                "score": b.score,
                "ids": list(b.token_ids),
                "tokens": list(b.token_ids),
            }
            for b in result.n_best
        ]
    if result.error:
        out["error"] = result.error
    return out


def generate(
    model: str | None = typer.Argument(
        None, help="Model name (see `termlm models`) or .onnx path (default: the bundled model)."
    ),
    prompt: str = typer.Option("", "--prompt", "-p", help="Text to continue; '-' reads stdin."),
    max_tokens: int = typer.Option(200, "-n", "--max-tokens", help="Tokens to generate."),
    decoder: str = typer.Option(
        "sample", "--decoder", "-d", help="Decoding strategy (see `termlm plugins`)."
    ),
    settings: list[str] = typer.Option(
        [], "--set", help="Decoder option KEY=VALUE, repeatable (e.g. --set temperature=0.7)."
    ),
    seed: int | None = typer.Option(None, "--seed", help="Random seed: same seed, same text."),
    stop: list[str] = typer.Option([], "--stop", help="Stop when this text appears (repeatable)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of text."),
    as_jsonl: bool = typer.Option(
        False, "--jsonl", help="Stream JSON Lines: one event per token, then a done event."
    ),
    echo: bool = typer.Option(
        False, "--echo", help="Print the prompt before the continuation (text output only)."
    ),
    threads: int | None = typer.Option(None, "--threads", help="CPU threads for onnxruntime."),
    plugins_dir: list[str] = typer.Option(
        [], "--plugins-dir", help="Extra folder of decoding plugins (repeatable)."
    ),
) -> None:
    """Generate text from a prompt with an exported model (no PyTorch needed)."""
    from termlm.decoding import build_plugin_manager
    from termlm.decoding import generate as run_generation
    from termlm.runtime.onnx_model import load_model
    from termlm.runtime.registry import resolve_model

    if max_tokens < 0:
        raise ConfigError(f"-n must be 0 or more, got {max_tokens}")
    if as_json and as_jsonl:
        raise ConfigError("--json and --jsonl are two forms of the same output; choose one")
    options = parse_settings(settings)
    text = read_prompt(prompt)
    from termlm.textsafe import safe_line

    lm = load_model(resolve_model(model), threads=threads)
    name = safe_line(lm.name)  # read from the file: shown with its control characters escaped
    tokenizer = lm.tokenizer
    ids = list(tokenizer.encode(text)) if text else []
    unseen = sum(end - start for start, end in tokenizer.unknown_spans(text)) if text else 0
    if unseen:
        typer.echo(
            f"note: {unseen} of the prompt's {len(text)} characters never appeared in "
            f"{name}'s training text; it reads them as <unk>",
            err=True,
        )
    if not lm.stateful:
        typer.echo(
            f"note: {name} is a bidirectional window model: it cannot carry state from token "
            f"to token, so it re-reads its {lm.context}-token window for every new token",
            err=True,
        )
    dropped = max(0, len(ids) - lm.context)
    if dropped:
        typer.echo(
            f"note: the prompt is {len(ids)} tokens and {name} reads {lm.context}; "
            f"keeping the last {lm.context}",
            err=True,
        )
        ids = ids[dropped:]
    registry = build_plugin_manager(plugins_dirs=plugins_dir)
    for info in registry.infos():  # folders asked for by name: say what did not load
        if info.error and info.source.startswith("folder "):
            what = info.source if info.kind == "folder" else f"{info.source}: {info.name}"
            typer.echo(f"warning: plugin {safe_line(what)}: {safe_line(info.error)}", err=True)
    cancel = threading.Event()
    # validation happens here, before any thread: unknown decoder or bad option -> PluginError
    events = run_generation(
        lm,
        tokenizer,
        ids,
        registry=registry,
        strategy=decoder,
        options=options,
        max_new_tokens=max_tokens,
        stop=stop,
        seed=seed,
        cancel=cancel,
        alternatives=5 if as_jsonl else 0,  # only --jsonl shows them (its "top")
        live_beams=as_jsonl,
    )
    for skipped in registry.skipped:  # a processor that cannot be built: left out, said once
        typer.echo(f"warning: {safe_line(skipped)}", err=True)
    worker = events_in_thread(lambda: events, cancel)
    stream = worker
    if as_jsonl:
        from termlm.cli.jsonl import tee_jsonl

        stream = tee_jsonl(stream, sys.stdout)
    try:
        if echo and not (as_json or as_jsonl):
            sys.stdout.write(terminal_text(text) if _is_terminal(sys.stdout) else text)
        result = _consume(stream, stream=not (as_json or as_jsonl))
    except BrokenPipeError:  # `termlm generate ... | head`: the reader left, stop quietly
        cancel.set()
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        _drain(worker)
        raise typer.Exit(0) from None
    if as_json or as_jsonl:
        payload = result_json(
            result, tokenizer, model=lm.name, prompt_tokens=len(ids), prompt_truncated=dropped
        )
        if as_jsonl:
            payload = {"event": "done", **payload}
        typer.echo(json_dumps(payload, ensure_ascii=False))
    if result.stop_reason == "cancelled":
        typer.echo("stopped", err=True)
    if result.stop_reason == "error":
        from termlm.errors import PluginError

        raise PluginError(result.error or "generation failed")


def _drain(worker: Iterator[Event]) -> None:
    """Let a cancelled generation's thread end (one more step at most) before the process does:
    a thread still inside onnxruntime at exit aborts the process."""
    try:
        for _ in worker:
            pass
    except Exception:  # it was stopping anyway; the reader is gone
        pass


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def _raw(text: str) -> str:
    return text


def terminal_text(text: str) -> str:
    """Generated text as a terminal shows it: control characters escaped, layout kept."""
    from termlm.textsafe import safe_text

    return safe_text(text)


def _consume(events: Iterator[Event], *, stream: bool) -> GenerationResult:
    from termlm.decoding.events import DoneEvent, TokenEvent

    printed: list[str] = []
    out = sys.stdout
    show = terminal_text if _is_terminal(out) else _raw  # pipes get the bytes as generated
    for event in events:
        if isinstance(event, TokenEvent) and stream and event.text:
            out.write(show(event.text))
            out.flush()
            printed.append(event.text)
        elif isinstance(event, DoneEvent):
            result = event.result
            if stream:
                shown = "".join(printed)
                if result.text.startswith(shown) and len(result.text) > len(shown):
                    out.write(show(result.text[len(shown) :]))  # beam search settles at the end
                out.write("\n")
                out.flush()
            return result
    raise RuntimeError("the generation ended without a DoneEvent")
