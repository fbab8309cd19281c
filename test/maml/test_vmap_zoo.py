"""A zoo of layers: vectorized MAML gives the loop's meta-gradient, and both the true one.

Float64, for every layer kind a user might put in a meta-learned model:
``vmap`` vs the per-task loop vs central finite differences, second and first
order, with and without learned inner rates (Meta-SGD) and a subset of adapted
parameters. PyTorch's batching rules change between releases; this zoo is the
guard that fails when an update breaks one (as ``layer_norm``'s is broken now,
see ``maml_ros/maml/vmap_rules.py``).
"""

import contextlib
import warnings

import pytest
import torch
from torch import nn
from torch.func import vmap
from torch.nn.functional import mse_loss
from torch.nn.utils import parameters_to_vector, vector_to_parameters

from maml_ros.maml import MAML
from maml_ros.maml.vmap_rules import ExactUnderVmap

TASKS, SHOTS, FEATURES = 3, 5, 2
INNER_LR, INNER_STEPS = 0.2, 2


class Residual(nn.Module):
    def __init__(self, width=4):
        super().__init__()
        self.inner, self.outer = nn.Linear(width, width), nn.Linear(width, width)

    def forward(self, x):
        return x + self.outer(torch.tanh(self.inner(x)))


class Conv(nn.Module):
    """Features as a 1-channel signal (Conv1d) or a 1x2 image (Conv2d)."""

    def __init__(self, dims):
        super().__init__()
        self.dims = dims
        self.conv = (nn.Conv1d(1, 3, 2, padding=1) if dims == 1
                     else nn.Conv2d(1, 3, (1, 2), padding=(0, 1)))
        self.out = nn.Linear(9, 1)

    def forward(self, x):
        signal = x.unsqueeze(-2) if self.dims == 1 else x.unsqueeze(-2).unsqueeze(-3)
        return self.out(torch.tanh(self.conv(signal)).flatten(-self.dims - 1))


class Recurrent(nn.Module):
    """The support samples as one sequence; the output at each step is a prediction."""

    def __init__(self, kind):
        super().__init__()
        self.rnn, self.out = kind(FEATURES, 4, batch_first=True), nn.Linear(4, 1)

    def forward(self, x):
        return self.out(self.rnn(x.unsqueeze(0))[0][0])


class Embedded(nn.Module):
    """A learned embedding of a category read off the input, beside the input itself."""

    def __init__(self):
        super().__init__()
        self.embedding, self.out = nn.Embedding(4, 3), nn.Linear(3 + FEATURES, 1)

    def forward(self, x):
        category = (x[..., 0] > 0).long() + 2 * (x[..., 1] > 0).long()
        return self.out(torch.cat([torch.tanh(self.embedding(category)), x], -1))


