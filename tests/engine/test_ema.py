"""The EMA of the weights (arcsolver/engine/ema.py): its closed form, swapped in for evaluation and
given back, and its state dict."""

import pytest
import torch
from torch import nn

from arcsolver.engine.ema import EMA


def linear(seed):
    torch.manual_seed(seed)
    return nn.Linear(3, 2).double()


def set_weights(model, value):
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(value)


def test_the_ema_after_k_updates_is_its_closed_form():
    model, rate = linear(0), 0.9
    start = {n: p.detach().clone() for n, p in model.named_parameters()}
    ema = EMA(model, rate)
    values = [0.5, -1.0, 2.0, 0.25]
    for value in values:
        set_weights(model, value)
        ema.update(model)
    # shadow_k = r^k p_0 + (1 - r) * sum_i r^(k - i) p_i
    k = len(values)
    tail = (1 - rate) * sum(rate ** (k - i) * v for i, v in enumerate(values, start=1))
    for name, p0 in start.items():
        torch.testing.assert_close(ema.shadow[name], rate**k * p0 + tail)


def test_the_ema_weights_are_swapped_in_for_evaluation_and_the_raw_ones_given_back_exactly():
    model = linear(0)
    ema = EMA(model, 0.5)
    set_weights(model, 1.0)
    ema.update(model)
    with torch.no_grad():
        model.weight.add_(torch.randn_like(model.weight))  # raw weights no sum could rebuild
    raw = {n: p.detach().clone() for n, p in model.named_parameters()}
    with ema.applied(model) as inside:
        assert inside is model
        for name, p in model.named_parameters():
            assert torch.equal(p, ema.shadow[name])
    for name, p in model.named_parameters():
        assert torch.equal(p, raw[name])
    with pytest.raises(RuntimeError), ema.applied(model):
        raise RuntimeError("an evaluation that fails")
    for name, p in model.named_parameters():
        assert torch.equal(p, raw[name])
    ema.load_into(model)
    for name, p in model.named_parameters():
        assert torch.equal(p, ema.shadow[name])


def test_the_ema_state_dict_round_trips_into_another_model():
    model = linear(0)
    ema = EMA(model, 0.9)
    set_weights(model, 3.0)
    ema.update(model)
    other = EMA(linear(1), 0.9)
    other.load_state_dict({k: v.clone() for k, v in ema.state_dict().items()})
    assert ema.state_dict().keys() == other.state_dict().keys() == dict(model.named_parameters()).keys()
    for name in ema.shadow:
        assert torch.equal(other.shadow[name], ema.shadow[name])
    ema.update(model)
    other.update(model)  # and the two carry on alike
    for name in ema.shadow:
        assert torch.equal(other.shadow[name], ema.shadow[name])
