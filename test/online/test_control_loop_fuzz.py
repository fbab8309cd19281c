"""Fuzzing the control loop: whatever arrives, nothing escapes and nothing unsafe goes out.

Hypothesis drives more than 10,000 random ``JointState`` and ``JointTrajectory``
messages (2,500 more each for the velocity and position interfaces, whose
limits are not symmetric), interleaved with control ticks, through the message
conversions and the :class:`ControlLoop` the adapter node runs (no rclpy), in a
:class:`LoopHarness`, which checks every command (finite, within limits and
rate limits, none while stale, computed from accepted joint states only).
Messages come in three families: well-formed ones (must be accepted), ones
with exactly one known defect (must be dropped), and arbitrary ones (only the
invariants are checked). The first two reach the boundaries: a value at the
plausibility limit is well formed and the next float above it a defect; a
stamp just under ``MAX_STAMP_LEAD`` ahead of the clock is well formed and one
just over it a defect.
"""

import collections
import time
from pathlib import Path

import numpy as np
import pytest
from builtin_interfaces.msg import Duration, Time
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sensor_msgs.msg import JointState
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from maml_ros.model.trained_models import TrainedModels
from maml_ros.online.control_loop import MAX_STAMP_LEAD
from maml_ros.ros.joint_state import MAX_ABS_POSITION, MAX_ABS_VELOCITY

from helpers.loop_harness import JOINTS, LIMITS, LoopHarness, untrained_models

CHECKPOINT = Path(__file__).resolve().parents[2] / 'checkpoints' / 'panda_effort.safetensors'

MESSAGES = 10_000
EXTRA_NAMES = ['panda_finger_joint1', 'panda_finger_joint2', 'gripper']
ANY_NAMES = JOINTS + EXTRA_NAMES + ['', 'PANDA_JOINT1', 'panda_joint8']
ANY_FLOAT = st.floats(allow_nan=True, allow_infinity=True)
STAMPS = ['fresh', 'zero', 'same', 'backwards', 'future', 'max', 'lead under', 'lead over']
DEFECTS = ['short position', 'long velocity', 'nan', 'inf', 'huge', 'just over the limit',
           'missing joint', 'duplicate name', 'empty', 'zero', 'same', 'backwards', 'future',
           'max', 'lead over']
LIMIT = {'position': MAX_ABS_POSITION, 'velocity': MAX_ABS_VELOCITY}
STAMP_MARGIN = 1e-3  # s: how far under and over MAX_STAMP_LEAD the boundary stamps are


