"""The chat's remembered choices, in a small JSON file in the user config folder.

``TERMLM_CONFIG_DIR`` overrides the folder (tests). A missing or broken file gives the defaults.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MAX_BYTES = 1 << 20


def config_dir() -> Path:
    override = os.environ.get("TERMLM_CONFIG_DIR")
    if override:
        return Path(override)
    from platformdirs import user_config_dir

    return Path(user_config_dir("termlm"))


def settings_path() -> Path:
    return config_dir() / "chat.json"


@dataclass
class Settings:
    model: str | None = None
    strategy: str = "sample"
    options: dict[str, dict[str, Any]] = field(default_factory=dict)  # per strategy
    seed: int | None = None
    max_tokens: int = 200
    mode: str = "continue"
    user_name: str = "ROMEO"
    bot_name: str = ""
    panel: bool = False
    theme: str | None = None
    colour: str = "off"  # confidence colouring: off, probability, entropy
    presets: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> strategy, options

    def options_for(self, strategy: str) -> dict[str, Any]:
        return dict(self.options.get(strategy, {}))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Settings:
        defaults = cls()
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            value = data.get(f.name, getattr(defaults, f.name))
            default = getattr(defaults, f.name)
            if default is not None and value is not None and type(value) is not type(default):
                value = default  # a hand-edited file with a wrong type: keep the default
            values[f.name] = value
        return cls(**values)


def load_settings(path: Path | None = None) -> Settings:
    path = path or settings_path()
    try:
        if path.stat().st_size > MAX_BYTES:  # a settings file is a few kilobytes
            return Settings()
        with path.open("rb") as handle:
            data = json.loads(handle.read(MAX_BYTES).decode("utf-8"))
    except (OSError, ValueError):
        return Settings()
    return Settings.from_dict(data) if isinstance(data, dict) else Settings()


def save_settings(settings: Settings, path: Path | None = None) -> None:
    from termlm.atomic import atomic_write_text

    path = path or settings_path()
    with contextlib.suppress(OSError):  # settings are a convenience; never break the chat
        atomic_write_text(path, json.dumps(settings.to_dict(), indent=2, default=str))
