"""The dropout kinds of issue #10 (``layers/kinds.py``): each does what its paper says, and its
stacked form (``layers/stacked_kinds.py``) gives each member what the member's own module gives.

Statistical checks use fixed seeds and bounds of 5 standard errors computed from the sample
size (a correct layer fails one with probability below 1e-6).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from scipy import integrate
from torch import nn
from torch.nn import functional as F

from dropoutlab.layers import STACKED_FORMS, Activations, Dropout
from dropoutlab.layers.kinds import (
    DROPOUT_KINDS,
    AlphaDropout,
    ConcreteDropout,
    DropBlock,
    DropConnectLinear,
    GaussianDropout,
    ScaledDropout,
    SpatialDropout,
    alpha_constants,
    alpha_dropout,
    block_gamma,
    concrete_dropout,
    drop_block,
    dropconnect_linear,
    gaussian_dropout,
    scaled_dropout,
    spatial_dropout,
)
from dropoutlab.layers.stacked import stacked_form
from dropoutlab.models.builder import kind_fits, kind_places

Z = 5.0  # standard errors a statistic may stray


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def within(value: float, want: float, std: float, n: int) -> bool:
    return abs(value - want) <= Z * std / math.sqrt(n)


# ---------------------------------------------------------------------------------------------
# scaled


def test_scaled_training_mean_is_keep_times_x_and_a_linear_model_predicts_it_in_eval():
    torch.manual_seed(0)
    p, n = 0.4, 20_000
    x, w = torch.randn(50), torch.randn(50)
    out = scaled_dropout(x.expand(n, 50), p, True)
    kept = out != 0
    assert torch.equal(out[kept], x.expand(n, 50)[kept])  # survivors are not rescaled
    assert within(1 - kept.float().mean().item(), p, math.sqrt(p * (1 - p)), n * 50)
    se = math.sqrt(p * (1 - p) / n) * x.abs()
    assert ((out.mean(0) - (1 - p) * x).abs() <= Z * se + 1e-6).all()
    y_train, y_eval = out @ w, scaled_dropout(x, p, False) @ w
    assert torch.allclose(scaled_dropout(x, p, False), (1 - p) * x)
    assert within(y_train.mean().item(), y_eval.item(), y_train.std().item(), n)


# ---------------------------------------------------------------------------------------------
# gaussian


def test_gaussian_noise_has_mean_one_and_variance_p_over_one_minus_p():
    torch.manual_seed(1)
    p, n = 0.3, 200_000
    out = gaussian_dropout(torch.ones(n), p, True)
    var = p / (1 - p)
    assert within(out.mean().item(), 1.0, math.sqrt(var), n)
    assert within(out.var().item(), var, var * math.sqrt(2), n)  # sd of a normal sample's variance
    x = torch.randn(10)
    assert GaussianDropout(p).eval()(x) is x


# ---------------------------------------------------------------------------------------------
# alpha


def test_alpha_dropout_keeps_standard_normal_inputs_at_mean_zero_and_variance_one():
    torch.manual_seed(2)
    p, n = 0.2, 200_000
    out = alpha_dropout(torch.randn(n), p, True)
    var = out.var().item()
    fourth = ((out - out.mean()) ** 4).mean().item()
    assert within(out.mean().item(), 0.0, math.sqrt(var), n)
    assert within(var, 1.0, math.sqrt(fourth - var**2), n)
    dropped = torch.isclose(out, torch.tensor(alpha_constants(p)[2])).float().mean().item()
    assert within(dropped, p, math.sqrt(p * (1 - p)), n)
    x = torch.randn(10)
    assert AlphaDropout(p).eval()(x) is x


def test_alpha_dropout_is_torchs_formula():
    x = torch.randn(4000)
    a, offset, dropped = alpha_constants(0.3)
    out = alpha_dropout(x, 0.3, True, gen(0))
    kept = _uniform_like(x, gen(0)) < 0.7
    torch.testing.assert_close(out, torch.where(kept, a * x + offset, torch.tensor(dropped)))
    # torch.nn.functional.alpha_dropout on a tensor that drops nothing but one known element
    torch.testing.assert_close(torch.tensor([a * 1.0 + offset, dropped]), _torch_alpha_values(0.3))


def _uniform_like(x, generator):
    return torch.empty(x.shape).uniform_(generator=generator)


def _torch_alpha_values(p):
    """The two values PyTorch's alpha dropout gives (a kept 1.0 and a dropped unit)."""
    torch.manual_seed(3)
    out = F.alpha_dropout(torch.ones(20_000), p, True)
    values = torch.unique(out)
    return torch.stack([values.max(), values.min()])


