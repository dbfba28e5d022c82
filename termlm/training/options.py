"""Options of one training run, with the defaults for each tokenizer level."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from termlm.bounds import check_seed, check_threads
from termlm.config import LEVELS, ModelConfig, check_limits
from termlm.errors import ConfigError
from termlm.training.clock import CLOCKS
from termlm.training.defaults import MODEL_KEYS, WORD_RECURRENT, WORD_VOCAB_CAP, arch_defaults

RECIPES = ("stream", "tutorial")
VAL_SPLITS = ("tail", "interleaved")
NEW_ROWS = ("sampled", "mean")  # how a fine-tune's new input embedding rows start
DEFAULT_PATIENCE = 5  # validations without improvement before an early stop (0: never)


@dataclass
class TrainOptions:
    corpus: str | None = None
    level: str = "char"
    recipe: str = "stream"
    model: ModelConfig = field(default_factory=ModelConfig)
    # tokenizer
    lowercase: bool | None = None
    punctuation: str | None = None
    max_vocab: int | None = None
    vocab_size: int | None = None
    # optimisation
    batch_size: int = 32
    lr: float = 3e-3
    weight_decay: float = 0.01
    warmup: float = 0.02  # fraction of the run spent warming up the learning rate
    min_lr_ratio: float = 0.1  # cosine decay ends at lr * min_lr_ratio
    clip: float = 1.0  # gradient clipping by global norm; 0 turns it off
    ema: float = 0.0  # decay of the weight average validated and kept (0: none; see averaging)
    epochs: float | None = None
    minutes: float | None = None
    budget_clock: str = "wall"  # what --minutes counts: wall seconds, or this process's CPU seconds
    max_steps: int | None = None
    patience: int | None = None  # early stopping: validations without improvement
    val_fraction: float = 0.1
    evals: int = 10  # validations per run
    eval_every: int | None = None  # validate every this many steps (instead of `evals` per run)
    eval_seconds: float | None = None  # or every this many seconds
    eval_tokens: int | None = (
        None  # validation tokens read by each validation (None: chosen, 0: all)
    )
    final_eval: bool = True  # the final figure reads every validation token (when it fits)
    val_split: str = "tail"  # tail: the last val_fraction; interleaved: every k-th block
    sample_temperature: float = 0.7  # samples during training
    given: list[str] = field(default_factory=list)  # options the user set (not sized to the data)
    seed: int = 1337
    threads: int | None = None
    device: str = "auto"
    # output
    out: str | None = None
    name: str | None = None
    sample_prompt: str | None = None
    command: str = ""
    stop_after_steps: int | None = None  # simulate an interruption (tests)
    # fine-tuning
    init_from: str | None = None  # a model name, an .onnx file or a run folder to start from
    freeze_embeddings: bool = False  # keep the source's embedding rows as they are
    new_rows: str = "sampled"  # new input embedding rows: "sampled" (like the known) or "mean"

    def validate(self) -> None:
        if self.level not in LEVELS:
            raise ConfigError(
                f"unknown level {self.level!r}", f"choose one of: {', '.join(LEVELS)}"
            )
        if self.recipe not in RECIPES:
            raise ConfigError(
                f"unknown recipe {self.recipe!r}", f"choose one of: {', '.join(RECIPES)}"
            )
        if not 0.0 < self.val_fraction < 1.0:
            raise ConfigError(
                f"--val-fraction must be between 0 and 1 (exclusive), got {self.val_fraction}"
            )
        for name in ("batch_size", "evals"):
            if getattr(self, name) <= 0:
                raise ConfigError(
                    f"--{name.replace('_', '-')} must be positive, got {getattr(self, name)}"
                )
        for name in ("lr",):
            if not getattr(self, name) > 0:
                raise ConfigError(f"--lr must be positive, got {self.lr}")
        if not 0.0 <= self.ema < 1.0:
            raise ConfigError(
                f"--ema must be in [0, 1) (0: no weight average), got {self.ema}",
                "for example --ema 0.999",
            )
        if self.clip < 0:
            raise ConfigError(f"--clip must be >= 0 (0 turns clipping off), got {self.clip}")
        if self.epochs is not None and not self.epochs > 0:
            raise ConfigError(f"--epochs must be positive, got {self.epochs}")
        if self.minutes is not None and not self.minutes > 0:
            raise ConfigError(f"--minutes must be positive, got {self.minutes}")
        if self.budget_clock not in CLOCKS:
            raise ConfigError(
                f"unknown --budget-clock {self.budget_clock!r}",
                f"choose one of: {', '.join(CLOCKS)}",
            )
        if self.max_steps is not None and self.max_steps <= 0:
            raise ConfigError(f"--max-steps must be positive, got {self.max_steps}")
        check_threads(self.threads)
        check_seed(self.seed)
        if self.patience is not None and self.patience < 0:
            raise ConfigError(f"--patience must be 0 (off) or more, got {self.patience}")
        if self.eval_every is not None and self.eval_every <= 0:
            raise ConfigError(f"--eval-every must be positive, got {self.eval_every}")
        if self.eval_seconds is not None and not self.eval_seconds > 0:
            raise ConfigError(f"--eval-seconds must be positive, got {self.eval_seconds}")
        if self.eval_tokens is not None and self.eval_tokens < 0:
            raise ConfigError(
                f"--eval-tokens must be 0 (all) or more, got {self.eval_tokens}",
                "for example --eval-tokens 32768",
            )
        if self.val_split not in VAL_SPLITS:
            raise ConfigError(
                f"unknown --val-split {self.val_split!r}", f"choose one of: {', '.join(VAL_SPLITS)}"
            )
        if not 0.0 <= self.warmup < 1.0:
            raise ConfigError(f"--warmup must be a fraction in [0, 1), got {self.warmup}")
        if self.weight_decay < 0:
            raise ConfigError(f"--weight-decay must be >= 0, got {self.weight_decay}")
        if not self.sample_temperature > 0:
            raise ConfigError(
                f"the sample temperature must be positive, got {self.sample_temperature}"
            )
        if self.device not in ("auto", "cpu", "cuda", "mps"):
            raise ConfigError(f"unknown device {self.device!r}", "choose auto, cpu, cuda or mps")
        if self.new_rows not in NEW_ROWS:
            raise ConfigError(
                f"unknown new-row start {self.new_rows!r}", f"choose one of: {', '.join(NEW_ROWS)}"
            )
        if self.freeze_embeddings and not self.init_from:
            raise ConfigError(
                "--freeze-embeddings keeps a trained model's embeddings; it needs --init-from",
                "add --init-from MODEL, or drop --freeze-embeddings",
            )
        self.model.validate()
        check_limits(self.model)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["model"] = self.model.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainOptions:
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["model"] = ModelConfig.from_dict(data.get("model", {}))
        return cls(**values)


# Defaults per level, chosen by measurement (see the README's tables).
LEVEL_DEFAULTS: dict[str, dict[str, Any]] = {
    "char": {
        "arch": "lstm",
        "embed": 64,
        "hidden": 256,
        "layers": 1,
        "context": 64,
        "dropout": 0.0,
    },
    "word": {
        "arch": "lstm",
        "embed": 256,
        "hidden": 256,
        "layers": 1,
        "context": 32,
        "dropout": 0.3,
        "tie": True,
    },
    "bpe": {
        "arch": "lstm",
        "embed": 128,
        "hidden": 384,
        "layers": 1,
        "context": 96,
        "dropout": 0.1,
    },
}

LEVEL_LR = {"char": 5e-3, "word": 3e-3, "bpe": 3e-3}
LEVEL_BATCH = {"char": 16, "word": 16, "bpe": 32}

# The tutorial: Embedding(64) -> LSTM(150) -> Dense softmax, Adam, 200 epochs, batch 32.
TUTORIAL_LINES = (
    "To be, or not to be, that is the question:\n"
    "Whether 'tis nobler in the mind to suffer\n"
    "The slings and arrows of outrageous fortune,\n"
    "Or to take arms against a sea of troubles...\n"
)


def build_options(
    *,
    corpus: str | None,
    level: str | None,
    arch: str | None,
    recipe: str = "stream",
    bidirectional: bool = False,
    context: int | None = None,
    embed: int | None = None,
    hidden: int | None = None,
    layers: int | None = None,
    heads: int | None = None,
    dropout: float | None = None,
    tie: bool | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    epochs: float | None = None,
    word: dict[str, Any] | None = None,
    **rest: Any,
) -> TrainOptions:
    """Options from the command line: what is not given comes from the level's (or recipe's) defaults.

    ``word``: the output layer and regularisation values given (``WORD_KEYS``; None: not given).
    """
    word_given = {k: v for k, v in (word or {}).items() if v is not None}
    if word_given and rest.get("init_from"):
        raise ConfigError(
            f"--{next(iter(word_given)).replace('_', '-')} shapes a new model; a fine-tuned one "
            "keeps its source's",
            "drop it, or train from scratch without --init-from",
        )
    if rest.get("init_from"):  # fine-tuning: the source model decides the architecture
        from termlm.training.init_from import finetune_options

        return finetune_options(
            corpus=corpus,
            level=level,
            arch=arch,
            recipe=recipe,
            bidirectional=bidirectional,
            context=context,
            embed=embed,
            hidden=hidden,
            layers=layers,
            heads=heads,
            dropout=dropout,
            tie=tie,
            batch_size=batch_size,
            lr=lr,
            epochs=epochs,
            **rest,
        )
    tutorial = recipe == "tutorial"
    level = level or ("word" if tutorial else "char")
    if level not in LEVELS:
        raise ConfigError(f"unknown level {level!r}", f"choose one of: {', '.join(LEVELS)}")
    if tutorial:
        # Embedding(64) -> LSTM(150) -> Dense, Adam, 200 epochs (faster here: a higher, constant lr).
        base: dict[str, Any] = {
            "arch": "lstm",
            "embed": 64,
            "hidden": 150,
            "layers": 1,
            "context": 64,
            "dropout": 0.0,
        }
        default_lr, default_epochs, default_batch = 0.01, 200.0, 32
        rest.setdefault("warmup", 0.0)
        rest.setdefault("min_lr_ratio", 1.0)
        rest.setdefault("weight_decay", 0.0)
        rest.setdefault("evals", 4)
    else:
        base = dict(LEVEL_DEFAULTS[level])
        default_lr, default_epochs = LEVEL_LR[level], None
        own = arch_defaults(level, arch or base["arch"])
        default_lr = own.pop("lr", default_lr)
        default_batch = own.pop("batch_size", LEVEL_BATCH[level])
        base.update(own)
        if level == "word":
            rest.setdefault("max_vocab", None)
            if rest["max_vocab"] is None and rest.get("vocab_size") is None:
                rest["max_vocab"] = WORD_VOCAB_CAP
        rest.setdefault("patience", None)
        if rest["patience"] is None:
            rest["patience"] = DEFAULT_PATIENCE
    explicit = [
        name
        for name, value in (
            ("context", context),
            ("embed", embed),
            ("hidden", hidden),
            ("layers", layers),
            ("heads", heads),
            ("dropout", dropout),
            ("tie", tie),
            *word_given.items(),
            ("batch_size", batch_size),
            ("lr", lr),
        )
        if value is not None
    ]
    if tutorial:
        explicit = [*MODEL_KEYS, "batch_size", "lr"]
    given = {
        "arch": arch,
        "context": context,
        "embed": embed,
        "hidden": hidden,
        "layers": layers,
        "heads": heads,
        "dropout": dropout,
    }
    model_values = {**base, **{k: v for k, v in given.items() if v is not None}, **word_given}
    if bidirectional:  # a window model keeps the plain output layer and dropout
        for key in WORD_RECURRENT:
            if key not in word_given:
                model_values.pop(key, None)
    model_values["tie"] = tie if tie is not None else bool(model_values.get("tie", False))
    model = ModelConfig(**model_values, bidirectional=bidirectional)
    options = TrainOptions(
        corpus=corpus,
        level=level,
        recipe=recipe,
        model=model,
        batch_size=batch_size if batch_size is not None else default_batch,
        lr=lr if lr is not None else default_lr,
        epochs=epochs if epochs is not None else default_epochs,
        given=explicit,
        **rest,
    )
    options.validate()
    return options
