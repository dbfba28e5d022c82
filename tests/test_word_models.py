"""The word-level output layer (adaptive softmax) and AWD-LSTM's regularisation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from termlm.config import ModelConfig
from termlm.conversation.chat import ChatCore
from termlm.conversation.demo import FakeEngine
from termlm.conversation.settings import Settings
from termlm.conversation.store import ChatStore
from termlm.conversation.tree import SPEECH_END
from termlm.errors import ConfigError
from termlm.tokenizers.word import WordTokenizer
from termlm.training.defaults import auto_cutoffs, fit_to_data
from termlm.training.models import build_model
from termlm.training.models.adaptive import AdaptiveHead
from termlm.training.models.regularise import LockedDropout, activation_penalty
from termlm.training.options import build_options
from termlm.training.vocab import extend_state

VOCAB = 40


def model(**overrides: Any) -> Any:
    settings: dict[str, Any] = {
        "arch": "lstm",
        "vocab_size": VOCAB,
        "context": 8,
        "embed": 16,
        "hidden": 16,
        "layers": 1,
        "dropout": 0.0,
        "softmax": "adaptive",
        "cutoffs": [6, 20],
        "tie": True,
    }
    settings.update(overrides)
    torch.manual_seed(0)
    return build_model(ModelConfig(**settings))


# two tails, and three as the default clusters of a large vocabulary have
CLUSTERS = [[6, 20], [3, 10, 24]]


@pytest.mark.parametrize("cutoffs", CLUSTERS)
@pytest.mark.parametrize("tie", [True, False])
def test_adaptive_log_probs_are_a_distribution(tie: bool, cutoffs: list[int]) -> None:
    lm = model(tie=tie, cutoffs=cutoffs).eval()
    tokens = torch.randint(0, VOCAB, (3, 8))
    log_probs, _ = lm(tokens)  # [B, T, V]
    assert log_probs.shape == (3, 8, VOCAB)
    torch.testing.assert_close(log_probs.exp().sum(-1), torch.ones(3, 8))


@pytest.mark.parametrize("cutoffs", CLUSTERS)
@pytest.mark.parametrize("tie", [True, False])
def test_the_training_loss_is_the_full_distributions_nll(tie: bool, cutoffs: list[int]) -> None:
    """Reading each tail for its own targets only gives the same loss as the full
    log-probabilities, and the same gradients."""
    lm = model(tie=tie, cutoffs=cutoffs).eval()
    tokens = torch.randint(0, VOCAB, (4, 9))
    inputs, targets = tokens[:, :-1], tokens[:, 1:]
    loss, _ = lm(inputs, targets=targets)
    (fast,) = torch.autograd.grad(loss, [lm.embedding.weight])
    log_probs, _ = lm(inputs)
    full = F.nll_loss(log_probs.reshape(-1, VOCAB), targets.reshape(-1))
    (slow,) = torch.autograd.grad(full, [lm.embedding.weight])
    torch.testing.assert_close(loss, full)
    torch.testing.assert_close(fast, slow)


def test_matches_torchs_adaptive_softmax_semantics() -> None:
    """Untied, with torch's weights copied in: the same log_prob as AdaptiveLogSoftmaxWithLoss."""
    torch.manual_seed(0)
    reference = torch.nn.AdaptiveLogSoftmaxWithLoss(16, VOCAB, [6, 20], div_value=4.0)
    embedding = torch.nn.Embedding(VOCAB, 16)
    head = AdaptiveHead(16, VOCAB, embedding, tie=False, cutoffs=[6, 20])
    with torch.no_grad():
        weight = reference.head.weight  # [6 + 2, 16]
        assert head.head_words is not None
        head.head_words.copy_(weight[:6])
        head.clusters.copy_(weight[6:])
        head.head_bias.zero_()
        for i, tail in enumerate(reference.tail):
            head.tail_proj[i].weight.copy_(tail[0].weight)
            head.tail_words[i].copy_(tail[1].weight)
    x = torch.randn(5, 16)
    torch.testing.assert_close(head(x), reference.log_prob(x))


def test_tied_head_shares_the_embedding_and_adds_only_cluster_vectors() -> None:
    tied = model()
    full = model(softmax="full", cutoffs=[])
    assert tied.head.head_words is None
    extra = tied.num_parameters() - full.num_parameters()
    # two cluster vectors and the biases of the clusters, less the full softmax's bias
    assert extra == 2 * 16 + 2
    names = set(tied.state_dict())
    assert "head.clusters" in names and not any(
        "embedding" in n for n in names - {"embedding.weight"}
    )


def test_regularisation_is_off_in_eval_and_keeps_the_weights_names() -> None:
    lm = model(
        embed_dropout=0.2, weight_drop=0.5, locked_dropout=True, dropout=0.3, ar=2.0, tar=1.0
    )
    plain = model()
    assert set(lm.state_dict()) == set(plain.state_dict())  # saved and exported the same way
    tokens = torch.randint(0, VOCAB, (2, 8))
    lm.eval()
    first, _ = lm(tokens)
    second, _ = lm(tokens)
    torch.testing.assert_close(first, second)
    lm.train()
    noisy, _ = lm(tokens)
    assert not torch.allclose(noisy, first)