# ---------------------------------------------------------------------------------------------
# spatial


def test_spatial_dropout_drops_whole_channels_at_the_rate_and_keeps_the_mean():
    torch.manual_seed(4)
    p, b, c = 0.3, 400, 50
    x = torch.rand(b, c, 3, 4) + 0.5
    out = spatial_dropout(x, p, True)
    dropped = (out == 0).all(3).all(2)
    kept = torch.isclose(out, x / (1 - p)).all(3).all(2)
    assert (dropped ^ kept).all()  # each map is dropped or kept as a whole
    assert within(dropped.float().mean().item(), p, math.sqrt(p * (1 - p)), b * c)
    ratio = (out / x)[:, :, 0, 0]
    assert within(ratio.mean().item(), 1.0, math.sqrt(p / (1 - p)), b * c)
    assert SpatialDropout(p).eval()(x) is x
    with pytest.raises(ValueError, match="channels"):
        spatial_dropout(torch.ones(4, 5), p, True)


# ---------------------------------------------------------------------------------------------
# dropblock


def expected_block_drops(p: float, size: int, h: int, w: int) -> np.ndarray:
    """Each unit's probability of being dropped: one minus the chance that none of the valid
    seeds whose block covers it fires."""
    gamma = block_gamma(p, size, h, w)
    rows = np.array([min(r, h - size) - max(0, r - size + 1) + 1 for r in range(h)])
    cols = np.array([min(c, w - size) - max(0, c - size + 1) + 1 for c in range(w)])
    return 1 - (1 - gamma) ** np.outer(rows, cols)


def test_dropblock_drops_square_blocks_inside_the_map():
    torch.manual_seed(5)
    size = 3
    out = drop_block(torch.ones(50, 8, 10, 9), 0.15, True, size)
    dropped = (out == 0).float().flatten(0, 1).unsqueeze(1)
    assert dropped.sum() > 0
    # opening (erosion then dilation by the square) keeps exactly a union of whole squares that fit
    inside = -F.max_pool2d(-dropped, size, stride=1)
    opened = F.max_pool2d(F.pad(inside, [size - 1] * 4), size, stride=1)
    assert torch.equal(opened, dropped)
    assert torch.unique(out[out != 0]).numel() == 1  # kept units share one scale


def test_dropblock_drop_rates_follow_the_papers_seeds_and_the_scale_keeps_the_mean():
    torch.manual_seed(6)
    p, size, h, w = 0.15, 3, 10, 9
    outs = torch.cat([drop_block(torch.ones(100, 8, h, w), p, True, size) for _ in range(10)])
    maps = outs.flatten(0, 1)  # 8000 feature maps
    for out in outs.split(100):
        assert out.mean().item() == pytest.approx(1.0, abs=1e-5)  # count(mask) / count_ones(mask)
    want = expected_block_drops(p, size, h, w)
    fractions = (maps == 0).float().mean((1, 2))
    assert within(fractions.mean().item(), want.mean(), fractions.std().item(), len(maps))
    assert p - 0.03 < want.mean() < p  # the paper's gamma, less the overlaps of blocks
    # each unit's expectation: border units are covered by fewer seeds, so drop less often
    mean, std = maps.mean(0), maps.std(0)
    expect = torch.tensor((1 - want) / (1 - want.mean()), dtype=torch.float32)
    assert ((mean - expect).abs() <= Z * std / math.sqrt(len(maps)) + 2e-3).all()


