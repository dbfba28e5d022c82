"""AdamW, written out: the same update as torch.optim.AdamW (decoupled weight decay, bias
correction), without torch.optim's first-call import of its compiler stack, which costs seconds
at start-up and would dominate short runs such as the tutorial recipe."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch


def parameter_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Two groups, as nanoGPT makes them: weight decay on the weight matrices (linear and
    recurrent layers), none on biases, norms and embeddings (a tied output matrix is the
    embedding, so it is not decayed either). Parameters keep the model's order in each group."""
    no_decay: set[int] = set()
    for module in model.modules():
        if isinstance(module, torch.nn.Embedding | torch.nn.LayerNorm):
            no_decay.update(id(p) for p in module.parameters(recurse=False))
    decay: list[torch.nn.Parameter] = []
    keep: list[torch.nn.Parameter] = []
    for p in model.parameters():
        if not p.requires_grad:
            continue
        (keep if p.ndim < 2 or id(p) in no_decay else decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": keep, "weight_decay": 0.0},
    ]


class AdamW:
    """``params``: parameters (one group), or groups as torch.optim takes them: dicts with
    "params" and any of "lr", "betas", "eps", "weight_decay" overriding the defaults."""

    def __init__(
        self,
        params: Iterable[torch.nn.Parameter] | Iterable[dict[str, Any]],
        *,
        lr: float,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.01,
    ) -> None:
        given = list(params)
        groups: list[dict[str, Any]] = (
            [dict(g) for g in given if isinstance(g, dict)]
            if given and isinstance(given[0], dict)
            else [{"params": given}]
        )
        defaults = {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay}
        self.param_groups: list[dict[str, Any]] = []
        for group in groups:
            entry = {**defaults, **group}
            entry["params"] = [p for p in group["params"] if p.requires_grad]
            self.param_groups.append(entry)
        self.params = [p for group in self.param_groups for p in group["params"]]
        self.step_count = 0
        self.exp_avg = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in self.params]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        self.step_count += 1
        index = 0
        for group in self.param_groups:
            lr, (beta1, beta2), eps, decay = (
                group["lr"],
                group["betas"],
                group["eps"],
                group["weight_decay"],
            )
            correction1 = 1.0 - beta1**self.step_count
            correction2 = 1.0 - beta2**self.step_count
            step_size = lr / correction1
            for p in group["params"]:
                m, v = self.exp_avg[index], self.exp_avg_sq[index]
                index += 1
                if p.grad is None:
                    continue
                grad = p.grad
                if decay:
                    p.mul_(1.0 - lr * decay)
                m.lerp_(grad, 1.0 - beta1)  # m = beta1 m + (1 - beta1) g
                v.mul_(beta2).addcmul_(grad, grad, value=1.0 - beta2)
                denom = (v / correction2).sqrt_().add_(eps)
                p.addcdiv_(m, denom, value=-step_size)

    def state_tensors(self) -> dict[str, torch.Tensor]:
        tensors = {"step": torch.tensor(self.step_count, dtype=torch.int64)}
        for i, (m, v) in enumerate(zip(self.exp_avg, self.exp_avg_sq, strict=True)):
            tensors[f"{i}.exp_avg"] = m.detach().cpu().contiguous()
            tensors[f"{i}.exp_avg_sq"] = v.detach().cpu().contiguous()
        return tensors

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        if len([k for k in tensors if k.endswith(".exp_avg")]) != len(self.params):
            raise ValueError("the saved optimizer state has a different number of parameters")
        self.step_count = int(tensors["step"])
        for i, p in enumerate(self.params):
            m, v = tensors[f"{i}.exp_avg"], tensors[f"{i}.exp_avg_sq"]
            if m.shape != p.shape:
                raise ValueError(f"parameter {i}: saved shape {tuple(m.shape)} != {tuple(p.shape)}")
            self.exp_avg[i] = m.to(p.device).clone()
            self.exp_avg_sq[i] = v.to(p.device).clone()