def uniform(draw, n: int, bound: float) -> list[float]:
    """``n`` plausible values in [-bound, bound]: cheap to draw (the arbitrary messages
    are where hypothesis' edge-case floats matter)."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    return rng.uniform(-bound, bound, n).tolist()


@st.composite
def good_joint_state(draw):
    names = draw(st.permutations(JOINTS + draw(st.lists(st.sampled_from(EXTRA_NAMES),
                                                        unique=True, max_size=3))))
    msg = {'name': names, 'position': uniform(draw, len(names), 2.9),
           'velocity': uniform(draw, len(names), 3.0),
           'stamp': draw(st.sampled_from(['fresh'] * 9 + ['lead under']))}
    if draw(st.integers(0, 9)) == 0:  # a controlled joint's value right at the limit
        field = draw(st.sampled_from(['position', 'velocity']))
        msg[field][names.index(draw(st.sampled_from(JOINTS)))] = \
            draw(st.sampled_from([-1.0, 1.0])) * LIMIT[field]
        msg['boundary'] = 'at the limit'
    return msg


@st.composite
def defective_joint_state(draw):
    msg = draw(good_joint_state())
    msg['stamp'] = 'fresh'
    msg.pop('boundary', None)  # only the defect may make it a fault
    defect = draw(st.sampled_from(DEFECTS))
    i = msg['name'].index(draw(st.sampled_from(JOINTS)))  # a controlled joint
    if defect == 'short position':
        msg['position'] = msg['position'][:-1]
    elif defect == 'long velocity':
        msg['velocity'] = msg['velocity'] + [0.0]
    elif defect in ('nan', 'inf', 'huge', 'just over the limit'):
        field = draw(st.sampled_from(['position', 'velocity']))
        msg[field][i] = {'nan': np.nan, 'inf': -np.inf, 'huge': 1e7,
                         'just over the limit': np.nextafter(LIMIT[field], np.inf)}[defect]
    elif defect == 'missing joint':
        for field in ('name', 'position', 'velocity'):
            del msg[field][i]
    elif defect == 'duplicate name':
        msg['name'][(i + 1) % len(msg['name'])] = msg['name'][i]
    elif defect == 'empty':
        msg = {'name': [], 'position': [], 'velocity': [], 'stamp': 'fresh'}
    else:
        msg['stamp'] = defect
    if defect in ('just over the limit', 'lead over'):
        msg['boundary'] = defect
    return msg


@st.composite
def any_joint_state(draw):
    return {'name': draw(st.lists(st.sampled_from(ANY_NAMES), max_size=11)),
            'position': draw(st.lists(ANY_FLOAT, max_size=11)),
            'velocity': draw(st.lists(ANY_FLOAT, max_size=11)),
            'stamp': draw(st.sampled_from(STAMPS))}


def point(positions, velocities, seconds) -> JointTrajectoryPoint:
    return JointTrajectoryPoint(positions=positions, velocities=velocities,
                                time_from_start=Duration(sec=int(seconds // 1),
                                                         nanosec=int(seconds % 1 * 1e9)))


@st.composite
def good_trajectory(draw):
    names = draw(st.permutations(JOINTS))
    steps = draw(st.lists(st.floats(0.01, 2.0), min_size=1, max_size=4))
    with_velocities = draw(st.booleans())
    points = [point(uniform(draw, 7, 6.0),  # beyond the limits too: clamped
                    uniform(draw, 7, 5.0) if with_velocities else [], seconds)
              for seconds in np.cumsum(steps)]
    return JointTrajectory(joint_names=names, points=points)


@st.composite
def any_trajectory(draw):
    names = draw(st.lists(st.sampled_from(ANY_NAMES), max_size=9))
    points = [point(draw(st.lists(ANY_FLOAT, max_size=9)),
                    draw(st.lists(ANY_FLOAT, max_size=9)),
                    draw(st.floats(0.0, 10.0)))
              for _ in range(draw(st.integers(0, 4)))]
    if points and draw(st.booleans()):
        points[0].time_from_start = Duration(sec=-1)
    return JointTrajectory(joint_names=names, points=points)


EVENTS = st.one_of(
    good_joint_state().map(lambda m: ('joint_state', m, True)),
    defective_joint_state().map(lambda m: ('joint_state', m, False)),
    any_joint_state().map(lambda m: ('joint_state', m, None)),
    good_trajectory().map(lambda m: ('reference', m, True)),
    any_trajectory().map(lambda m: ('reference', m, None)),
    st.integers(1, 6).map(lambda n: ('tick', n, None)),
)


class Fuzzer:
    """Delivers the drawn events to the harnessed loop; checks the expected verdicts."""

    def __init__(self, harness) -> None:
        self.harness = harness
        self.last_stamp = harness.stamp  # of the last accepted joint state
        self.messages = 0
        self.verdicts = {True: 0, False: 0}
        self.boundaries = collections.Counter()  # boundary cases delivered, by kind

    def stamp(self, kind: str) -> Time:
        now = self.harness.stamp
        if kind == 'lead under' and self.last_stamp > now:
            kind = 'fresh'  # a lead is outstanding: stamps must still increase
        # Fresh stamps creep by a microsecond past a lead; ticks move the clock 10 ms.
        seconds = {'fresh': max(now, self.last_stamp + 1e-6),
                   'zero': 0.0, 'same': self.last_stamp, 'backwards': self.last_stamp - 0.5,
                   'future': time.time() + 30.0,
                   'lead under': now + MAX_STAMP_LEAD - STAMP_MARGIN,
                   'lead over': max(now, self.last_stamp) + MAX_STAMP_LEAD + STAMP_MARGIN,
                   }.get(kind)
        if seconds is None:  # 'max'
            return Time(sec=2**31 - 1, nanosec=999_999_999)
        sec = int(seconds)
        return Time(sec=sec, nanosec=min(int(round((seconds - sec) * 1e9)), 999_999_999))

    def deliver(self, event) -> None:
        kind, msg, expected = event
        if kind == 'tick':
            for _ in range(msg):
                self.harness.tick()
            return
        self.messages += 1
        if kind == 'joint_state':
            state = JointState(name=msg['name'], position=msg['position'],
                               velocity=msg['velocity'])
            lead = msg['stamp'] == 'lead under' and self.last_stamp <= self.harness.stamp
            state.header.stamp = self.stamp(msg['stamp'])
            accepted = self.harness.joint_state(state)
            for boundary in ['lead under'] * lead + [msg.get('boundary')] * ('boundary' in msg):
                self.boundaries[boundary] += 1
            if accepted:
                self.last_stamp = state.header.stamp.sec + state.header.stamp.nanosec * 1e-9
        else:
            if expected and self.harness.accepted is None:
                expected = False  # nothing to start from yet
            accepted = self.harness.reference(msg)
            if accepted:
                reference = self.harness.loop.reference
                assert np.all(reference.positions >= LIMITS.lower)
                assert np.all(reference.positions <= LIMITS.upper)
        if expected is not None:
            assert accepted == expected, (kind, msg, self.harness.last_problem)
            self.verdicts[expected] += 1


# interface -> (examples, messages at least): the shipped checkpoint, then the nominal
# controller of the other interfaces.
BUDGETS = {'effort': (460, MESSAGES), 'velocity': (120, 2_500), 'position': (120, 2_500)}


@pytest.mark.parametrize('interface', BUDGETS)
def test_ten_thousand_random_messages_never_get_anything_unsafe_out(interface):
    examples, messages = BUDGETS[interface]
    models = TrainedModels.load(CHECKPOINT) if interface == 'effort' else \
        untrained_models(interface)
    harness = LoopHarness(models)
    # Stamp leads measured on the fake clock: the boundary cases do not depend on how fast
    # this machine runs.
    harness.loop.stamp_clock = lambda: harness.stamp
    fuzzer = Fuzzer(harness)

    @settings(max_examples=examples, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(st.lists(EVENTS, min_size=20, max_size=60))
    def run(events):
        for event in events:
            fuzzer.deliver(event)

    run()
    print(f'{fuzzer.messages} messages, {len(harness.commands)} commands, verdicts checked '
          f'{fuzzer.verdicts}, boundaries {dict(fuzzer.boundaries)}, '
          f'problems {dict(harness.problems)}')
    assert fuzzer.messages >= messages
    assert set(fuzzer.boundaries) == {'lead under', 'lead over', 'at the limit',
                                      'just over the limit'}
    assert min(fuzzer.boundaries.values()) >= messages // 500, fuzzer.boundaries
    assert min(fuzzer.verdicts.values()) > messages // 10  # both families were exercised
    assert len(harness.commands) > messages // 10
