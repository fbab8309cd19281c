"""Dynamics of a task and randomization ranges: validation, round trips, in/out of range."""

import numpy as np
import pytest
import yaml

from maml_ros.sim import FACTOR_NAMES, Dynamics, DynamicsRanges

N_JOINTS, N_LINKS = 7, 12  # the Panda: panda_joint1..7, 12 PyBullet links


def test_explicit_dynamics_round_trip_through_a_yaml_dict():
    dynamics = Dynamics(
        link_mass_scale=[1.1] * N_LINKS, payload_mass=1.5, joint_damping=0.2,
        joint_friction=[0.1, 0.2, 0.3, 0.1, 0.05, 0.05, 0.05], actuator_gain=0.9,
        latency_steps=2, position_noise_std=1e-3, velocity_noise_std=1e-2)
    text = yaml.safe_dump(dynamics.to_dict())
    assert Dynamics.from_dict(yaml.safe_load(text)) == dynamics


def test_missing_keys_take_the_nominal_values():
    dynamics = Dynamics.from_dict({'payload_mass': 2.0})
    assert dynamics == Dynamics(payload_mass=2.0)
    assert Dynamics().to_dict()['actuator_gain'] == 1.0


def test_unknown_dynamics_key_is_rejected_with_its_name():
    with pytest.raises(ValueError, match=r"unknown dynamics key\(s\) \['payload'\]"):
        Dynamics.from_dict({'payload': 1.0})


@pytest.mark.parametrize(('key', 'value', 'message'), [
    ('payload_mass', -1.0, 'payload_mass must be >= 0 kg'),
    ('link_mass_scale', 0.0, 'link_mass_scale must be > 0'),
    ('link_mass_scale', [1.0, -0.5], 'link_mass_scale must be > 0'),
    ('actuator_gain', -0.1, 'actuator_gain must be > 0'),
    ('joint_damping', float('nan'), 'joint_damping must be finite'),
    ('joint_friction', -0.2, 'joint_friction must be >= 0'),
    ('latency_steps', 1.5, 'latency_steps must be a whole number'),
    ('latency_steps', -1, 'latency_steps must be >= 0'),
    ('velocity_noise_std', 'high', 'velocity_noise_std must be a number'),
    ('payload_mass', [1.0, 2.0], 'payload_mass must be a number'),
    ('actuator_gain', True, 'actuator_gain must be a number'),
    ('joint_damping', [[0.1, 0.2]], 'joint_damping must be a number or a list of numbers'),
])
def test_out_of_domain_values_raise_a_clear_value_error(key, value, message):
    with pytest.raises(ValueError, match=message):
        Dynamics.from_dict({key: value})


def test_latency_given_as_a_whole_float_becomes_an_int():
    assert Dynamics(latency_steps=2.0).latency_steps == 2
    assert isinstance(Dynamics(latency_steps=2.0).latency_steps, int)


def test_per_element_checks_the_robot_size():
    assert Dynamics(joint_damping=0.3).per_element('joint_damping', 3).tolist() == [0.3] * 3
    with pytest.raises(ValueError, match='joint_damping has 2 values but the robot has 7'):
        Dynamics(joint_damping=[0.1, 0.2]).per_element('joint_damping', 7)


def test_ranges_round_trip_and_reject_bad_input():
    ranges = DynamicsRanges.from_dict({'payload_mass': [0.0, 3.0], 'latency_steps': [1, 3]})
    assert DynamicsRanges.from_dict(yaml.safe_load(yaml.safe_dump(ranges.to_dict()))) == ranges
    assert ranges.payload_mass == (0.0, 3.0)
    assert ranges.actuator_gain == DynamicsRanges().actuator_gain
    with pytest.raises(ValueError, match='unknown dynamics range key'):
        DynamicsRanges.from_dict({'gain': [0.5, 1.5]})
    with pytest.raises(ValueError, match='low > high'):
        DynamicsRanges.from_dict({'payload_mass': [2.0, 1.0]})
    with pytest.raises(ValueError, match=r'\[low, high\] pair'):
        DynamicsRanges.from_dict({'payload_mass': 2.0})
    with pytest.raises(ValueError, match='payload_mass \\(low\\) must be >= 0'):
        DynamicsRanges.from_dict({'payload_mass': [-1.0, 1.0]})