def test_dropblock_of_block_size_one_drops_single_units_at_the_rate():
    torch.manual_seed(7)
    p = 0.25
    out = drop_block(torch.ones(100, 10, 8, 8), p, True, 1)
    n = out.numel()
    assert block_gamma(p, 1, 8, 8) == p
    assert within((out == 0).float().mean().item(), p, math.sqrt(p * (1 - p)), n)


def test_dropblock_clips_a_block_larger_than_the_map_and_is_the_identity_in_eval():
    out = drop_block(torch.ones(4, 3, 2, 2), 0.5, True, 5, gen(0))
    assert out.shape == (4, 3, 2, 2)
    x = torch.randn(2, 3, 4, 4)
    assert DropBlock(0.5, block_size=2).eval()(x) is x
    for bad in (0, 2.5, True, -1):
        with pytest.raises(ValueError, match="block_size"):
            DropBlock(0.1, block_size=bad)


# ---------------------------------------------------------------------------------------------
# dropconnect


def test_dropconnect_uses_one_weight_mask_for_the_whole_minibatch():
    torch.manual_seed(8)
    p = 0.4
    layer = DropConnectLinear(6, 5, p).train()
    eye = torch.eye(6)
    out = layer(eye.repeat(3, 1))  # sample i reads column i of the masked weights
    torch.testing.assert_close(out[6:12], out[:6], rtol=0, atol=0)
    torch.testing.assert_close(out[12:], out[:6], rtol=0, atol=0)
    masked = (out[:6] - layer.bias).t()
    w = layer.weight.detach()
    zero = masked.abs() < 1e-6
    assert zero.any() and (~zero).any()
    torch.testing.assert_close(masked[~zero], w[~zero] / (1 - p))


def test_dropconnect_drops_weights_at_the_rate_and_keeps_the_expected_output():
    torch.manual_seed(9)
    p, calls = 0.3, 400
    layer = DropConnectLinear(64, 32, p).train()
    weight, bias = layer.weight.detach(), layer.bias.detach()
    dropped = [
        (dropconnect_linear(torch.eye(64), weight, torch.zeros(32), p, True) == 0).float().mean().item()
        for _ in range(20)
    ]
    assert within(float(np.mean(dropped)), p, math.sqrt(p * (1 - p)), 20 * 64 * 32)
    x = torch.randn(4, 64)
    with torch.no_grad():
        outs = torch.stack([layer(x) for _ in range(calls)])  # calls are independent, samples are not
    se = outs.std(0) / math.sqrt(calls)
    assert ((outs.mean(0) - F.linear(x, weight, bias)).abs() <= Z * se).all()


def test_dropconnect_in_eval_and_its_state_are_nn_linears():
    torch.manual_seed(10)
    layer = DropConnectLinear(7, 3, 0.5, slot="dense")
    assert isinstance(layer, nn.Linear)
    assert list(layer.state_dict()) == ["weight", "bias"]
    plain = nn.Linear(7, 3)
    plain.load_state_dict(layer.state_dict())
    x = torch.randn(5, 7)
    layer.eval()
    assert torch.equal(layer(x), plain(x))
    assert "p=0.5, slot='dense'" in repr(layer)


# ---------------------------------------------------------------------------------------------
# concrete


def concrete_keep_mean(p: float, temperature: float) -> float:
    """E[(1 - z)] of the relaxed Bernoulli(p) drop z at ``temperature`` (numerically)."""
    logit = math.log(p / (1 - p))

    def keep(u):
        v = (logit + math.log(u) - math.log1p(-u)) / temperature
        return 0.5 * (1 - math.tanh(v / 2))  # 1 - sigmoid(v)

    return integrate.quad(keep, 0, 1, points=[1 - p], limit=200)[0]


