"""What ``torch.func.vmap`` gets wrong or cannot batch, and how MAML gets around it.

Vectorized MAML differentiates the inner gradient again (second order) under
``vmap``. Two gaps in PyTorch's batching rules matter for that (checked
against torch 2.13 by ``test/maml/test_vmap_zoo.py``, which fails when an
update changes either):

- ``layer_norm``: the batching rule of its backward, differentiated again,
  gives wrong gradients for the parameters before the norm (relative error
  ~1e-2, no error raised; pytorch/functorch #534). Under
  :class:`ExactUnderVmap`, every Python entry point to it
  (``functional.layer_norm``, which ``nn.LayerNorm`` calls, ``torch.layer_norm``
  and ``torch.native_layer_norm``) is evaluated through its textbook
  decomposition, whose pieces batch exactly, for any ``normalized_shape``.
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


def native_layer_norm(x: Tensor, normalized_shape: Sequence[int], weight: Tensor | None,
                      bias: Tensor | None, eps: float) -> tuple[Tensor, Tensor, Tensor]:
    """``torch.native_layer_norm`` as mean, biased variance and ``rsqrt``: the same output,
    mean and reciprocal standard deviation (kept dimensions), exact under vmap."""
    dims = tuple(range(-len(normalized_shape), 0))
    mean = x.mean(dims, keepdim=True)
    centred = x - mean
    rstd = torch.rsqrt(centred.square().mean(dims, keepdim=True) + eps)
    y = centred * rstd
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y, mean, rstd


def layer_norm(x: Tensor, normalized_shape: Sequence[int], weight: Tensor | None = None,
               bias: Tensor | None = None, eps: float = 1e-5, cudnn_enable: bool = True) -> Tensor:
    """``F.layer_norm`` and ``torch.layer_norm`` (``cudnn_enable`` is ignored), decomposed."""
    return native_layer_norm(x, normalized_shape, weight, bias, eps)[0]


class ExactUnderVmap(TorchFunctionMode):
    """Within this mode, functions whose batching rules are wrong run decomposed."""

    replacements = {functional.layer_norm: layer_norm, torch.layer_norm: layer_norm,
                    torch.native_layer_norm: native_layer_norm}

    def __torch_function__(self, func, types, args=(), kwargs=None):
        return self.replacements.get(func, func)(*args, **(kwargs or {}))


def unbatchable_modules(model: nn.Module) -> list[str]:
    """Names of ``model``'s submodules that ``vmap`` cannot batch ('' is the model itself)."""
    return [name for name, module in model.named_modules() if isinstance(module, UNBATCHABLE)]