class WithBuffers(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(FEATURES, 1)
        self.register_buffer('input_scale', torch.tensor([2.0, 0.5]))

    def forward(self, x):
        return self.linear(x * self.input_scale)


class DirectLayerNorm(nn.Module):
    """A layer norm over two dimensions (4 features as 2x2) through a ``torch`` entry point
    called directly, as a model written without ``nn.LayerNorm`` does."""

    def __init__(self, entry, affine=True):
        super().__init__()
        self.entry = entry
        self.weight = nn.Parameter(1 + 0.3 * torch.randn(2, 2)) if affine else None
        self.bias = nn.Parameter(0.3 * torch.randn(2, 2)) if affine else None

    def forward(self, x):
        grid = x.unflatten(-1, (2, 2))
        if self.entry == 'native':
            normalized = torch.native_layer_norm(grid, [2, 2], self.weight, self.bias, 1e-5)[0]
        else:
            normalized = torch.layer_norm(grid, (2, 2), self.weight, self.bias, 1e-5)
        return normalized.flatten(-2)


def around(layer):
    return nn.Sequential(nn.Linear(FEATURES, 4), nn.Tanh(), layer, nn.Tanh(), nn.Linear(4, 1))


ZOO = {
    'linear': lambda: around(nn.Linear(4, 4)),
    'conv1d': lambda: Conv(1),
    'conv2d': lambda: Conv(2),
    'layer_norm': lambda: around(nn.LayerNorm(4)),
    'layer_norm_no_affine': lambda: around(nn.LayerNorm(4, elementwise_affine=False)),
    'torch_layer_norm_2d': lambda: around(DirectLayerNorm('torch')),
    'torch_layer_norm_2d_no_affine': lambda: around(DirectLayerNorm('torch', affine=False)),
    'native_layer_norm_2d': lambda: around(DirectLayerNorm('native')),
    'group_norm': lambda: around(nn.GroupNorm(2, 4)),
    'batch_norm_eval': lambda: around(nn.BatchNorm1d(4)).eval(),
    'rms_norm': lambda: around(nn.RMSNorm(4)),
    'embedding': Embedded,
    'gru': lambda: Recurrent(nn.GRU),
    'lstm': lambda: Recurrent(nn.LSTM),
    'dropout_eval': lambda: around(nn.Dropout(0.5)).eval(),
    'residual_block': lambda: around(Residual()),
    'buffers': WithBuffers,
}
RECURRENT = {'gru', 'lstm'}


def make_maml(kind, *, vectorize, first_order, learn_inner_lr, subset):
    torch.manual_seed(0)
    model = ZOO[kind]().double()
    names = [name for name, _ in model.named_parameters()]
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # the recurrent loop fallback is tested on its own
        return MAML(model, inner_lr=INNER_LR, inner_steps=INNER_STEPS, first_order=first_order,
                    learn_inner_lr=learn_inner_lr, adapt_params=names[::2] if subset else None,
                    vectorize=vectorize)


def tasks():
    generator = torch.Generator().manual_seed(1)

    def draw():
        x = torch.randn(TASKS, SHOTS, FEATURES, generator=generator, dtype=torch.float64)
        phase = torch.randn(TASKS, 1, 1, generator=generator, dtype=torch.float64)
        return x, torch.sin(x.sum(-1, keepdim=True) + phase)

    return draw(), draw()


def meta_gradient(maml, support, query):
    return torch.autograd.grad(maml.meta_loss(support, query, mse_loss), list(maml.parameters()))


def first_order_surrogate(maml, support, query):
    """The function whose gradient FOMAML is: the query loss at ``theta - lr * G``, with
    ``G`` (the sum of the inner gradients) held at its value for the current parameters."""
    inner_gradient_sums = []
    for task in range(TASKS):
        adapted = maml.adapt((support[0][task], support[1][task]), mse_loss)
        inner_gradient_sums.append({
            name: (param.detach() - adapted[name]) / torch.as_tensor(maml.inner_lr(name)).detach()
            for name, param in maml.model.named_parameters() if name in maml.adapt_names})

    def loss():
        params = dict(maml.model.named_parameters())
        return torch.stack([
            mse_loss(maml.predict({**params, **{name: params[name] - maml.inner_lr(name) * g
                                                for name, g in sums.items()}}, query[0][task]),
                     query[1][task])
            for task, sums in enumerate(inner_gradient_sums)]).mean()

    return loss


def directional_derivatives(maml, loss, directions, eps=1e-6):
    """Central differences of ``loss()`` along each direction in parameter space."""
    params = list(maml.parameters())
    theta = parameters_to_vector(params).detach().clone()
    slopes = []
    with torch.no_grad():
        for direction in directions:
            vector_to_parameters(theta + eps * direction, params)
            plus = loss().item()
            vector_to_parameters(theta - eps * direction, params)
            minus = loss().item()
            slopes.append((plus - minus) / (2 * eps))
        vector_to_parameters(theta, params)
    return torch.tensor(slopes, dtype=torch.float64)


@pytest.mark.parametrize('subset', [False, True], ids=['all', 'subset'])
@pytest.mark.parametrize('learn_inner_lr', [False, True], ids=['fixed_lr', 'meta_sgd'])
@pytest.mark.parametrize('first_order', [False, True], ids=['second', 'first'])
@pytest.mark.parametrize('kind', list(ZOO))
def test_vmap_loop_and_finite_differences_agree(kind, first_order, learn_inner_lr, subset):
    support, query = tasks()
    options = {'first_order': first_order, 'learn_inner_lr': learn_inner_lr, 'subset': subset}
    vectorized = make_maml(kind, vectorize=True, **options)
    loop = make_maml(kind, vectorize=False, **options)
    assert vectorized.vectorize == (kind not in RECURRENT)

    vmap_grad = parameters_to_vector(meta_gradient(vectorized, support, query))
    loop_grad = parameters_to_vector(meta_gradient(loop, support, query))
    torch.testing.assert_close(vmap_grad, loop_grad, rtol=1e-9, atol=1e-12)
    assert loop_grad.abs().max() > 1e-3  # something to compare

    if first_order:
        loss = first_order_surrogate(loop, support, query)
    else:
        def loss():
            return loop.meta_loss(support, query, mse_loss)
    directions = torch.randn(3, loop_grad.numel(), dtype=torch.float64,
                             generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(directions @ loop_grad,
                               directional_derivatives(loop, loss, directions),
                               rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize('kind', sorted(RECURRENT))
def test_recurrent_models_loop_over_tasks_and_say_why(kind):
    with pytest.warns(UserWarning, match='vmap cannot batch'):
        maml = MAML(ZOO[kind](), vectorize=True)
    assert not maml.vectorize
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        MAML(ZOO[kind](), vectorize=False)  # the user's own choice: no warning


@pytest.mark.parametrize('decompose', [False, True], ids=['pytorch', 'decomposed'])
def test_layer_norm_second_order_under_vmap(decompose):
    """Pins the upstream bug the decomposition works around (functorch #534).

    If the ``pytorch`` case starts failing, PyTorch fixed its batching rule: drop
    ``layer_norm`` from ``ExactUnderVmap`` and this case.
    """
    support, query = tasks()
    maml = make_maml('layer_norm', vectorize=False, first_order=False, learn_inner_lr=False,
                     subset=False)
    params = dict(maml.model.named_parameters())
    with ExactUnderVmap() if decompose else contextlib.nullcontext():
        per_task = vmap(lambda s, q: maml._task_meta_loss(params, s, q, mse_loss))(support, query)
    vmap_grad = parameters_to_vector(torch.autograd.grad(per_task.mean(), list(params.values())))
    loop_grad = parameters_to_vector(meta_gradient(maml, support, query))
    relative_error = ((vmap_grad - loop_grad).norm() / loop_grad.norm()).item()
    assert (relative_error < 1e-12) if decompose else (relative_error > 1e-4)


class TwoHeaded(nn.Module):
    """The model the bug was found with: a normalized trunk, a residual block, mean and
    log-variance heads, trained with a Gaussian negative log-likelihood."""

    def __init__(self):
        super().__init__()
        self.trunk = nn.Sequential(nn.Linear(FEATURES, 6), nn.Tanh(), nn.LayerNorm(6))
        self.block = Residual(6)
        self.mean, self.log_var = nn.Linear(6, 1), nn.Linear(6, 1)

    def forward(self, x):
        features = self.block(self.trunk(x))
        return self.mean(features), self.log_var(features)


def gaussian_nll(prediction, target):
    (mean, log_var), (value, weight) = prediction, target
    return (weight * (log_var + (value - mean).square() * torch.exp(-log_var))).mean() / 2


@pytest.mark.parametrize('learn_inner_lr', [False, True], ids=['fixed_lr', 'meta_sgd'])
def test_two_headed_gaussian_model_with_tuple_targets(learn_inner_lr):
    (x, y), (xq, yq) = tasks()
    support, query = (x, (y, torch.ones_like(y))), (xq, (yq, 2 * torch.ones_like(yq)))
    grads = []
    for vectorize in (True, False):
        torch.manual_seed(0)
        maml = MAML(TwoHeaded().double(), inner_lr=INNER_LR, inner_steps=INNER_STEPS,
                    learn_inner_lr=learn_inner_lr, vectorize=vectorize)
        loss = maml.meta_loss(support, query, gaussian_nll)
        grads.append(parameters_to_vector(torch.autograd.grad(loss, list(maml.parameters()))))
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize('normalized_shape', [(5,), (4, 5), (3, 4, 5)])
def test_decomposed_layer_norm_gives_pytorchs_values_at_every_entry_point(normalized_shape):
    """Output, mean and reciprocal standard deviation as PyTorch's own kernels give them."""
    generator = torch.Generator().manual_seed(3)
    x = torch.randn(2, 3, 4, 5, generator=generator, dtype=torch.float64)
    weight = torch.randn(normalized_shape, generator=generator, dtype=torch.float64)
    bias = torch.randn(normalized_shape, generator=generator, dtype=torch.float64)
    calls = [lambda: torch.native_layer_norm(x, normalized_shape, weight, bias, 1e-5),
             lambda: torch.layer_norm(x, normalized_shape, weight, bias, 1e-5),
             lambda: torch.nn.functional.layer_norm(x, normalized_shape, weight, bias),
             lambda: torch.nn.functional.layer_norm(x, normalized_shape)]
    for call in calls:
        expected = call()
        with ExactUnderVmap():
            decomposed = call()
        torch.testing.assert_close(decomposed, expected, rtol=1e-12, atol=1e-12)