def test_concrete_dropout_keeps_the_expected_activation_and_drops_at_its_rate():
    torch.manual_seed(11)
    p, n = 0.3, 200_000
    layer = ConcreteDropout(p).train()
    assert layer.current_rate() == pytest.approx(p, abs=1e-6)
    with torch.no_grad():
        out = layer(torch.ones(n, 1))
    want = concrete_keep_mean(p, 0.1) / (1 - p)
    assert want == pytest.approx(1.0, abs=0.01)  # the relaxation barely biases the mean
    assert within(out.mean().item(), want, out.std().item(), n)
    dropped = (out < 0.5 / (1 - p)).float().mean().item()  # z > 1/2 exactly with probability p
    assert within(dropped, p, math.sqrt(p * (1 - p)), n)
    x = torch.randn(3, 4)
    assert layer.eval()(x) is x


def test_concrete_rate_is_learned_and_its_penalty_is_the_papers_entropy_term():
    torch.manual_seed(12)
    layer = ConcreteDropout(0.2, dropout_regularizer=1e-3).train()
    assert layer.penalty().item() == 0.0  # no input seen yet
    out = layer(torch.randn(8, 3, 4, 5))
    assert layer.features == 60
    p = layer.current_rate()
    assert layer.penalty().item() == pytest.approx(1e-3 * 60 * (p * math.log(p) + (1 - p) * math.log(1 - p)))
    (out.square().sum() + layer.penalty()).backward()
    assert torch.isfinite(layer.p_logit.grad) and layer.p_logit.grad != 0
    for start in (0.2, 0.8):  # the entropy term alone pulls the rate towards 1/2
        layer = ConcreteDropout(start, dropout_regularizer=1.0)
        layer(torch.ones(1, 10))
        optimizer = torch.optim.SGD(layer.parameters(), lr=0.01)
        for _ in range(5):
            optimizer.zero_grad()
            layer.penalty().backward()
            optimizer.step()
        assert abs(layer.current_rate() - 0.5) < abs(start - 0.5)


def test_concrete_function_is_identity_in_eval_and_rejects_rate_zero():
    x = torch.randn(3, 4)
    assert concrete_dropout(x, torch.tensor(0.0), False) is x
    with pytest.raises(ValueError, match=r"\(0, 1\)"):
        ConcreteDropout(0.0)


# ---------------------------------------------------------------------------------------------
# stacked forms


@dataclass(frozen=True)
class Kind:
    """How to build a kind's per-run module at rate ``p`` (rate 0: what a member has instead)
    and draw its training output with a generator."""

    make: Callable[[float], nn.Module | None]
    draw: Callable[[torch.Tensor, nn.Module, torch.Generator | None], torch.Tensor]
    image: bool = True  # tested on image activations
    dense: bool = True  # tested on feature vectors


IN, OUT = 12, 7  # dropconnect's layer

KINDS = {
    "scaled": Kind(lambda p: ScaledDropout(p), lambda x, m, g: scaled_dropout(x, m.p, True, g)),
    "gaussian": Kind(lambda p: GaussianDropout(p), lambda x, m, g: gaussian_dropout(x, m.p, True, g)),
    "alpha": Kind(lambda p: AlphaDropout(p), lambda x, m, g: alpha_dropout(x, m.p, True, g)),
    "spatial": Kind(
        lambda p: SpatialDropout(p), lambda x, m, g: spatial_dropout(x, m.p, True, g), dense=False
    ),
    "dropblock": Kind(
        lambda p: DropBlock(p, block_size=2 if p > 0.5 else 3),  # members of two block sizes
        lambda x, m, g: drop_block(x, m.p, True, m.block_size, g),
        dense=False,
    ),
    "concrete": Kind(
        lambda p: ConcreteDropout(p), lambda x, m, g: concrete_dropout(x, m.p_logit, True, m.temperature, g)
    ),
    "dropconnect": Kind(
        lambda p: DropConnectLinear(IN, OUT, p) if p else nn.Linear(IN, OUT),
        lambda x, m, g: dropconnect_linear(x, m.weight, m.bias, getattr(m, "p", 0.0), True, g),
        image=False,
    ),
}


