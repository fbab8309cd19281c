"""The policy network: an MLP with its feature normalization built in.

Normalization statistics are buffers, so they travel with the weights in the
checkpoint and ``functional_call`` uses them without adapting them. The last
layer is ``head``: ANIL-style adaptation of the head alone is
``adapt_params=r'head\\..*'``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

ACTIVATIONS = {'tanh': nn.Tanh, 'relu': nn.ReLU, 'elu': nn.ELU, 'silu': nn.SiLU}


class PolicyNet(nn.Module):
    """``output = output_scale * head(body((features - input_mean) / input_std))``.

    :param input_dim: number of input features.
    :param output_dim: number of outputs (one per controlled joint).
    :param hidden: widths of the hidden layers.
    :param activation: one of ``tanh``, ``relu``, ``elu``, ``silu``.
    """

    def __init__(self, *, input_dim: int, output_dim: int, hidden: Sequence[int] = (256, 256),
                 activation: str = 'tanh') -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f'activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}')
        if input_dim < 1 or output_dim < 1 or any(width < 1 for width in hidden):
            raise ValueError(f'layer sizes must be >= 1: {input_dim}, {list(hidden)}, {output_dim}')
        self.input_dim, self.output_dim = int(input_dim), int(output_dim)
        self.hidden, self.activation = [int(width) for width in hidden], activation
        layers: list[nn.Module] = []
        width = self.input_dim
        for next_width in self.hidden:
            layers += [nn.Linear(width, next_width), ACTIVATIONS[activation]()]
            width = next_width
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, self.output_dim)
        self.register_buffer('input_mean', torch.zeros(self.input_dim))
        self.register_buffer('input_std', torch.ones(self.input_dim))
        self.register_buffer('output_scale', torch.ones(self.output_dim))

    def forward(self, features: Tensor) -> Tensor:
        return self.output_scale * self.head(self.body((features - self.input_mean)
                                                       / self.input_std))

    @torch.no_grad()
    def fit_normalization(self, features: Tensor, targets: Tensor, *, eps: float = 1e-6) -> None:
        """Set the input statistics and output scale from training data (rows = samples)."""
        features, targets = features.reshape(-1, self.input_dim), targets.reshape(-1,
                                                                                   self.output_dim)
        self.input_mean.copy_(features.mean(0))
        self.input_std.copy_(features.std(0).clamp_min(eps))
        self.output_scale.copy_(targets.std(0).clamp_min(eps))

    def architecture(self) -> dict[str, Any]:
        """What it takes to build this network again (stored in checkpoints)."""
        return {'type': 'PolicyNet', 'input_dim': self.input_dim, 'output_dim': self.output_dim,
                'hidden': list(self.hidden), 'activation': self.activation}

    @classmethod
    def from_architecture(cls, architecture: dict[str, Any]) -> PolicyNet:
        """The inverse of :meth:`architecture` (weights not included)."""
        if architecture.get('type') != 'PolicyNet':
            raise ValueError(f'not a PolicyNet architecture: {architecture!r}')
        return cls(input_dim=architecture['input_dim'], output_dim=architecture['output_dim'],
                   hidden=architecture['hidden'], activation=architecture['activation'])
