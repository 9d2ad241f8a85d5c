"""Model families that are not plain layer lists: ResNet, GRU, LSTM and a small transformer.

Each family is an ``nn.Module`` built from ``(input_shape, num_classes, rates)``:
``input_shape`` is ``(C, H, W)``, ``rates`` maps each of the family's named dropout slots to
a rate in [0, 1) (a missing slot is 0; an unknown one is refused). Every dropout layer is a
:class:`~dropoutlab.layers.dropout.Dropout`, :class:`~dropoutlab.layers.droppath.DropPath`
or :class:`~dropoutlab.layers.variational.VariationalDropout` holding ``slot`` and ``p``, so
``[m for m in model.modules() if getattr(m, "slot", None)]`` finds them all (for MC dropout,
set those modules to train mode and the rest to eval). A slot at rate 0 keeps its module,
so the module names and the ``state_dict`` do not depend on the rates, but draws nothing.

These families train one run at a time (the single engine); the stacked engine covers
layer-list models only. ``FAMILIES`` is the registry; see ``docs/families.md``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn
from torch.nn import functional as F

from dropoutlab.errors import DropoutlabError
from dropoutlab.layers.dropout import Dropout
from dropoutlab.layers.droppath import DropPath
from dropoutlab.layers.variational import VariationalDropout
from dropoutlab.models.spec import check_rate


def slot_rates(family: str, slots: tuple[str, ...], rates: Mapping[str, float]) -> dict[str, float]:
    """Every slot of ``family`` with its rate from ``rates`` (0 when missing), checked.

    Raises DropoutlabError for a slot the family does not have or a rate outside [0, 1).
    """
    unknown = sorted(set(rates) - set(slots))
    if unknown:
        raise DropoutlabError(
            f"model {family!r} has no dropout slot {', '.join(map(repr, unknown))}; its slots: {', '.join(slots)}"
        )
    return {slot: check_rate(rates.get(slot, 0.0), f"dropout.{slot}") for slot in slots}


def _check_shape(family: str, input_shape: tuple[int, ...]) -> tuple[int, int, int]:
    if len(input_shape) != 3 or any(int(s) < 1 for s in input_shape):
        raise DropoutlabError(f"model {family!r} needs image input (C, H, W), got shape {tuple(input_shape)}")
    c, h, w = (int(s) for s in input_shape)
    return c, h, w


# ---------------------------------------------------------------------------------------------
# ResNet


class PreActBlock(nn.Module):
    """A pre-activation basic block: ``shortcut(x) + drop_path(conv(relu(bn(conv(relu(bn(x)))))))``.

    He et al. (2016b), fig. 4(e): batch norm and ReLU come before each 3x3 convolution; the
    shortcut is the identity, or a 1x1 convolution of the pre-activated input when the
    stride or the channel count changes. Stochastic depth acts on the residual branch only.
    """

    def __init__(self, channels_in: int, channels_out: int, stride: int, drop: float) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(channels_in)
        self.conv1 = nn.Conv2d(channels_in, channels_out, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels_out)
        self.conv2 = nn.Conv2d(channels_out, channels_out, 3, padding=1, bias=False)
        self.shortcut = (
            nn.Conv2d(channels_in, channels_out, 1, stride=stride, bias=False)
            if stride != 1 or channels_in != channels_out
            else None
        )
        self.drop_path = DropPath(drop, slot="block")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = F.relu(self.bn1(x))
        shortcut = x if self.shortcut is None else self.shortcut(a)
        branch = self.conv2(F.relu(self.bn2(self.conv1(a))))
        return shortcut + self.drop_path(branch)


class ResNet(nn.Module):
    """A small pre-activation ResNet with batch norm (He et al. 2016, "Identity Mappings in Deep
    Residual Networks").

    Stem: 3x3 convolution to 16 channels. Three stages of one pre-activation basic block
    each: 16, 32, 64 channels, strides 1, 2, 2 (an 8x8 digit becomes 8x8, 4x4, 2x2; a 32x32
    image 32, 16, 8). Then batch norm, ReLU, global average pooling, dropout slot ``head``
    and the linear classifier.

    Slot ``block`` is stochastic depth on each block's residual branch with Huang et al.'s
    linear decay rule: block ``l`` of ``L = 3`` drops its branch with probability
    ``rate * l / L`` (rate/3, 2*rate/3, rate), so the slot's rate is the deepest block's.
    """

    slots = ("head", "block")
    widths = (16, 32, 64)
    strides = (1, 2, 2)

    def __init__(
        self, input_shape: tuple[int, int, int], num_classes: int, rates: Mapping[str, float]
    ) -> None:
        super().__init__()
        r = slot_rates("resnet", self.slots, rates)
        channels, _, _ = _check_shape("resnet", input_shape)
        self.stem = nn.Conv2d(channels, self.widths[0], 3, padding=1, bias=False)
        blocks, width_in, depth = [], self.widths[0], len(self.widths)
        for i, (width, stride) in enumerate(zip(self.widths, self.strides, strict=True)):
            blocks.append(PreActBlock(width_in, width, stride, r["block"] * (i + 1) / depth))
            width_in = width
        self.blocks = nn.Sequential(*blocks)
        self.bn = nn.BatchNorm2d(width_in)
        self.head_dropout = Dropout(r["head"], slot="head")
        self.head = nn.Linear(width_in, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn(self.blocks(self.stem(x))))
        return self.head(self.head_dropout(x.mean(dim=(2, 3))))


# ---------------------------------------------------------------------------------------------
# GRU and LSTM


class GRUStep(nn.Module):
    """One GRU time step (PyTorch's ``nn.GRU`` equations and gate order r, z, n).

    ``gi`` is the input's projection ``W_ih x_t + b_ih`` (computed for all steps at once),
    ``h_in`` the previous state as the gates see it (after the recurrent dropout mask) and
    ``h`` the previous state itself. As in Gal and Ghahramani's GRU, the mask acts on the
    state fed to the gates only; the update ``z * h`` carries the undropped state, so the
    network keeps its memory (dropping it there too erases memory: Semeniuta et al. 2016).
    """

    gates = 3

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.weight_hh = nn.Parameter(torch.empty(3 * hidden, hidden))
        self.bias_hh = nn.Parameter(torch.empty(3 * hidden))

    def forward(self, gi: torch.Tensor, h_in: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        i_r, i_z, i_n = gi.chunk(3, dim=1)
        h_r, h_z, h_n = F.linear(h_in, self.weight_hh, self.bias_hh).chunk(3, dim=1)
        r = torch.sigmoid(i_r + h_r)
        z = torch.sigmoid(i_z + h_z)
        n = torch.tanh(i_n + r * h_n)
        return torch.lerp(n, h, z)  # (1 - z) * n + z * h


class LSTMStep(nn.Module):
    """One LSTM time step (PyTorch's ``nn.LSTM`` equations and gate order i, f, g, o).

    ``state`` is ``(h, c)``; the dropped ``h_in`` is what the gates see. The cell state ``c``
    carries the memory and is never dropped.
    """

    gates = 4

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.weight_hh = nn.Parameter(torch.empty(4 * hidden, hidden))
        self.bias_hh = nn.Parameter(torch.empty(4 * hidden))

    def forward(
        self, gi: torch.Tensor, h_in: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        i, f, g, o = (gi + F.linear(h_in, self.weight_hh, self.bias_hh)).chunk(4, dim=1)
        c = torch.sigmoid(f) * state[1] + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c


class RecurrentClassifier(nn.Module):
    """Reads an image row by row (H steps of C*W features) and classifies from the last state.

    One recurrent layer of 64 units. Slots: ``input`` (variational dropout on the rows: one
    mask per image for all steps), ``recurrent`` (variational dropout on the previous hidden
    state fed to the gates: one mask per image, drawn before the loop and applied at every
    step) and ``head`` (standard dropout before the linear classifier). Gal and Ghahramani
    (2016), with one mask shared by all gates (their "tied-weights" implementation).

    The time loop is explicit (a ``step`` module call per row) because the recurrent mask
    has to be applied inside it; the input projection of all rows is one matrix product.
    Weights are initialized as ``nn.GRU``/``nn.LSTM`` do: uniform in +-1/sqrt(hidden).
    """

    slots = ("input", "recurrent", "head")
    hidden_size = 64
    step_class: type[nn.Module] = GRUStep
    family = "gru"

    def __init__(
        self, input_shape: tuple[int, int, int], num_classes: int, rates: Mapping[str, float]
    ) -> None:
        super().__init__()
        r = slot_rates(self.family, self.slots, rates)
        c, _, w = _check_shape(self.family, input_shape)
        hidden = self.hidden_size
        self.input_dropout = VariationalDropout(r["input"], slot="input")
        self.input_projection = nn.Linear(
            c * w, self.step_class.gates * hidden
        )  # W_ih and b_ih of every gate
        self.step = self.step_class(hidden)
        self.recurrent_dropout = VariationalDropout(r["recurrent"], slot="recurrent")
        self.head_dropout = Dropout(r["head"], slot="head")
        self.head = nn.Linear(hidden, num_classes)
        bound = 1.0 / math.sqrt(hidden)
        for p in (*self.input_projection.parameters(), *self.step.parameters()):
            nn.init.uniform_(p, -bound, bound)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        b, c, h, w = images.shape
        rows = images.permute(0, 2, 1, 3).reshape(b, h, c * w)  # (B, T = H, F = C * W)
        gi = self.input_projection(self.input_dropout(rows))
        state = self.initial_state(b, rows)
        mask = self.recurrent_dropout.sample_mask((b, self.hidden_size), rows)  # one per sequence
        for t in range(h):
            h_prev = self.hidden(state)
            state = self.step(gi[:, t], h_prev if mask is None else h_prev * mask, state)
        return self.head(self.head_dropout(self.hidden(state)))

    def initial_state(self, batch: int, like: torch.Tensor):
        return like.new_zeros(batch, self.hidden_size)

    @staticmethod
    def hidden(state) -> torch.Tensor:
        return state


class GRUClassifier(RecurrentClassifier):
    """A GRU (Cho et al. 2014) reading images row by row; see :class:`RecurrentClassifier`."""


class LSTMClassifier(RecurrentClassifier):
    """An LSTM (Hochreiter and Schmidhuber 1997) reading images row by row; see
    :class:`RecurrentClassifier`."""

    step_class = LSTMStep
    family = "lstm"

    def initial_state(self, batch: int, like: torch.Tensor):
        zeros = like.new_zeros(batch, self.hidden_size)
        return zeros, zeros

    @staticmethod
    def hidden(state) -> torch.Tensor:
        return state[0]


# ---------------------------------------------------------------------------------------------
# Transformer


class AttentionDropout(Dropout):
    """Dropout on attention weights (the softmax output), slot ``attention``.

    A standard :class:`Dropout` (so it is found like every other dropout layer), whose rate
    the attention block hands to ``F.scaled_dot_product_attention(dropout_p=...)``: the
    fused kernel drops the weights itself, and ``forward`` is never called there. The block
    passes ``p`` while *this module* is in training mode, so switching just the dropout
    modules to train mode (MC dropout) turns attention dropout on too. Called directly on a
    tensor of attention weights, ``forward`` does the same thing as the fused kernel.
    """

    kind = "attention"

    def rate(self) -> float:
        """The rate to hand to the attention kernel now: ``p`` in training mode, else 0."""
        return self.p if self.training else 0.0


class EncoderBlock(nn.Module):
    """A pre-norm transformer encoder block (as in ViT), written out.

    ``x + residual(proj(attention(norm(x))))`` then ``x + residual(fc2(mlp(gelu(fc1(norm(x))))))``:
    ``attention`` drops attention weights, ``residual`` drops each sublayer's output before
    the residual add (Vaswani et al.'s P_drop), ``mlp`` drops the MLP's hidden units.
    """

    def __init__(self, dim: int, heads: int, mlp: int, rates: Mapping[str, float]) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.attention_dropout = AttentionDropout(rates["attention"], slot="attention")
        self.proj = nn.Linear(dim, dim)
        self.attention_residual_dropout = Dropout(rates["residual"], slot="residual")
        self.norm2 = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, mlp)
        self.mlp_dropout = Dropout(rates["mlp"], slot="mlp")
        self.fc2 = nn.Linear(mlp, dim)
        self.mlp_residual_dropout = Dropout(rates["residual"], slot="residual")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v, dropout_p=self.attention_dropout.rate())
        x = x + self.attention_residual_dropout(self.proj(a.transpose(1, 2).reshape(b, n, d)))
        m = self.fc2(self.mlp_dropout(F.gelu(self.fc1(self.norm2(x)))))
        return x + self.mlp_residual_dropout(m)


def patch_size(height: int, width: int) -> int:
    """The side of the transformer's square patches for ``height`` x ``width`` images.

    4 when 4 divides both sides (8x8 digits: 2x2 = 4 patches; 28x28: 7x7 = 49; 32x32: 8x8
    = 64); otherwise the divisor of ``gcd(height, width)`` nearest to 4, the larger on a tie
    (30x30: 5), so a patch covers about 16 pixels of each channel.
    """
    g = math.gcd(height, width)
    divisors = [d for d in range(1, g + 1) if g % d == 0]
    return min(divisors, key=lambda d: (abs(d - 4), -d))


class PatchEmbedding(nn.Module):
    """Square patches projected to ``dim`` (a strided convolution), a class token in front, and a
    learned position embedding added (Dosovitskiy et al. 2021)."""

    def __init__(self, channels: int, height: int, width: int, dim: int) -> None:
        super().__init__()
        self.patch = patch_size(height, width)
        self.num_patches = (height // self.patch) * (width // self.patch)
        self.proj = nn.Conv2d(channels, dim, self.patch, stride=self.patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.position = nn.Parameter(torch.empty(1, self.num_patches + 1, dim))
        nn.init.trunc_normal_(self.position, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.proj(images).flatten(2).transpose(1, 2)  # (B, patches, dim)
        return torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.position


class Transformer(nn.Module):
    """A small ViT-like encoder (Vaswani et al. 2017; Dosovitskiy et al. 2021).

    Patches of :func:`patch_size`, embedding 64, a class token, a learned position
    embedding, 2 pre-norm encoder blocks of 4 heads and MLP width 128 (GELU), a final layer
    norm and a linear classifier on the class token. Slots ``attention``, ``residual`` and
    ``mlp`` in every block: see :class:`EncoderBlock`.
    """

    slots = ("attention", "residual", "mlp")
    dim, depth, heads, mlp = 64, 2, 4, 128

    def __init__(
        self, input_shape: tuple[int, int, int], num_classes: int, rates: Mapping[str, float]
    ) -> None:
        super().__init__()
        r = slot_rates("transformer", self.slots, rates)
        c, h, w = _check_shape("transformer", input_shape)
        self.embed = PatchEmbedding(c, h, w, self.dim)
        self.blocks = nn.Sequential(
            *(EncoderBlock(self.dim, self.heads, self.mlp, r) for _ in range(self.depth))
        )
        self.norm = nn.LayerNorm(self.dim)
        self.head = nn.Linear(self.dim, num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.norm(self.blocks(self.embed(images)))
        return self.head(x[:, 0])


# ---------------------------------------------------------------------------------------------
# The registry


@dataclass(frozen=True)
class Family:
    """A model family: ``build(input_shape, num_classes, rates)`` makes one, with dropout ``slots``."""

    name: str
    build: Callable[[tuple[int, int, int], int, Mapping[str, float]], nn.Module]
    slots: tuple[str, ...]
    description: str
    reference: str


FAMILIES: dict[str, Family] = {
    family.name: family
    for family in (
        Family(
            "resnet",
            ResNet,
            ResNet.slots,
            "pre-activation ResNet: conv 16, blocks of 16/32/64 channels (strides 1, 2, 2), batch norm, "
            "global pooling; dropout before the head, stochastic depth on the blocks",
            "He, Zhang, Ren, Sun, Identity Mappings in Deep Residual Networks, ECCV 2016; "
            "Huang et al., Deep Networks with Stochastic Depth, ECCV 2016",
        ),
        Family(
            "gru",
            GRUClassifier,
            GRUClassifier.slots,
            "GRU of 64 units reading the image row by row; variational dropout on inputs and state, "
            "dropout before the head",
            "Cho et al., Learning Phrase Representations using RNN Encoder-Decoder, EMNLP 2014; "
            "Gal and Ghahramani, A Theoretically Grounded Application of Dropout in RNNs, NeurIPS 2016",
        ),
        Family(
            "lstm",
            LSTMClassifier,
            LSTMClassifier.slots,
            "LSTM of 64 units reading the image row by row; variational dropout on inputs and state, "
            "dropout before the head",
            "Hochreiter and Schmidhuber, Long Short-Term Memory, Neural Computation 1997; "
            "Gal and Ghahramani, A Theoretically Grounded Application of Dropout in RNNs, NeurIPS 2016",
        ),
        Family(
            "transformer",
            Transformer,
            Transformer.slots,
            "ViT-like encoder: 4x4 patches, embedding 64, 2 layers of 4 heads, MLP 128, class token; "
            "dropout on attention weights, sublayer outputs and MLP units",
            "Vaswani et al., Attention Is All You Need, NeurIPS 2017; Dosovitskiy et al., "
            "An Image is Worth 16x16 Words, ICLR 2021",
        ),
    )
}


def get_family(name: str) -> Family:
    """The family called ``name``; DropoutlabError naming the families when there is none."""
    if name not in FAMILIES:
        raise DropoutlabError(f"unknown model family {name!r}; families: {', '.join(FAMILIES)}")
    return FAMILIES[name]


class FamilyRow(NamedTuple):
    """One line of a family's summary: dotted module name, class name, parameters it holds itself."""

    name: str
    kind: str
    params: int


def _meta_model(name: str, input_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    # Every slot at a nonzero rate, so the summary shows them; the rates change no parameter.
    family = get_family(name)
    with torch.device("meta"):  # shapes only: no memory, no initialization arithmetic
        return family.build(tuple(input_shape), num_classes, dict.fromkeys(family.slots, 0.5))


def family_summary(name: str, input_shape: tuple[int, int, int], num_classes: int) -> list[FamilyRow]:
    """Each module that holds parameters of its own or is a dropout slot, with its parameter count.

    Built on the ``meta`` device, so it costs no memory whatever the image size.
    """
    rows = []
    for module_name, module in _meta_model(name, input_shape, num_classes).named_modules():
        own = sum(p.numel() for p in module.parameters(recurse=False))
        if own or getattr(module, "slot", None):
            rows.append(FamilyRow(module_name, type(module).__name__, own))
    return rows


def count_parameters(name: str, input_shape: tuple[int, int, int], num_classes: int) -> int:
    """The number of trainable values of family ``name`` for this input and class count (meta device)."""
    return sum(p.numel() for p in _meta_model(name, input_shape, num_classes).parameters())
