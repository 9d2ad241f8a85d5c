"""Models: presets from the notebooks and a builder for layer lists with named dropout slots."""

from dropoutlab.models.builder import LayerRow, build_model, summarize_model
from dropoutlab.models.presets import DESCRIPTIONS, PRESETS
from dropoutlab.models.spec import dropout_slots, parse_layers
from dropoutlab.runs import LayerSpec

__all__ = [
    "DESCRIPTIONS",
    "PRESETS",
    "LayerRow",
    "LayerSpec",
    "build_model",
    "dropout_slots",
    "parse_layers",
    "summarize_model",
]
