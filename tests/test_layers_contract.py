"""The contract every stacked layer form keeps (``dropoutlab.testing``, scikit-learn's
check_estimator for layers): each dropout kind through ``check_dropout_kind``, each of
PyTorch's layers with a stacked form through ``STACK_CHECKS`` on an example network here.
A layer registered without an example, and without being a dropout kind, fails the first test.
"""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
from torch import nn

from dropoutlab.layers import STACKED_FORMS, Activations, StackedNet
from dropoutlab.layers.kinds import ScaledDropout
from dropoutlab.layers.stacked_kinds import StackedScaledDropout
from dropoutlab.models import dropout_kinds
from dropoutlab.testing import STACK_CHECKS, check_dropout_kind, kind_example

CPU = torch.device("cpu")
INPUT = (3, 6, 6)  # dropoutlab.testing.INPUT_SHAPE


def example(kind: type[nn.Module]):
    """The example of one of PyTorch's layers: a function of a rate (unused) giving a small
    network of 10 classes on ``INPUT`` images that holds a layer of ``kind``."""

    def build(rate: float) -> nn.Sequential:
        conv = nn.Conv2d(3, 4, 3, padding=1)
        head = [nn.Flatten(), nn.Linear(4 * 6 * 6, 10)]
        if kind is nn.BatchNorm1d:
            layers = [nn.Flatten(), nn.Linear(108, 8), nn.BatchNorm1d(8), nn.Linear(8, 10)]
        elif kind is nn.MaxPool2d:
            layers = [conv, nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4 * 3 * 3, 10)]
        elif kind is nn.BatchNorm2d:
            layers = [conv, nn.BatchNorm2d(4), *head]
        elif kind in (nn.Conv2d, nn.Linear, nn.Flatten):
            layers = [conv, *head]
        else:  # activations
            layers = [conv, kind(), *head]
        counts: dict[str, int] = {}
        names = []
        for module in layers:  # named per kind, as the model builder does
            kind_name = type(module).__name__.lower()
            counts[kind_name] = counts.get(kind_name, 0) + 1
            names.append(f"{kind_name}_{counts[kind_name]}")
        return nn.Sequential(OrderedDict(zip(names, layers, strict=True)))

    return build


KINDS = [name for name, cls in dropout_kinds().items() if cls in STACKED_FORMS]
LAYERS = sorted(set(STACKED_FORMS) - set(dropout_kinds().values()), key=lambda kind: kind.__name__)


def test_every_registered_layer_is_a_dropout_kind_or_has_an_example_here():
    assert set(KINDS) >= {"standard", "scaled", "gaussian", "alpha", "spatial", "dropblock", "dropconnect"}
    for kind in LAYERS:
        assert any(isinstance(m, kind) for m in example(kind)(0.5).modules()), kind


@pytest.mark.parametrize("kind", dropout_kinds())
def test_every_dropout_kind_keeps_the_contract(kind):
    check_dropout_kind(kind)


@pytest.mark.parametrize("check", STACK_CHECKS, ids=lambda check: check.__name__)
@pytest.mark.parametrize("kind", LAYERS, ids=lambda kind: kind.__name__)
def test_every_stacked_form_of_pytorchs_layers_keeps_the_contract(kind, check):
    check(example(kind), kind.__name__)


def test_a_stack_of_dense_or_convolution_layers_prints_its_member_count():
    for kind in (nn.Linear, nn.Conv2d):
        build = example(kind)
        assert "members=3" in repr(StackedNet.from_members(build(0.0), [build(0.0) for _ in range(3)], CPU))


class ScaledDropoutThatDoubles(StackedScaledDropout):
    """Broken on purpose: doubles every member's activations, even at rate 0."""

    def forward(self, a: Activations) -> Activations:
        return a.to(a.x * 2)


class ScaledDropoutThatHidesItsRates(StackedScaledDropout):
    """Broken on purpose: prints nothing of its members' rates."""

    def extra_repr(self) -> str:
        return ""


class ScaledDropoutThatKeepsARate(StackedScaledDropout):
    """Broken on purpose: gives each member's rate back as if it were a weight."""

    def member_state(self, i: int) -> dict[str, torch.Tensor]:
        return {"keep": self.keep[i].clone()}


@pytest.mark.parametrize(
    ("broken", "message"),
    [
        (ScaledDropoutThatDoubles, "computes other logits in eval mode than its members' own networks"),
        (ScaledDropoutThatKeepsARate, "member 0's weights come back keyed"),
        (ScaledDropoutThatHidesItsRates, "without rates=[0, 0.3, 0.6]"),
    ],
)
def test_the_contract_names_the_kind_and_what_a_broken_stacked_form_gets_wrong(monkeypatch, broken, message):
    monkeypatch.setitem(STACKED_FORMS, ScaledDropout, broken)
    with pytest.raises(AssertionError) as info:
        check_dropout_kind("scaled")
    assert str(info.value).startswith("dropout kind 'scaled' (ScaledDropout): ") and message in str(
        info.value
    )


def test_the_contract_refuses_an_unknown_kind_and_a_class_that_does_not_name_its_kind(monkeypatch):
    with pytest.raises(AssertionError, match="'bogus' is not a dropout kind; the kinds: standard, "):
        check_dropout_kind("bogus")
    monkeypatch.setattr(ScaledDropout, "kind", "scaled2")
    with pytest.raises(AssertionError, match="its class attribute kind is 'scaled2', not 'scaled'"):
        check_dropout_kind("scaled")


def test_dropout_masks_follow_each_members_rate_in_training():
    build = kind_example("standard")
    torch.manual_seed(0)
    net = StackedNet.from_members(build(0.5), [build(rate) for rate in (0.0, 0.5, 0.8)], CPU)
    dropout = net.layers.dropout_conv
    dropout.generators = [torch.Generator().manual_seed(i) for i in range(3)]
    x = torch.ones(3, 64, 4, 6, 6)
    out = dropout(Activations(x, "member", 3)).x
    assert torch.equal(out[0], x[0])
    assert (out[1] == 0).float().mean().item() == pytest.approx(0.5, abs=0.03)
    assert (out[2] == 0).float().mean().item() == pytest.approx(0.8, abs=0.03)
    dropout.eval()
    assert dropout(Activations(x, "member", 3)).x is x
