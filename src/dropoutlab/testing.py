"""The contract a dropout kind keeps, as checks its author runs (scikit-learn's ``check_estimator``,
for layers)::

    from dropoutlab.testing import check_dropout_kind

    def test_my_kind_keeps_the_contract():
        check_dropout_kind("mykind")

``kind`` is a name of :func:`~dropoutlab.models.spec.dropout_kinds` (a study's ``dropout.kind``).
Each check raises ``AssertionError`` naming the kind and what it got wrong;
:func:`check_dropout_kind` runs every check that applies:

* :func:`check_kind_declares_itself`: the class names its ``kind``, says where it fits
  (``applies_to``) and has a docstring;
* :func:`check_kind_runs_in_a_network`: the model builder places it at every slot of a small
  layer list where it fits (:func:`kind_example`, the rule being
  :func:`~dropoutlab.models.builder.kind_fits`); the module holds its ``p`` and ``slot``, prints
  its slot, gives finite logits in training and eval mode, and draws nothing in eval mode;
* with a stacked form (``@register_stacked``; a kind without one still works, its runs train
  alone with the single engine), the checks of :data:`STACK_CHECKS`: stacked from three
  members' own networks it computes what each member computes, gives each member's weights
  back as its own ``state_dict``, lets members leave, trains as an ``nn.Module``, and prints
  each member's rate.

A kind that no layer-list slot takes (``droppath``, ``variational``: a family's own kinds) is
checked for its declaration only; the family's tests hold the rest.
:func:`check_stacked_layer` runs :data:`STACK_CHECKS` on any layer with a stacked form, given
a function that builds a small network holding it.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from dropoutlab.layers import STACKED_FORMS, StackedNet
from dropoutlab.models.builder import NEEDS, build_model, check_slot_kinds, kind_fits, kind_places, slot_sites
from dropoutlab.models.spec import dropout_kinds, parse_layers

#: The images every example network reads, ``(C, H, W)``, and the classes it predicts.
INPUT_SHAPE = (3, 6, 6)
NUM_CLASSES = 10

#: Each member's rate where a check stacks members at different rates.
RATES = (0.0, 0.3, 0.6)

#: A layer list with a slot on images (``conv``) and one on feature vectors right before a dense
#: layer (``dense``, which also takes ``dropconnect``): :func:`kind_example` fills those its kind fits.
EXAMPLE_LAYERS = parse_layers(
    [
        {"type": "conv2d", "filters": 4, "kernel": 3, "padding": 1, "activation": "relu"},
        {"type": "dropout", "slot": "conv"},
        {"type": "flatten"},
        {"type": "dropout", "slot": "dense"},
        {"type": "dense", "units": "classes"},
    ],
    "dropoutlab.testing.EXAMPLE_LAYERS",
)

Example = Callable[[float], nn.Module]
"""A function of a rate giving a small network of :data:`NUM_CLASSES` logits for
:data:`INPUT_SHAPE` images that holds the layer under test (none at rate 0, for a dropout kind)."""

_CPU = torch.device("cpu")


def _cls(kind: str) -> type[nn.Module]:
    kinds = dropout_kinds()
    if kind not in kinds:
        raise AssertionError(
            f"{kind!r} is not a dropout kind; the kinds: {', '.join(kinds)} (a kind for layer lists is "
            "added to DROPOUT_KINDS in dropoutlab/layers/kinds.py)"
        )
    return kinds[kind]


def _slots(kind: str) -> list[str]:
    """The slots of :data:`EXAMPLE_LAYERS` that take ``kind``."""
    return [slot for slot, site in slot_sites(EXAMPLE_LAYERS, INPUT_SHAPE).items() if kind_fits(kind, site)]


def kind_example(kind: str) -> Example:
    """The :data:`Example` of dropout ``kind``: :data:`EXAMPLE_LAYERS` built by the model builder
    with ``kind`` at every slot where it fits, at the rate given; at rate 0 a slot adds nothing
    (a plain dense layer where ``dropconnect`` would mask one), as in a run at rate 0."""
    _cls(kind)
    slots = _slots(kind)
    if not slots:
        places = " or ".join(NEEDS.get(place, place) for place in sorted(kind_places(kind)))
        raise AssertionError(f"dropout kind {kind!r} fits no slot of a layer list: it needs {places}")
    check_slot_kinds(EXAMPLE_LAYERS, INPUT_SHAPE, lambda slot: kind if slot in slots else "standard")

    def example(rate: float) -> nn.Module:
        rates, kinds = dict.fromkeys(slots, rate), dict.fromkeys(slots, kind)
        return build_model(EXAMPLE_LAYERS, rates, INPUT_SHAPE, NUM_CLASSES, kinds=kinds)

    return example


def _members(example: Example, rates: tuple[float, ...]) -> tuple[nn.Module, list[nn.Module]]:
    """The template (every layer present, rate 0.5) and one network per rate, member ``i`` initialised
    from seed ``i``; PyTorch's global generator is left as it was."""
    with torch.random.fork_rng():
        models = []
        for seed, rate in enumerate(rates):
            torch.manual_seed(seed)
            models.append(example(rate))
        return example(0.5), models


