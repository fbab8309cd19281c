"""A robot's plain log as the rosbag2 bag a ros2_control robot records, for maml-ros-replay.

Identification data of real arms is usually published as plain arrays: time, joint
positions, velocities and measured torques. :func:`write_log_bag` writes such a log
(:class:`PlainLog`) as the bag an effort-controlled robot would have given: joint states on
``/joint_states`` and, as each tick's command, the torque on
``/effort_controller/commands``, at the control period of the model that will replay it.

- Rows that repeat the previous row's values exactly (a driver that logged a sample
  twice) are dropped first: they are no measurement.
- Joint states fall on ``t0 + k T``: positions and velocities interpolated linearly between
  the log's samples. Each tick's command is the mean torque the log measured over the
  period that follows: the torque in force while the state moved on to the next tick's, as
  a command held for one period is.
- Each joint state is received 1 ms after its stamp, its command 1 ms later, as on a
  robot. Stamps are the log's times, except that a log whose time starts at or before 0 s
  is moved to start at 1 s (a zero stamp is ROS's "not stamped").

A log is a CSV file with a header row naming the columns ``time``, ``position_1`` ..
``position_n``, ``velocity_1`` .. ``velocity_n`` and ``effort_1`` .. ``effort_n`` (any
order, others ignored; joint ``i`` is the ``i``-th of the joints given), or a NumPy
``.npz`` file with the arrays ``time`` ``(T,)`` and ``position``, ``velocity`` and
``effort`` ``(T, n)``. Units: s, rad, rad/s, N·m.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from maml_ros.ros.bag import COMMANDS, JOINT_STATE, TYPESTORE, BagError, BagRecorder

RECEIVE_DELAY = 0.001  # s from a joint state's stamp to its arrival, and on to its command
FIELDS = ('position', 'velocity', 'effort')


class LogError(ValueError):
    """A log that cannot be read, or does not describe a robot's motion."""


@dataclass(frozen=True)
class PlainLog:
    """Samples of a robot: ``times`` ``(T,)`` (s, increasing), ``positions`` (rad),
    ``velocities`` (rad/s) and ``efforts`` (N·m), each ``(T, n)``.

    :raises LogError: for arrays of other shapes, values that are not finite, or times that
        do not increase.
    """

    times: np.ndarray
    positions: np.ndarray
    velocities: np.ndarray
    efforts: np.ndarray

    def __post_init__(self) -> None:
        shapes = {name: np.shape(getattr(self, name))
                  for name in ('positions', 'velocities', 'efforts')}
        if np.ndim(self.times) != 1 or len(set(shapes.values())) != 1 \
                or len(shapes['positions']) != 2 or shapes['positions'][0] != len(self.times):
            raise LogError(f'need time (T,) and position, velocity and effort (T, n); got time '
                           f'{np.shape(self.times)} and {shapes}')
        if len(self.times) < 2:
            raise LogError(f'{len(self.times)} samples: a log needs at least two')
        for name in ('times', *shapes):
            if not np.all(np.isfinite(getattr(self, name))):
                raise LogError(f'{name} holds values that are not finite')
        if np.any(np.diff(self.times) <= 0):
            first = int(np.flatnonzero(np.diff(self.times) <= 0)[0]) + 1
            raise LogError(f'times must increase: sample {first} is at '
                           f'{float(self.times[first])!r} s, the one before at '
                           f'{float(self.times[first - 1])!r} s')

    @property
    def n_joints(self) -> int:
        return self.positions.shape[1]

    @classmethod
    def load(cls, path: Path | str) -> PlainLog:
        """The log in a CSV or ``.npz`` file (module docstring).

        :raises LogError: when it cannot be read or lacks a column.
        """
        path = Path(path)
        try:
            if path.suffix == '.npz':
                with np.load(path) as arrays:
                    missing = sorted({'time', *FIELDS} - set(arrays.files))
                    if missing:
                        raise LogError(f'{path} has no array {missing}: need time, '
                                       f'{", ".join(FIELDS)}')
                    return cls(arrays['time'], *(arrays[name] for name in FIELDS))
            return cls._from_csv(path)
        except (OSError, ValueError) as error:
            if isinstance(error, LogError):
                raise
            raise LogError(f'cannot read {path}: {error}') from error

    @classmethod
    def _from_csv(cls, path: Path) -> PlainLog:
        table = np.genfromtxt(path, delimiter=',', names=True, dtype=float)
        names = table.dtype.names or ()
        columns = {field: sorted((int(match[1]), name) for name in names
                                 if (match := re.fullmatch(rf'{field}_(\d+)', name)))
                   for field in FIELDS}
        counts = {len(found) for found in columns.values()}
        numbers = {field: [i for i, _ in found] for field, found in columns.items()}
        if 'time' not in names or len(counts) != 1 or 0 in counts or any(
                found != list(range(1, len(found) + 1)) for found in numbers.values()):
            raise LogError(f'{path} needs the columns time, position_1..n, velocity_1..n and '
                           f'effort_1..n; its header names {list(names)}')
        table = np.atleast_1d(table)
        return cls(table['time'], *(np.stack([table[name] for _, name in columns[field]], 1)
                                    for field in FIELDS))

    def without_repeats(self) -> PlainLog:
        """The log without rows whose values repeat the previous row's exactly."""
        values = np.concatenate([self.positions, self.velocities, self.efforts], axis=1)
        keep = np.concatenate([[True], np.any(values[1:] != values[:-1], axis=1)])
        return PlainLog(self.times[keep], self.positions[keep], self.velocities[keep],
                        self.efforts[keep])

    def resampled(self, period: float) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                  np.ndarray]:
        """Ticks every ``period`` from the first sample: their stamps, positions and
        velocities, and the mean torque over the period after each (module docstring).

        :raises LogError: when the log spans less than two periods.
        """
        ticks = int(np.floor((self.times[-1] - self.times[0]) / period + 1e-9))
        if ticks < 2:
            raise LogError(f'the log spans {self.times[-1] - self.times[0]:.4g} s: fewer than '
                           f'two control periods of {period:g} s')
        stamps = self.times[0] + period * np.arange(ticks)
        q, qd = (np.stack([np.interp(stamps, self.times, column) for column in values.T], 1)
                 for values in (self.positions, self.velocities))
        return stamps, q, qd, np.stack([_window_means(self.times, column, stamps, period)
                                        for column in self.efforts.T], 1)


