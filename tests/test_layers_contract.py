"""The contract every stacked layer form must keep (scikit-learn's check_estimator, for layers).

Each registered kind (``STACKED_FORMS``) gets a small network that holds it; stacked from
three members' own models, it must compute what each member computes, give each member's
weights back as its own ``state_dict``, let members leave, and move and print as an
``nn.Module``. A kind registered without an example here fails the first test.
"""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
from torch import nn

from dropoutlab.layers import STACKED_FORMS, Dropout, StackedNet
from dropoutlab.layers.kinds import (
    AlphaDropout,
    ConcreteDropout,
    DropBlock,
    DropConnectLinear,
    GaussianDropout,
    ScaledDropout,
    SpatialDropout,
)

CPU = torch.device("cpu")
INPUT = (3, 6, 6)


def example(kind: type[nn.Module], rate: float = 0.0) -> nn.Sequential:
    """A small network of 10 classes on ``INPUT`` images that holds a layer of ``kind``."""
    conv = nn.Conv2d(3, 4, 3, padding=1)
    head = [nn.Flatten(), nn.Linear(4 * 6 * 6, 10)]
    middle: dict[type[nn.Module], list[nn.Module]] = {
        nn.Conv2d: [conv],
        nn.Linear: [conv],
        nn.Flatten: [conv],
        nn.BatchNorm2d: [conv, nn.BatchNorm2d(4)],
    }
    for dropout_kind in (Dropout, ScaledDropout, GaussianDropout, SpatialDropout, DropBlock, ConcreteDropout):
        middle[dropout_kind] = [conv, dropout_kind(rate, slot="conv")] if rate else [conv]
    if kind is AlphaDropout:  # on feature vectors
        layers = [
            conv,
            nn.Flatten(),
            *([AlphaDropout(rate, slot="dense")] if rate else []),
            nn.Linear(144, 10),
        ]
    elif kind is DropConnectLinear:  # a member at rate 0 has the plain dense layer
        dense = DropConnectLinear(144, 10, rate, slot="dense") if rate else nn.Linear(144, 10)
        layers = [conv, nn.Flatten(), dense]
    elif kind is nn.BatchNorm1d:
        layers = [nn.Flatten(), nn.Linear(108, 8), nn.BatchNorm1d(8), nn.Linear(8, 10)]
    elif kind is nn.MaxPool2d:
        layers = [conv, nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4 * 3 * 3, 10)]
    elif kind in middle:
        layers = middle[kind] + head
    else:  # activations
        layers = [conv, kind()] + head
    counts: dict[str, int] = {}
    names = []
    for module in layers:  # named per kind, as the model builder does: an absent dropout shifts nothing
        # a DropConnectLinear is named as the dense layer it replaces (a member at rate 0 has nn.Linear)
        kind_name = "linear" if isinstance(module, nn.Linear) else type(module).__name__.lower()
        counts[kind_name] = counts.get(kind_name, 0) + 1
        names.append(f"{kind_name}_{counts[kind_name]}")
    return nn.Sequential(OrderedDict(zip(names, layers, strict=True)))


def members_of(kind, rates=(0.0, 0.0, 0.0)):
    models = []
    for seed, rate in enumerate(rates):
        torch.manual_seed(seed)
        models.append(example(kind, rate))
    template = example(kind, 0.5)  # every slot present
    return template, models


KINDS = sorted(STACKED_FORMS, key=lambda kind: kind.__name__)


def test_every_registered_kind_has_an_example_here():
    for kind in KINDS:
        assert any(isinstance(m, kind) for m in example(kind, 0.5)), kind


@pytest.mark.parametrize("kind", KINDS, ids=lambda kind: kind.__name__)
def test_a_stack_computes_each_members_own_network(kind):
    template, models = members_of(kind)
    x = torch.randn(5, *INPUT)
    for training in (False, True):  # batch statistics and the identity dropout in training
        net = StackedNet.from_members(template, models, CPU)
        for model in models:
            model.train(training)
        net.train(training)
        want = torch.stack([model(x) for model in models])
        torch.testing.assert_close(net(x, "shared") if not training else net(torch.stack([x] * 3), "member"),
                                   want, rtol=1e-4, atol=1e-5)  # fmt: skip


@pytest.mark.parametrize("kind", KINDS, ids=lambda kind: kind.__name__)
def test_members_weights_come_back_and_members_can_leave(kind):
    template, models = members_of(kind)
    net = StackedNet.from_members(template, models, CPU)
    for i, model in enumerate(models):
        state = net.member_state(i)
        assert state.keys() == model.state_dict().keys()
        assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    net.select([2, 0])
    assert net.size == 2
    x = torch.randn(4, *INPUT)
    net.eval()
    for model in models:
        model.eval()
    torch.testing.assert_close(net(x), torch.stack([models[2](x), models[0](x)]), rtol=1e-4, atol=1e-5)
    assert all(p.shape[0] == 2 for p in net.parameters())


@pytest.mark.parametrize("kind", KINDS, ids=lambda kind: kind.__name__)
def test_a_stack_is_a_module_that_trains_and_prints(kind):
    template, models = members_of(kind, rates=(0.0, 0.3, 0.6))
    net = StackedNet.from_members(template, models, CPU)
    assert list(net.parameters()) and set(net.state_dict()) >= {n for n, _ in net.named_parameters()}
    net.train()
    for layer in net.layers:
        if layer.random:
            layer.generators = [torch.Generator().manual_seed(i) for i in range(net.size)]
    logits = net(torch.randn(3, 8, *INPUT), "member")
    assert logits.shape == (3, 8, 10)
    grads = torch.autograd.grad(logits.square().sum(), list(net.parameters()))
    assert all(torch.isfinite(g).all() for g in grads)
    text = repr(net)
    assert "members=3" in text or kind not in (nn.Linear, nn.Conv2d)
    if kind is Dropout:
        assert "rates=[0, 0.3, 0.6]" in text


def test_dropout_masks_follow_each_members_rate_in_training():
    template, models = members_of(Dropout, rates=(0.0, 0.5, 0.8))
    net = StackedNet.from_members(template, models, CPU)
    dropout = net.layers.dropout_1
    dropout.generators = [torch.Generator().manual_seed(i) for i in range(3)]
    from dropoutlab.layers.stacked import Activations

    x = torch.ones(3, 64, 4, 6, 6)
    out = dropout(Activations(x, "member", 3)).x
    assert torch.equal(out[0], x[0])
    assert (out[1] == 0).float().mean().item() == pytest.approx(0.5, abs=0.03)
    assert (out[2] == 0).float().mean().item() == pytest.approx(0.8, abs=0.03)
    dropout.eval()
    assert dropout(Activations(x, "member", 3)).x is x
