"""Models: presets from the notebooks and a builder for layer lists with named dropout slots."""

from dropoutlab.models.builder import LayerRow, ModelSize, build_model, model_size, summarize_model
from dropoutlab.models.presets import DESCRIPTIONS, PRESETS
from dropoutlab.models.spec import dropout_slots, parse_layers
from dropoutlab.runs import LayerSpec

__all__ = [
    "DESCRIPTIONS",
    "PRESETS",
    "LayerRow",
    "LayerSpec",
    "ModelSize",
    "build_model",
    "dropout_slots",
    "model_size",
    "parse_layers",
    "summarize_model",
]
