"""Read a training run folder: config, tokenizer and weights (safetensors, never pickle)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from termlm.config import ModelConfig, config_from_file
from termlm.errors import ConfigError, RunError
from termlm.training.models import LanguageModel, build_model

WEIGHTS = ("best.safetensors", "last.safetensors")


@dataclass
class RunInfo:
    """What a run folder says about itself, besides the weights and the tokenizer."""

    name: str
    path: Path
    config: ModelConfig
    weights: Path
    train: dict[str, Any] = field(default_factory=dict)
    corpus: dict[str, Any] = field(default_factory=dict)
    result: dict[str, Any] = field(default_factory=dict)
    init_from: dict[str, Any] | None = None  # the model it was fine-tuned from

    @property
    def level(self) -> str | None:
        level = self.train.get("level")
        return level if isinstance(level, str) else None

    def _portable_command(self) -> str | None:
        """The training command with the corpus named by its file name, not this machine's path."""
        command = self.result.get("command")
        corpus_path, corpus_name = self.train.get("corpus"), self.corpus.get("name")
        if (
            isinstance(command, str)
            and isinstance(corpus_path, str)
            and isinstance(corpus_name, str)
        ):
            return command.replace(corpus_path, corpus_name)
        return command if isinstance(command, str) else None

    def card(self) -> dict[str, Any]:
        """The provenance card of a model exported from this run."""
        result = self.result
        return {
            "corpus": self.corpus.get("name"),
            "corpus_sha256": self.corpus.get("sha256"),
            "corpus_chars": self.corpus.get("chars"),
            "val_loss": result.get("val_loss"),
            "val_ppl": result.get("val_ppl"),
            "val_bpc": result.get("val_bpc"),
            "params": result.get("params"),
            "command": self._portable_command(),
            "train_seconds": result.get("train_seconds", result.get("seconds")),
            "sample": result.get("sample"),
            "run": self.name,
            "val_split": self.train.get("val_split", "tail"),
            "val_fraction": self.train.get("val_fraction", 0.1),
            **({"init_from": self.init_from} if self.init_from else {}),
        }


def _read_json(path: Path, what: str) -> Any:
    if not path.is_file():
        raise RunError(
            f"the run folder {str(path.parent)!r} has no {path.name} ({what})",
            "is training finished? a run folder is written by `termlm train`",
        )
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RunError(
            f"cannot read {str(path)!r}: {exc}", "the file is damaged; train the run again"
        ) from None


def _dict_or_none(value: Any) -> dict[str, Any] | None:
    return dict(value) if isinstance(value, dict) else None


def load_run(run_dir: str | Path) -> tuple[LanguageModel, dict[str, Any], RunInfo]:
    """The run's model (best weights, eval mode), its tokenizer JSON, and its description."""
    from safetensors.torch import load_model

    run_dir = Path(run_dir).expanduser()
    if not run_dir.is_dir():
        raise RunError(
            f"run folder {str(run_dir)!r} does not exist",
            "give the folder `termlm train` wrote (runs/NAME by default)",
        )
    config_json = _read_json(run_dir / "config.json", "the model's configuration")
    if not isinstance(config_json, dict) or not isinstance(config_json.get("model"), dict):
        raise RunError(
            f"{str(run_dir / 'config.json')!r} has no 'model' section",
            "it was not written by `termlm train`; train the run again",
        )
    try:
        config = config_from_file(config_json["model"])
    except ConfigError as exc:
        raise RunError(
            f"{str(run_dir / 'config.json')!r}: {exc.message}",
            "the file was edited or damaged; train the run again",
        ) from None
    try:
        model = build_model(config)
    except (ConfigError, TypeError) as exc:
        raise RunError(f"the run's model configuration is not usable: {exc}") from None
    tokenizer = _read_json(run_dir / "tokenizer.json", "the tokenizer")
    if not isinstance(tokenizer, dict):
        raise RunError(f"{str(run_dir / 'tokenizer.json')!r} is not a JSON object")
    weights = next((run_dir / n for n in WEIGHTS if (run_dir / n).is_file()), None)
    if weights is None:
        raise RunError(
            f"the run folder {str(run_dir)!r} has no weights ({' or '.join(WEIGHTS)})",
            "the run has not saved a checkpoint yet: let training reach its first evaluation",
        )
    try:
        missing, unexpected = load_model(model, str(weights), strict=False)
    except Exception as exc:  # safetensors raises several kinds for damaged or mismatched files
        raise RunError(
            f"the weights in {str(weights)!r} do not fit the run's config.json: {exc}"
        ) from None
    if missing or unexpected:
        raise RunError(
            f"the weights in {str(weights)!r} do not fit the run's config.json "
            f"(missing {sorted(missing)[:3]}, unexpected {sorted(unexpected)[:3]})",
            "config.json and the weights come from different runs; train the run again",
        )
    model.eval()
    result_path = run_dir / "result.json"
    result = _read_json(result_path, "the results") if result_path.is_file() else {}
    info = RunInfo(
        name=run_dir.resolve().name,
        path=run_dir,
        config=config,
        weights=weights,
        train=dict(config_json.get("train") or {}),
        corpus=dict(config_json.get("corpus") or {}),
        result=dict(result) if isinstance(result, dict) else {},
        init_from=_dict_or_none(config_json.get("init_from")),
    )
    return model, tokenizer, info
