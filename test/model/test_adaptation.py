"""The baselines' adaptation rules."""

import torch

from maml_ros.maml.policy import PolicyNet
from maml_ros.model.adaptation import finetune, ridge_head, scaled_mse, state_with


def pooled_net_and_support():
    torch.manual_seed(0)
    net = PolicyNet(input_dim=6, output_dim=2, hidden=(16, 16))
    x = torch.randn(100, 6)
    y = torch.stack([x[:, 0] * 3 + 1, torch.sin(x[:, 1])], dim=1)
    net.fit_normalization(x, y)
    return net, (x, y)


def support_loss(net, params, support):
    x, y = support
    return scaled_mse(net.output_scale)(torch.func.functional_call(net, params, x), y).item()


def test_ridge_with_huge_regularization_keeps_the_pooled_head():
    net, support = pooled_net_and_support()
    params = ridge_head(net, support, ridge=1e9)
    torch.testing.assert_close(params['head.weight'], net.head.weight, atol=1e-4, rtol=0)
    torch.testing.assert_close(params['head.bias'], net.head.bias, atol=1e-4, rtol=0)


def test_ridge_with_small_regularization_is_the_least_squares_head():
    net, support = pooled_net_and_support()
    params = ridge_head(net, support, ridge=1e-6)
    pooled = dict(net.named_parameters())
    assert support_loss(net, params, support) < 0.5 * support_loss(net, pooled, support)
    with torch.no_grad():  # the normal equations hold: residuals orthogonal to the features
        hidden = net.body((support[0] - net.input_mean) / net.input_std)
        residual = support[1] / net.output_scale - (hidden @ params['head.weight'].T
                                                    + params['head.bias'])
        torch.testing.assert_close(hidden.T @ residual, torch.zeros(16, 2), atol=2e-3, rtol=0)
    assert torch.equal(params['body.0.weight'], pooled['body.0.weight'])


def test_finetune_lowers_the_support_loss_and_leaves_the_network_alone():
    net, support = pooled_net_and_support()
    before = {name: p.clone() for name, p in net.named_parameters()}
    params = finetune(net, support, lr=0.1, steps=5)
    assert support_loss(net, params, support) < support_loss(net, before, support)
    assert all(torch.equal(p, before[name]) for name, p in net.named_parameters())


def test_state_with_swaps_parameters_and_keeps_buffers():
    net, support = pooled_net_and_support()
    params = finetune(net, support, lr=0.1, steps=1)
    state = state_with(net, params)
    assert set(state) == set(net.state_dict())
    assert torch.equal(state['input_std'], net.input_std)
    assert torch.equal(state['head.bias'], params['head.bias'])
