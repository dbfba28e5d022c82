"""`termlm models --json` shows each file's card, and an int8 file its own validation loss."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_helpers import plain_env, termlm, write_models

TEXT = "the quick brown fox jumps over the lazy dog.\nhello world, hello fox.\n" * 60


def test_models_json_carries_the_card(tmp_path: Path) -> None:
    write_models(tmp_path)
    env = plain_env(TERMLM_MODELS_DIR=str(tmp_path), XDG_DATA_HOME=str(tmp_path / "data"))
    done = termlm("models", "--json", cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert rows and all(isinstance(row["card"], dict) for row in rows)
    assert all(row["val_loss"] == row["card"].get("val_loss") for row in rows)


@pytest.mark.slow
def test_an_int8_file_reports_its_own_validation_loss(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    (tmp_path / "corpus.txt").write_text(TEXT, encoding="utf-8")
    env = plain_env(TERMLM_MODELS_DIR=str(tmp_path / "exported"), XDG_DATA_HOME=str(tmp_path / "d"))
    tiny = ["--max-steps", "3", "--hidden", "16", "--embed", "8", "--context", "16"]
    steps = [
        ["train", "corpus.txt", "--name", "tiny", "--quiet", "--batch-size", "4", *tiny],
        ["export", "runs/tiny"],
        ["export", "runs/tiny", "--quantize", "int8", "--json"],
        ["models", "--json"],
    ]
    for args in steps:
        done = termlm(*args, cwd=tmp_path, env=env)
        assert done.returncode == 0, (args, done.stderr)
    rows = {row["name"]: row for row in json.loads(done.stdout)}
    float_row, int8_row = rows["tiny"], rows["tiny-int8"]
    card = int8_row["card"]
    assert card["val_loss_float"] == float_row["val_loss"]
    assert int8_row["val_loss"] == card["val_loss"] != card["val_loss_float"]
    evaluated = termlm(
        "eval", "tiny-int8", "corpus.txt", "--split", "val", "--json", cwd=tmp_path, env=env
    )
    assert evaluated.returncode == 0, evaluated.stderr
    assert json.loads(evaluated.stdout)["loss"] == pytest.approx(card["val_loss"], abs=1e-5)
