"""A network written as plain PyTorch, studied by dropoutlab without rewriting it.

dropoutlab calls ``make_cnn`` once per run, after seeding, and finds its two dropout modules
by their attribute names: ``drop_conv`` (channel dropout on the feature maps) and
``drop_dense`` (dropout before the classifier). ``study.toml`` beside this file sets their
rates; ``dropoutlab models own_nets:make_cnn`` (run in this folder) lists them.
"""

from torch import nn


class DigitsCNN(nn.Module):
    """Two 3x3 convolutions and a dense layer for 8x8 one-channel images (scikit-learn's digits)."""

    def __init__(self, channels: int = 16, hidden: int = 64, classes: int = 10) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(1, channels, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.drop_conv = nn.Dropout2d(0.1)
        self.dense = nn.Sequential(nn.Flatten(), nn.Linear(channels * 16, hidden), nn.ReLU())
        self.drop_dense = nn.Dropout(0.5)
        self.out = nn.Linear(hidden, classes)

    def forward(self, x):
        return self.out(self.drop_dense(self.dense(self.drop_conv(self.conv(x)))))


def make_cnn(channels: int = 16, hidden: int = 64) -> nn.Module:
    """A fresh :class:`DigitsCNN`: dropoutlab seeds before each call, so the seed fixes its weights."""
    return DigitsCNN(channels, hidden)
