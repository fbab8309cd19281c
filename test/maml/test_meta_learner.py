"""The MAML core: gradients, variants and the vmap/loop equivalence."""

import pytest
import torch
from torch import nn
from torch.func import functional_call
from torch.nn.functional import mse_loss

from maml_ros.maml import MAML

NUM_TASKS, SHOTS = 3, 6


def tiny_mlp(dtype=torch.float64, seed=0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(2, 5), nn.Tanh(), nn.Linear(5, 1)).to(dtype)


def task_batch(dtype=torch.float64, seed=1):
    generator = torch.Generator().manual_seed(seed)

    def draw():
        x = torch.randn(NUM_TASKS, SHOTS, 2, generator=generator, dtype=dtype)
        w = torch.randn(NUM_TASKS, 2, 1, generator=generator, dtype=dtype)
        return x, torch.sin(x @ w)

    return draw(), draw()


def reference_meta_loss(model, support, query, *, inner_lr, steps, first_order):
    """Textbook per-task MAML with torch.autograd.grad (independent of torch.func)."""
    params = dict(model.named_parameters())
    losses = []
    for i in range(support[0].shape[0]):
        fast = dict(params)
        for _ in range(steps):
            loss = mse_loss(functional_call(model, fast, support[0][i]), support[1][i])
            grads = torch.autograd.grad(loss, list(fast.values()), create_graph=not first_order)
            fast = {name: p - inner_lr * g
                    for (name, p), g in zip(fast.items(), grads, strict=True)}
        losses.append(mse_loss(functional_call(model, fast, query[0][i]), query[1][i]))
    return torch.stack(losses).mean()


def meta_gradient(maml: MAML, loss: torch.Tensor) -> list[torch.Tensor]:
    return list(torch.autograd.grad(loss, list(maml.parameters())))