def stack_of(name: str, rates):
    """The stacked form of kind ``name`` for members at ``rates``, with the members' modules."""
    kind = KINDS[name]
    torch.manual_seed(100)
    members = [kind.make(r) if r or name == "dropconnect" else None for r in rates]
    template = kind.make(0.5)
    layer = stacked_form(template).from_members(template, members)
    layer.generators = [gen(10 + m) for m in range(len(rates))]
    return layer.train(), members


def inputs(layout: str, members: int, image: bool):
    """``(Activations, each member's input)`` of ``layout`` (``grouped``: groups of 2 and the rest)."""
    torch.manual_seed(200)
    sample = (4, 6, 5) if image else (IN,)
    b = 5
    if layout == "shared":
        x = torch.randn(b, *sample)
        return Activations(x, "shared", members), [x] * members
    if layout == "grouped":
        x = torch.randn(2, b, *sample)
        return Activations(x, "grouped", members, (2, members - 2)), [x[0], x[0]] + [x[1]] * (members - 2)
    xs = torch.randn(members, b, *sample)
    if layout == "image":
        return Activations(xs.transpose(0, 1).flatten(1, 2), "image", members), list(xs)
    return Activations(xs, layout, members), list(xs)


def by_member(a: Activations) -> torch.Tensor:
    """Stacked output as ``(M, B, ...)``, member ``m``'s slice shaped as its own output."""
    assert a.layout in ("member", "flat", "image"), a.layout
    return a.x.unflatten(1, (a.members, -1)).transpose(0, 1) if a.layout == "image" else a.x


def _cases():
    for name, kind in KINDS.items():
        if kind.image:
            for layout in ("member", "image", "shared", "grouped"):
                yield pytest.param(name, layout, True, id=f"{name}-{layout}-images")
        if kind.dense:
            for layout in ("flat", "shared", "grouped"):
                yield pytest.param(name, layout, False, id=f"{name}-{layout}-vectors")