def _images(*shape: int) -> torch.Tensor:
    return torch.randn(*shape, *INPUT_SHAPE, generator=torch.Generator().manual_seed(0))


def _close(got: torch.Tensor, want: torch.Tensor, what: str) -> None:
    try:
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    except AssertionError as exc:
        raise AssertionError(f"{what}: {exc}") from None


def check_stack_computes_each_members_network(example: Example, name: str) -> None:
    """Stacked from three members' own networks (every rate 0), a stack's logits are each
    member's own, in eval mode (one ``shared`` input) and in training mode (one input per member)."""
    template, models = _members(example, (0.0,) * len(RATES))
    x = _images(5)
    for training in (False, True):
        net = StackedNet.from_members(template, models, _CPU)
        for model in models:
            model.train(training)
        net.train(training)
        with torch.no_grad():
            want = torch.stack([model(x) for model in models])
            got = net(torch.stack([x] * len(models)), "member") if training else net(x, "shared")
        mode = "training" if training else "eval"
        _close(
            got, want, f"{name}: a stack computes other logits in {mode} mode than its members' own networks"
        )


def check_members_weights_come_back_and_members_leave(example: Example, name: str) -> None:
    """Each member's weights come back from the stack keyed and valued as its own ``state_dict``;
    after ``select([2, 0])`` the stack holds those two members, in that order, and computes
    their logits."""
    template, models = _members(example, (0.0,) * len(RATES))
    net = StackedNet.from_members(template, models, _CPU)
    for i, model in enumerate(models):
        state, own = net.member_state(i), model.state_dict()
        if state.keys() != own.keys():
            raise AssertionError(
                f"{name}: member {i}'s weights come back keyed {sorted(state)}, but its own network's "
                f"state_dict has {sorted(own)}"
            )
        differ = [key for key, value in own.items() if not torch.equal(state[key], value)]
        if differ:
            raise AssertionError(f"{name}: member {i}'s weights come back changed: {', '.join(differ)}")
    net.select([2, 0])
    if net.size != 2 or any(p.shape[0] != 2 for p in net.parameters()):
        raise AssertionError(f"{name}: after select([2, 0]) the stack does not hold 2 members")
    net.eval()
    for model in models:
        model.eval()
    x = _images(4)
    with torch.no_grad():
        got, want = net(x), torch.stack([models[2](x), models[0](x)])
    _close(got, want, f"{name}: after select([2, 0]) a stack computes other logits than members 2 and 0")


def check_stack_trains(example: Example, name: str) -> None:
    """A stack of members at :data:`RATES`, each random layer with a generator per member, gives
    logits ``(M, B, classes)`` in training mode and finite gradients for every parameter."""
    template, models = _members(example, RATES)
    net = StackedNet.from_members(template, models, _CPU).train()
    if not list(net.parameters()) or not set(net.state_dict()) >= {n for n, _ in net.named_parameters()}:
        raise AssertionError(f"{name}: a stack has no parameters, or a state_dict without them")
    for layer in net.layers:
        if layer.random:
            layer.generators = [torch.Generator().manual_seed(i) for i in range(net.size)]
    logits = net(_images(len(RATES), 8), "member")
    if logits.shape != (len(RATES), 8, NUM_CLASSES):
        raise AssertionError(f"{name}: a stack in training gives logits of shape {tuple(logits.shape)}, "
                             f"not {(len(RATES), 8, NUM_CLASSES)}")  # fmt: skip
    grads = torch.autograd.grad(logits.square().sum(), list(net.parameters()))
    if not all(torch.isfinite(g).all() for g in grads):
        raise AssertionError(f"{name}: a stack in training gives gradients that are not finite")


#: The checks every stacked form passes, each called as ``check(example, name)``.
STACK_CHECKS: tuple[Callable[[Example, str], None], ...] = (
    check_stack_computes_each_members_network,
    check_members_weights_come_back_and_members_leave,
    check_stack_trains,
)


def check_stacked_layer(example: Example, name: str) -> None:
    """Run :data:`STACK_CHECKS` on the networks of ``example``, named ``name`` in the messages."""
    for check in STACK_CHECKS:
        check(example, name)


