"""The list of commands. Each lives in its own module; this only gathers them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from termlm.cli.bench import bench
from termlm.cli.cache import cache
from termlm.cli.chat import chat
from termlm.cli.eval import eval_
from termlm.cli.export import export
from termlm.cli.generate import generate
from termlm.cli.models import models
from termlm.cli.plugins import plugins
from termlm.cli.runs import runs
from termlm.cli.score import score
from termlm.cli.train import bakeoff, train

COMMANDS: list[Callable[..., Any]] = [
    train,
    bakeoff,
    export,
    generate,
    score,
    eval_,
    models,
    bench,
    chat,
    plugins,
    runs,
    cache,
]
