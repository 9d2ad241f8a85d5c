"""dropoutlab: controlled dropout and regularization studies on PyTorch, read with statistics."""

__version__ = "0.1.0"
