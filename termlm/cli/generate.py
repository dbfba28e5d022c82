"""`termlm generate`: continue a prompt with a model, streaming the text as it comes."""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import typer

from termlm.errors import ConfigError
from termlm.jsonout import dumps as json_dumps

if TYPE_CHECKING:
    from termlm.conversation.reply import ReplyJob
    from termlm.decoding.events import Event, GenerationResult


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


def events_in_thread(start: Callable[[], Iterator[Event]], cancel: threading.Event) -> ReplyJob:
    """Run a generation in the conversation core's reply job, so that Ctrl-C only asks it to stop.

    Read it with ``termlm.conversation.reply.stream``: the first Ctrl-C sets ``cancel`` and the
    generation ends at its next step with a DoneEvent ("cancelled") carrying the text so far; a
    second Ctrl-C gives up at once. ``job.wait`` joins the thread before the process exits.
    """
    from termlm.conversation.reply import ReplyJob

    job = ReplyJob(prompt="", state=None, strategy="", options={}, seed=0, max_tokens=0)
    job.cancel = cancel
    job.start(lambda _job: start())
    return job


def result_json(result: GenerationResult, tokenizer: Any, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "text": result.text,
        "tokens": list(result.token_ids),
        "token_text": [tokenizer.token_text(i) for i in result.token_ids],
        "logprobs": list(result.logprobs),
        "seconds": result.seconds,
        "stop_reason": result.stop_reason,
        **extra,
    }
    if result.n_best:
        out["n_best"] = [
            {"text": b.text, "score": b.score, "tokens": list(b.token_ids)} for b in result.n_best
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
    )
    for skipped in registry.skipped:  # a processor that cannot be built: left out, said once
        typer.echo(f"warning: {safe_line(skipped)}", err=True)
    from termlm.conversation.reply import stream

    job = events_in_thread(lambda: events, cancel)
    try:
        result = _consume(stream(job), stream=not as_json)
    except BrokenPipeError:  # `termlm generate ... | head`: the reader left, stop quietly
        cancel.set()
        job.wait(5)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        raise typer.Exit(0) from None
    if as_json:
        payload = result_json(
            result, tokenizer, model=lm.name, prompt_tokens=len(ids), prompt_truncated=dropped
        )
        typer.echo(json_dumps(payload, ensure_ascii=False))
    if result.stop_reason == "cancelled":
        typer.echo("stopped", err=True)
    if result.stop_reason == "error":
        from termlm.errors import PluginError

        raise PluginError(result.error or "generation failed")


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
