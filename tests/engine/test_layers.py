"""engine.training.accel.dropout.Dropout behaves as nn.Dropout: same keep rate, same expectation, same gradient rule."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from engine.training.accel.dropout import Dropout, dropout_mask, keep_probability


@pytest.mark.parametrize("keep", [0.7, 0.5, 0.1, 0.95])
def test_the_mask_keeps_the_asked_share_and_preserves_the_mean(keep):
    torch.manual_seed(0)
    n = 1_000_000
    mask = dropout_mask(torch.Size([1000, 1000]), keep_probability(keep))
    kept = mask > 0
    sigma = (keep * (1 - keep) / n) ** 0.5
    assert abs(kept.float().mean().item() - keep) < 5 * sigma
    assert mask.unique().tolist() == pytest.approx([0.0, 1 / keep_probability(keep)])
    assert abs(mask.mean().item() - 1.0) < 5 * sigma / keep


def test_mask_elements_are_independent():
    torch.manual_seed(1)
    kept = (dropout_mask(torch.Size([2000, 1001]), 0.5) > 0).float()
    centred = kept - kept.mean()
    for shift in (1, 2, 3, 4, 1001):  # neighbours in a 64-bit draw, across draws, and the next row
        a, b = centred.flatten()[:-shift], centred.flatten()[shift:]
        corr = (a * b).mean() / (a.std() * b.std())
        assert abs(corr.item()) < 0.01, (shift, corr.item())
    assert not torch.equal(dropout_mask(torch.Size([64, 256]), 0.5), dropout_mask(torch.Size([64, 256]), 0.5))


def test_the_same_seed_gives_the_same_mask():
    torch.manual_seed(5)
    first = dropout_mask(torch.Size([3, 7]), 0.7)  # an odd size: the last 64-bit draw is partly used
    torch.manual_seed(5)
    assert torch.equal(first, dropout_mask(torch.Size([3, 7]), 0.7))


def test_keep_probability_is_a_multiple_of_one_65536th():
    assert keep_probability(0.7) == round(0.7 * 65536) / 65536
    assert abs(keep_probability(0.7) - 0.7) < 1e-5
    assert keep_probability(1.0) == 1.0 and keep_probability(0.0) == 0.0


def test_training_output_and_gradient_follow_nn_dropout():
    torch.manual_seed(2)
    layer = Dropout(0.3).train()
    x = torch.randn(64, 256, requires_grad=True)
    out = layer(x)
    keep = keep_probability(0.7)
    dropped = out == 0
    assert torch.allclose(out[~dropped], x[~dropped] / keep)
    out.sum().backward()
    assert torch.allclose(x.grad, (~dropped).float() / keep)


def test_eval_mode_and_edge_probabilities_are_nn_dropout():
    x = torch.randn(8, 16)
    assert torch.equal(Dropout(0.3).eval()(x), x)
    assert torch.equal(Dropout(0.0).train()(x), x)
    assert torch.equal(Dropout(1.0).train()(x), torch.zeros_like(x))
    assert Dropout(0.3).state_dict() == nn.Dropout(0.3).state_dict() == {}
