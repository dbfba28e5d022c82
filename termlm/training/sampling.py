"""A short greedy continuation from a torch model, to watch it learn. Uses only the stepping
interface, so it works for every architecture."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch

from termlm.decoding.utf8 import Utf8Mask
from termlm.tokenizers import Tokenizer

if TYPE_CHECKING:
    from termlm.training.prepare import Prepared


def _continue(
    model: torch.nn.Module,
    ids: list[int],
    n_tokens: int,
    *,
    context: int,
    stateful: bool,
    pad_id: int,
    pick: Callable[[torch.Tensor], int],
    done: Callable[[int], bool] = lambda token: False,
    out: list[int] | None = None,
) -> list[int]:
    """Up to `n_tokens` tokens after `ids`, each chosen by `pick` from the next-token logits, until
    `done` says so: one step per token when stateful, the whole (pre-padded) window otherwise.
    The tokens are appended to `out` as they come (`pick` and `done` may read it)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out = [] if out is None else out
    try:
        if stateful:
            window = ids[-context:]
            logits, state = model(torch.tensor([window], device=device))
            used = len(window)
            for _ in range(n_tokens):
                token = pick(logits[0, -1])
                out.append(token)
                if done(token):
                    break
                if used >= context:  # a bounded memory is full: start again from recent tokens
                    recent = (window + out)[-(context // 2) :]
                    logits, state = model(torch.tensor([recent], device=device))
                    used = len(recent)
                    continue
                logits, state = model(torch.tensor([[token]], device=device), state)
                used += 1
        else:
            history = ids
            for _ in range(n_tokens):
                window = history[-context:]
                window = [pad_id] * (context - len(window)) + window
                logits, _ = model(torch.tensor([window], device=device))
                token = pick(logits[0, -1])
                out.append(token)
                history = [*history, token]
                if done(token):
                    break
    finally:
        model.train(was_training)
    return out


@torch.no_grad()
def greedy_continuation(
    model: torch.nn.Module,
    tokenizer: Tokenizer,
    prompt_ids: list[int],
    n_tokens: int,
    *,
    context: int,
    stateful: bool,
    pad_prompt: bool = False,
) -> list[int]:
    """The `n_tokens` greedy next tokens after `prompt_ids` (one step per token when stateful).

    `pad_prompt` pre-pads the prompt to the context, as the tutorial's data is pre-padded.
    """
    ids = list(prompt_ids) or [tokenizer.pad_id]
    if pad_prompt:
        ids = [tokenizer.pad_id] * max(0, context - len(ids)) + ids
    return _continue(
        model,
        ids,
        n_tokens,
        context=context,
        stateful=stateful,
        pad_id=tokenizer.pad_id,
        pick=lambda logits: int(logits.argmax()),
    )


@torch.no_grad()
def sampled_lines(
    model: torch.nn.Module,
    tokenizer: Tokenizer,
    prompt_ids: list[int],
    max_tokens: int,
    *,
    context: int,
    stateful: bool,
    temperature: float,
    seed: int,
    lines: int = 2,
) -> str:
    """The prompt and a sampled continuation (at `temperature`, from its own seeded generator, so
    the run's random state is untouched), cut at the end of the `lines`-th line when one ends
    within `max_tokens`."""
    generator = torch.Generator().manual_seed(seed)
    out: list[int] = []
    utf8 = Utf8Mask.for_tokenizer(tokenizer, tokenizer.vocab_size)  # byte-level: whole characters

    def pick(logits: torch.Tensor) -> int:
        probs = torch.softmax(logits.float().cpu() / temperature, dim=-1)
        probs[tokenizer.pad_id] = 0.0
        if utf8 is not None:
            allowed = torch.from_numpy(utf8.after(list(prompt_ids) + out))
            probs[: allowed.shape[0]][~allowed] = 0.0
        if float(probs.sum()) <= 0.0:
            return int(logits.argmax())
        return int(torch.multinomial(probs, 1, generator=generator))

    def done(token: int) -> bool:
        return "\n" in tokenizer.token_text(token) and tokenizer.decode(out).count("\n") >= lines

    _continue(
        model,
        list(prompt_ids) or [tokenizer.pad_id],
        max_tokens,
        context=context,
        stateful=stateful,
        pad_id=tokenizer.pad_id,
        pick=pick,
        done=done,
        out=out,
    )
    while utf8 is not None and out and utf8.unfinished(list(prompt_ids) + out):
        out.pop()  # the budget ended inside a character: drop its first bytes
    prompt_text = tokenizer.decode(prompt_ids)
    full = tokenizer.decode(list(prompt_ids) + out)  # word level: the space between them
    text = full[len(prompt_text) :] if full.startswith(prompt_text) else tokenizer.decode(out)
    if text.count("\n") >= lines:  # whole lines: drop what follows the last line end
        text = text[: _nth_newline(text, lines) + 1]
    return prompt_text + text


def _nth_newline(text: str, n: int) -> int:
    index = -1
    for _ in range(n):
        index = text.index("\n", index + 1)
    return index


def sample_text(
    model: torch.nn.Module, prepared: Prepared, n: int = 60, *, seed: int = 0, lines: int = 1
) -> str:
    """A sample of the model during training: whole lines from the run's sample prompt (the
    tutorial recipe: its greedy next words)."""
    tokenizer = prepared.tokenizer
    prompt_ids = tokenizer.encode(prepared.sample_prompt)
    if prepared.options.recipe != "tutorial":
        return sampled_lines(
            model,
            tokenizer,
            prompt_ids,
            max(n, 80 if prepared.options.level == "char" else 30),
            context=prepared.model_config.context,
            stateful=prepared.model_config.stateful,
            temperature=prepared.options.sample_temperature,
            seed=seed,
            lines=lines,
        )
    ids = greedy_continuation(
        model,
        tokenizer,
        prompt_ids,
        n,
        context=prepared.model_config.context,
        stateful=prepared.model_config.stateful,
        pad_prompt=prepared.options.recipe == "tutorial",
    )
    return tokenizer.decode(prompt_ids + ids)
