"""`termlm export --quantize int8` compares the validation loss before and after."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("torch")

from termlm.cli.app import main
from termlm.training.loop import train
from termlm.training.options import build_options


def test_int8_export_reports_the_validation_loss_before_and_after(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("To be, or not to be, that is the question.\n" * 60, encoding="utf-8")
    options = build_options(
        corpus=str(corpus),
        level="char",
        arch="lstm",
        hidden=32,
        embed=16,
        context=32,
        max_steps=30,
        out=str(tmp_path),
        name="run",
    )
    result = train(options, show_progress=False)
    out = tmp_path / "run-int8.onnx"
    with pytest.raises(SystemExit) as code:
        main(["export", result["run_dir"], "-o", str(out), "--quantize", "int8", "--json"])
    assert code.value.code in (0, None)
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["val_loss_before"] == pytest.approx(result["val_loss"])
    assert report["val_loss_after"] == pytest.approx(result["val_loss"], abs=0.05)
    assert out.exists()
