"""Training keeps its budget and says what it does: validation cost, resume, bakeoff, defaults."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")

from termlm.errors import ConfigError, RunError  # noqa: E402
from termlm.training import loop as loop_module  # noqa: E402
from termlm.training.bakeoff import print_leaderboard, run_bakeoff  # noqa: E402
from termlm.training.defaults import default_threads, fit_to_data  # noqa: E402
from termlm.training.loop import TrainingInterrupted, train  # noqa: E402
from termlm.training.options import DEFAULT_PATIENCE, build_options  # noqa: E402

SMALL = {"embed": 16, "hidden": 32, "layers": 1, "context": 32, "batch_size": 8}
MARKUP_LINE = "a[i] [/x] [b]"


@pytest.fixture()
def corpus(tmp_path: Path) -> Path:
    lines = [
        "First Citizen:\nBefore we proceed any further, hear me speak.\n\n",
        f"All:\n{MARKUP_LINE}\n\n",
        "First Citizen:\nYou are all resolved rather to die than to famish?\n\n",
    ]
    path = tmp_path / "corpus.txt"
    path.write_text("".join(lines) * 20, encoding="utf-8")
    return path


def test_corpus_text_with_markup_is_printed_as_text(
    corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    options = build_options(
        corpus=str(corpus),
        level="char",
        arch="gru",
        max_steps=6,
        out=str(tmp_path),
        name="markup",
        sample_prompt=MARKUP_LINE,
        **SMALL,
    )
    result = train(options, show_progress=True)
    err = capsys.readouterr().err
    assert MARKUP_LINE in err  # printed as it is: nothing eaten, no MarkupError
    assert result["sample"].startswith(MARKUP_LINE)
    assert (Path(result["run_dir"]) / "best.safetensors").exists()


def test_start_up_says_what_is_happening(
    corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    options = build_options(
        corpus=str(corpus),
        level="char",
        arch=None,
        max_steps=4,
        out=str(tmp_path),
        name="talk",
        threads=1,
    )
    train(options, show_progress=True)
    err = capsys.readouterr().err
    for needle in (
        "reading",
        "tokenizing",
        "vocabulary",
        "training and",
        "validation tokens",
        "validation: the last 10% of the text",
        "parameters",
        "device cpu, 1 thread",
        "steps per epoch",
        "chosen for this text: hidden 128",  # a short text gets a smaller model, and says so
        "train ",  # the training loss beside the validation loss
    ):
        assert needle in err, needle


def test_slow_validation_keeps_within_the_budget(
    corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = loop_module.evaluate

    def slow(*args: Any, **kwargs: Any) -> Any:
        # a validation that costs a quarter of a CPU second, whatever its size (counted on the
        # CPU clock, so that the figures do not depend on how busy the machine is)
        start = time.process_time()
        while time.process_time() - start < 0.25:
            pass
        return real(*args, **kwargs)

    monkeypatch.setattr(loop_module, "evaluate", slow)
    minutes = 0.1  # 6 s: the old schedule validated every 0.6 s, half of the time
    options = build_options(
        corpus=str(corpus),
        level="char",
        arch="gru",
        minutes=minutes,
        budget_clock="cpu",
        out=str(tmp_path),
        name="slow",
        threads=1,
        **SMALL,
    )
    result = train(options, show_progress=False)
    assert result["val_share"] < 0.10, result
    assert result["train_seconds"] <= minutes * 60 + 1.0
    records = [
        json.loads(line)
        for line in (Path(result["run_dir"]) / "metrics.jsonl").read_text().split("\n")
        if line
    ]
    assert len({r["val_tokens"] for r in records}) == 1  # the same validation tokens each time
    assert result["train_tokens_per_s"] > 0


def test_final_figure_is_labelled_with_the_tokens_it_read(corpus: Path, tmp_path: Path) -> None:
    options = build_options(
        corpus=str(corpus),
        level="char",
        arch="lstm",
        max_steps=8,
        eval_tokens=100,
        out=str(tmp_path),
        name="sizes",
        **SMALL,
    )
    result = train(options, show_progress=False)
    assert result["val_tokens_during"] == 100
    assert result["val_tokens"] == result["val_tokens_total"] > 100  # the final reads them all
    options = build_options(
        corpus=str(corpus),
        level="char",
        arch="lstm",
        max_steps=8,
        eval_tokens=100,
        out=str(tmp_path),
        name="same",
        **SMALL,
    )
    options.final_eval = False
    same = train(options, show_progress=False)
    assert same["val_tokens"] == 100 and same["val_loss"] == same["val_loss_during"]


def test_resume_uses_the_runs_threads_and_says_how_to_extend_a_timed_run(
    corpus: Path, tmp_path: Path
) -> None:
    options = build_options(
        corpus=str(corpus),
        level="char",
        arch="gru",
        epochs=2.0,
        threads=1,
        out=str(tmp_path),
        name="threads",
        stop_after_steps=3,
        **SMALL,
    )
    with pytest.raises(TrainingInterrupted) as info:
        train(options, show_progress=False)
    torch.set_num_threads(2)
    train(build_options(corpus=None, level=None, arch=None), resume=str(info.value.run_dir))
    assert torch.get_num_threads() == 1

    timed = build_options(
        corpus=str(corpus),
        level="char",
        arch="gru",
        minutes=0.02,
        out=str(tmp_path),
        name="timed",
        **SMALL,
    )
    run_dir = Path(train(timed, show_progress=False)["run_dir"])
    with pytest.raises(RunError) as refused:
        train(build_options(corpus=None, level=None, arch=None), resume=str(run_dir))
    assert "--minutes" in (refused.value.hint or "") and "--epochs" not in (
        refused.value.hint or ""
    )
    assert "--minutes" in refused.value.message
    first = json.loads((run_dir / "result.json").read_text())
    longer = train(
        build_options(corpus=None, level=None, arch=None, minutes=0.04),
        show_progress=False,
        resume=str(run_dir),
    )
    assert longer["steps"] > first["steps"]  # the hint's command does extend the run


def test_a_second_bakeoff_in_the_same_folder_and_resume(corpus: Path, tmp_path: Path) -> None:
    seen: list[int] = []
    common: dict[str, Any] = {
        "level": "char",
        "minutes": None,
        "params": 3000,
        "archs": ["rnn", "gru"],
        "threads": 1,
        "seed": 1,
        "out": str(tmp_path / "bakeoffs"),
        "show_progress": False,
    }
    first = run_bakeoff(
        str(corpus), name="one", on_row=lambda rows: seen.append(len(rows)), **common
    )
    assert seen == [1, 2]  # a leaderboard after every architecture
    second = run_bakeoff(str(corpus), name="two", **common)
    assert [r["val_loss"] for r in first] == [r["val_loss"] for r in second]
    with pytest.raises(RunError) as taken:
        run_bakeoff(str(corpus), name="one", **common)
    assert "--resume" in (taken.value.hint or "")
    folder = tmp_path / "bakeoffs" / "one"
    shutil.rmtree(folder / "gru")  # as if the bakeoff had stopped before it
    again = run_bakeoff(None, resume=str(folder), **{**common, "archs": []})
    assert sorted(r["arch"] for r in again) == ["gru", "rnn"]
    assert {r["arch"]: r["val_loss"] for r in again} == {r["arch"]: r["val_loss"] for r in first}


def test_leaderboard_prints_names_as_text(capsys: pytest.CaptureFixture[str]) -> None:
    row = {
        "arch": "gru[/x]",
        "val_loss": 1.5,
        "val_bpc": 2.1,
        "val_ppl": 4.5,
        "val_tokens": 2048,
        "params": 1000,
        "train_tokens_per_s": 10.0,
        "steps": 3,
        "val_share": 0.04,
        "run_dir": "x",
    }
    print_leaderboard([row])
    out = capsys.readouterr().out
    assert "gru[/x]" in out and "4.0%" in out


def test_defaults_follow_the_architecture_and_the_data() -> None:
    lstm = build_options(corpus="c.txt", level="char", arch="lstm")
    transformer = build_options(corpus="c.txt", level="char", arch="transformer")
    assert transformer.lr < lstm.lr
    assert build_options(corpus="c.txt", level="bpe", arch=None).lr == 1e-2  # measured
    assert build_options(corpus="c.txt", level="bpe", arch="lstm", lr=3e-3).lr == 3e-3
    word = build_options(corpus="c.txt", level="word", arch=None)
    assert word.max_vocab == 6000 and word.model.tie
    assert lstm.patience == DEFAULT_PATIENCE
    assert build_options(corpus="c.txt", level="char", arch=None, patience=0).patience == 0
    with pytest.raises(ConfigError):
        build_options(corpus="c.txt", level="char", arch=None, patience=-1)
    model = lstm.model.to_dict()
    sized, batch, notes = fit_to_data(
        model,
        level="char",
        given=set(),
        vocab_size=5965,
        train_tokens=2_000_000,
        context=64,
        batch_size=16,
    )
    assert sized["embed"] == 256 and batch == 16 and any("5,965" in n for n in notes)
    sized, batch, notes = fit_to_data(
        model,
        level="char",
        given={"hidden", "batch_size"},
        vocab_size=60,
        train_tokens=5_000,
        context=64,
        batch_size=16,
    )
    assert sized["hidden"] == model["hidden"] and batch == 16  # what was given stays
    assert sized["dropout"] == model["dropout"]  # a char model keeps its dropout (measured)
    bpe = build_options(corpus="c.txt", level="bpe", arch=None).model.to_dict()
    sized, _, notes = fit_to_data(
        bpe,
        level="bpe",
        given=set(),
        vocab_size=2000,
        train_tokens=5_000,
        context=96,
        batch_size=32,
    )
    assert sized["dropout"] == 0.2 and any("overfits" in n for n in notes)
    sized, batch, _ = fit_to_data(
        model,
        level="char",
        given=set(),
        vocab_size=60,
        train_tokens=5_000,
        context=64,
        batch_size=16,
    )
    assert sized["hidden"] == 128 and batch == 3  # 78 chunks: at least 20 steps per epoch


def test_default_threads_leave_busy_cores_alone() -> None:
    assert default_threads(cores=2, load=5.0).threads == 1
    assert default_threads(cores=2, load=0.1).threads == 2
    assert default_threads(cores=16, load=0.0).threads == 4
    assert default_threads(cores=8, load=6.0).threads == 2


def test_overfitting_is_said_when_validation_stalls_while_training_improves() -> None:
    from termlm.training.advice import overfitting_note
    from termlm.training.checkpoint import TrainerState

    state = TrainerState(best_val=1.2, best_step=40, evals_without_gain=2, best_train=1.1)
    note = overfitting_note(state, 0.8, patience=5)
    assert "overfitting" in note and "step 40" in note and "after 5 validations" in note
    assert "--patience N" in overfitting_note(state, 0.8, patience=0)
    assert overfitting_note(state, 1.3, patience=5) == ""  # training got worse too: not that
    state.evals_without_gain = 1
    assert overfitting_note(state, 0.8, patience=5) == ""


def test_training_samples_keep_whole_characters_and_word_spaces() -> None:
    from termlm.config import ModelConfig
    from termlm.tokenizers import fit_tokenizer
    from termlm.training.models import build_model
    from termlm.training.sampling import sampled_lines

    chinese = "".join(
        "我们今天去学校看老师。他说明天再来吧。中国人民很好。\n"
        if i % 2
        else "大家都在这里学习中文。\n"
        for i in range(200)
    )
    bpe = fit_tokenizer("bpe", chinese, vocab_size=300)
    torch.manual_seed(0)
    model = build_model(
        ModelConfig(arch="gru", vocab_size=bpe.vocab_size, embed=8, hidden=8, layers=1, context=16)
    )
    for seed in range(3):  # an untrained model at a high temperature splits characters if let
        text = sampled_lines(
            model,
            bpe,
            bpe.encode("我们"),
            60,
            context=16,
            stateful=True,
            temperature=3.0,
            seed=seed,
        )
        assert "\ufffd" not in text and text.startswith("我们")
    word = fit_tokenizer("word", "gremio said hello to the king\n" * 20)
    model = build_model(
        ModelConfig(arch="gru", vocab_size=word.vocab_size, embed=8, hidden=8, layers=1, context=16)
    )
    text = sampled_lines(
        model, word, word.encode("gremio"), 5, context=16, stateful=True, temperature=1.0, seed=1
    )
    assert text.startswith("gremio ")  # a space between the prompt and what follows


def test_a_stopped_bakeoff_resumes_the_stopped_architecture(
    corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    common: dict[str, Any] = {
        "level": "char",
        "minutes": None,
        "params": 3000,
        "archs": ["rnn", "gru"],
        "threads": 1,
        "seed": 1,
        "out": str(tmp_path / "bakeoffs"),
        "show_progress": False,
    }
    straight = run_bakeoff(str(corpus), name="straight", **common)
    real_train = loop_module.train

    def stops_in_gru(options: Any, **kwargs: Any) -> Any:
        if options.model.arch == "gru":
            options.stop_after_steps = 3  # as a Ctrl-C at step 3
        return real_train(options, **kwargs)

    monkeypatch.setattr(loop_module, "train", stops_in_gru)
    with pytest.raises(RunError) as stopped:
        run_bakeoff(str(corpus), name="stopped", **common)
    folder = tmp_path / "bakeoffs" / "stopped"
    assert f"termlm bakeoff --resume {folder}" in (stopped.value.hint or "")
    assert (folder / "rnn" / "result.json").exists() and (folder / "gru" / "trainer.json").exists()
    monkeypatch.setattr(loop_module, "train", real_train)
    resumed = run_bakeoff(None, resume=str(folder), **{**common, "archs": []})
    assert {r["arch"]: r["steps"] for r in resumed} == {r["arch"]: r["steps"] for r in straight}
    assert {r["arch"]: r["val_loss"] for r in resumed} == pytest.approx(
        {r["arch"]: r["val_loss"] for r in straight}, abs=1e-6
    )


def test_training_loss_beside_validation_is_the_recent_one() -> None:
    """The first validation of a run showed 'train 2.64  val 2.18': the mean of every step since
    the start, its first high losses included. The figure is the mean of the recent steps."""
    from termlm.training.advice import RecentLoss

    recent = RecentLoss(window=3)
    assert recent.mean() != recent.mean()  # NaN before any step
    for loss in (5.0, 4.0, 2.0, 2.0, 2.0):
        recent.add(loss)
    assert recent.mean() == 2.0


def test_validation_plan_says_every_step() -> None:
    from termlm.training.evalplan import EvalPlan

    plan = EvalPlan(
        tokens=None, total=10, every_steps=1, every_seconds=None, share=None, final_all=True
    )
    assert "every step" in plan.describe() and "every 1 steps" not in plan.describe()