def test_same_seed_samples_the_same_task_and_other_seeds_differ():
    ranges = DynamicsRanges()
    first = ranges.sample(np.random.default_rng(7), n_joints=N_JOINTS, n_links=N_LINKS)
    again = ranges.sample(np.random.default_rng(7), n_joints=N_JOINTS, n_links=N_LINKS)
    other = ranges.sample(np.random.default_rng(8), n_joints=N_JOINTS, n_links=N_LINKS)
    assert first == again
    assert first != other


def test_sampled_tasks_lie_in_range_and_cover_it():
    ranges = DynamicsRanges()
    rng = np.random.default_rng(0)
    tasks = [ranges.sample(rng, n_joints=N_JOINTS, n_links=N_LINKS) for _ in range(200)]
    assert all(ranges.contains(t, n_joints=N_JOINTS, n_links=N_LINKS) for t in tasks)
    assert {t.latency_steps for t in tasks} == {0, 1, 2}
    gains = np.array([t.actuator_gain for t in tasks])
    assert gains.shape == (200, N_JOINTS)
    assert gains.min() < 0.82 and gains.max() > 1.18


def test_contains_spots_each_factor_out_of_range():
    ranges = DynamicsRanges()
    kw = {'n_joints': N_JOINTS, 'n_links': N_LINKS}
    assert ranges.contains(Dynamics(), **kw)  # the nominal robot is a training robot
    assert not ranges.contains(Dynamics(payload_mass=4.0), **kw)
    assert not ranges.contains(Dynamics(actuator_gain=[1.0] * 6 + [0.6]), **kw)
    assert not ranges.contains(Dynamics(latency_steps=3), **kw)
    assert ranges.violations(Dynamics(payload_mass=4.0, latency_steps=3), **kw) == [
        'payload_mass=4.0 outside [0.0, 2.0]', 'latency_steps=3 outside [0, 2]']


@pytest.mark.parametrize('factors', [None, ['payload_mass'], ['actuator_gain', 'latency_steps']])
def test_sample_beyond_gives_out_of_range_dynamics_in_the_named_factors(factors):
    ranges = DynamicsRanges()
    kw = {'n_joints': N_JOINTS, 'n_links': N_LINKS}
    rng = np.random.default_rng(3)
    for _ in range(20):
        dynamics = ranges.sample_beyond(rng, factors=factors, **kw)
        outside = {v.split('=')[0] for v in ranges.violations(dynamics, **kw)}
        # An angle beyond its range is one inside it: the ripple's phase stays drawn inside.
        assert outside == set(factors or FACTOR_NAMES) - {'ripple_phase'}


def test_sample_beyond_stays_in_the_physical_domain():
    # The gain range reaches down to 0.1: below it there is little room, none below 0.
    ranges = DynamicsRanges(actuator_gain=(0.1, 1.0), payload_mass=(0.0, 1.0))
    rng = np.random.default_rng(0)
    for _ in range(50):
        dynamics = ranges.sample_beyond(rng, n_joints=N_JOINTS, n_links=N_LINKS,
                                        factors=['actuator_gain', 'payload_mass'])
        assert min(dynamics.actuator_gain) > 0
        assert dynamics.payload_mass > 1.0


def test_sample_beyond_rejects_unknown_factors():
    with pytest.raises(ValueError, match='unknown factor'):
        DynamicsRanges().sample_beyond(np.random.default_rng(0), n_joints=7, n_links=12,
                                       factors=['mass'])


def test_ranges_may_give_one_bound_per_joint():
    wrist_light = [[0.0] * 7, [0.5] * 4 + [0.05] * 3]
    ranges = DynamicsRanges.from_dict({'joint_friction': wrist_light})
    rng = np.random.default_rng(1)
    frictions = np.array([ranges.sample(rng, n_joints=7, n_links=12).joint_friction
                          for _ in range(100)])
    assert frictions[:, :4].max() > 0.3
    assert frictions[:, 4:].max() <= 0.05
    kw = {'n_joints': N_JOINTS, 'n_links': N_LINKS}
    assert not ranges.contains(Dynamics(joint_friction=0.1), **kw)  # too much at the wrist
    assert ranges.contains(Dynamics(joint_friction=[0.1] * 4 + [0.01] * 3), **kw)
    with pytest.raises(ValueError, match='does not have 8 elements'):
        ranges.sample(rng, n_joints=8, n_links=12)
