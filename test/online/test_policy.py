"""Both kinds of policy ControlLoop drives implement the Policy protocol, and the loop's stop
command holds the posture with whichever model runs."""

import numpy as np
import pytest

from maml_ros.model.model_based import ModelPolicy, sysid_policy
from maml_ros.online.adaptive_policy import AdaptivePolicy
from maml_ros.online.control_loop import ControlLoop, LoopSettings
from maml_ros.online.policy import Policy
from maml_ros.sim import PANDA_HOME

from helpers.loop_harness import untrained_models


@pytest.fixture(scope='module')
def effort_models():
    return untrained_models('effort')


def policies(models):
    return {'adaptive': AdaptivePolicy(models=models, method='maml', worker='inline'),
            'nominal': ModelPolicy(models=models, torque=models.formulation.nominal),
            'sysid': sysid_policy(models)}


def test_the_adaptive_policy_and_the_model_policies_implement_the_protocol(effort_models):
    for name, policy in policies(effort_models).items():
        assert isinstance(policy, Policy), name
        policy.close()


@pytest.mark.parametrize('kind', ['adaptive', 'nominal', 'sysid'])
def test_the_stop_command_holds_the_posture_with_the_model_that_runs(effort_models, kind):
    """Gravity compensation at the measured posture: the URDF's torque at rest, for every
    kind of policy (the untrained network adds nothing to the nominal model)."""
    policy = policies(effort_models)[kind]
    loop = ControlLoop(policy=policy, settings=LoopSettings(), period=0.01,
                       stamp_clock=lambda: 1.0)
    q = np.array(PANDA_HOME) + 0.2
    loop.joint_state(q, np.zeros(7), 1.0, 1.0)
    assert loop.step(1.0) is not None
    rest = np.zeros(7)
    expected = effort_models.formulation.nominal(q, rest, rest)
    np.testing.assert_allclose(loop.stop(), np.clip(expected, loop.command_space.lower,
                                                    loop.command_space.upper), atol=1e-6)
    assert np.abs(expected).max() > 1.0  # gravity: a stop command that is not zero
    policy.close()
