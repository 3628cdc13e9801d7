"""A PyTorch convolutional network for lazycheck, on 8x8 digit images (samples/digits.npz).

Two 3x3 convolutions with tanh, 2x2 average pooling and a linear read-out, in the NTK
parameterization (weights N(0, 1), each layer's output divided by sqrt(fan_in)). Smooth: the
forward pass holds no relu, max-pool or abs, which lazycheck checks by tracing it.
Needs `pip install 'lazycheck[torch]'`. Used by samples/torch_cnn.toml.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn


class SmallCNN(nn.Module):
    def __init__(self, channels: int = 4) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, channels, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.pool = nn.AvgPool2d(2)
        self.readout = nn.Linear(channels * 16, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.reshape(-1, 1, 8, 8)
        h = torch.tanh(self.conv1(h) / 3.0)  # fan_in 1 * 3 * 3
        h = torch.tanh(self.conv2(h) / (3.0 * math.sqrt(self.conv2.in_channels)))
        h = self.pool(h).flatten(1)
        return self.readout(h / math.sqrt(h.shape[1]))[:, 0]


def make_model(input_dim: int, rng: np.random.Generator, channels: int = 4) -> nn.Module:
    """Weights N(0, 1) from lazycheck's seeded generator (the spec's init stream)."""
    if input_dim != 64:
        raise ValueError(f"SmallCNN takes 8x8 images (64 features), got {input_dim}")
    net = SmallCNN(channels).double()
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.from_numpy(rng.standard_normal(tuple(p.shape))))
    return net
