"""Regularizing layers: a plain function plus a thin ``nn.Module`` each."""

from dropoutlab.layers.dropout import Dropout, dropout

__all__ = ["Dropout", "dropout"]
