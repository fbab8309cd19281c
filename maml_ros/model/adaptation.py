"""How each method turns a support set into network weights, and plain supervised training.

- ``maml``: the meta-learned weights, adapted by ``MAML.adapt`` (learned inner rates);
- ``pretrained_finetune``: the pooled network, the same number of SGD steps;
- ``last_layer_ridge``: the pooled network with its head re-fitted in closed form
  by ridge regression towards the pooled head (the adaptive-control answer);
- ``no_adaptation``: the pooled network as is (domain randomization only).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from maml_ros.maml import MAML
from maml_ros.maml.policy import PolicyNet
from maml_ros.model.held_out import Prediction
from maml_ros.model.transitions import Transitions

Support = tuple[Tensor, Tensor]


def scaled_mse(output_scale: Tensor) -> Callable[[Tensor, Tensor], Tensor]:
    """MSE in units of the per-joint output scale, so every joint counts alike."""
    def loss(prediction: Tensor, target: Tensor) -> Tensor:
        return (((prediction - target) / output_scale) ** 2).mean()
    return loss


def train_supervised(net: PolicyNet, x: Tensor, y: Tensor, *, iterations: int,
                     batch_size: int = 2048, lr: float = 1e-3, seed: int = 0,
                     progress: Callable[[int, float], None] | None = None) -> None:
    """Fit ``net`` to pairs ``(x, y)`` (rows are samples) with Adam and cosine decay."""
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, max(1, iterations))
    loss_fn = scaled_mse(net.output_scale)
    for iteration in range(iterations):
        batch = torch.randint(0, x.shape[0], (batch_size,), generator=generator)
        optimizer.zero_grad()
        loss = loss_fn(net(x[batch]), y[batch])
        loss.backward()
        optimizer.step()
        schedule.step()
        if progress is not None:
            progress(iteration, loss.item())


def finetune(net: PolicyNet, support: Support, *, lr: float, steps: int) -> dict[str, Tensor]:
    """Pooled weights after ``steps`` full-batch SGD steps on the support set."""
    learner = MAML(net, inner_lr=lr, inner_steps=steps)
    return learner.adapt(support, scaled_mse(net.output_scale))


def ridge_head(net: PolicyNet, support: Support, *, ridge: float) -> dict[str, Tensor]:
    """Pooled weights with the head re-fitted by ridge regression towards the pooled head.

    Solves ``min ||H W - Y||^2 + ridge ||W - W0||^2`` for the head ``W`` (bias
    included, augmented), ``H`` the last hidden features of the support inputs,
    ``Y`` the targets in output-scale units: large ``ridge`` keeps the pooled head.
    """
    x, y = support
    params = {name: p.detach().clone() for name, p in net.named_parameters()}
    with torch.no_grad():
        hidden = net.body((x - net.input_mean) / net.input_std).double()
        design = torch.cat([hidden, torch.ones(hidden.shape[0], 1, dtype=hidden.dtype)], dim=1)
        prior = torch.cat([net.head.weight, net.head.bias[:, None]], dim=1).double().T
        target = (y / net.output_scale).double()
        gram = design.T @ design + ridge * torch.eye(design.shape[1], dtype=design.dtype)
        solution = torch.linalg.solve(gram, design.T @ target + ridge * prior).T.float()
    params['head.weight'], params['head.bias'] = solution[:, :-1].contiguous(), solution[:, -1]
    return params


def maml_adapt(learner: MAML, support: Support, *, steps: int, lr_scale: float = 1.0,
               start: dict[str, Tensor] | None = None) -> dict[str, Tensor]:
    """Meta-learned weights (or ``start``) adapted on the support set (the deployment path)."""
    return learner.adapt(support, scaled_mse(learner.model.output_scale), steps=steps,
                         lr_scale=lr_scale, start=start)


#: The methods that adapt on a support set, and the network each one starts from.
ADAPTATIONS = {'maml': 'meta_policy', 'pretrained_finetune': 'pooled',
               'last_layer_ridge': 'pooled'}


def adapt_params(models, method: str, support: Support, *, steps: int, lr_scale: float = 1.0,
                 start: dict[str, Tensor] | None = None) -> dict[str, Tensor]:
    """The weights ``method`` (one of :data:`ADAPTATIONS`) gets from this support set;
    ``models`` is a :class:`~maml_ros.model.trained_models.TrainedModels`. ``maml`` takes its
    steps from ``start`` when given (the baselines always start from the pooled network)."""
    if method == 'maml':
        return maml_adapt(models.learner, support, steps=steps, lr_scale=lr_scale, start=start)
    if method == 'pretrained_finetune':
        return finetune(models.pooled, support, lr=models.baselines['finetune_lr'] * lr_scale,
                        steps=steps)
    if method == 'last_layer_ridge':
        return ridge_head(models.pooled, support, ridge=models.baselines['ridge'])
    raise ValueError(f'unknown adaptation {method!r}; choose from {sorted(ADAPTATIONS)}')


def state_with(net: PolicyNet, params: dict[str, Tensor]) -> dict[str, Tensor]:
    """A full ``state_dict`` of ``net`` (buffers included) with ``params`` swapped in."""
    state = {name: t.detach().clone() for name, t in net.state_dict().items()}
    state.update({name: t.detach().clone() for name, t in params.items()})
    return state


def predict_commands(models, state: dict[str, Tensor], transitions: Transitions) -> Prediction:
    """The commands the network with weights ``state`` says ``transitions`` needed (the
    commands sent, with the formulation's hindsight target replaced by the network's);
    ``models`` is a :class:`~maml_ros.model.trained_models.TrainedModels`."""
    features, target = models.formulation.hindsight(transitions.states, transitions.commands,
                                                    transitions.next_states)
    with torch.no_grad():
        learned = torch.func.functional_call(
            models.meta_policy, state, torch.as_tensor(features, dtype=torch.float32)).numpy()
    return Prediction(np.arange(len(transitions)), transitions.commands - target + learned)
