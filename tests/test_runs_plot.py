"""The curve plot's plain text, compared with a stored copy (deterministic size, no colour).

Set TERMLM_UPDATE_SNAPSHOTS=1 to write the stored copies again after a deliberate change.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from termlm.runs.folder import Run, read_run
from termlm.runs.live import LivePlot
from termlm.runs.plot import points_table
from termlm.runs.report import curves_text

SNAPSHOTS = Path(__file__).parent / "snapshots_text"


def make_run(folder: Path, arch: str, losses: list[tuple[float, float]]) -> Run:
    """A run folder as the trainer writes it (config.json, metrics.jsonl), with fixed figures."""
    folder.mkdir(parents=True)
    config = {
        "model": {"arch": arch, "context": 32, "bidirectional": False},
        "train": {"level": "char", "batch_size": 8, "recipe": "stream"},
        "corpus": {"name": "tiny.txt"},
    }
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    records = [
        {"step": 10 * i, "seconds": 1.5 * i, "train_loss": train, "val_loss": val, "sample": "ab"}
        for i, (train, val) in enumerate(losses, 1)
    ]
    (folder / "metrics.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in records), encoding="utf-8"
    )
    return read_run(folder)


def check(name: str, text: str) -> None:
    path = SNAPSHOTS / name
    if os.environ.get("TERMLM_UPDATE_SNAPSHOTS"):
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8")


@pytest.fixture()
def two_runs(tmp_path: Path) -> list[Run]:
    return [
        make_run(tmp_path / "lstm", "lstm", [(3.4, 3.3), (2.6, 2.7), (2.1, 2.3), (1.8, 2.2)]),
        make_run(tmp_path / "gru", "gru", [(3.5, 3.4), (2.9, 2.9), (2.5, 2.6), (2.2, 2.4)]),
    ]


def test_two_runs_on_one_plot(two_runs: list[Run]) -> None:
    text = curves_text(two_runs, x="tokens", bpc=False, width=64, height=16, color=False)
    check("curves_two_runs.txt", text)
    assert "lstm train" in text and "gru validation" in text and "tokens seen" in text


def test_points_table_in_bits_per_char(two_runs: list[Run]) -> None:
    text = points_table(two_runs, "seconds", bpc=True)
    check("points_two_runs_bpc.txt", text)
    assert text.splitlines()[1].split("\t") == ["lstm", "10", "1.50", "4.9052", "4.7609"]


def test_live_plot_draws_from_the_second_validation() -> None:
    plot = LivePlot(width=60, color=False)  # (under train: given the console, pre-rendered)
    plot.add({"step": 5, "train_loss": 3.0, "val_loss": 3.1, "sample": "one"})
    assert not str(plot.renderable())  # one point is not a curve
    plot.add({"step": 10, "train_loss": 2.0, "val_loss": 2.4, "sample": "two\nlines"})
    from rich.console import Console

    console = Console(width=80, record=True, color_system=None)
    console.print(plot.renderable())
    shown = console.export_text()
    assert "validation" in shown and "latest sample: two ⏎ lines" in shown


def test_live_plot_prerendered_for_its_console() -> None:
    import io

    from rich.console import Console

    console = Console(file=io.StringIO(), width=80, color_system=None, force_terminal=True)
    plot = LivePlot(width=60, color=False, console=console)
    for step, loss in ((5, 3.0), (10, 2.5), (15, 2.2)):
        plot.add({"step": step, "train_loss": loss, "val_loss": loss + 0.1, "sample": "s"})
    console.print(plot.renderable())
    shown = console.file.getvalue()  # type: ignore[attr-defined]
    assert "validation" in shown and "latest sample: s" in shown
    assert max(len(line) for line in shown.splitlines()) <= 60


def test_live_plot_shows_control_characters_of_a_sample_escaped() -> None:
    import io

    from rich.console import Console

    console = Console(file=io.StringIO(), width=80, color_system="standard", force_terminal=True)
    plot = LivePlot(width=80, color=True, console=console)
    sample = "a \x1b[31mred\x1b[0m word\x1b]0;title\x07\x1b[2J"
    for step, loss in ((5, 3.0), (10, 2.5)):
        plot.add({"step": step, "train_loss": loss, "val_loss": loss + 0.1, "sample": sample})
    console.print(plot.renderable())
    shown = console.file.getvalue()  # type: ignore[attr-defined]
    assert "\\x1b[31mred\\x1b[0m word\\x1b]0;title\\x07\\x1b[2J" in shown
    assert "\x1b[31mred" not in shown and "\x1b]0;" not in shown and "\x1b[2J" not in shown
