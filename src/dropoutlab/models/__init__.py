"""Models: presets from the notebooks, a builder for layer lists with named dropout slots, and
model families (ResNet, GRU, LSTM, transformer) with slots of their own."""

from dropoutlab.models.builder import (
    LayerRow,
    ModelSize,
    build_model,
    build_network,
    check_family_kinds,
    check_slot_kinds,
    check_user_kinds,
    family_outputs,
    family_size,
    kind_fits,
    kind_places,
    model_size,
    slot_sites,
    summarize_model,
)
from dropoutlab.models.families import FAMILIES, count_parameters, family_summary
from dropoutlab.models.presets import DESCRIPTIONS, PRESETS, with_batchnorm
from dropoutlab.models.spec import dropout_kinds, dropout_slots, parse_layers
from dropoutlab.models.user import build_user_model, find_slots
from dropoutlab.runs import LayerSpec

__all__ = [
    "DESCRIPTIONS",
    "PRESETS",
    "LayerRow",
    "LayerSpec",
    "ModelSize",
    "build_model",
    "build_network",
    "build_user_model",
    "find_slots",
    "check_family_kinds",
    "check_slot_kinds",
    "check_user_kinds",
    "count_parameters",
    "family_summary",
    "family_outputs",
    "family_size",
    "kind_fits",
    "kind_places",
    "slot_sites",
    "dropout_kinds",
    "dropout_slots",
    "FAMILIES",
    "with_batchnorm",
    "model_size",
    "parse_layers",
    "summarize_model",
]
