"""Shapes, step-by-step consistency, weight tying and learning for every architecture."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from termlm.config import ModelConfig
from termlm.errors import ConfigError
from termlm.training.models import LanguageModel, build_model

VOCAB = 20

STATEFUL = [
    {"arch": "rnn"},
    {"arch": "lstm"},
    {"arch": "gru"},
    {"arch": "attention"},
    {"arch": "attention", "attn_size": 8},
    {"arch": "transformer"},
]
WINDOW = [
    {"arch": "rnn", "bidirectional": True},
    {"arch": "lstm", "bidirectional": True},
    {"arch": "gru", "bidirectional": True},
]


def make(**overrides: object) -> LanguageModel:
    settings: dict[str, object] = {
        "vocab_size": VOCAB,
        "context": 16,
        "embed": 12,
        "hidden": 16,
        "layers": 2,
        "heads": 2,
        "dropout": 0.1,
    }
    settings.update(overrides)
    torch.manual_seed(0)
    return build_model(ModelConfig(**settings))  # type: ignore[arg-type]


def ids(cfg: dict[str, object]) -> str:
    return "-".join(str(v) for v in cfg.values())


@pytest.mark.parametrize("cfg", STATEFUL, ids=ids)
@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("time", [1, 7])
def test_stateful_shapes(cfg: dict[str, object], batch: int, time: int) -> None:
    model = make(**cfg).eval()
    tokens = torch.randint(0, VOCAB, (batch, time))
    logits, state, extras = model.forward_with_extras(tokens)
    assert logits.shape == (batch, time, VOCAB)
    specs = model.state_spec()
    assert len(state) == len(specs)
    for spec, tensor in zip(specs, state, strict=True):
        assert tensor.shape[spec.batch_axis] == batch
        for axis, dim in enumerate(spec.shape):
            if isinstance(dim, int):
                assert tensor.shape[axis] == dim, spec.name
        if spec.time_axis is not None:
            assert tensor.shape[spec.time_axis] == time  # memory starts empty
    assert sorted(extras) == sorted(model.extras_names())
    if "attention" in extras:
        assert extras["attention"].shape == (batch, time, time)
        assert torch.allclose(extras["attention"].sum(-1), torch.ones(batch, time), atol=1e-5)
    if "hidden" in extras:
        assert extras["hidden"].shape == (batch, time, 16)
    # a second call continues from the state: the memory / cache grows
    logits2, state2 = model(tokens, state)
    assert logits2.shape == (batch, time, VOCAB)
    for spec, tensor in zip(specs, state2, strict=True):
        if spec.time_axis is not None:
            assert tensor.shape[spec.time_axis] == 2 * time


@pytest.mark.parametrize("cfg", WINDOW, ids=ids)
@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("time", [1, 16])
def test_window_shapes(cfg: dict[str, object], batch: int, time: int) -> None:
    model = make(**cfg).eval()
    assert not model.stateful
    assert model.state_spec() == []
    assert model.initial_state(batch) == ()
    logits, state = model(torch.randint(0, VOCAB, (batch, time)))
    assert logits.shape == (batch, 1, VOCAB)
    assert state == ()


def test_window_reads_both_ends() -> None:
    """Changing the first or the last token of the window changes the prediction."""
    model = make(arch="lstm", bidirectional=True).eval()
    tokens = torch.randint(1, VOCAB, (1, 16))
    base, _ = model(tokens)
    for pos in (0, 15):
        changed = tokens.clone()
        changed[0, pos] = (changed[0, pos] + 1) % VOCAB
        assert not torch.allclose(model(changed)[0], base)


@pytest.mark.parametrize("cfg", STATEFUL, ids=ids)
def test_step_by_step_equals_one_pass(cfg: dict[str, object]) -> None:
    model = make(**cfg).eval()
    tokens = torch.randint(0, VOCAB, (3, 12))
    with torch.no_grad():
        full, full_state = model(tokens)
        state = model.initial_state(3)
        steps = []
        for t in range(12):
            logits, state = model(tokens[:, t : t + 1], state)
            steps.append(logits)
        # and in two uneven chunks
        first, mid = model(tokens[:, :5])
        second, chunk_state = model(tokens[:, 5:], mid)
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(torch.cat([first, second], dim=1), full, atol=1e-5, rtol=1e-5)
    for a, b, c in zip(state, full_state, chunk_state, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(c, b, atol=1e-5, rtol=1e-5)


def test_attention_memory_can_be_trimmed() -> None:
    """Dropping the oldest memory entries leaves a valid state (no positions in the memory)."""
    model = make(arch="attention").eval()
    tokens = torch.randint(0, VOCAB, (2, 10))
    with torch.no_grad():
        _, (h, c, keys, values) = model(tokens)
        trimmed = (h, c, keys[:, 4:], values[:, 4:])
        logits, (_, _, new_keys, _), extras = model.forward_with_extras(tokens[:, :1], trimmed)
    assert new_keys.shape[1] == 7
    assert extras["attention"].shape == (2, 1, 7)
    assert torch.isfinite(logits).all()


def test_transformer_rejects_nothing_past_context() -> None:
    model = make(arch="transformer", context=8).eval()
    with torch.no_grad():
        _, state = model(torch.randint(0, VOCAB, (1, 8)))
        logits, _ = model(torch.randint(0, VOCAB, (1, 1)), state)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize(
    "cfg",
    [
        {"arch": "lstm", "tie": True, "embed": 16},
        {"arch": "gru", "tie": True, "embed": 12},  # projection hidden -> embed
        {"arch": "lstm", "tie": True, "bidirectional": True},
        {"arch": "attention", "tie": True},
        {"arch": "transformer", "tie": True},
    ],
    ids=ids,
)
def test_tied_weights_are_shared(cfg: dict[str, object]) -> None:
    model = make(**cfg)
    decoder = model.head.decoder  # type: ignore[union-attr, operator]
    assert decoder.weight is model.embedding.weight  # type: ignore[union-attr, operator]
    untied = make(**{**cfg, "tie": False})
    assert model.num_parameters() < untied.num_parameters()
    # a gradient step through the output moves the embedding too
    before = model.embedding.weight.detach().clone()  # type: ignore[union-attr, operator]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    tokens = torch.randint(0, VOCAB, (2, 6))
    logits, _ = model(tokens)
    logits.sum().backward()
    optimizer.step()
    row_unused = torch.ones(VOCAB, dtype=torch.bool)
    row_unused[tokens.flatten()] = False
    moved = (model.embedding.weight.detach() - before).abs().sum(dim=1)  # type: ignore[union-attr, operator]
    assert (moved[row_unused] > 0).all()


@pytest.mark.parametrize("cfg", STATEFUL + WINDOW[1:2], ids=ids)
def test_a_few_steps_reduce_the_loss(cfg: dict[str, object]) -> None:
    model = make(**{**cfg, "dropout": 0.0})
    corpus = torch.tensor([1, 2, 3, 4, 5, 6, 7, 8] * 8)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    window = 8

    def loss_now() -> torch.Tensor:
        if model.stateful:
            x = corpus[:-1].view(1, -1)[:, :56].reshape(7, 8)
            y = corpus[1:].view(1, -1)[:, :56].reshape(7, 8)
        else:
            x = torch.stack([corpus[i : i + window] for i in range(40)])
            y = torch.stack([corpus[i + window : i + window + 1] for i in range(40)])
        logits, _ = model(x)
        return F.cross_entropy(logits.reshape(-1, VOCAB), y.reshape(-1))

    first = loss_now().item()
    for _ in range(30):
        optimizer.zero_grad()
        loss = loss_now()
        loss.backward()
        optimizer.step()
    assert loss_now().item() < 0.5 * first


def test_build_model_checks_the_config() -> None:
    with pytest.raises(ConfigError):
        build_model(ModelConfig(arch="lstm", vocab_size=0))
    with pytest.raises(ConfigError):
        build_model(ModelConfig(arch="transformer", vocab_size=VOCAB, bidirectional=True))


def test_state_spec_serialises() -> None:
    spec = make(arch="attention").state_spec()
    assert [s.to_dict()["name"] for s in spec] == ["h", "c", "keys", "values"]
    assert spec[2].to_dict() == {
        "name": "keys",
        "shape": ["batch", "time", 16],
        "batch_axis": 0,
        "time_axis": 1,
    }
