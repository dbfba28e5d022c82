"""`termlm train` and `termlm bakeoff`: thin wrappers over termlm.training."""

from __future__ import annotations

import json
import os
import shlex
import sys

import typer

from termlm.training.events import with_events

ARCH_HELP = "rnn, lstm, gru, attention or transformer"


def _command_line() -> str:
    return "termlm " + " ".join(shlex.quote(a) for a in sys.argv[1:] if a != "--debug")


@with_events
def train(
    corpus: str | None = typer.Argument(
        None, help="Text file to train on (the tutorial recipe has its own four lines)."
    ),
    level: str | None = typer.Option(
        None,
        "--level",
        "-l",
        help="Tokenizer: word, char or bpe (default: char; word for the tutorial).",
    ),
    arch: str | None = typer.Option(None, "--arch", "-a", help=f"Architecture: {ARCH_HELP}."),
    bidirectional: bool = typer.Option(
        False,
        "--bidirectional",
        help="Window model reading the context both ways (rnn, lstm, gru).",
    ),
    recipe: str = typer.Option(
        "stream",
        "--recipe",
        help="stream (the corpus as one token stream) or tutorial (n-gram prefixes per line, as in the original Keras tutorial).",
    ),
    context: int | None = typer.Option(None, "--context", help="Training window in tokens."),
    embed: int | None = typer.Option(None, "--embed", help="Embedding size."),
    hidden: int | None = typer.Option(
        None, "--hidden", help="Hidden size (d_model for the transformer)."
    ),
    layers: int | None = typer.Option(None, "--layers", help="Number of layers."),
    heads: int | None = typer.Option(None, "--heads", help="Attention heads (transformer)."),
    dropout: float | None = typer.Option(None, "--dropout", help="Dropout probability."),
    tie: bool | None = typer.Option(
        None, "--tie/--no-tie", help="Tie input and output embeddings (default: word level)."
    ),
    softmax: str | None = typer.Option(
        None,
        "--softmax",
        help="Output layer: full, or adaptive (clusters of rarer words; default at word level "
        "for rnn, lstm and gru).",
    ),
    cutoffs: str | None = typer.Option(
        None,
        "--cutoffs",
        help="Adaptive softmax: where the clusters start, e.g. 1000,3000 (default: chosen from "
        "the vocabulary size).",
    ),
    embed_dropout: float | None = typer.Option(
        None, "--embed-dropout", help="Drop whole words from the input embedding (rnn/lstm/gru)."
    ),
    weight_drop: float | None = typer.Option(
        None, "--weight-drop", help="DropConnect on the recurrent matrices (rnn/lstm/gru)."
    ),
    locked_dropout: bool | None = typer.Option(
        None,
        "--locked-dropout/--no-locked-dropout",
        help="One dropout mask per sequence, shared by every step (rnn/lstm/gru).",
    ),
    ar: float | None = typer.Option(
        None, "--ar", help="Activation regularisation: weight of mean(output^2) (rnn/lstm/gru)."
    ),
    tar: float | None = typer.Option(
        None, "--tar", help="Temporal activation regularisation: weight of mean(change^2)."
    ),
    lowercase: bool | None = typer.Option(
        None, "--lowercase/--keep-case", help="Word level: lowercase the text (default: lowercase)."
    ),
    punctuation: str | None = typer.Option(
        None, "--punctuation", help="Word level: strip (default) or keep punctuation as tokens."
    ),
    max_vocab: int | None = typer.Option(
        None, "--max-vocab", help="Word level: keep the most frequent words only."
    ),
    vocab_size: int | None = typer.Option(
        None, "--vocab-size", help="BPE level: vocabulary size (default 2000)."
    ),
    batch_size: int | None = typer.Option(None, "--batch-size", "-b", help="Sequences per step."),
    lr: float | None = typer.Option(
        None, "--lr", help="Peak learning rate (default: per architecture and level)."
    ),
    clip: float = typer.Option(1.0, "--clip", help="Clip gradients to this global norm (0: off)."),
    ema: float = typer.Option(
        0.0,
        "--ema",
        help="Validate, keep and export a moving average of the weights with this decay per "
        "step, e.g. 0.999 (default 0: none; it pays in long runs).",
    ),
    epochs: float | None = typer.Option(
        None, "--epochs", "-e", help="Passes over the training text (default 10)."
    ),
    minutes: float | None = typer.Option(
        None,
        "--minutes",
        "-m",
        help="Time budget in minutes (default: none; the run ends after --epochs; see "
        "--budget-clock).",
    ),
    budget_clock: str = typer.Option(
        "wall",
        "--budget-clock",
        help="What --minutes counts: wall (time as you wait) or cpu (this process's CPU time, "
        "fair between runs side by side on a busy machine).",
    ),
    max_steps: int | None = typer.Option(
        None, "--max-steps", help="Stop after this many optimizer steps."
    ),
    patience: int | None = typer.Option(
        None,
        "--patience",
        help="Stop after this many validations without improvement (default 5; 0: never).",
    ),
    eval_every: int | None = typer.Option(
        None, "--eval-every", help="Validate every N steps (default: 10 validations per run)."
    ),
    eval_seconds: float | None = typer.Option(
        None, "--eval-seconds", help="Validate every S seconds of training instead."
    ),
    eval_tokens: int | None = typer.Option(
        None,
        "--eval-tokens",
        help="Validation tokens per validation (default 32768, fewer to fit a --minutes budget; 0: all).",
    ),
    val_split: str = typer.Option(
        "tail",
        "--val-split",
        help="tail (the last --val-fraction) or interleaved (every k-th block of the text).",
    ),
    sample_prompt: str | None = typer.Option(
        None, "--sample-prompt", help="Start the samples shown during training with this text."
    ),
    weight_decay: float | None = typer.Option(
        None, "--weight-decay", help="AdamW weight decay (default 0.01; 0 for the tutorial)."
    ),
    warmup: float | None = typer.Option(
        None, "--warmup", help="Fraction of the run that warms the learning rate up (default 0.02)."
    ),
    val_fraction: float = typer.Option(
        0.1,
        "--val-fraction",
        help="Fraction of the corpus (by characters) held out for validation (see --val-split).",
    ),
    seed: int = typer.Option(
        1337, "--seed", help="Random seed (same seed, same result on the CPU)."
    ),
    threads: int | None = typer.Option(
        None,
        "--threads",
        help="CPU threads for torch (default: the free cores, cores minus the load average, 1 to 4).",
    ),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or mps."),
    out: str | None = typer.Option(
        None, "--out", "-o", help="Folder for run folders (default: runs)."
    ),
    name: str | None = typer.Option(
        None, "--name", help="Run name (default: corpus-level-arch-time)."
    ),
    resume: str | None = typer.Option(None, "--resume", help="Continue an interrupted run folder."),
    resume_corpus: str | None = typer.Option(
        None,
        "--corpus",
        help="With --resume: where the run's text is now, if it moved (checked by its SHA-256).",
    ),
    as_json: bool = typer.Option(
        False, "--json", help="End with one JSON object of results on stdout."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    init_from: str | None = typer.Option(
        None,
        "--init-from",
        help="Fine-tune: start from a trained model (a name from `termlm models`, an .onnx file "
        "or a run folder); its architecture and tokenizer are kept.",
    ),
    freeze_embeddings: bool = typer.Option(
        False,
        "--freeze-embeddings",
        help="With --init-from: keep the source's embedding rows fixed (new tokens still learn).",
    ),
    plot: bool = typer.Option(
        True, "--plot/--no-plot", help="At a terminal, a live loss plot under the progress bar."
    ),
    events: bool = typer.Option(
        False, "--events", help="Stream progress as JSON lines on stdout (see docs/json.md)."
    ),
) -> None:
    """Train a language model on a text file."""
    from termlm.errors import ConfigError
    from termlm.training import events as event_stream
    from termlm.training.options import build_options

    if resume_corpus is not None:
        if resume is None:
            raise ConfigError(
                "--corpus goes with --resume", "name the text file first: termlm train CORPUS.txt"
            )
        if corpus is not None and corpus != resume_corpus:
            raise ConfigError(f"two corpora given: {corpus} and --corpus {resume_corpus}")
        corpus = resume_corpus
    options = build_options(
        corpus=corpus,
        level=level,
        arch=arch,
        bidirectional=bidirectional,
        recipe=recipe,
        context=context,
        embed=embed,
        hidden=hidden,
        layers=layers,
        heads=heads,
        dropout=dropout,
        tie=tie,
        word={
            "softmax": softmax,
            "cutoffs": parse_cutoffs(cutoffs),
            "embed_dropout": embed_dropout,
            "weight_drop": weight_drop,
            "locked_dropout": locked_dropout,
            "ar": ar,
            "tar": tar,
        },
        lowercase=lowercase,
        punctuation=punctuation,
        max_vocab=max_vocab,
        vocab_size=vocab_size,
        batch_size=batch_size,
        lr=lr,
        clip=clip,
        ema=ema,
        epochs=epochs,
        minutes=minutes,
        budget_clock=budget_clock,
        max_steps=max_steps,
        patience=patience,
        eval_every=eval_every,
        eval_seconds=eval_seconds,
        eval_tokens=eval_tokens,
        val_split=val_split,
        sample_prompt=sample_prompt,
        **{
            name: value
            for name, value in (("weight_decay", weight_decay), ("warmup", warmup))
            if value is not None
        },
        val_fraction=val_fraction,
        seed=seed,
        threads=threads,
        device=device,
        out=out,
        name=name,
        command=_command_line(),
        init_from=init_from,
        freeze_embeddings=freeze_embeddings,
    )
    from pathlib import Path

    there = (corpus is None or Path(corpus).is_file()) and (resume is None or Path(resume).is_dir())
    if not quiet and there:  # sound options and files: say something before the slow import
        typer.echo("loading PyTorch...", err=True)
    from termlm.training.loop import TrainingInterrupted
    from termlm.training.loop import train as run_training

    try:
        result = run_training(
            options, show_progress=not quiet, resume=resume, resume_arch=arch, live_plot=plot
        )
    except TrainingInterrupted as stopped:
        from termlm.cli.color import styled

        event_stream.emit(
            "interrupted",
            run_dir=str(stopped.run_dir),
            step=stopped.step,
            message=stopped.message,
            hint=stopped.hint,
        )

        typer.echo(styled(stopped.message, sys.stderr, fg="yellow"), err=True)
        typer.echo(stopped.hint or "", err=True)
        raise typer.Exit(130) from None
    if os.environ.get("RANK", "0") != "0":
        return  # under torchrun, rank 0 reports for everyone
    if events:
        event_stream.emit("end", result=result)  # stdout carries the events alone
    elif as_json:
        typer.echo(json.dumps(result))
    else:
        typer.echo(
            f"val loss {result['val_loss']:.4f} nats/token, ppl {result['val_ppl']:.2f}"
            + (f", {result['val_bpc']:.3f} bits/char" if result.get("val_bpc") is not None else "")
            + f" {_val_label(result)}"
            + f"; {result['params']:,} params; {result['seconds']:.1f} s\n"
            + f"run saved in {result['run_dir']}; export it with: termlm export {result['run_dir']}"
        )
        from termlm.textsafe import safe_text

        typer.echo(f"sample: {safe_text(result['sample'])}")  # the raw text is in --json


def parse_cutoffs(text: str | None) -> list[int] | None:
    """``--cutoffs 1000,3000`` -> [1000, 3000]; None when not given."""
    if text is None:
        return None
    from termlm.errors import ConfigError

    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ConfigError(
            f"--cutoffs takes whole numbers separated by commas, got {text!r}",
            "for example --cutoffs 1000,3000",
        ) from None


def _val_label(result: dict[str, object]) -> str:
    """Which validation tokens the final figure read, and the figure seen during training."""
    total, read = result.get("val_tokens_total"), result.get("val_tokens")
    if not isinstance(total, int) or not isinstance(read, int):
        return ""
    label = (
        f"(all {total:,} validation tokens"
        if read >= total
        else f"(first {read:,} of {total:,} validation tokens"
    )
    during, during_tokens = result.get("val_loss_during"), result.get("val_tokens_during")
    if isinstance(during, float) and isinstance(during_tokens, int) and during_tokens != read:
        label += f"; {during:.4f} during training, on the first {during_tokens:,}"
    return label + ")"


@with_events
def bakeoff(
    corpus: str | None = typer.Argument(None, help="Text file to train on."),
    level: str = typer.Option("char", "--level", "-l", help="Tokenizer: word, char or bpe."),
    minutes: float | None = typer.Option(
        None, "--minutes", "-m", help="Time budget per architecture (default 2.5)."
    ),
    budget_clock: str = typer.Option(
        "wall",
        "--budget-clock",
        help="What --minutes counts: wall or cpu (this process's CPU time).",
    ),
    params: int | None = typer.Option(
        None, "--params", help="Size every model to about this many parameters."
    ),
    archs: str = typer.Option(
        "rnn,lstm,gru,attention,transformer,lstm-bi",
        "--archs",
        help="Comma-separated architectures (add -bi for the bidirectional window variant).",
    ),
    threads: int | None = typer.Option(
        None, "--threads", help="CPU threads for torch (default: the free cores, at most 4)."
    ),
    seed: int = typer.Option(1337, "--seed", help="Random seed."),
    out: str = typer.Option("runs/bakeoff", "--out", "-o", help="Folder for bakeoffs."),
    name: str | None = typer.Option(
        None, "--name", help="This bakeoff's folder under --out (default: corpus-level-time)."
    ),
    resume: str | None = typer.Option(
        None, "--resume", help="Continue a bakeoff folder: finished architectures are kept."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the leaderboard as JSON."),
    events: bool = typer.Option(
        False, "--events", help="Stream progress as JSON lines on stdout (see docs/json.md)."
    ),
) -> None:
    """Train every architecture under the same budget and print a leaderboard."""
    from termlm.training import events as event_stream
    from termlm.training.bakeoff import print_leaderboard, run_bakeoff

    if resume is None and corpus is None:
        from termlm.errors import ConfigError

        raise ConfigError("no corpus given", "name a text file, or --resume a bakeoff folder")
    rows = run_bakeoff(
        corpus,
        level=level,
        minutes=minutes,
        params=params,
        archs=[a.strip() for a in archs.split(",") if a.strip()],
        threads=threads,
        seed=seed,
        out=out,
        name=name,
        resume=resume,
        budget_clock=budget_clock,
        show_progress=not (as_json or events),
        on_row=None if as_json or events else lambda so_far: print_leaderboard(so_far, stderr=True),
    )
    if events:
        event_stream.emit("end", rows=rows)
    elif as_json:
        typer.echo(json.dumps(rows))
    else:
        print_leaderboard(rows)