def test_second_order_meta_gradient_matches_central_finite_differences():
    maml = MAML(tiny_mlp(), inner_lr=0.3, inner_steps=2)
    support, query = task_batch()
    analytic = meta_gradient(maml, maml.meta_loss(support, query, mse_loss))

    eps = 1e-6
    with torch.no_grad():
        for param, analytic_grad in zip(maml.parameters(), analytic, strict=True):
            numeric = torch.zeros_like(param)
            for index in range(param.numel()):
                flat = param.view(-1)
                original = flat[index].item()
                flat[index] = original + eps
                plus = maml.meta_loss(support, query, mse_loss).item()
                flat[index] = original - eps
                minus = maml.meta_loss(support, query, mse_loss).item()
                flat[index] = original
                numeric.view(-1)[index] = (plus - minus) / (2 * eps)
            torch.testing.assert_close(analytic_grad, numeric, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize('first_order', [False, True])
def test_meta_gradient_matches_textbook_autograd_implementation(first_order):
    model = tiny_mlp()
    maml = MAML(model, inner_lr=0.3, inner_steps=3, first_order=first_order)
    support, query = task_batch()
    ours = meta_gradient(maml, maml.meta_loss(support, query, mse_loss))
    reference = reference_meta_loss(model, support, query, inner_lr=0.3, steps=3,
                                    first_order=first_order)
    expected = list(torch.autograd.grad(reference, list(model.parameters())))
    for got, want in zip(ours, expected, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)


def test_first_order_meta_gradient_differs_from_second_order():
    support, query = task_batch()
    gradients = {}
    for first_order in (False, True):
        maml = MAML(tiny_mlp(), inner_lr=0.3, inner_steps=3, first_order=first_order)
        gradients[first_order] = meta_gradient(maml, maml.meta_loss(support, query, mse_loss))
    difference = max((a - b).abs().max().item()
                     for a, b in zip(gradients[False], gradients[True], strict=True))
    assert difference > 1e-4


@pytest.mark.parametrize('first_order', [False, True])
@pytest.mark.parametrize('learn_inner_lr', [False, True])
def test_vmap_and_loop_give_the_same_meta_loss_and_gradient(first_order, learn_inner_lr):
    support, query = task_batch(dtype=torch.float32)
    results = []
    for vectorize in (True, False):
        maml = MAML(tiny_mlp(torch.float32), inner_lr=0.1, inner_steps=3,
                    first_order=first_order, learn_inner_lr=learn_inner_lr,
                    vectorize=vectorize)
        loss = maml.meta_loss(support, query, mse_loss)
        results.append((loss, meta_gradient(maml, loss)))
    (vmap_loss, vmap_grads), (loop_loss, loop_grads) = results
    torch.testing.assert_close(vmap_loss, loop_loss, rtol=1e-5, atol=1e-5)
    assert len(vmap_grads) == len(loop_grads)
    for a, b in zip(vmap_grads, loop_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_meta_sgd_inner_learning_rates_receive_gradients_and_change_with_training():
    maml = MAML(tiny_mlp(), inner_lr=0.1, inner_steps=1, learn_inner_lr=True)
    assert len(maml.inner_lrs) == 4  # one per weight and bias, elementwise
    initial = {name: lr.detach().clone() for name, lr in maml.inner_lrs.items()}
    optimizer = torch.optim.Adam(maml.parameters(), lr=1e-2)
    support, query = task_batch()
    for _ in range(20):
        optimizer.zero_grad()
        maml.meta_loss(support, query, mse_loss).backward()
        for lr in maml.inner_lrs.values():
            assert lr.grad is not None and lr.grad.abs().sum() > 0
        optimizer.step()
    for name, lr in maml.inner_lrs.items():
        assert not torch.allclose(lr, initial[name]), name
        assert lr.shape == dict(maml.model.named_parameters())[name.replace('__', '.')].shape


def test_meta_training_lowers_the_meta_loss():
    maml = MAML(tiny_mlp(), inner_lr=0.1, inner_steps=1)
    optimizer = torch.optim.Adam(maml.parameters(), lr=1e-2)
    support, query = task_batch()
    before = maml.meta_loss(support, query, mse_loss).item()
    for _ in range(50):
        optimizer.zero_grad()
        maml.meta_loss(support, query, mse_loss).backward()
        optimizer.step()
    assert maml.meta_loss(support, query, mse_loss).item() < 0.5 * before


@pytest.mark.parametrize('adapt_params', [['2.weight', '2.bias'], r'2\..*'])
def test_adapt_changes_only_the_named_parameters(adapt_params):
    maml = MAML(tiny_mlp(), inner_lr=0.5, inner_steps=3, adapt_params=adapt_params)
    assert maml.adapt_names == ['2.weight', '2.bias']
    (x, y), _ = task_batch()
    adapted = maml.adapt((x[0], y[0]), mse_loss)
    meta = {name: p.detach().clone() for name, p in maml.model.named_parameters()}
    assert adapted.keys() == meta.keys()
    for name in meta:
        changed = not torch.equal(adapted[name], meta[name])
        assert changed == (name in maml.adapt_names), name


def test_adapt_subset_meta_gradient_still_reaches_frozen_parameters():
    maml = MAML(tiny_mlp(), inner_lr=0.3, inner_steps=2, adapt_params=r'2\..*')
    support, query = task_batch()
    grads = meta_gradient(maml, maml.meta_loss(support, query, mse_loss))
    assert all(g.abs().sum() > 0 for g in grads)


def test_adapt_lowers_support_loss_keeps_no_graph_and_leaves_meta_parameters_untouched():
    maml = MAML(tiny_mlp(), inner_lr=0.3, inner_steps=5, learn_inner_lr=True)
    (x, y), _ = task_batch()
    support = (x[0], y[0])
    before = {name: p.detach().clone() for name, p in maml.model.named_parameters()}
    adapted = maml.adapt(support, mse_loss)
    assert all(not t.requires_grad and t.grad_fn is None for t in adapted.values())
    for name, param in maml.model.named_parameters():
        assert torch.equal(param, before[name])
        assert adapted[name].data_ptr() != param.data_ptr()
    assert mse_loss(maml.predict(adapted, x[0]), y[0]) < mse_loss(maml.predict(before, x[0]), y[0])

    # Plain gradient descent with the (elementwise) learned rates, by hand.
    fast = {name: t.clone().requires_grad_() for name, t in before.items()}
    for _ in range(5):
        loss = mse_loss(functional_call(maml.model, fast, x[0]), y[0])
        grads = torch.autograd.grad(loss, list(fast.values()))
        fast = {name: (p - maml.inner_lr(name) * g).detach().requires_grad_()
                for (name, p), g in zip(fast.items(), grads, strict=True)}
    for name in before:
        torch.testing.assert_close(adapted[name], fast[name].detach())
    unchanged = maml.adapt(support, mse_loss, steps=0)
    assert all(torch.equal(unchanged[n], before[n]) for n in before)


def test_targets_may_be_a_dict_of_tensors():
    def loss_fn(prediction, target):
        return mse_loss(prediction, target['value']) * target['weight'].mean()

    (x, y), (xq, yq) = task_batch()
    weight = torch.full((NUM_TASKS, SHOTS), 2.0, dtype=torch.float64)
    support = (x, {'value': y, 'weight': weight})
    query = (xq, {'value': yq, 'weight': weight})
    losses = []
    for vectorize in (True, False):
        maml = MAML(tiny_mlp(), inner_lr=0.1, inner_steps=2, vectorize=vectorize)
        losses.append(maml.meta_loss(support, query, loss_fn))
    torch.testing.assert_close(losses[0], losses[1])
    plain = MAML(tiny_mlp(), inner_lr=0.2, inner_steps=2)  # lr doubles with weight 2
    torch.testing.assert_close(losses[0], 2 * plain.meta_loss((x, y), (xq, yq), mse_loss))


def test_targets_may_be_a_tuple_of_tensors():
    (x, y), (xq, yq) = task_batch()
    maml = MAML(tiny_mlp(), inner_lr=0.1, inner_steps=2)
    tuple_loss = maml.meta_loss((x, (y, y)), (xq, (yq, yq)),
                                lambda pred, target: mse_loss(pred, target[0]))
    torch.testing.assert_close(tuple_loss, maml.meta_loss((x, y), (xq, yq), mse_loss))


@pytest.mark.parametrize(('kwargs', 'message'), [
    ({'inner_lr': -0.1}, 'inner_lr'),
    ({'inner_lr': float('nan')}, 'inner_lr'),
    ({'inner_steps': -1}, 'inner_steps'),
    ({'inner_steps': 1.5}, 'inner_steps'),
    ({'adapt_params': ['no.such.weight']}, 'not parameters'),
    ({'adapt_params': 'head.*'}, 'matches no parameter'),
    ({'adapt_params': []}, 'empty'),
])
def test_bad_settings_are_refused_with_a_clear_message(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MAML(tiny_mlp(), **kwargs)


def test_works_with_modules_that_have_buffers():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 4), nn.BatchNorm1d(4), nn.Tanh(), nn.Linear(4, 1))
    model = model.double().eval()  # running statistics are buffers, used in eval mode
    maml = MAML(model, inner_lr=0.1, inner_steps=1)
    support, query = task_batch()
    loss = maml.meta_loss(support, query, mse_loss)
    loop = MAML(model, inner_lr=0.1, inner_steps=1, vectorize=False)
    torch.testing.assert_close(loss, loop.meta_loss(support, query, mse_loss))