def test_weight_drop_reaches_the_recurrent_matrix_only() -> None:
    lm = model(weight_drop=0.5).train()
    tokens = torch.randint(0, VOCAB, (2, 8))
    loss, _ = lm(tokens[:, :-1], targets=tokens[:, 1:])
    loss.backward()
    recurrent = lm.rnn.weight_hh_l0.grad
    assert recurrent is not None and 0.2 < float((recurrent == 0).float().mean()) < 0.8
    assert float((lm.rnn.weight_ih_l0.grad == 0).float().mean()) < 0.2


def test_locked_dropout_shares_one_mask_across_time() -> None:
    drop = LockedDropout(0.5, locked=True).train()
    out = drop(torch.ones(3, 7, 10))
    assert torch.equal(out, out[:, :1].expand_as(out))
    assert set(out.unique().tolist()) <= {0.0, 2.0}


def test_activation_penalties() -> None:
    raw = torch.tensor([[[1.0], [3.0]]])  # [B=1, T=2, H=1]
    assert activation_penalty(raw, raw, 0.0, 0.0) is None
    penalty = activation_penalty(raw, raw, ar=2.0, tar=1.0)
    assert penalty is not None and float(penalty) == pytest.approx(2.0 * 5.0 + 1.0 * 4.0)


def test_auto_cutoffs_and_fitting() -> None:
    assert auto_cutoffs(6000) == [250, 1000, 3000]
    assert auto_cutoffs(199) == [] and auto_cutoffs(200) == [33, 100]  # no head under 32 words
    assert auto_cutoffs(1000) == [42, 167, 500]
    sized, _, notes = fit_to_data(
        {"softmax": "adaptive", "cutoffs": [], "hidden": 256, "dropout": 0.4, "tie": True},
        level="word",
        given=set(),
        vocab_size=6000,
        train_tokens=200_000,
        context=64,
        batch_size=16,
    )
    assert sized["cutoffs"] == [250, 1000, 3000] and any("250, 1000, 3000" in n for n in notes)
    tiny, _, notes = fit_to_data(
        {"softmax": "adaptive", "cutoffs": [], "hidden": 256, "dropout": 0.4},
        level="word",
        given=set(),
        vocab_size=4,
        train_tokens=200_000,
        context=64,
        batch_size=16,
    )
    assert tiny["softmax"] == "full" and any("full softmax" in n for n in notes)


def test_word_defaults_and_their_refusals() -> None:
    options = build_options(corpus=None, level="word", arch="gru")
    model = options.model  # the pieces that paid off in a default-length run (README)
    assert model.softmax == "adaptive" and model.locked_dropout and model.ar > 0
    assert model.weight_drop == 0 and model.embed_dropout == 0  # they cost 4% there
    assert build_options(corpus=None, level="char", arch="lstm").model.softmax == "full"
    window = build_options(corpus=None, level="word", arch="lstm", bidirectional=True)
    assert window.model.softmax == "full" and not window.model.locked_dropout
    with pytest.raises(ConfigError, match="rnn, lstm and gru"):
        build_options(corpus=None, level="word", arch="transformer", word={"softmax": "adaptive"})
    with pytest.raises(ConfigError, match="cutoffs must rise"):
        ModelConfig(vocab_size=10, softmax="adaptive", cutoffs=[5, 3]).validate()
    with pytest.raises(ConfigError, match="weight-drop"):
        ModelConfig(weight_drop=1.0).validate()


def test_dialogue_mode_says_which_word_models_can_follow_it(tmp_path: Path) -> None:
    engine = FakeEngine(line_breaks=False)  # like a lowercased, punctuation-free word model
    core = ChatCore(engine, ChatStore(tmp_path / "chats.db"), Settings(mode="dialogue"))
    core.model = engine.load(None)
    problem = core.dialogue_problem()
    assert problem is not None and "cannot write the blank line" in problem
    assert "--punctuation keep" in problem
    core.close()


def test_a_keep_mode_word_tokenizer_writes_the_dialogue_format() -> None:
    text = "ROMEO:\nWhat, ho! I'll go.\n\nJULIET:\nAy; my lord?\n\n"
    tokenizer = WordTokenizer.fit(text * 3, lowercase=False, punctuation="keep")
    assert tokenizer.split("ROMEO:\n")[:3] == ["ROMEO", ":", "\n"]
    assert tokenizer.decode(tokenizer.encode(text)) == text
    ends = tokenizer.encode(SPEECH_END)
    assert "".join(tokenizer.token_text(i) for i in ends) == SPEECH_END


@pytest.mark.parametrize("tie", [True, False])
def test_a_grown_vocabulary_extends_the_last_cluster(tie: bool) -> None:
    """Fine-tuning adds words at the end of the vocabulary: the last cluster grows."""
    source = model(tie=tie)
    target = model(tie=tie, vocab_size=VOCAB + 3)
    state = extend_state(source.state_dict(), target.state_dict(), VOCAB)
    target.load_state_dict(state)
    tokens = torch.randint(0, VOCAB, (2, 8))
    source.eval(), target.eval()
    before, _ = source(tokens)
    after, _ = target(tokens)
    # the known words keep their order of preference; the distribution spreads to 3 more words
    assert torch.equal(before.argmax(-1), after.argmax(-1))
    torch.testing.assert_close(after.exp().sum(-1), torch.ones(2, 8))
