"""The nominal controller's gains, derived per joint from the robot and its ranges."""

import math

import numpy as np
import pytest

from maml_ros.sim import Dynamics, DynamicsRanges, NominalController, RobotConfig, RolloutConfig
from maml_ros.sim.gains import critical_frequency, derive_gains, is_stable
from maml_ros.sim.rollout import Task, run_task

PERIOD = 0.01


@pytest.mark.parametrize('delay, gain, lag', [(0, 1.0, 0.0), (2, 1.5, 0.02), (4, 1.2, 0.0)])
def test_the_critical_frequency_separates_stable_from_unstable_loops(delay, gain, lag):
    loop = dict(period=PERIOD, delay_steps=delay, loop_gain=gain,
                lag_retention=math.exp(-PERIOD / lag) if lag else 0.0)
    critical = critical_frequency(**loop)
    assert 1.0 < critical < 200.0
    assert is_stable(0.98 * critical, **loop)
    assert not is_stable(1.02 * critical, **loop)


def test_more_delay_gain_or_lag_allow_less_gain():
    base = critical_frequency(period=PERIOD, delay_steps=1, loop_gain=1.0)
    assert critical_frequency(period=PERIOD, delay_steps=2, loop_gain=1.0) < base
    assert critical_frequency(period=PERIOD, delay_steps=1, loop_gain=1.5) < base
    assert critical_frequency(period=PERIOD, delay_steps=1, loop_gain=1.0,
                              lag_retention=0.6) < base
    # A shorter control period leaves the same delay less time: higher gains are stable.
    assert critical_frequency(period=PERIOD / 2, delay_steps=1, loop_gain=1.0) > 1.9 * base


def test_panda_gains_come_from_the_worst_case_of_the_ranges():
    gains = derive_gains(RobotConfig(), DynamicsRanges())
    # Latency up to 2 steps plus one of margin; actuator gain 1.2 over links at 0.8 of
    # their mass: a loop gain of 1.5 on every joint.
    assert gains.delay_steps == 3
    np.testing.assert_allclose(gains.loop_gain, 1.5, rtol=1e-6)
    np.testing.assert_array_equal(gains.natural_frequency, np.floor(gains.critical_frequency))
    np.testing.assert_array_equal(gains.natural_frequency, 10.0)


def test_per_joint_ranges_give_per_joint_gains():
    gain_high = [1.2] * 6 + [2.4]  # the wrist's actuator may produce twice as much
    ranges = DynamicsRanges(actuator_gain=(0.8, tuple(gain_high)))
    gains = derive_gains(RobotConfig(), ranges)
    assert gains.loop_gain[6] == pytest.approx(2 * gains.loop_gain[0])
    assert gains.natural_frequency[6] < gains.natural_frequency[0]
    np.testing.assert_array_equal(gains.natural_frequency[:6], gains.natural_frequency[0])


def _tracking(frequency: float, dynamics: Dynamics) -> float:
    config = RolloutConfig(exploration_std=0.0, steps=400)
    controller = NominalController(config=config.robot, position_gain=frequency ** 2,
                                   velocity_gain=2 * frequency)
    return run_task(Task(1, dynamics), config=config, controller=controller).tracking_rmse


def test_the_derived_gain_holds_in_simulation_where_a_larger_one_diverges():
    """The loop model's prediction checked on the simulated Panda at the corner the gains
    were derived for (one step more latency than training, strongest actuators, lightest
    links, slowest torque loop)."""
    gains = derive_gains(RobotConfig(), DynamicsRanges())
    corner = Dynamics(latency_steps=gains.delay_steps, actuator_gain=1.2, link_mass_scale=0.8,
                      actuator_lag=0.02)
    assert _tracking(float(gains.natural_frequency[0]), corner) < 0.1
    too_high = math.ceil(1.15 * gains.critical_frequency[0])
    assert _tracking(too_high, corner) > 0.5