@pytest.mark.parametrize(("name", "layout", "image"), list(_cases()))
def test_each_member_draws_what_its_own_function_draws_from_its_generator(name, layout, image):
    rates = (0.3, 0.0, 0.6)
    layer, members = stack_of(name, rates)
    a, xs = inputs(layout, 3, image)
    out = by_member(layer(a))
    for m, (module, x) in enumerate(zip(members, xs, strict=True)):
        if module is None:  # a member at rate 0 is exactly the identity
            assert torch.equal(out[m], x)
        else:
            want = KINDS[name].draw(x, module, gen(10 + m))
            torch.testing.assert_close(out[m], want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", KINDS)
def test_members_that_stay_keep_their_own_generators_and_rates(name):
    layer, members = stack_of(name, (0.3, 0.0, 0.6))
    layer.select(torch.tensor([2, 0]))
    a, xs = inputs("member" if KINDS[name].image else "flat", 2, KINDS[name].image)
    out = by_member(layer(a))
    for position, m in enumerate((2, 0)):
        want = KINDS[name].draw(xs[position], members[m], gen(10 + m))
        torch.testing.assert_close(out[position], want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", KINDS)
def test_a_member_at_rate_zero_is_exactly_the_identity_and_eval_changes_nothing(name):
    layer, members = stack_of(name, (0.5, 0.0))
    a, xs = inputs("member" if KINDS[name].image else "flat", 2, KINDS[name].image)
    out = by_member(layer(a))
    layer.eval()
    evaluated = by_member(layer(a))
    if name == "dropconnect":  # the member's plain dense layer, in training as in eval
        assert torch.equal(out[1], evaluated[1])
        torch.testing.assert_close(
            evaluated, torch.stack([F.linear(x, m.weight, m.bias) for x, m in zip(xs, members, strict=True)])
        )
    else:
        assert torch.equal(out[1], xs[1])
        if name == "scaled":
            torch.testing.assert_close(evaluated[0], 0.5 * xs[0])
            assert torch.equal(evaluated[1], xs[1])
        else:
            assert layer(a) is a
    all_zero, _ = stack_of(name, (0.0, 0.0))
    if name != "dropconnect":
        assert all_zero(a) is a


def per_call_statistics(name: str, out: torch.Tensor, x: torch.Tensor, p: float) -> list[float]:
    """Mean, mean square and, where units are dropped, the dropped fraction of one call's output."""
    stats = [out.mean().item(), out.square().mean().item()]
    if name in ("scaled", "spatial", "dropblock"):
        stats.append((out == 0).float().mean().item())
    elif name == "alpha":
        stats.append(torch.isclose(out, torch.tensor(alpha_constants(p)[2])).float().mean().item())
    elif name == "concrete":
        stats.append((out < 0.5 * x / (1 - p)).float().mean().item())
    return stats


def compare(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Each statistic's difference between two samples of calls, in standard errors."""
    se = np.sqrt(a.var(0, ddof=1) / len(a) + b.var(0, ddof=1) / len(b))
    return np.abs(a.mean(0) - b.mean(0)) / np.maximum(se, 1e-12)


@pytest.mark.parametrize("name", KINDS)
def test_a_stacked_member_has_the_distribution_of_its_own_module(name):
    kind, p, calls = KINDS[name], 0.4, 150
    layer, members = stack_of(name, (0.25, 0.0, p))
    torch.manual_seed(300)
    x = torch.rand(8, 4, 8, 8) + 0.5 if kind.image else torch.rand(8, IN) + 0.5
    layout = "member" if kind.image else "flat"
    a = Activations(torch.stack([x] * 3), layout, 3)
    with torch.no_grad():
        stacked = np.array([per_call_statistics(name, by_member(layer(a))[2], x, p) for _ in range(calls)])
        torch.manual_seed(301)
        own = members[2].train()
        alone = np.array([per_call_statistics(name, own(x), x, p) for _ in range(calls)])
        other = kind.make(0.2).train()  # the bounds tell a different rate apart
        if name == "dropconnect":
            other.load_state_dict(own.state_dict())
        elif name == "dropblock":
            other.block_size = own.block_size
        different = np.array([per_call_statistics(name, other(x), x, p) for _ in range(calls)])
    assert (compare(stacked, alone) <= Z).all(), compare(stacked, alone)
    assert (compare(different, alone) > Z).any()


def test_scaled_stack_in_eval_gives_a_shared_input_to_each_member_scaled_by_its_keep():
    layer, _ = stack_of("scaled", (0.5, 0.0, 0.2))
    layer.eval()
    for image in (True, False):
        a, xs = inputs("shared", 3, image)
        out = by_member(layer(a))
        torch.testing.assert_close(out, torch.stack([0.5 * xs[0], xs[0], 0.8 * xs[0]]))
        assert torch.equal(out[1], xs[0])


def test_concrete_stack_learns_each_members_rate_and_sums_their_penalties():
    layer, members = stack_of("concrete", (0.3, 0.0, 0.6))
    assert layer.current_rates() == pytest.approx([0.3, 0.0, 0.6], abs=1e-6)
    assert layer.member_state(0).keys() == members[0].state_dict().keys()
    assert torch.equal(layer.member_state(2)["p_logit"], members[2].state_dict()["p_logit"])
    assert layer.member_state(1) == {}
    a, xs = inputs("image", 3, True)
    out = by_member(layer(a))
    for m in (0, 2):
        members[m](xs[m])
    torch.testing.assert_close(layer.penalty(), members[0].penalty() + members[2].penalty())
    (out.square().sum() + layer.penalty()).backward()
    grad = layer.p_logit.grad
    assert grad[0] != 0 and grad[2] != 0 and grad[1] == 0  # no gradient reaches an absent member
    assert "rates=[0.3, 0, 0.6]" in repr(layer)


def test_dropconnect_stack_gives_weights_back_as_nn_linear_also_when_stored_in_out():
    torch.manual_seed(13)
    big = (1024, 1025)  # over IN_OUT_ABOVE elements: stored (M, in, out)
    members = [DropConnectLinear(*big, 0.5), nn.Linear(*big)]
    layer = stacked_form(members[0]).from_members(members[0], members)
    assert layer.in_out
    for m, member in enumerate(members):
        state = layer.member_state(m)
        assert state.keys() == member.state_dict().keys()
        assert all(torch.equal(state[k], v) for k, v in member.state_dict().items())
    layer.generators = [gen(1), gen(2)]
    layer.train()
    x = torch.randn(2, 3, 1024)
    out = layer(Activations(x, "flat", 2)).x
    want = dropconnect_linear(x[0], members[0].weight, members[0].bias, 0.5, True, gen(1))
    torch.testing.assert_close(out[0], want, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(out[1], members[1](x[1]), rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="every member"):
        stacked_form(members[0]).from_members(members[0], [members[0], None])


# ---------------------------------------------------------------------------------------------
# registry, validation, printing


def test_every_kind_is_registered_by_name_with_its_stacked_form():
    assert list(DROPOUT_KINDS) == [
        "standard", "scaled", "gaussian", "alpha", "spatial", "dropblock", "dropconnect", "concrete"
    ]  # fmt: skip
    assert DROPOUT_KINDS["standard"] is Dropout
    for name, cls in DROPOUT_KINDS.items():
        assert cls in STACKED_FORMS
        if name != "standard":
            assert cls.kind == name and cls.applies_to <= {"dense", "image"} and cls.applies_to


def test_kind_fits_is_the_one_rule_of_where_a_kind_may_sit():
    assert (
        kind_fits("standard", "dense") and kind_fits("standard", "image") and kind_fits("standard", "weights")
    )
    assert kind_fits("spatial", "image") and not kind_fits("spatial", "dense")
    assert kind_fits("dropblock", "image") and not kind_fits("dropblock", "weights")
    # dropconnect masks the weights of the dense layer right after its slot, so only such a slot takes it
    assert kind_fits("dropconnect", "weights") and not kind_fits("dropconnect", "dense")
    assert not kind_fits("dropconnect", "image") and kind_places("dropconnect") == {"weights"}
    assert kind_fits("alpha", "weights") and not kind_fits(
        "alpha", "image"
    )  # a weights slot is a dense one too
    assert kind_fits("gaussian", "image") and kind_fits("concrete", "dense")
    assert not any(
        kind_fits(kind, site) for kind in ("droppath", "variational") for site in ("dense", "image")
    )
    assert kind_places("droppath") == {"residual"} and kind_places("variational") == {"sequence"}


@pytest.mark.parametrize("cls", [ScaledDropout, GaussianDropout, AlphaDropout, SpatialDropout, DropBlock])
def test_rates_outside_zero_to_one_are_refused_and_modules_print_rate_and_slot(cls):
    for bad in (-0.1, 1.0, 1.5):
        with pytest.raises(ValueError, match=r"\[0, 1\)"):
            cls(bad)
    module = cls(0.25, slot="conv")
    assert module.p == 0.25 and module.slot == "conv"
    assert "p=0.25, slot='conv'" in repr(module)
    x = torch.randn(2, 3, 4, 4)
    assert cls(0.0).train()(x) is x
