"""Transitions ``(s_t, u_t, s_{t+1})``: what every model is fitted on and judged by."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Transitions:
    """Arrays with one row per transition: states ``(T, 2n)``, commands ``(T, n)``."""

    states: np.ndarray
    commands: np.ndarray
    next_states: np.ndarray

    def __len__(self) -> int:
        return len(self.states)

    def __getitem__(self, rows: slice | np.ndarray) -> Transitions:
        """The transitions at ``rows`` (a slice or an index array)."""
        return Transitions(self.states[rows], self.commands[rows], self.next_states[rows])
