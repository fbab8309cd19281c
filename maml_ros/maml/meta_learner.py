"""Model-agnostic meta-learning (Finn et al., 2017) over any ``nn.Module``.

The whole update, written with ``torch.func`` so that parameters are plain
dicts and tasks are batched with ``vmap``::

    fast = params - inner_lr * grad(inner_loss)(params, support)   # x inner_steps
    meta_loss = mean over tasks of loss(f(query_x; fast), query_y)

Variants, all around that core: second order (differentiate through the
inner gradients) or first order (FOMAML, inner gradients detached), learned
elementwise inner learning rates (Meta-SGD, Li et al. 2017), and adaptation
of a named subset of parameters only (ANIL-style; the rest stay at their
meta value).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, vmap
from torch.utils._pytree import tree_leaves, tree_map

from maml_ros.maml.vmap_rules import ExactUnderVmap, unbatchable_modules

Params = dict[str, Tensor]
LossFn = Callable[[Any, Any], Tensor]
TaskData = tuple[Any, Any]


def select_parameter_names(
    model: nn.Module, adapt_params: str | Iterable[str] | None
) -> list[str]:
    """Names of ``model``'s parameters that the inner loop adapts.

    :param model: the network.
    :param adapt_params: ``None`` for all parameters, a regular expression that
        must match a whole name (``re.fullmatch``), or an iterable of names.
    :raises ValueError: for an unknown name or a pattern that matches nothing.
    """
    names = [name for name, _ in model.named_parameters()]
    if adapt_params is None:
        return names
    if isinstance(adapt_params, str):
        chosen = [name for name in names if re.fullmatch(adapt_params, name)]
        if not chosen:
            raise ValueError(
                f'adapt_params pattern {adapt_params!r} matches no parameter; '
                f'parameters are {names}'
            )
        return chosen
    chosen = list(adapt_params)
    unknown = sorted(set(chosen) - set(names))
    if unknown:
        raise ValueError(f'adapt_params names {unknown} are not parameters of the model {names}')
    if not chosen:
        raise ValueError('adapt_params is empty: nothing would be adapted')
    return [name for name in names if name in chosen]


def _lr_key(name: str) -> str:
    # nn.ParameterDict keys may not contain '.', parameter names do.
    return name.replace('.', '__')


class MAML(nn.Module):
    """Meta-learner wrapping a model; ``parameters()`` is what the outer optimizer steps.

    :param model: any ``nn.Module``; its forward takes one input ``x``.
    :param inner_lr: inner-loop learning rate (the initial value when learned).
    :param inner_steps: gradient steps of the inner loop (0 = no adaptation).
    :param first_order: detach the inner gradients (FOMAML) instead of
        differentiating through them (second order, default).
    :param learn_inner_lr: learn one inner learning rate per parameter element
        (Meta-SGD); they are parameters of this module.
    :param adapt_params: which parameters the inner loop adapts: ``None`` for
        all, a regular expression (full match) or a list of names.
    :param vectorize: batch tasks with ``vmap`` (True) or loop over them
        (False); both give the same numbers. A model that ``vmap`` cannot
        batch (a recurrent layer) loops, with a warning that says so.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        inner_lr: float = 0.01,
        inner_steps: int = 5,
        first_order: bool = False,
        learn_inner_lr: bool = False,
        adapt_params: str | Iterable[str] | None = None,
        vectorize: bool = True,
    ) -> None:
        super().__init__()
        if not (inner_lr >= 0.0 and inner_lr < float('inf')):
            raise ValueError(f'inner_lr must be finite and >= 0, got {inner_lr}')
        if int(inner_steps) != inner_steps or inner_steps < 0:
            raise ValueError(f'inner_steps must be an integer >= 0, got {inner_steps}')
        self.model = model
        self.inner_steps = int(inner_steps)
        self.first_order = first_order
        self.learn_inner_lr = learn_inner_lr
        unbatchable = unbatchable_modules(model) if vectorize else []
        if unbatchable:
            warnings.warn(f'MAML loops over tasks: torch.func.vmap cannot batch {unbatchable} '
                          '(no batching rule for recurrent layers)', stacklevel=2)
        self.vectorize = vectorize and not unbatchable
        self.adapt_names = select_parameter_names(model, adapt_params)
        #: The inner learning rate given here (the starting value of learned rates).
        self.base_inner_lr = float(inner_lr)
        self.inner_lrs = nn.ParameterDict()
        if learn_inner_lr:
            for name, param in model.named_parameters():
                if name in self.adapt_names:
                    self.inner_lrs[_lr_key(name)] = nn.Parameter(
                        torch.full_like(param, float(inner_lr))
                    )

    # -- the math ---------------------------------------------------------

    def inner_lr(self, name: str) -> Tensor | float:
        """Inner learning rate of parameter ``name`` (a tensor when learned)."""
        return self.inner_lrs[_lr_key(name)] if self.learn_inner_lr else self.base_inner_lr

    def predict(self, params: Params, x: Any) -> Any:
        """The model's output for ``x`` with parameters ``params`` (a name -> tensor dict)."""
        return functional_call(self.model, (params, dict(self.model.named_buffers())), (x,))

    def _adapt(self, params: Params, x: Any, y: Any, loss_fn: LossFn, steps: int,
               first_order: bool, lr_scale: float = 1.0) -> Params:
        """``steps`` gradient steps on one task's support data, from ``params``."""
        fast = {name: params[name] for name in self.adapt_names}

        def support_loss(fast: Params) -> Tensor:
            return loss_fn(self.predict({**params, **fast}, x), y)

        for _ in range(steps):
            grads = grad(support_loss)(fast)
            if first_order:
                grads = {name: g.detach() for name, g in grads.items()}
            fast = {name: fast[name] - lr_scale * self.inner_lr(name) * grads[name]
                    for name in fast}
        return {**params, **fast}

    def _task_meta_loss(self, params: Params, support: TaskData, query: TaskData,
                        loss_fn: LossFn) -> Tensor:
        adapted = self._adapt(params, *support, loss_fn, self.inner_steps, self.first_order)
        query_x, query_y = query
        return loss_fn(self.predict(adapted, query_x), query_y)

    # -- public interface -------------------------------------------------

    def meta_loss(self, support: TaskData, query: TaskData, loss_fn: LossFn) -> Tensor:
        """Mean over tasks of the query loss after inner-loop adaptation on the support.

        :param support: ``(x, y)`` with a leading task dimension; ``y`` may be a
            tensor or a tuple/dict of tensors.
        :param query: ``(x, y)`` for the same tasks, same layout.
        :param loss_fn: ``loss_fn(prediction, y) -> scalar`` for one task.
        :returns: a differentiable scalar (backward reaches ``self.parameters()``).
        """
        params = dict(self.model.named_parameters())
        if self.vectorize:
            with ExactUnderVmap():  # layer_norm's batching rule is wrong; see vmap_rules
                per_task = vmap(
                    lambda s, q: self._task_meta_loss(params, s, q, loss_fn),
                    randomness='different',
                )(support, query)
        else:
            per_task = torch.stack([
                self._task_meta_loss(params, _task(support, i), _task(query, i), loss_fn)
                for i in range(_num_tasks(support))
            ])
        return per_task.mean()

    def adapt(self, support: TaskData, loss_fn: LossFn, steps: int | None = None,
              lr_scale: float = 1.0, start: Params | None = None) -> Params:
        """Adapt to one task (no task dimension): the deployment path.

        Keeps no autograd graph and leaves the meta-parameters untouched.

        :param support: ``(x, y)`` of one task.
        :param loss_fn: ``loss_fn(prediction, y) -> scalar``.
        :param steps: inner steps; ``None`` uses ``inner_steps``.
        :param lr_scale: factor on the inner learning rates (learned or not),
            for tuning on the robot.
        :param start: parameters to take the steps from instead of the meta-parameters
            (e.g. those of the last adaptation, to build on it); names as the model's.
        :returns: a new dict of all model parameters, the adapted ones updated.
        """
        steps = self.inner_steps if steps is None else int(steps)
        if steps < 0:
            raise ValueError(f'steps must be >= 0, got {steps}')
        if not (lr_scale >= 0.0 and lr_scale < float('inf')):
            raise ValueError(f'lr_scale must be finite and >= 0, got {lr_scale}')
        with torch.no_grad():  # torch.func.grad still differentiates inside
            params = {name: p.detach() for name, p in self.model.named_parameters()}
            if start is not None:
                params.update({name: start[name].detach() for name in params})
            adapted = self._adapt(params, *support, loss_fn, steps, first_order=True,
                                  lr_scale=lr_scale)
            return {name: t.detach().clone() for name, t in adapted.items()}


def _num_tasks(data: TaskData) -> int:
    leaves = [t for t in tree_leaves(data) if isinstance(t, Tensor)]
    if not leaves:
        raise ValueError('task data holds no tensors')
    return leaves[0].shape[0]


def _task(data: TaskData, index: int) -> TaskData:
    return tree_map(lambda t: t[index] if isinstance(t, Tensor) else t, data)
