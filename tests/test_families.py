"""Model families (ResNet, GRU, LSTM, transformer), stochastic depth and variational dropout."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from dropoutlab.errors import DropoutlabError
from dropoutlab.layers.dropout import Dropout
from dropoutlab.layers.droppath import DropPath, drop_path
from dropoutlab.layers.variational import VariationalDropout, variational_mask
from dropoutlab.models.families import (
    FAMILIES,
    AttentionDropout,
    count_parameters,
    family_summary,
    get_family,
    patch_size,
)

NAMES = sorted(FAMILIES)
SHAPES = [(1, 8, 8), (3, 32, 32)]
SLOTS = [(name, slot) for name in NAMES for slot in FAMILIES[name].slots]


def build(name, rates=None, shape=(1, 8, 8), classes=10, seed=0):
    torch.manual_seed(seed)
    return FAMILIES[name].build(shape, classes, rates or {})


def images(shape=(1, 8, 8), batch=16, seed=1):
    return torch.randn(batch, *shape, generator=torch.Generator().manual_seed(seed))


def slotted_modules(model):
    return [m for m in model.modules() if getattr(m, "slot", None)]


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("name", NAMES)
def test_every_family_gives_one_logit_per_class_for_digits_and_cifar_shapes(name, shape):
    model = build(name, dict.fromkeys(FAMILIES[name].slots, 0.3), shape=shape, classes=7)
    out = model(images(shape, batch=5))
    assert out.shape == (5, 7)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", NAMES)
def test_with_every_rate_zero_two_training_passes_are_identical(name):
    model = build(name).train()
    x = images()
    torch.testing.assert_close(model(x), model(x), rtol=0, atol=0)


@pytest.mark.parametrize("name", NAMES)
def test_with_every_rate_set_two_training_passes_differ(name):
    model = build(name, dict.fromkeys(FAMILIES[name].slots, 0.3)).train()
    x = images()
    assert not torch.allclose(model(x), model(x))


@pytest.mark.parametrize(("name", "slot"), SLOTS, ids=lambda v: str(v))
def test_each_slot_alone_drops_in_training_and_is_the_identity_in_eval(name, slot):
    x = images()
    plain, dropped = build(name), build(name, {slot: 0.5})
    weights, same = plain.state_dict(), dropped.state_dict()
    assert weights.keys() == same.keys() and all(torch.equal(weights[k], same[k]) for k in weights)
    with torch.no_grad():
        torch.testing.assert_close(dropped.eval()(x), plain.eval()(x), rtol=0, atol=0)
        want = plain.train()(x)
        first, second = dropped.train()(x), dropped(x)
    assert not torch.allclose(first, want)
    assert not torch.allclose(first, second)


@pytest.mark.parametrize("name", NAMES)
def test_every_slot_is_found_with_its_rate_by_looking_for_slot_attributes(name):
    slots = FAMILIES[name].slots
    rates = {slot: 0.1 * (i + 1) for i, slot in enumerate(slots)}
    found = slotted_modules(build(name, rates))
    assert {m.slot for m in found} == set(slots)
    for m in found:
        assert isinstance(m, Dropout | DropPath | VariationalDropout)
        if not isinstance(m, DropPath):  # drop-path rates grow with depth: see the next test
            assert m.p == pytest.approx(rates[m.slot])


def test_resnet_drop_path_rates_grow_linearly_to_the_slot_rate():
    rates = [m.p for m in build("resnet", {"block": 0.3}).modules() if isinstance(m, DropPath)]
    assert rates == pytest.approx([0.1, 0.2, 0.3])


@pytest.mark.parametrize("name", NAMES)
def test_eval_mode_is_deterministic_after_training_mode(name):
    model = build(name, dict.fromkeys(FAMILIES[name].slots, 0.5))
    x = images()
    model.train()(x)
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(x), model(x), rtol=0, atol=0)


def test_mc_dropout_turns_on_attention_dropout_through_its_module_alone():
    model = build("transformer", {"attention": 0.5}).eval()
    x = images()
    with torch.no_grad():
        reference = model(x)
        for m in slotted_modules(model):
            m.train()
        first, second = model(x), model(x)
    assert not torch.allclose(first, reference)
    assert not torch.allclose(first, second)
    assert all(
        isinstance(m, AttentionDropout) for m in model.modules() if getattr(m, "slot", "") == "attention"
    )


def test_unknown_slots_and_bad_rates_are_refused_with_the_allowed_slots():
    with pytest.raises(DropoutlabError, match="no dropout slot 'hidden1'.*head, block"):
        build("resnet", {"hidden1": 0.5})
    with pytest.raises(DropoutlabError, match=r"\[0, 1\)"):
        build("gru", {"recurrent": 1.0})
    with pytest.raises(DropoutlabError, match="families: "):
        get_family("vgg")
    with pytest.raises(DropoutlabError, match="image input"):
        FAMILIES["lstm"].build((64,), 10, {})


@pytest.mark.parametrize("shape", [*SHAPES, (1, 28, 28)], ids=str)
@pytest.mark.parametrize("name", NAMES)
def test_meta_device_parameter_count_equals_the_real_models(name, shape):
    real = sum(p.numel() for p in build(name, shape=shape).parameters())
    assert count_parameters(name, shape, 10) == real
    rows = family_summary(name, shape, 10)
    assert sum(row.params for row in rows) == real
    assert {row.kind for row in rows if row.params == 0} <= {"Dropout", "DropPath", "VariationalDropout",
                                                             "AttentionDropout"}  # fmt: skip
    with torch.device("meta"):  # a forward pass on the meta device sizes the activations (family_size)
        meta = FAMILIES[name].build(shape, 10, dict.fromkeys(FAMILIES[name].slots, 0.5))
        out = meta.train()(torch.empty(2, *shape))
    assert out.shape == (2, 10) and out.device.type == "meta"


def test_transformer_patches_are_4x4_for_digits_mnist_and_cifar():
    assert [patch_size(s, s) for s in (8, 28, 32)] == [4, 4, 4]
    assert patch_size(30, 30) == 5  # divisors of 30 nearest 4: 3 and 5; the larger wins
    assert patch_size(7, 7) == 7 and patch_size(9, 6) == 3
    assert build("transformer", shape=(1, 8, 8)).embed.position.shape == (1, 4 + 1, 64)
    assert build("transformer", shape=(1, 28, 28)).embed.position.shape == (1, 49 + 1, 64)


@pytest.mark.parametrize(("name", "reference"), [("gru", nn.GRU), ("lstm", nn.LSTM)])
def test_recurrent_families_compute_what_torch_computes_with_the_same_weights(name, reference):
    model = build(name, shape=(3, 8, 8)).eval()
    rnn = reference(3 * 8, 64, batch_first=True)
    with torch.no_grad():
        rnn.weight_ih_l0.copy_(model.input_projection.weight)
        rnn.bias_ih_l0.copy_(model.input_projection.bias)
        rnn.weight_hh_l0.copy_(model.step.weight_hh)
        rnn.bias_hh_l0.copy_(model.step.bias_hh)
        x = images((3, 8, 8))
        out, _ = rnn(x.permute(0, 2, 1, 3).reshape(16, 8, 24))
        torch.testing.assert_close(model(x), model.head(out[:, -1]), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["gru", "lstm"])
def test_recurrent_mask_is_the_same_at_every_time_step(name):
    p = 0.5
    model = build(name, {"recurrent": p}, shape=(1, 12, 12)).train()
    seen_in, seen_out = [], []

    def before(module, args):
        seen_in.append(args[1].detach().clone())  # h_in: the state the gates see

    def after(module, args, output):
        seen_out.append((output if name == "gru" else output[0]).detach().clone())

    model.step.register_forward_pre_hook(before)
    model.step.register_forward_hook(after)
    with torch.no_grad():
        model(images((1, 12, 12), batch=64))
    assert len(seen_in) == 12
    masks = [h_in / h for h_in, h in zip(seen_in[1:], seen_out[:-1], strict=True)]  # step t's mask
    for mask in masks:
        torch.testing.assert_close(mask, masks[0])
    values = masks[0].flatten()
    assert (
        torch.isclose(values, torch.zeros(()))
        .logical_or(torch.isclose(values, torch.tensor(1 / (1 - p))))
        .all()
    )
    assert 0.4 < (values == 0).float().mean() < 0.6  # 4096 units: p = 0.5 within 6 sd
    assert not torch.equal(masks[0][0], masks[0][1])  # each sequence draws its own


def test_families_learn_random_labels_in_a_few_steps():
    torch.manual_seed(0)
    x, y = torch.randn(64, 1, 8, 8), torch.randint(0, 10, (64,))
    for name in NAMES:
        model = build(name, dict.fromkeys(FAMILIES[name].slots, 0.1))
        optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
        with torch.no_grad():
            before = F.cross_entropy(model.eval()(x), y).item()
        model.train()
        for _ in range(40):
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            after = F.cross_entropy(model.eval()(x), y).item()
        assert after < 0.7 * before, (name, before, after)


# ---------------------------------------------------------------------------------------------
# Stochastic depth


def test_drop_path_drops_whole_samples_at_the_rate_and_keeps_the_mean():
    p, n = 0.3, 20000
    x = torch.ones(n, 3, 2, 2)
    out = drop_path(x, p, True, generator=torch.Generator().manual_seed(0))
    per_sample = out.flatten(1)
    assert torch.equal(per_sample.min(1).values, per_sample.max(1).values)  # all of a sample or none
    kept = per_sample[:, 0] != 0
    torch.testing.assert_close(per_sample[kept, 0], torch.full((int(kept.sum()),), 1 / (1 - p)))
    sd = math.sqrt(p * (1 - p) / n)
    assert abs((~kept).float().mean().item() - p) < 5 * sd
    assert abs(out.mean().item() - 1.0) < 5 * math.sqrt(p / (1 - p) / n)


def test_drop_path_is_the_identity_in_eval_and_at_rate_zero():
    x = torch.randn(8, 4)
    layer = DropPath(0.5, slot="block").eval()
    assert layer(x) is x
    assert drop_path(x, 0.0, True) is x
    assert "p=0.5" in repr(layer) and "slot='block'" in repr(layer)
    assert DropPath.kind == "droppath" and DropPath.applies_to == {"residual"}
    with pytest.raises(ValueError, match="drop-path rate"):
        DropPath(1.0)


# ---------------------------------------------------------------------------------------------
# Variational dropout


def test_variational_dropout_uses_one_mask_for_every_time_step_at_the_rate():
    p, b, t, f = 0.25, 2000, 10, 16
    torch.manual_seed(0)
    out = VariationalDropout(p, slot="input").train()(torch.ones(b, t, f))
    for step in range(1, t):
        assert torch.equal(out[:, step], out[:, 0])
    values = out[:, 0].flatten()
    assert ((values == 0) | torch.isclose(values, torch.tensor(1 / (1 - p)))).all()
    sd = math.sqrt(p * (1 - p) / values.numel())
    assert abs((values == 0).float().mean().item() - p) < 5 * sd
    assert (out[:, 0] == out[:1, 0]).all(1).float().mean() < 0.01  # not one mask for the whole batch


def test_variational_mask_is_none_when_nothing_is_dropped():
    assert variational_mask((2, 3), 0.5, False, "cpu") is None
    assert variational_mask((2, 3), 0.0, True, "cpu") is None
    mask = variational_mask((4, 5), 0.5, True, "cpu", generator=torch.Generator().manual_seed(0))
    assert mask.shape == (4, 5) and set(mask.unique().tolist()) <= {0.0, 2.0}
    x = torch.randn(3, 4, 5)
    layer = VariationalDropout(0.5, slot="recurrent").eval()
    assert layer(x) is x
    assert "p=0.5" in repr(layer) and "slot='recurrent'" in repr(layer)
    with pytest.raises(ValueError, match="sequence"):
        layer.train()(torch.randn(3, 5))
