"""The views inside the model, driven by the pilot on real exported tiny models of each kind.

LSTM: confidence colours, the inspector's candidates and hidden units, branching, beams, score,
the prompt's vocabulary, the arena. Attention LSTM and Transformer: the attention heat map.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("textual")
torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

from textual.widgets import Input, OptionList, Static, TextArea  # noqa: E402
from tui_helpers import export_tiny_models, make_app, wait_until  # noqa: E402

from termlm.conversation.engine import OnnxEngine  # noqa: E402
from termlm.conversation.settings import Settings  # noqa: E402
from termlm.tui.arena import ArenaColumn, ArenaScreen  # noqa: E402
from termlm.tui.beams import BeamPanel  # noqa: E402
from termlm.tui.inspect_screen import InspectScreen  # noqa: E402
from termlm.tui.score_screen import ScoreScreen  # noqa: E402
from termlm.tui.widgets import PromptHints, PromptInput  # noqa: E402

pytestmark = pytest.mark.anyio

TEXT = "ROMEO:\nBut soft, what light through yonder window breaks?\n\nJULIET:\nAy me.\n\n" * 4
ARCHS = ("lstm", "attention", "transformer")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("view-models")
    return export_tiny_models(folder, TEXT, {f"tiny-{arch}": arch for arch in ARCHS}, embed=8)


@pytest.fixture
def engine(models_dir: Path, monkeypatch: pytest.MonkeyPatch) -> OnnxEngine:
    monkeypatch.setenv("TERMLM_MODELS_DIR", str(models_dir))
    return OnnxEngine(entry_points=False, user_dir=False)


async def start(pilot: Any, app: Any) -> Any:
    chat = app.chat
    await wait_until(pilot, lambda: chat.model is not None, timeout=30)
    return chat


async def send(pilot: Any, chat: Any, text: str) -> None:
    chat.query_one(PromptInput).load_text(text)
    chat.query_one(PromptInput).focus()
    await pilot.press("enter")
    await wait_until(pilot, lambda: not chat.generating, timeout=30)


def rendered(widget: Any) -> str:
    return str(widget.render())


async def test_colours_inspector_hidden_units_and_branches(
    tmp_path: Path, engine: OnnxEngine
) -> None:
    plain = {"temperature": 1.0, "top_p": 1.0}  # the model's own distribution, unwarped
    settings = Settings(seed=3, max_tokens=30, options={"sample": plain})
    app = make_app(tmp_path, engine, settings=settings, model="tiny-lstm")
    async with app.run_test(size=(120, 50)) as pilot:
        chat = await start(pilot, app)
        assert chat.model.extras == ("hidden",)
        await send(pilot, chat, "ROMEO:\n")
        reply = chat.conversation.messages[-1]
        assert len(reply.events) == 30 and "".join(e.text for e in reply.events) == reply.fed
        assert all(e.alternatives for e in reply.events)

        await pilot.press("f4")  # probability colours: from the events, at once
        assert app.settings.colour == "probability" and chat.views[-1].tokens is not None
        pieces, colours, _ = chat.views[-1].tokens
        assert len(pieces) == 30 and all(colours)
        await pilot.press("f4")  # entropy: needs a trace, read in a worker
        await wait_until(pilot, lambda: reply.trace is not None, timeout=20)
        # The trace reads the reply as generation did; generation never draws pad or <unk>, so
        # its log p is the model's, renormalised without them: a little higher, never lower.
        gap = np.array([e.logprob for e in reply.events]) + reply.trace.surprisal
        assert np.all(gap > -1e-4) and np.all(gap < 0.5)
        await pilot.press("f4")
        assert chat.views[-1].tokens is None

        await pilot.press("f3")
        screen = app.screen
        assert isinstance(screen, InspectScreen)
        await wait_until(pilot, lambda: screen.trace is not None, timeout=20)
        assert screen.trace.hidden is not None and screen.trace.hidden.shape == (30, 16)
        assert not screen.query_one("#inspect-attention").display  # no attention in an LSTM
        assert "Hidden units" in rendered(screen.query_one("#inspect-hidden", Static))
        await pilot.press("home", "right", "right")
        assert screen.index == 2
        alternatives = rendered(screen.query_one("#inspect-alternatives", Static))
        assert "Token 3/30" in alternatives and "%" in alternatives
        await pilot.press("down")  # the second candidate
        chosen = reply.events[2].alternatives[1]
        await pilot.press("enter")
        await wait_until(pilot, lambda: chat.generating or len(chat.conversation.forks) > 0)
        await wait_until(pilot, lambda: not chat.generating, timeout=30)

        branch = chat.conversation.messages[-1]
        kept = "".join(e.text for e in reply.events[:2])
        assert branch.fed.startswith(kept + chosen.text)
        assert [e.token_id for e in branch.events[:3]] == [
            reply.events[0].token_id,
            reply.events[1].token_id,
            chosen.token_id,
        ]
        assert branch.state is not None and len(chat.conversation.messages) == 2
        fork = chat.conversation.forks[1]
        assert len(fork.branches) == 2 and fork.current == 1
        assert chat.views[-1].body == branch.text

        await pilot.press("f8")  # back to the first reply
        assert chat.conversation.messages[-1] is reply and chat.views[-1].body == reply.text
        stored, *_ = app.store.load_chat(chat.conversation.chat_id)
        assert stored.messages[-1].text == reply.text
        await pilot.press("f8")
        assert chat.conversation.messages[-1] is branch
        chat_id = chat.conversation.chat_id

    # Reopened, a reply has no live events: the inspector reads its candidates from the model.
    app = make_app(tmp_path, OnnxEngine(entry_points=False, user_dir=False), model="tiny-lstm")
    async with app.run_test(size=(120, 50)) as pilot:
        chat = await start(pilot, app)
        chat.open_chat(chat_id)
        await wait_until(pilot, lambda: chat.conversation.chat_id == chat_id)
        assert chat.conversation.messages[-1].text == branch.text
        assert not chat.conversation.messages[-1].events
        await pilot.press("f3")
        screen = app.screen
        assert isinstance(screen, InspectScreen)
        await wait_until(pilot, lambda: screen.trace is not None, timeout=20)
        assert screen.tokens.ids == [e.token_id for e in branch.events]
        assert len(screen.tokens.alternatives) == 30 and screen.tokens.probs
        assert "Token 30/30" in rendered(screen.query_one("#inspect-alternatives", Static))


@pytest.mark.parametrize("arch", ["attention", "transformer"])
async def test_attention_heat_map(tmp_path: Path, engine: OnnxEngine, arch: str) -> None:
    app = make_app(tmp_path, engine, settings=Settings(seed=5, max_tokens=20), model=f"tiny-{arch}")
    async with app.run_test(size=(120, 50)) as pilot:
        chat = await start(pilot, app)
        assert "attention" in chat.model.extras
        await send(pilot, chat, "JULIET:\nAy")
        await pilot.press("f3")
        screen = app.screen
        assert isinstance(screen, InspectScreen)
        await wait_until(pilot, lambda: screen.trace is not None, timeout=20)
        await pilot.press("left", "left")
        row = screen.trace.attention_row(screen.index)
        assert row is not None
        first, weights = row
        assert abs(float(weights.sum()) - 1.0) < 1e-2
        # the keys end at the token read just before the selected one
        assert first + len(weights) == screen.trace.start + screen.index
        heat = rendered(screen.query_one("#inspect-attention", Static))
        assert "Attention" in heat and "most:" in heat
        assert screen.query_one("#inspect-hidden").display == (arch == "attention")


async def test_live_beams_and_taking_another_of_the_n_best(
    tmp_path: Path, engine: OnnxEngine
) -> None:
    settings = Settings(
        seed=1,
        max_tokens=12,
        strategy="beam",
        options={"beam": {"num_beams": 3, "num_return_sequences": 3}},
    )
    app = make_app(tmp_path, engine, settings=settings, model="tiny-lstm")
    async with app.run_test(size=(120, 50)) as pilot:
        chat = await start(pilot, app)
        await pilot.press("f9")
        assert chat.beams_open and chat.query_one(BeamPanel).display
        await send(pilot, chat, "ROMEO:")
        assert len(chat.n_best) >= 2
        options = chat.query_one("#beams-list", OptionList)
        assert options.option_count == len(chat.n_best)
        assert "N-best" in rendered(chat.query_one("#beams-title"))
        second = chat.n_best[1]
        options.focus()
        options.highlighted = 1
        await pilot.press("enter")
        await wait_until(pilot, lambda: chat.conversation.messages[-1].fed == second.text)
        taken = chat.conversation.messages[-1]
        assert taken.state is not None and {"h", "c"} <= set(taken.state)
        assert len(chat.conversation.forks[1].branches) == 2


async def test_score_a_pasted_text(tmp_path: Path, engine: OnnxEngine) -> None:
    app = make_app(tmp_path, engine, model="tiny-transformer")
    async with app.run_test(size=(120, 40)) as pilot:
        chat = await start(pilot, app)
        await pilot.press("f5")
        screen = app.screen
        assert isinstance(screen, ScoreScreen)
        text = "But soft, what light through yonder window breaks? " * 2
        screen.query_one("#score-input", TextArea).load_text(text)
        await pilot.press("f5")
        await wait_until(pilot, lambda: screen.trace is not None, timeout=20)
        assert len(screen.trace) == len(text)  # one char, one token
        assert "mean surprisal" in rendered(screen.query_one("#score-summary"))
        assert rendered(screen.query_one("#score-result")).startswith("But soft")
        assert chat is app.chat


async def test_prompt_marks_unknown_characters_and_shows_tokens(
    tmp_path: Path, engine: OnnxEngine
) -> None:
    app = make_app(tmp_path, engine, model="tiny-lstm")
    async with app.run_test(size=(120, 40)) as pilot:
        chat = await start(pilot, app)
        hints = chat.query_one(PromptHints)
        chat.query_one(PromptInput).load_text("But soft")
        await pilot.pause()
        assert not hints.display  # every character is known
        chat.query_one(PromptInput).load_text("Zoë soft")
        await wait_until(pilot, lambda: hints.unknown == [(0, 1), (2, 3)])
        assert hints.display
        assert "unknown to the model" in rendered(hints)
        await pilot.press("f7")
        assert hints.pieces[:3] == ["<unk>", "o", "<unk>"] and "8 tokens" in rendered(hints)


async def test_arena_side_by_side_and_keep_the_winner(tmp_path: Path, engine: OnnxEngine) -> None:
    app = make_app(tmp_path, engine, settings=Settings(seed=2, max_tokens=16), model="tiny-lstm")
    async with app.run_test(size=(160, 50)) as pilot:
        await start(pilot, app)
        await pilot.press("f6")
        screen = app.screen
        assert isinstance(screen, ArenaScreen)
        screen.query_one("#arena-prompt", Input).value = "ROMEO:"
        screen.query_one("#arena-contestants", TextArea).load_text(
            "greedy\nsample temperature=0.5\nbeam num_beams=2\nsample temperature=-1"
        )
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: screen.entries and not screen.running, timeout=30)
        good, cool, beam, bad = screen.entries
        assert bad.error and "temperature" in bad.error
        for entry in (good, cool, beam):
            assert entry.measures is not None and entry.measures.tokens > 0
            assert 0.0 <= entry.measures.distinct_1 <= 1.0 and entry.measures.mean_logprob <= 0
        columns = list(screen.query(ArenaColumn))
        assert "mean log p" in rendered(columns[1])
        columns[1].focus()
        await pilot.press("ctrl+s")
        assert app.settings.strategy == "sample"
        assert app.settings.options["sample"]["temperature"] == 0.5
        assert "sample temperature=0.5" in app.settings.presets


@pytest.mark.parametrize("arch", ARCHS)
def test_a_trace_reads_the_reply_as_generation_did(models_dir: Path, arch: str) -> None:
    """Past the context (memories trimmed), the trace still sees what generation saw."""
    from termlm.decoding import build_plugin_manager, generate
    from termlm.decoding.trace import trace_tokens
    from termlm.runtime.onnx_model import load_model

    model = load_model(models_dir / f"tiny-{arch}.onnx")
    tokenizer = model.tokenizer
    registry = build_plugin_manager(entry_points=False, user_dir=False)
    prompt = tokenizer.encode("ROMEO:\n")
    events = list(
        generate(model, tokenizer, prompt, registry=registry, strategy="greedy", max_new_tokens=70)
    )
    result = events[-1].result
    trace = trace_tokens(model, prompt, result.token_ids)
    assert len(trace) == 70 and trace.new_ids == result.token_ids
    # Every greedy choice is the trace's likeliest text token at that place: the trace saw the
    # same distributions, memory trimming included.
    special = {tokenizer.pad_id, tokenizer.unk_id}
    for i, token in enumerate(result.token_ids):
        best = next(t for t, _ in trace.top[i] if t not in special)
        assert best == token
    assert np.all(result.logprobs + trace.surprisal > -1e-4)
    assert np.all(trace.entropy > 0) and len(trace.top) == 70
    if arch == "lstm":
        assert trace.attention == [] and trace.hidden is not None
    else:
        for i in range(70):
            row = trace.attention_row(i)
            assert row is not None and 0 < len(row[1]) <= model.context
            assert abs(float(row[1].sum()) - 1.0) < 1e-2