def _window_means(times: np.ndarray, values: np.ndarray, starts: np.ndarray,
                  period: float) -> np.ndarray:
    """The mean of the piecewise-linear signal ``values(times)`` over each
    ``[start, start + period]``: its integral (trapezoids) over the window, divided by it."""
    integral = np.concatenate([[0.0], np.cumsum(np.diff(times) * (values[1:] + values[:-1]) / 2)])

    def integral_at(t: np.ndarray) -> np.ndarray:
        index = np.clip(np.searchsorted(times, t, side='right') - 1, 0, len(times) - 2)
        dt = t - times[index]
        slope = (values[index + 1] - values[index]) / (times[index + 1] - times[index])
        return integral[index] + dt * (values[index] + slope * dt / 2)

    return (integral_at(starts + period) - integral_at(starts)) / period


def write_log_bag(log: PlainLog, path: Path | str, *, joints: list[str], period: float,
                  joint_state_topic: str = '/joint_states',
                  command_topic: str = '/effort_controller/commands') -> int:
    """Write ``log`` as a bag at ``path`` (module docstring); the number of ticks written.

    :param joints: the joint names, in the log's column order.
    :param period: the control period of the model that will replay the bag (s).
    :raises LogError: for joint names that do not match the log, or a log too short.
    :raises BagError: when the bag cannot be written (one that exists is never overwritten).
    """
    if len(joints) != log.n_joints or len(set(joints)) != len(joints):
        raise LogError(f'the log has {log.n_joints} joints; {len(joints)} distinct names are '
                       f'needed, got {joints}')
    stamps, positions, velocities, efforts = log.without_repeats().resampled(period)
    if stamps[0] <= 0:
        stamps = stamps - stamps[0] + 1.0
    types = {name: TYPESTORE.types[name] for name in (JOINT_STATE, COMMANDS,
                                                       'std_msgs/msg/Header',
                                                       'builtin_interfaces/msg/Time',
                                                       'std_msgs/msg/MultiArrayLayout')}
    recorder = BagRecorder(path, {joint_state_topic: JOINT_STATE, command_topic: COMMANDS})
    try:
        for stamp, q, qd, effort in zip(stamps, positions, velocities, efforts, strict=True):
            sec, nanosec = divmod(round(stamp * 1e9), 1_000_000_000)
            state = types[JOINT_STATE](
                header=types['std_msgs/msg/Header'](
                    stamp=types['builtin_interfaces/msg/Time'](sec=sec, nanosec=nanosec),
                    frame_id=''),
                name=list(joints), position=q, velocity=qd, effort=np.array([], float))
            command = types[COMMANDS](layout=types['std_msgs/msg/MultiArrayLayout'](
                dim=[], data_offset=0), data=effort)
            received = round((stamp + RECEIVE_DELAY) * 1e9)
            recorder.write(joint_state_topic, received,
                           TYPESTORE.serialize_cdr(state, JOINT_STATE))
            recorder.write(command_topic, received + round(RECEIVE_DELAY * 1e9),
                           TYPESTORE.serialize_cdr(command, COMMANDS))
    finally:
        recorder.close()
    if recorder.error:
        raise BagError(recorder.error)
    return len(stamps)
