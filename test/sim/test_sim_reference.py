"""Random reference trajectories: inside the limits, smooth, consistent, reproducible."""

import numpy as np
import pytest

from maml_ros.sim import PANDA_HOME, JointLimits, ReferenceConfig, random_reference

PANDA_LIMITS = JointLimits(
    lower=np.array([-2.9671, -1.8326, -2.9671, -3.1416, -2.9671, -0.0873, -2.9671]),
    upper=np.array([2.9671, 1.8326, 2.9671, 0.0, 2.9671, 3.8223, 2.9671]),
    velocity=np.array([2.175] * 4 + [2.61] * 3),
    effort=np.array([87.0] * 4 + [12.0] * 3),
)


def draw(seed, *, limits=PANDA_LIMITS, home=PANDA_HOME, steps=1000, config=None):
    return random_reference(np.random.default_rng(seed), limits=limits, home=np.array(home),
                            steps=steps, control_period=0.01, config=config)


@pytest.mark.parametrize('config', [
    ReferenceConfig(),
    # Aggressive: large amplitudes, fast sinusoids, almost the full velocity limit.
    ReferenceConfig(max_amplitude=3.0, frequency_range=(0.5, 2.0), velocity_fraction=0.95,
                    position_margin=0.0, center_spread=1.0, ramp_time=0.2),
])
def test_references_stay_within_position_and_velocity_limits(config):
    for seed in range(40):
        reference = draw(seed, config=config)
        margin = config.position_margin
        assert np.all(reference.positions >= PANDA_LIMITS.lower + margin - 1e-12)
        assert np.all(reference.positions <= PANDA_LIMITS.upper - margin + 1e-12)
        assert np.all(np.abs(reference.velocities)
                      <= config.velocity_fraction * PANDA_LIMITS.velocity + 1e-12)


def test_tight_limits_shrink_the_motion_instead_of_leaving_them():
    tight = JointLimits(lower=np.array([-0.2, 1.0]), upper=np.array([0.2, 1.1]),
                        velocity=np.array([0.05, 5.0]), effort=np.array([1.0, 1.0]))
    reference = draw(0, limits=tight, home=(0.0, 1.05),
                     config=ReferenceConfig(position_margin=0.02))
    assert np.all(reference.positions >= tight.lower) and np.all(reference.positions <= tight.upper)
    assert np.abs(reference.velocities[:, 0]).max() <= 0.5 * 0.05 + 1e-12
    assert np.ptp(reference.positions[:, 0]) > 0.002  # slower, but still moves


def test_reference_starts_at_rest_and_moves_every_joint():
    reference = draw(1)
    assert np.all(reference.velocities[0] == 0) and np.all(reference.accelerations[0] == 0)
    assert np.abs(reference.positions[0] - PANDA_HOME).max() <= 0.2
    assert np.all(np.ptp(reference.positions, axis=0) > 0.05)


def test_velocities_and_accelerations_are_the_derivatives_of_positions():
    reference = draw(2, steps=1000)
    dt = reference.control_period
    # Central differences: error ~ dt^2 times a higher derivative, except where
    # the fade-in ramp starts and ends (the jerk jumps there: error ~ dt * jump).
    velocity = (reference.positions[2:] - reference.positions[:-2]) / (2 * dt)
    acceleration = (reference.positions[2:] - 2 * reference.positions[1:-1]
                    + reference.positions[:-2]) / dt**2
    velocity_error = np.abs(velocity - reference.velocities[1:-1])
    acceleration_error = np.abs(acceleration - reference.accelerations[1:-1])
    assert velocity_error.max() < 1e-3
    assert acceleration_error.max() < 0.1
    ramp_end = round(ReferenceConfig().ramp_time / dt)
    smooth = np.r_[2:ramp_end - 2, ramp_end + 2:len(acceleration_error)]
    assert acceleration_error[smooth].max() < 2e-3


def test_same_seed_same_reference_other_seed_other_reference():
    assert np.array_equal(draw(5).positions, draw(5).positions)
    assert not np.allclose(draw(5).positions, draw(6).positions)
    assert draw(5, steps=300).steps == 300
    assert draw(5, steps=300).positions.shape == (301, 7)


def test_invalid_reference_settings_are_rejected():
    with pytest.raises(ValueError):
        ReferenceConfig(frequency_range=(0.5, 0.1))
    with pytest.raises(ValueError):
        ReferenceConfig(velocity_fraction=1.5)
