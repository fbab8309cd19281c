"""A robot's plain log written as a bag: ticks at the control period, each with the mean
torque of the period after it, read back by read_ticks as a recorded robot's bag."""

import re

import numpy as np
import pytest

from maml_ros.ros.bag import BagError, read_ticks
from maml_ros.ros.log_bag import LogError, PlainLog, write_log_bag

JOINTS = ['a', 'b']
PERIOD = 0.01


def sampled(seconds=2.0, rate=1000.0, start=5.0):
    """A 1 kHz log: positions and velocities of two sines, torques a ramp and a sine."""
    t = start + np.arange(round(seconds * rate) + 1) / rate
    q = np.stack([np.sin(t), 0.5 * np.cos(2 * t)], 1)
    qd = np.stack([np.cos(t), -np.sin(2 * t)], 1)
    effort = np.stack([3.0 * t, 2.0 * np.sin(2 * np.pi * 7.0 * t)], 1)
    return PlainLog(t, q, qd, effort)


def ticks_of(log, tmp_path, name='bag'):
    count = write_log_bag(log, tmp_path / name, joints=JOINTS, period=PERIOD)
    ticks = read_ticks(tmp_path / name, joints=JOINTS, command_topic='/effort_controller/commands')
    assert len(ticks) == count and not ticks.dropped.counts  # nothing broke the adapter's rules
    return ticks


def test_a_log_becomes_ticks_at_the_control_period_with_each_periods_mean_torque(tmp_path):
    log = sampled()
    ticks = ticks_of(log, tmp_path)
    assert len(ticks) == 200  # 2 s: the last tick's period ends at the log's end
    np.testing.assert_allclose(ticks.stamps, 5.0 + PERIOD * np.arange(200), rtol=0, atol=1e-9)
    q, qd = ticks.states[:, :2], ticks.states[:, 2:]
    np.testing.assert_allclose(q[:, 0], np.sin(ticks.stamps), atol=1e-6)  # interpolated
    np.testing.assert_allclose(qd[:, 1], -np.sin(2 * ticks.stamps), atol=1e-5)
    # A ramp's mean over [t, t + T] is its value at t + T/2; a sine's is its integral over T.
    np.testing.assert_allclose(ticks.commands[:, 0], 3.0 * (ticks.stamps + PERIOD / 2),
                               rtol=0, atol=1e-9)
    w = 2 * np.pi * 7.0
    mean = 2.0 * (np.cos(w * ticks.stamps) - np.cos(w * (ticks.stamps + PERIOD))) / (w * PERIOD)
    np.testing.assert_allclose(ticks.commands[:, 1], mean, atol=2e-3)
    assert np.abs(ticks.commands[:, 1] - 2.0 * np.sin(w * ticks.stamps)).max() > 0.3
    transitions, _, broken = ticks.transitions(control_period=PERIOD)
    assert (len(transitions), broken) == (199, 0)


def test_rows_a_driver_logged_twice_are_dropped_before_interpolating(tmp_path):
    log = sampled()
    repeat = np.arange(len(log.times))
    repeat[1::7] -= 1  # every seventh row repeats the values of the row before it
    stale = PlainLog(log.times, log.positions[repeat], log.velocities[repeat],
                     log.efforts[repeat])
    assert len(stale.without_repeats().times) == len(log.times) - len(repeat[1::7])
    clean, dropped = ticks_of(log, tmp_path, 'clean'), ticks_of(stale, tmp_path, 'stale')
    np.testing.assert_allclose(dropped.states, clean.states, atol=2e-5)
    np.testing.assert_allclose(dropped.commands, clean.commands, atol=5e-3)


