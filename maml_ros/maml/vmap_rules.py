"""What ``torch.func.vmap`` gets wrong or cannot batch, and how MAML gets around it.

Vectorized MAML differentiates the inner gradient again (second order) under
``vmap``. Two gaps in PyTorch's batching rules matter for that (checked
against torch 2.13 by ``test/maml/test_vmap_zoo.py``, which fails when an
update changes either):

- ``layer_norm`` with an affine weight: the batching rule of its backward,
  differentiated again, gives wrong gradients for the parameters before the
  norm (relative error ~1e-2, no error raised; pytorch/functorch #534). Under
  :class:`ExactUnderVmap`, ``functional.layer_norm`` (what ``nn.LayerNorm`` calls) is
  evaluated through its textbook decomposition, whose pieces batch exactly.
- Recurrent layers (``nn.RNN``, ``nn.GRU``, ``nn.LSTM``): no batching rule at
  all. :func:`unbatchable_modules` names them so MAML can loop over tasks.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional
from torch.overrides import TorchFunctionMode

#: Module types vmap cannot batch; MAML loops over tasks for models that hold one.
UNBATCHABLE = (nn.RNNBase,)


def layer_norm(x: Tensor, normalized_shape: Sequence[int], weight: Tensor | None = None,
               bias: Tensor | None = None, eps: float = 1e-5) -> Tensor:
    """``layer_norm`` as mean, biased variance and ``rsqrt``: same values, exact under vmap."""
    dims = tuple(range(-len(normalized_shape), 0))
    centred = x - x.mean(dims, keepdim=True)
    y = centred * torch.rsqrt(centred.square().mean(dims, keepdim=True) + eps)
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y


class ExactUnderVmap(TorchFunctionMode):
    """Within this mode, functions whose batching rules are wrong run decomposed."""

    replacements = {functional.layer_norm: layer_norm}

    def __torch_function__(self, func, types, args=(), kwargs=None):
        return self.replacements.get(func, func)(*args, **(kwargs or {}))


def unbatchable_modules(model: nn.Module) -> list[str]:
    """Names of ``model``'s submodules that ``vmap`` cannot batch ('' is the model itself)."""
    return [name for name, module in model.named_modules() if isinstance(module, UNBATCHABLE)]
