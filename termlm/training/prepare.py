"""From options to what the loop needs: corpus, tokenizer, token ids, batches and the run folder."""

from __future__ import annotations

import re
import stat
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from termlm.config import ModelConfig
from termlm.corpus import Corpus, read_corpus
from termlm.errors import CorpusError, RunError
from termlm.tokenizers import Tokenizer, fit_tokenizer, tokenizer_from_json
from termlm.tokenizers.bulk import encode_large
from termlm.training.checkpoint import read_json, write_json
from termlm.training.data import PrefixBatches, StreamBatches, WindowBatches
from termlm.training.defaults import MODEL_KEYS, fit_to_data
from termlm.training.options import TUTORIAL_LINES, TrainOptions
from termlm.training.progress import BIG_CORPUS_BYTES, stage_progress
from termlm.training.split import line_start_prompt, split_for_validation

if TYPE_CHECKING:
    from termlm.training.init_from import FineTuneStart


@dataclass
class Prepared:
    options: TrainOptions
    corpus: Corpus
    tokenizer: Tokenizer
    model_config: ModelConfig
    batches: StreamBatches | PrefixBatches
    val_ids: np.ndarray
    val_chars: int
    run_dir: Path
    sample_prompt: str
    final_sample_tokens: int
    finetune: FineTuneStart | None = None  # set by --init-from
    notes: list[str] = field(default_factory=list)  # the defaults fitted to the data, and why
    split_description: str = ""

    def write_run_files(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.options.model = self.model_config
        lineage = {"init_from": self.finetune.lineage} if self.finetune else {}
        write_json(
            self.run_dir / "config.json",
            {
                "model": self.model_config.to_dict(),
                "train": self.options.to_dict(),
                "corpus": {
                    "name": self.corpus.name,
                    "path": _absolute(self.options.corpus),
                    "sha256": self.corpus.sha256,
                    "chars": len(self.corpus.text),
                    "encoding": self.corpus.encoding,
                },
                **lineage,
            },
        )
        write_json(self.run_dir / "tokenizer.json", self.tokenizer.to_json())


def _absolute(path: str | None) -> str | None:
    """Where the corpus is, whatever folder a later --resume runs from."""
    return str(Path(path).expanduser().absolute()) if path else None


def _read(path: str, show_progress: bool, say: Callable[[str], None] | None = None) -> Corpus:
    """read_corpus, with a progress bar on stderr for a corpus over BIG_CORPUS_BYTES."""
    if say is not None and Path(path).is_file():  # a missing corpus: only the error is said
        say(f"reading {path} ({_size(path) / 2**20:,.1f} MB)")
    big = show_progress and _size(path) > BIG_CORPUS_BYTES
    with stage_progress(big, "reading") as advance:
        return read_corpus(path, on_progress=advance)


def _size(path: str) -> int:
    """The file's size; for a pipe, FIFO or device (size unknown) more than BIG_CORPUS_BYTES."""
    try:
        info = Path(path).stat()
    except OSError:
        return 0  # read_corpus says what is wrong
    return info.st_size if stat.S_ISREG(info.st_mode) else BIG_CORPUS_BYTES + 1


def _tutorial_corpus(options: TrainOptions) -> Corpus:
    if options.corpus:
        return read_corpus(options.corpus)
    return Corpus(
        text=TUTORIAL_LINES, name="tutorial (four lines of Hamlet)", sha256="", encoding="utf-8"
    )


def _run_name(options: TrainOptions, corpus: Corpus) -> str:
    if options.name:
        return options.name
    stem = re.sub(r"[^A-Za-z0-9_-]+", "-", Path(corpus.name).stem).strip("-") or "corpus"
    if options.recipe == "tutorial":
        stem = "tutorial"
    arch = options.model.arch + ("-bi" if options.model.bidirectional else "")
    return f"{stem}-{options.level}-{arch}-{datetime.now(timezone.utc):%Y%m%d-%H%M%S}"


def prepare(
    options: TrainOptions,
    resume_dir: Path | None = None,
    resume_arch: str | None = None,
    *,
    show_progress: bool = False,
    writes_files: bool = True,
    say: Callable[[str], None] | None = None,
) -> Prepared:
    stored: dict[str, Any] = {}
    if resume_dir is not None:
        options, tokenizer_json, stored = _load_run_options(resume_dir, options, resume_arch)
    options.validate()
    if options.recipe == "tutorial":
        corpus = _tutorial_corpus(options)
    else:
        if not options.corpus:
            raise CorpusError("no corpus given", "name a text file: termlm train CORPUS.txt")
        corpus = _read(options.corpus, show_progress, say)
    if resume_dir is not None:
        _check_resumed_corpus(resume_dir, corpus, options.corpus, stored, writes_files)
    if corpus.note:
        print(f"note: {corpus.note}", file=sys.stderr)

    extension = None
    if say is not None:
        say(f"tokenizing {len(corpus.text):,} characters at the {options.level} level")
    if resume_dir is not None:
        tokenizer = tokenizer_from_json(tokenizer_json)
    elif options.init_from:
        from termlm.training.init_from import find_source
        from termlm.training.vocab import extend_vocabulary

        source = find_source(options.init_from)
        extension = extend_vocabulary(
            source.tokenizer_json, corpus.text, max_vocab=options.max_vocab
        )
        tokenizer = extension.tokenizer
    else:
        tokenizer = fit_tokenizer(
            options.level,
            corpus.text,
            lowercase=options.lowercase,
            punctuation=options.punctuation,
            max_vocab=options.max_vocab,
            vocab_size=options.vocab_size,
        )
    config = ModelConfig.from_dict(options.model.to_dict())
    config.vocab_size = tokenizer.vocab_size
    notes: list[str] = []
    split_description = ""

    if options.recipe == "tutorial":
        lines = [tokenizer.encode(line) for line in corpus.text.splitlines() if line.strip()]
        batches: StreamBatches | PrefixBatches = PrefixBatches(
            lines, options.batch_size, options.seed, tokenizer.pad_id
        )
        config.context = batches.context
        val_ids = np.zeros(0, dtype=np.int64)
        val_chars = 0
        sample_prompt = "To be or not"
        final_tokens = 10
    else:
        train_text, val_text, split_description = split_for_validation(
            corpus.text, options.val_fraction, options.val_split
        )
        big = show_progress and len(corpus.text) > BIG_CORPUS_BYTES
        with stage_progress(big, "tokenizing") as advance:
            # compact ids [n] (uint16 for vocabularies up to 65,536), encoded piece by piece
            train_ids = encode_large(tokenizer, train_text, on_progress=advance)
        del train_text
        val_ids = encode_large(tokenizer, val_text).astype(np.int64)
        if len(train_ids) < 2:
            raise CorpusError(
                f"the corpus is too short to train on ({len(train_ids)} training tokens)",
                "use a longer text, or a smaller --val-fraction",
            )
        if len(val_ids) < 2:
            raise CorpusError(
                f"the corpus is too short for a validation split ({len(val_ids)} validation tokens at --val-fraction {options.val_fraction})",
                "use a longer text, or a larger --val-fraction",
            )
        if resume_dir is None:
            sized, batch_size, notes = fit_to_data(
                config.to_dict(),
                level=options.level,
                # fine-tuning: the source's sizes are given (a short text must not shrink them)
                given=set(options.given) | (set(MODEL_KEYS) if options.init_from else set()),
                vocab_size=tokenizer.vocab_size,
                train_tokens=len(train_ids),
                context=config.context,
                batch_size=options.batch_size,
            )
            config = ModelConfig.from_dict(sized)
            options.batch_size = batch_size
        if config.context > len(train_ids) - 1:
            print(
                f"note: the training text has only {len(train_ids)} tokens; "
                f"the context is cut from {config.context} to {len(train_ids) - 1}",
                file=sys.stderr,
            )
            config.context = len(train_ids) - 1
        cls = StreamBatches if config.stateful else WindowBatches
        batches = cls(train_ids, config.context, options.batch_size, options.seed)
        val_chars = len(val_text)
        sample_prompt = options.sample_prompt or line_start_prompt(val_text)
        final_tokens = 200 if options.level == "char" else 60
    config.validate()
    finetune = None
    if extension is not None:
        from termlm.training.init_from import begin

        finetune = begin(source, extension, config, options, announce=writes_files)
    elif resume_dir is not None and options.init_from:
        from termlm.training.init_from import resumed

        finetune = resumed(read_json(resume_dir / "config.json"), options)

    if resume_dir is not None:
        run_dir = resume_dir
    else:
        base = Path(options.out) if options.out else Path("runs")
        run_dir = base / _run_name(options, corpus)
        # under torchrun only rank 0 writes: the others must not trip over its files
        if writes_files and run_dir.exists() and any(run_dir.iterdir()):
            raise RunError(
                f"the run folder {run_dir} already exists", "pick another --name, or --resume it"
            )
    return Prepared(
        options=options,
        corpus=corpus,
        tokenizer=tokenizer,
        model_config=config,
        batches=batches,
        val_ids=val_ids,
        val_chars=val_chars,
        run_dir=run_dir,
        sample_prompt=sample_prompt,
        final_sample_tokens=final_tokens,
        finetune=finetune,
        notes=notes,
        split_description=split_description,
    )


def _find_corpus(run_dir: Path, stored: dict[str, Any], as_given: str | None) -> str | None:
    """The run's corpus: its absolute path, else the path as it was given (runs of old)."""
    for candidate in (stored.get("path"), as_given):
        if isinstance(candidate, str) and candidate and Path(candidate).exists():
            return candidate
    where = stored.get("path") or as_given
    if not where:
        return None  # the tutorial's own lines
    sha = stored.get("sha256")
    raise CorpusError(
        f"--resume {run_dir}: the run's corpus {where} is not there any more",
        f"point at it: termlm train --resume {run_dir} --corpus PATH"
        + (f" (a copy of it is fine: it is checked by its SHA-256, {sha[:16]}...)" if sha else ""),
    )


def _check_resumed_corpus(
    run_dir: Path, corpus: Corpus, path: str | None, stored: dict[str, Any], writes_files: bool
) -> None:
    """The text read on --resume must be the text the run began with (by SHA-256)."""
    sha = stored.get("sha256")
    if not isinstance(sha, str) or not sha or not path:
        return  # the tutorial's lines, or a run that did not record its corpus
    if corpus.sha256 != sha:
        raise CorpusError(
            f"--resume {run_dir}: {path} is not the text the run began with "
            f"(its SHA-256 is {corpus.sha256[:16]}..., the run's is {sha[:16]}...)",
            f"give the original text: termlm train --resume {run_dir} --corpus PATH",
        )
    absolute = _absolute(path)
    if writes_files and stored.get("path") != absolute:  # found elsewhere: remember where
        config_path = run_dir / "config.json"
        config = read_json(config_path)
        config.setdefault("corpus", {})["path"] = absolute
        write_json(config_path, config)


def _load_run_options(
    run_dir: Path, given: TrainOptions, given_arch: str | None
) -> tuple[TrainOptions, dict[str, Any], dict[str, Any]]:
    """The options a run was started with, and what it recorded of its corpus; budgets given
    again on the command line win, and a corpus given again says where the run's corpus is."""
    if not run_dir.is_dir():
        raise RunError(f"no run folder at {run_dir}", "give the folder that `termlm train` printed")
    config = read_json(run_dir / "config.json")
    tokenizer_json = read_json(run_dir / "tokenizer.json")
    options = TrainOptions.from_dict(config.get("train", {}))
    options.model = ModelConfig.from_dict(config["model"])
    if given_arch is not None and given_arch != options.model.arch:
        raise RunError(
            f"--resume {run_dir}: that run trains a {options.model.arch}, not a {given_arch}",
            "drop --arch, or start a new run",
        )
    options.stop_after_steps = given.stop_after_steps
    for name in ("epochs", "minutes", "max_steps", "threads"):
        value = getattr(given, name)
        if value is not None:
            setattr(options, name, value)
    stored = config.get("corpus") if isinstance(config.get("corpus"), dict) else {}
    if given.corpus:
        if not Path(given.corpus).exists():
            raise CorpusError(
                f"corpus not found: {given.corpus}", "check the path to the run's text file"
            )
        options.corpus = given.corpus
    elif options.recipe != "tutorial" or options.corpus:
        options.corpus = _find_corpus(run_dir, stored, options.corpus)
    return options, tokenizer_json, stored
