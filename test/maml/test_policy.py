"""The policy network and its built-in normalization."""

import pytest
import torch

from maml_ros.maml import MAML
from maml_ros.maml.policy import PolicyNet


def test_normalization_makes_inputs_standard_and_outputs_scaled():
    torch.manual_seed(0)
    policy = PolicyNet(input_dim=4, output_dim=2, hidden=(16,))
    features = torch.randn(1000, 4) * torch.tensor([1.0, 10.0, 0.1, 100.0]) + 5
    targets = torch.randn(1000, 2) * torch.tensor([50.0, 0.5])
    policy.fit_normalization(features, targets)
    normalized = (features - policy.input_mean) / policy.input_std
    torch.testing.assert_close(normalized.mean(0), torch.zeros(4), atol=1e-4, rtol=0)
    torch.testing.assert_close(normalized.std(0), torch.ones(4), atol=1e-4, rtol=0)
    torch.testing.assert_close(policy.output_scale, targets.std(0))


def test_statistics_are_buffers_that_adaptation_leaves_alone():
    policy = PolicyNet(input_dim=3, output_dim=2, hidden=(8, 8))
    assert {name for name, _ in policy.named_buffers()} == {'input_mean', 'input_std',
                                                            'output_scale'}
    maml = MAML(policy, inner_lr=0.1, inner_steps=2, adapt_params=r'head\..*')
    assert maml.adapt_names == ['head.weight', 'head.bias']
    adapted = maml.adapt((torch.randn(10, 3), torch.randn(10, 2)), torch.nn.functional.mse_loss)
    assert set(adapted) == {name for name, _ in policy.named_parameters()}


def test_architecture_round_trip():
    policy = PolicyNet(input_dim=21, output_dim=7, hidden=(64, 32), activation='elu')
    rebuilt = PolicyNet.from_architecture(policy.architecture())
    rebuilt.load_state_dict(policy.state_dict())
    x = torch.randn(5, 21)
    torch.testing.assert_close(rebuilt(x), policy(x))


@pytest.mark.parametrize('kwargs', [{'activation': 'sigmoidish'}, {'hidden': (0,)},
                                    {'input_dim': 0}])
def test_bad_architecture_is_refused(kwargs):
    with pytest.raises(ValueError):
        PolicyNet(**{'input_dim': 3, 'output_dim': 2, **kwargs})
