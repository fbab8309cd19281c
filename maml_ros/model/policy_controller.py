"""A policy network as a rollout controller (``maml_ros.sim.Controller``).

Picklable: rollout workers get the weights and build the network on first use.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from maml_ros.maml.policy import PolicyNet
from maml_ros.model.formulation import Formulation


class PolicyController:
    """``command = nominal + residual_theta(features)`` for given network weights.

    :param formulation: the residual formulation the network was trained for.
    :param architecture: ``PolicyNet.architecture()`` of the network.
    :param state: its ``state_dict`` (parameters, e.g. adapted ones, and buffers).
    """

    def __init__(self, *, formulation: Formulation, architecture: dict[str, Any],
                 state: dict[str, torch.Tensor]) -> None:
        self.formulation = formulation
        self.architecture = architecture
        self.state = {name: t.detach().cpu().clone() for name, t in state.items()}
        self._net: PolicyNet | None = None

    @property
    def net(self) -> PolicyNet:
        if self._net is None:
            net = PolicyNet.from_architecture(self.architecture)
            net.load_state_dict(self.state)
            self._net = net.eval()
        return self._net

    def command(self, q: np.ndarray, qd: np.ndarray, q_ref: np.ndarray, qd_ref: np.ndarray,
                qdd_ref: np.ndarray) -> np.ndarray:
        acceleration = self.formulation.desired_acceleration(q, qd, q_ref, qd_ref, qdd_ref)
        features, nominal = self.formulation.features(q, qd, acceleration)
        with torch.no_grad():
            residual = self.net(torch.as_tensor(features, dtype=torch.float32)).numpy()
        return nominal + residual

    def hold(self, q: np.ndarray) -> np.ndarray:
        """The command that holds posture ``q`` at rest (gravity compensation)."""
        zeros = np.zeros_like(q)
        return self.command(q, zeros, q, zeros, zeros)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state['_net'] = None  # rebuilt from the weights where it is used
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        # Unpickled in a rollout worker: the workers already fill the cores, and
        # several torch threads per worker would spin against each other.
        torch.set_num_threads(1)
        self.__dict__.update(state)
