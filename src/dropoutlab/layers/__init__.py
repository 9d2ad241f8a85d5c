"""Regularizing layers: a plain function plus a thin ``nn.Module`` each, and their stacked forms.

Importing this package registers every stacked form (see :mod:`dropoutlab.layers.stacked`).
"""

# importing registers the stacked forms
from dropoutlab.layers import droppath, kinds, stacked_kinds, standard, variational
from dropoutlab.layers.dropout import Dropout, StackedDropout, dropout, stacked_dropout
from dropoutlab.layers.stacked import STACKED_FORMS, Activations, StackedLayer, StackedNet, register_stacked

__all__ = [
    "STACKED_FORMS",
    "Activations",
    "Dropout",
    "StackedDropout",
    "StackedLayer",
    "StackedNet",
    "dropout",
    "register_stacked",
    "stacked_dropout",
    "droppath",
    "kinds",
    "stacked_kinds",
    "standard",
    "variational",
]