def test_csv_and_npz_logs_load_alike(tmp_path):
    log = sampled(seconds=0.05)
    columns = {'time': log.times}
    for field, values in (('position', log.positions), ('velocity', log.velocities),
                          ('effort', log.efforts)):
        columns |= {f'{field}_{j + 1}': values[:, j] for j in range(2)}
    order = ['effort_2', 'time', 'position_1', 'velocity_1', 'position_2', 'velocity_2',
             'effort_1', 'note']  # any order; other columns are ignored
    columns['note'] = np.zeros_like(log.times)
    np.savetxt(tmp_path / 'log.csv', np.stack([columns[name] for name in order], 1),
               delimiter=',', header=','.join(order), comments='', fmt='%.17g')
    np.savez(tmp_path / 'log.npz', time=log.times, position=log.positions,
             velocity=log.velocities, effort=log.efforts)
    for loaded in (PlainLog.load(tmp_path / 'log.csv'), PlainLog.load(tmp_path / 'log.npz')):
        for name in ('times', 'positions', 'velocities', 'efforts'):
            np.testing.assert_array_equal(getattr(loaded, name), getattr(log, name))


def bad(log, **changes):
    fields = {'times': log.times, 'positions': log.positions, 'velocities': log.velocities,
              'efforts': log.efforts} | changes
    return lambda: PlainLog(**fields)


@pytest.mark.parametrize('case, message', [
    ('times go back', 'times must increase: sample 3'),
    ('a NaN', 'velocities holds values that are not finite'),
    ('one joint short', 'need time (T,) and position, velocity and effort (T, n)'),
    ('one sample', 'at least two'),
])
def test_a_log_that_describes_no_motion_is_refused_with_the_reason(case, message):
    log = sampled(seconds=0.01)
    times, velocities = log.times.copy(), log.velocities.copy()
    times[3] = times[2]
    velocities[4, 1] = np.nan
    make = {'times go back': bad(log, times=times),
            'a NaN': bad(log, velocities=velocities),
            'one joint short': bad(log, efforts=log.efforts[:, :1]),
            'one sample': bad(log, times=log.times[:1], positions=log.positions[:1],
                              velocities=log.velocities[:1], efforts=log.efforts[:1])}[case]
    with pytest.raises(LogError, match=message.replace('(', r'\(').replace(')', r'\)')):
        make()


@pytest.mark.parametrize('header, message', [
    ('time,position_1,velocity_1', 'needs the columns time, position_1..n'),
    ('time,position_1,velocity_1,effort_2', 'needs the columns'),
    ('position_1,velocity_1,effort_1', 'needs the columns'),
])
def test_a_csv_without_the_columns_is_refused_naming_them(tmp_path, header, message):
    path = tmp_path / 'log.csv'
    width = header.count(',') + 1
    path.write_text(header + '\n' + '\n'.join(','.join([str(k)] * width) for k in range(3)))
    with pytest.raises(LogError, match=message):
        PlainLog.load(path)


def test_what_cannot_be_written_is_refused_and_an_existing_bag_is_kept(tmp_path):
    log = sampled(seconds=0.5)
    with pytest.raises(LogError, match='2 joints; 3 distinct names'):
        write_log_bag(log, tmp_path / 'bag', joints=['a', 'b', 'c'], period=PERIOD)
    with pytest.raises(LogError, match='fewer than two control periods'):
        write_log_bag(sampled(seconds=0.015), tmp_path / 'bag', joints=JOINTS, period=PERIOD)
    write_log_bag(log, tmp_path / 'bag', joints=JOINTS, period=PERIOD)
    before = sorted(p.stat().st_mtime_ns for p in (tmp_path / 'bag').iterdir())
    with pytest.raises(BagError, match='never overwritten'):
        write_log_bag(log, tmp_path / 'bag', joints=JOINTS, period=PERIOD)
    assert sorted(p.stat().st_mtime_ns for p in (tmp_path / 'bag').iterdir()) == before
    with pytest.raises(LogError, match='cannot read'):
        PlainLog.load(tmp_path / 'missing.csv')


def test_a_log_from_time_zero_starts_at_one_second_since_a_zero_stamp_means_unstamped(
        tmp_path):
    ticks = ticks_of(sampled(seconds=0.5, start=0.0), tmp_path)
    np.testing.assert_allclose(ticks.stamps, 1.0 + PERIOD * np.arange(50), rtol=0, atol=1e-9)


