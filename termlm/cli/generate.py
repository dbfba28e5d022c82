"""`termlm generate`: continue a prompt with a model, streaming the text as it comes."""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, TextIO

import typer

from termlm.bounds import check_seed, check_threads
from termlm.errors import ConfigError, TermlmError
from termlm.jsonout import dumps as json_dumps

if TYPE_CHECKING:
    from termlm.decoding.events import Event, GenerationResult

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


PROMPT_LIMIT = 16 << 20  # bytes of prompt read from stdin; a model reads far fewer tokens


def read_prompt(prompt: str, limit: int = PROMPT_LIMIT) -> str:
    """The prompt, or standard input for '-': read in chunks, refused past ``limit`` bytes."""
    if prompt != "-":
        return prompt
    if sys.stdin is None:
        raise ConfigError("-p -: standard input is closed", "give the prompt with -p TEXT")
    binary = getattr(sys.stdin, "buffer", None)
    if binary is None:  # a text stream only (tests, embedding): read characters
        parts: list[str] = []
        size = 0
        while size <= limit:
            part = sys.stdin.read(1 << 20)
            if not part:
                return "".join(parts)
            parts.append(part)
            size += len(part)
    else:
        data = bytearray()
        while len(data) <= limit:
            chunk = binary.read1(1 << 20) if hasattr(binary, "read1") else binary.read(1 << 20)
            if not chunk:
                return data.decode(sys.stdin.encoding or "utf-8", errors="replace")
            data += chunk
    raise ConfigError(
        f"-p -: standard input gave more than {limit >> 20} MB, the most termlm reads as a prompt",
        "the model reads only the prompt's last tokens: give the end of the text "
        "(for example tail -c 100000 FILE | termlm generate -p -)",
    )


def events_in_thread(
    start: Callable[[], Iterator[Event]], cancel: threading.Event
) -> Iterator[Event]:
    """Run a generation in the conversation core's reply job, so that Ctrl-C only asks it to stop.

    The first Ctrl-C sets `cancel`; the generation ends at its next step with a DoneEvent
    ("cancelled") carrying the text so far. A second Ctrl-C gives up at once. Events are handed
    over in batches: this thread looks every `BATCH_SECONDS` (and at once when the generation
    ends), so a fast model is not slowed by a thread switch per token. However the reading ends
    (done, an error, a reader that went away), the generation is stopped and its thread joined
    before this returns: a thread still inside onnxruntime when the process exits aborts it.
    """
    from termlm.conversation.reply import ReplyJob, stream

    job = ReplyJob(prompt="", state=None, strategy="", options={}, seed=0, max_tokens=0)
    job.cancel = cancel

    def interrupted(signum: int, frame: Any) -> None:
        if cancel.is_set():
            raise KeyboardInterrupt
        cancel.set()

    previous = _on_sigint(interrupted)
    job.start(lambda _job: start())
    try:
        yield from stream(job, batch=BATCH_SECONDS)
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
        if not job.finished:
            cancel.set()
            job.wait(5.0)


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
    if sys.stdout is None or not _is_open(sys.stdout):
        raise TermlmError(
            "standard output is closed: the generated text has nowhere to go",
            "run it with its output on the terminal, in a file (> FILE) or in a pipe",
        )
    check_threads(threads)
    check_seed(seed)
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
    except OSError as exc:  # `> /dev/full`, a disk that filled up: stop the thread, then say so
        cancel.set()
        _silence_stdout()
        _drain(worker)
        raise TermlmError(
            f"cannot write the generated text to standard output: {exc.strerror or exc}",
            "check where the output goes (free space, a file that can be written)",
        ) from None
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


def _is_open(stream: TextIO) -> bool:
    """False for a stream on a file descriptor that is closed; a stream without one is open."""
    try:
        fd = stream.fileno()
    except (OSError, ValueError):
        return True  # not a file (captured output, a StringIO)
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def _silence_stdout() -> None:
    """Point standard output at /dev/null: Python's last flush at exit must not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


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


def _consume(events: Iterable[Event], *, stream: bool) -> GenerationResult:
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
