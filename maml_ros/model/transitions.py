"""Transitions ``(s_t, u_t, s_{t+1})``: what every model is fitted on and judged by."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

# Rows of the moving averages a support's design rows and commands may be fitted through,
# alike: the one whose fits predict the held-out halves of the support best is taken
# (maml_ros.model.held_out.judge). The hindsight acceleration, a difference of
# measured velocities at the control rate, is mostly noise on a real robot; averaging both
# sides alike leaves a model linear in its parameters unbiased and takes the noise out: on
# a real Panda's log the URDF model predicted held-out torques at 1.54 N*m from the raw rows
# and at 0.79 from rows averaged over 5. In simulation the raw rows carry what identifies
# the robot (the exploration's tick-to-tick steps): averaged over 5, a noise-free robot's
# gain came out 0.84 where it is 0.80 (0.80 from the raw rows), robots with delay and lag
# tracked 0.0245 rad instead of 0.0199, and one in MuJoCo 0.42 instead of 0.12.
SMOOTHINGS = (1, 5)


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

    def runs(self) -> list[slice]:
        """The unbroken runs of transitions: where each one's next state is the following
        one's state."""
        joined = np.all(self.next_states[:-1] == self.states[1:], axis=1)
        starts = np.concatenate([[0], np.flatnonzero(~joined) + 1])
        ends = np.concatenate([starts[1:], [len(self)]])
        return [slice(int(start), int(end)) for start, end in zip(starts, ends, strict=True)]

    def smoothed(self, values: np.ndarray | torch.Tensor, width: int
                 ) -> np.ndarray | torch.Tensor:
        """``values`` (one row per transition) averaged over ``width`` rows centred on each,
        within each unbroken run (:func:`centred_mean`)."""
        runs = [centred_mean(values[run], width) for run in self.runs()]
        return torch.cat(runs) if isinstance(values, torch.Tensor) else np.concatenate(runs)


@dataclass(frozen=True)
class Regressed:
    """Transitions with what a model computed from each of them (``rows``: its regressors,
    one row per transition): computed once, sliced together, however many fits and
    predictions of parts of a support judge an adaptation. ``smoothing``: the rows of the
    moving average they are fitted and predicted through."""

    transitions: Transitions
    rows: np.ndarray | torch.Tensor
    smoothing: int = 1

    def __len__(self) -> int:
        return len(self.transitions)

    def __getitem__(self, index: slice | np.ndarray) -> Regressed:
        return dataclasses.replace(self, transitions=self.transitions[index],
                                   rows=self.rows[index])

    @property
    def commands(self) -> np.ndarray:
        return self.transitions.commands

    def smoothed(self) -> tuple[np.ndarray | torch.Tensor, np.ndarray]:
        """The rows and the commands, both averaged over ``smoothing`` rows alike
        (:meth:`Transitions.smoothed`)."""
        return (self.transitions.smoothed(self.rows, self.smoothing),
                self.transitions.smoothed(self.commands, self.smoothing))


def centred_mean(values: np.ndarray | torch.Tensor, width: int) -> np.ndarray | torch.Tensor:
    """``values`` averaged over ``width`` rows centred on each, fewer near the ends (always
    as many before as after: a linear trend passes unchanged); an array for an array, a
    tensor for a tensor."""
    rows = torch.as_tensor(values)
    count = rows.shape[0]
    index = torch.arange(count)
    half = torch.minimum(torch.minimum(index, count - 1 - index), torch.tensor(width // 2))
    sums = torch.cat([torch.zeros_like(rows[:1]), rows.cumsum(0)])
    widths = (2 * half + 1).to(rows.dtype).reshape(-1, *[1] * (rows.dim() - 1))
    mean = (sums[index + half + 1] - sums[index - half]) / widths
    return mean if isinstance(values, torch.Tensor) else mean.numpy()
