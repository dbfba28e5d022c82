"""The trainer's AdamW: the same update as torch.optim.AdamW, with nanoGPT's parameter groups."""

from __future__ import annotations

from typing import Any

import pytest

torch = pytest.importorskip("torch")

from termlm.config import ModelConfig  # noqa: E402
from termlm.training.models import build_model  # noqa: E402
from termlm.training.optim import AdamW, parameter_groups  # noqa: E402


def twin_models(cfg: dict[str, Any]) -> tuple[torch.nn.Module, torch.nn.Module]:
    config = {"vocab_size": 23, "context": 8, "embed": 8, "hidden": 12, "layers": 2, "heads": 2}
    torch.manual_seed(0)
    first = build_model(ModelConfig(**{**config, **cfg}))
    second = build_model(ModelConfig(**{**config, **cfg}))
    second.load_state_dict(first.state_dict())
    return first, second


@pytest.mark.parametrize(
    "cfg",
    [{"arch": "lstm"}, {"arch": "transformer", "tie": True}, {"arch": "attention"}],
    ids=lambda c: c["arch"],
)
def test_update_matches_torch_adamw(cfg: dict[str, Any]) -> None:
    ours_model, theirs_model = twin_models(cfg)
    kwargs = {"lr": 3e-3, "betas": (0.9, 0.99), "eps": 1e-8, "weight_decay": 0.1}
    ours = AdamW(parameter_groups(ours_model, 0.1), **kwargs)  # type: ignore[arg-type]
    theirs = torch.optim.AdamW(parameter_groups(theirs_model, 0.1), **kwargs)  # type: ignore[arg-type]
    generator = torch.Generator().manual_seed(1)
    for step in range(6):
        lr = 3e-3 * (step + 1) / 6  # the loop changes the rate of every group each step
        for optimizer in (ours, theirs):
            for group in optimizer.param_groups:
                group["lr"] = lr
        for p, q in zip(ours_model.parameters(), theirs_model.parameters(), strict=True):
            grad = torch.randn(p.shape, generator=generator)
            p.grad, q.grad = grad.clone(), grad.clone()
        ours.step()
        theirs.step()
    for (name, p), q in zip(ours_model.named_parameters(), theirs_model.parameters(), strict=True):
        assert torch.allclose(p, q, atol=1e-6, rtol=1e-5), name
    # and the decay did something: weights differ from an undecayed run
    plain_model, _ = twin_models(cfg)
    assert any(
        not torch.allclose(p, q)
        for p, q in zip(ours_model.parameters(), plain_model.parameters(), strict=True)
    )


def test_groups_decay_matrices_only() -> None:
    model, _ = twin_models({"arch": "transformer", "tie": True})
    decay, keep = parameter_groups(model, 0.05)
    assert decay["weight_decay"] == 0.05 and keep["weight_decay"] == 0.0
    names = {id(p): name for name, p in model.named_parameters()}
    decayed = {names[id(p)] for p in decay["params"]}
    kept = {names[id(p)] for p in keep["params"]}
    assert "embedding.weight" in kept and "position.weight" in kept  # embeddings, tied output
    assert all(n.endswith("bias") or "ln" in n or "embedding" in n or "position" in n for n in kept)
    assert all(n.endswith("weight") and "ln" not in n for n in decayed)
    assert "blocks.0.attn.qkv.weight" in decayed
    assert len(decayed) + len(kept) == len(names)

    lstm, _ = twin_models({"arch": "lstm"})
    decay, keep = parameter_groups(lstm, 0.05)
    decayed = {n for n, p in lstm.named_parameters() if any(p is q for q in decay["params"])}
    assert decayed == {"rnn.weight_ih_l0", "rnn.weight_hh_l0", "rnn.weight_ih_l1",
                       "rnn.weight_hh_l1", "head.decoder.weight"}  # fmt: skip


def test_plain_parameters_still_make_one_group() -> None:
    model, _ = twin_models({"arch": "gru"})
    optimizer = AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    assert len(optimizer.param_groups) == 1
    assert optimizer.param_groups[0]["weight_decay"] == 0.01
    assert len(optimizer.params) == len(list(model.parameters()))
