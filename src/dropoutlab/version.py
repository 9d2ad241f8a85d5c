"""dropoutlab's version (a leaf module: the loop stores it with every run)."""

__version__ = "0.1.0"