def test_each_period_is_averaged_over_the_samples_it_spans_even_where_the_torque_jumps(
        tmp_path):
    """A torque that steps every 5 ms: each 10 ms window holds half of each level, so its
    mean is their midpoint, whatever the value at the tick."""
    t = 1.0 + np.arange(0, 0.5001, 0.0005)
    high = (np.floor((t - 1.0) / 0.005 + 1e-9) % 2).astype(float)
    effort = np.stack([4.0 * high, -2.0 * high], 1)
    motion = np.zeros((len(t), 2))
    ticks = ticks_of(PlainLog(t, motion, motion, effort), tmp_path)
    np.testing.assert_allclose(ticks.commands, np.tile([2.0, -1.0], (len(ticks), 1)), atol=0.05)


def test_ticks_arrive_as_on_a_robot_one_and_two_milliseconds_after_their_stamp(tmp_path):
    ticks = ticks_of(sampled(seconds=0.2), tmp_path)
    np.testing.assert_allclose(ticks.times - ticks.stamps, 0.002, atol=1e-9)


@pytest.mark.parametrize('start, first_stamp', [(0.5, 0.5), (-2.0, 1.0), (1e-3, 1e-3)])
def test_only_a_log_that_starts_at_or_before_zero_is_moved(tmp_path, start, first_stamp):
    ticks = ticks_of(sampled(seconds=0.2, start=start), tmp_path)
    assert ticks.stamps[0] == pytest.approx(first_stamp, abs=1e-9)


def test_the_shortest_logs_that_work(tmp_path):
    """Two samples make a log; two control periods make a bag (of two ticks)."""
    two = PlainLog(np.array([0.0, 1.0]), *(np.zeros((2, 2)),) * 3)
    assert len(two.times) == 2
    assert len(ticks_of(sampled(seconds=0.02, start=5.0), tmp_path)) == 2
    with pytest.raises(LogError, match='the log spans 0.015 s: fewer than two control periods'):
        sampled(seconds=0.015).resampled(PERIOD)


def test_arrays_of_other_lengths_and_the_times_that_go_back_are_named():
    log = sampled(seconds=0.01)
    longer = {name: np.concatenate([values, values[-1:]])
              for name, values in (('positions', log.positions), ('velocities', log.velocities),
                                   ('efforts', log.efforts))}
    with pytest.raises(LogError, match=r'got time \(11,\) and'):
        PlainLog(log.times, **longer)
    times = log.times.copy()
    times[3] = times[2]
    with pytest.raises(LogError, match=re.escape(f'sample 3 is at {float(times[3])!r} s, the '
                                                 f'one before at {float(times[2])!r} s')):
        PlainLog(times, log.positions, log.velocities, log.efforts)


def test_an_npz_without_an_array_is_refused_naming_it(tmp_path):
    log = sampled(seconds=0.01)
    np.savez(tmp_path / 'log.npz', time=log.times, position=log.positions, effort=log.efforts)
    with pytest.raises(LogError, match=r"has no array \['velocity'\]: need time, position, "
                                       'velocity, effort'):
        PlainLog.load(tmp_path / 'log.npz')


@pytest.mark.parametrize('joints', [1, 3])
def test_a_csv_of_any_number_of_joints_loads_and_unequal_columns_are_refused(tmp_path, joints):
    names = ['time'] + [f'{field}_{j + 1}' for field in ('position', 'velocity', 'effort')
                        for j in range(joints)]
    rows = np.arange(3 * len(names), dtype=float).reshape(3, len(names))
    rows[:, 0] = [0.0, 0.1, 0.2]
    np.savetxt(tmp_path / 'log.csv', rows, delimiter=',', header=','.join(names), comments='')
    assert PlainLog.load(tmp_path / 'log.csv').positions.shape == (3, joints)
    unequal = names + [f'position_{joints + 1}']
    np.savetxt(tmp_path / 'unequal.csv', np.zeros((3, len(unequal))) + rows[:, :1],
               delimiter=',', header=','.join(unequal), comments='')
    with pytest.raises(LogError, match='needs the columns'):
        PlainLog.load(tmp_path / 'unequal.csv')