def check_kind_declares_itself(kind: str) -> None:
    """The class of dropout ``kind`` names it in its ``kind`` attribute, says where it fits in
    ``applies_to`` (a non-empty set of ``dense``, ``image``, ``residual``, ``sequence``), and has
    a docstring (where its paper is named)."""
    cls = _cls(kind)
    name = f"dropout kind {kind!r} ({cls.__name__})"
    if getattr(cls, "kind", None) != kind:
        raise AssertionError(
            f"{name}: its class attribute kind is {getattr(cls, 'kind', None)!r}, not {kind!r}"
        )
    places = getattr(cls, "applies_to", None)
    allowed = {"dense", "image", "residual", "sequence"}
    if not isinstance(places, frozenset) or not places or not places <= allowed:
        raise AssertionError(
            f"{name}: applies_to is {places!r}; it must be a non-empty frozenset of {', '.join(sorted(allowed))}"
        )
    if not (cls.__doc__ or "").strip():
        raise AssertionError(f"{name}: has no docstring (say what it drops and name its paper)")


def check_kind_runs_in_a_network(kind: str) -> None:
    """The builder's network with ``kind`` at rate 0.3 (:func:`kind_example`) holds a module of the
    kind at each slot it fits, with ``p`` (0.3) and ``slot`` set and the slot in its ``repr``;
    the network gives finite logits in training and eval mode, and two eval passes agree exactly
    (eval mode draws nothing: it is MC dropout's deterministic pass)."""
    cls, slots = _cls(kind), _slots(kind)
    name = f"dropout kind {kind!r} ({cls.__name__})"
    with torch.random.fork_rng():
        torch.manual_seed(0)
        net = kind_example(kind)(0.3)
        held = [m for m in net.modules() if isinstance(m, cls)]
        if sorted(m.slot for m in held) != sorted(slots):
            raise AssertionError(
                f"{name}: the builder placed it at slots {sorted(m.slot for m in held)}, not at {sorted(slots)}"
            )
        for module in held:
            if abs(module.p - 0.3) > 1e-6 or f"slot={module.slot!r}" not in repr(module):
                raise AssertionError(f"{name}: built at rate 0.3 it holds p = {module.p!r} and prints "
                                     f"{repr(module)!r} (it must print slot={module.slot!r})")  # fmt: skip
        x = _images(4)
        with torch.no_grad():
            for training in (True, False):
                logits = net.train(training)(x)
                if logits.shape != (4, NUM_CLASSES) or not torch.isfinite(logits).all():
                    mode = "training" if training else "eval"
                    raise AssertionError(f"{name}: in {mode} mode the network gives logits that are not "
                                         f"finite, or of shape {tuple(logits.shape)}")  # fmt: skip
            if not torch.equal(net(x), net(x)):
                raise AssertionError(f"{name}: two passes in eval mode differ; eval mode must draw nothing")


def check_stack_prints_each_members_rate(kind: str) -> None:
    """Printing a stack of members at :data:`RATES` shows ``rates=[0, 0.3, 0.6]`` at each layer
    of ``kind`` (a member without the layer at rate 0), as ``print(model)`` shows a run's rate."""
    cls = _cls(kind)
    template, models = _members(kind_example(kind), RATES)
    net = StackedNet.from_members(template, models, _CPU)
    want = "rates=[" + ", ".join(f"{r:g}" for r in RATES) + "]"
    for slot_name, module in template.named_children():
        if isinstance(module, cls) and want not in repr(getattr(net.layers, slot_name)):
            raise AssertionError(
                f"dropout kind {kind!r} ({cls.__name__}): a stack of members at rates {list(RATES)} prints "
                f"{repr(getattr(net.layers, slot_name))!r} at {slot_name}, without {want}"
            )


def check_dropout_kind(kind: str) -> None:
    """Run every check of the contract that applies to dropout ``kind`` (see the module docstring);
    raise AssertionError naming the kind and the check it fails."""
    check_kind_declares_itself(kind)
    if not kind_places(kind) & {"dense", "image", "weights"}:
        return  # a family's own kind: no layer list holds it
    check_kind_runs_in_a_network(kind)
    if _cls(kind) not in STACKED_FORMS:
        return  # its runs train alone, with the single engine
    check_stacked_layer(kind_example(kind), f"dropout kind {kind!r} ({_cls(kind).__name__})")
    check_stack_prints_each_members_rate(kind)


__all__ = [
    "EXAMPLE_LAYERS",
    "INPUT_SHAPE",
    "NUM_CLASSES",
    "RATES",
    "STACK_CHECKS",
    "Example",
    "check_dropout_kind",
    "check_kind_declares_itself",
    "check_kind_runs_in_a_network",
    "check_members_weights_come_back_and_members_leave",
    "check_stack_computes_each_members_network",
    "check_stack_prints_each_members_rate",
    "check_stack_trains",
    "check_stacked_layer",
    "kind_example",
]
