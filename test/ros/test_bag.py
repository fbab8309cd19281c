"""rosbag2 bags: what BagRecorder writes, and read_ticks on bags of any publisher layout.

The bags here are written message by message, as ``ros2 bag record`` on some robot would
write them: 50 control ticks at 100 Hz of a two-joint robot, each a joint state received
1 ms after its stamp and a command 1 ms later.
"""

import dataclasses
import os
import re
import shutil
import sqlite3
import struct
import threading

import numpy as np
import pytest
import yaml
from mcap.reader import make_reader
from rosbags.rosbag2 import StoragePlugin, Writer

from maml_ros.model.outcome import AdaptationOutcome
from maml_ros.ros.bag import (
    COMMANDS,
    JOINT_STATE,
    OUTCOME,
    TYPESTORE,
    BagError,
    BagRecorder,
    Dropped,
    RecordedOutcome,
    deserialize,
    outcome_values,
    read_ticks,
)

JOINTS = ['a', 'b']
TICKS, PERIOD, T0 = 50, 0.01, 1000.0
STATES, COMMAND_TOPIC = '/joint_states', '/effort_controller/commands'
JointState = TYPESTORE.types[JOINT_STATE]
Float64MultiArray = TYPESTORE.types[COMMANDS]
Header = TYPESTORE.types['std_msgs/msg/Header']
Time = TYPESTORE.types['builtin_interfaces/msg/Time']
Layout = TYPESTORE.types['std_msgs/msg/MultiArrayLayout']
String = TYPESTORE.types['std_msgs/msg/String']
KeyValue = TYPESTORE.types['diagnostic_msgs/msg/KeyValue']


def ns(seconds: float) -> int:
    return round(seconds * 1e9)


def joint_state(stamp: float, q, qd, names=JOINTS):
    return JointState(header=Header(stamp=Time(sec=int(stamp), nanosec=ns(stamp % 1)),
                                    frame_id=''),
                      name=list(names), position=np.asarray(q, float),
                      velocity=np.asarray(qd, float), effort=np.array([], float))


def command(values):
    return Float64MultiArray(layout=Layout(dim=[], data_offset=0),
                             data=np.asarray(values, float))


def tick_messages(k: int, names=JOINTS, extra=()):
    """The joint state of tick ``k`` (in the order ``names``, ``extra`` joints appended) and
    its command: ``[(topic, time, msg)]``."""
    stamp = T0 + k * PERIOD
    value = {'a': (0.1 * k, 1.0), 'b': (-0.2 * k, -2.0), 'extra': (9.0, 9.0)}
    names = list(names) + list(extra)
    q, qd = zip(*(value[name] for name in names), strict=True)
    return [(STATES, stamp + 0.001, joint_state(stamp, q, qd, names)),
            (COMMAND_TOPIC, stamp + 0.002, command([k, -k]))]


def write(path, messages, storage=StoragePlugin.MCAP, raw=None):
    """A bag of ``[(topic, time s, msg)]`` in that order (types from the messages); ``raw``:
    bytes written instead of the message of that index."""
    raw = raw or {}
    with Writer(path, version=9, storage_plugin=storage) as writer:
        connections = {}
        for topic, _, msg in messages:
            if topic not in connections:
                connections[topic] = writer.add_connection(topic, msg.__msgtype__,
                                                           typestore=TYPESTORE)
        for index, (topic, time, msg) in enumerate(messages):
            writer.write(connections[topic], ns(time),
                         raw.get(index) or TYPESTORE.serialize_cdr(msg, msg.__msgtype__))
    return path


def canonical(k_range=range(TICKS), **layout):
    return [message for k in k_range for message in tick_messages(k, **layout)]


def read(path, **kwargs):
    return read_ticks(path, joints=JOINTS, command_topic=COMMAND_TOPIC, **kwargs)


def assert_same_ticks(ticks, expected):
    for name in ('times', 'stamps', 'states', 'commands'):
        np.testing.assert_array_equal(getattr(ticks, name), getattr(expected, name))


def test_ticks_pair_each_command_with_the_state_it_followed(tmp_path):
    ticks = read(write(tmp_path / 'bag', canonical()))
    assert len(ticks) == TICKS and not ticks.dropped
    k = 7
    assert ticks.stamps[k] == pytest.approx(T0 + k * PERIOD)
    np.testing.assert_allclose(ticks.states[k], [0.1 * k, -0.2 * k, 1.0, -2.0])
    np.testing.assert_array_equal(ticks.commands[k], [k, -k])
    transitions, stamps, broken = ticks.transitions(control_period=PERIOD)
    assert len(transitions) == TICKS - 1 and broken == 0
    np.testing.assert_array_equal(transitions.states[k], ticks.states[k])
    np.testing.assert_array_equal(transitions.commands[k], ticks.commands[k])
    np.testing.assert_array_equal(transitions.next_states[k], ticks.states[k + 1])
    np.testing.assert_array_equal(stamps, ticks.stamps[1:])
    # A window as the adapter's buffer held it: the newest 10 up to tick 30's state.
    window, window_stamps, _ = ticks.transitions(control_period=PERIOD,
                                                 until=ticks.stamps[30], capacity=10)
    np.testing.assert_array_equal(window.next_states, ticks.states[21:31])
    np.testing.assert_array_equal(window_stamps, ticks.stamps[21:31])


def test_another_publisher_layout_gives_the_same_ticks(tmp_path):
    """Joint order shuffled and an extra joint: matched by name, as live messages are."""
    expected = read(write(tmp_path / 'plain', canonical()))
    shuffled = read(write(tmp_path / 'shuffled', canonical(names=['b', 'a'], extra=['extra'])))
    assert not shuffled.dropped
    assert_same_ticks(shuffled, expected)


def test_duplicate_stamps_are_dropped_and_counted(tmp_path):
    messages = canonical()
    again = [(STATES, time + 0.0005, msg) for topic, time, msg in messages[:20:2]]
    for index, duplicate in enumerate(again):  # each state sent twice, before its command
        messages.insert(4 * index + 1, duplicate)
    ticks = read(write(tmp_path / 'bag', messages))
    assert ticks.dropped.counts == {'joint_state': 10}
    assert 'not newer than the previous one' in ticks.dropped.last['joint_state']
    assert_same_ticks(ticks, read(write(tmp_path / 'plain', canonical())))


def test_a_gap_breaks_the_chain_instead_of_making_a_transition(tmp_path):
    ticks = read(write(tmp_path / 'bag', canonical([*range(20), *range(25, TICKS)])))
    transitions, stamps, broken = ticks.transitions(control_period=PERIOD)
    assert len(ticks) == TICKS - 5 and broken == 1
    assert len(transitions) == 19 + 24
    assert np.all(np.diff(stamps[:19]) < 1.25 * PERIOD) and stamps[19] > stamps[18] + 0.05


@pytest.mark.parametrize('bad, kind, reason', [
    ((COMMAND_TOPIC, command([1.0, 2.0, 3.0])), 'command', '3 values for 2 joints'),
    ((COMMAND_TOPIC, command([np.nan, 0.0])), 'command', 'non-finite command'),
    ((STATES, joint_state(T0 + 0.104, [np.nan, 0.0], [0.0, 0.0])), 'joint_state',
     'non-finite'),
    ((STATES, joint_state(T0 + 0.104, [0.0], [0.0], names=['a'])), 'joint_state',
     "controlled joints ['b'] missing"),
    ((STATES, joint_state(T0 + 3.0, [0.0, 0.0], [0.0, 0.0])), 'joint_state',
     'ahead of this clock'),
])
def test_malformed_messages_are_dropped_with_their_reason(tmp_path, bad, kind, reason):
    topic, msg = bad
    messages = canonical()
    messages.insert(21, (topic, T0 + 0.1045, msg))  # between tick 10's state and command
    ticks = read(write(tmp_path / 'bag', messages))
    assert ticks.dropped.counts == {kind: 1} and reason in ticks.dropped.last[kind]
    assert len(ticks) == TICKS


def test_a_command_without_a_fresh_joint_state_is_dropped(tmp_path):
    messages = canonical(range(10)) + [(COMMAND_TOPIC, T0 + 0.3, command([0.0, 0.0]))]
    ticks = read(write(tmp_path / 'bag', messages))
    assert len(ticks) == 10 and ticks.dropped.counts == {'command': 1}
    assert 'no joint state received in the 0.1 s before it' in ticks.dropped.last['command']


def test_a_cut_off_bag_is_read_up_to_its_last_complete_chunk(tmp_path):
    """A robot that lost power mid-recording: no index, no metadata.yaml, the file cut."""
    count = 20000  # about 4.4 MB: MCAP chunks are 1 MiB
    full = read(write(tmp_path / 'bag', canonical(range(count))))
    file = tmp_path / 'bag' / 'bag.mcap'
    os.truncate(file, int(0.7 * file.stat().st_size))
    (tmp_path / 'bag' / 'metadata.yaml').unlink()
    cut = read(tmp_path / 'bag')
    assert 0 < len(cut) < count
    assert re.fullmatch(r'bag\.mcap is cut off after byte \d+ \(EndOfFile: \)',
                        cut.dropped.last['unreadable'])
    for name in ('stamps', 'states', 'commands'):
        np.testing.assert_array_equal(getattr(cut, name), getattr(full, name)[:len(cut)])
    shutil.copy(file, tmp_path / 'single.mcap')  # a bare MCAP file is read the same way
    assert len(read(tmp_path / 'single.mcap')) == len(cut)


def test_a_sqlite3_bag_reads_the_same(tmp_path):
    """The default storage of ``ros2 bag record`` before Iron."""
    expected = read(write(tmp_path / 'mcap', canonical()))
    assert_same_ticks(read(write(tmp_path / 'sqlite', canonical(), StoragePlugin.SQLITE3)),
                      expected)


def test_what_cannot_be_read_is_a_clear_error(tmp_path):
    with pytest.raises(BagError, match='does not exist'):
        read(tmp_path / 'missing')
    (tmp_path / 'notes.txt').write_text('not a bag')
    with pytest.raises(BagError, match='not a rosbag2 bag'):
        read(tmp_path / 'notes.txt')
    (tmp_path / 'notes.mcap').write_text('not a bag either')
    with pytest.raises(BagError, match='not an MCAP file'):
        read(tmp_path / 'notes.mcap')
    wrong = write(tmp_path / 'wrong', [(STATES, T0, String(data='q=1')),
                                       (COMMAND_TOPIC, T0 + 0.001, command([0.0, 0.0]))])
    with pytest.raises(BagError, match='/joint_states has type std_msgs/msg/String'):
        read(wrong)
    other_joints = write(tmp_path / 'other', canonical(names=['b'], extra=['extra']))
    with pytest.raises(BagError, match="controlled joints \\['a'\\] missing"):
        read(other_joints)


def test_the_recorder_writes_a_bag_that_rosbag2_and_mcap_readers_read(tmp_path):
    outcome = AdaptationOutcome(accepted=True, reason='', loss_before=0.5, loss_after=0.01,
                                duration_ms=12.5, transitions=40, window_end=T0 + 0.4)
    recorder = BagRecorder(tmp_path / 'bag', {STATES: JOINT_STATE, COMMAND_TOPIC: COMMANDS,
                                              '/adapter/adaptation': OUTCOME})
    for topic, time, msg in canonical():
        recorder.write(topic, ns(time), TYPESTORE.serialize_cdr(msg, msg.__msgtype__))
    values = outcome_values(outcome, method='maml_physics', identified={'payload_kg': [1.5]})
    status = TYPESTORE.types[OUTCOME](level=0, name='adapter', message='adaptation accepted',
                                      hardware_id='', values=[KeyValue(key=k, value=v)
                                                              for k, v in values.items()])
    recorder.write('/adapter/adaptation', ns(T0 + 0.5), TYPESTORE.serialize_cdr(status, OUTCOME))
    recorder.close()
    assert recorder.written == 2 * TICKS + 1 and not recorder.error
    with pytest.raises(BagError, match='exists'):
        BagRecorder(tmp_path / 'bag', {STATES: JOINT_STATE})

    ticks = read(tmp_path / 'bag', outcome_topic='/adapter/adaptation')
    assert len(ticks) == TICKS and len(ticks.outcomes) == 1
    recorded = ticks.outcomes[0]
    assert recorded.accepted and recorded.transitions == 40 and recorded.window_end == T0 + 0.4
    assert recorded.message == 'adaptation accepted'
    assert recorded.values['identified'] == '{"payload_kg": [1.5]}'
    # What rosbag2 (Jazzy) reads: a version 9 metadata.yaml naming the MCAP storage ...
    metadata = yaml.safe_load((tmp_path / 'bag' / 'metadata.yaml').read_text())
    info = metadata['rosbag2_bagfile_information']
    assert info['version'] == 9 and info['storage_identifier'] == 'mcap'
    assert info['message_count'] == 2 * TICKS + 1
    # ... and an MCAP file that the format's own reader indexes: ROS 2 schemas, CDR messages.
    with (tmp_path / 'bag' / 'bag.mcap').open('rb') as stream:
        summary = make_reader(stream).get_summary()
    assert summary.statistics.message_count == 2 * TICKS + 1
    assert {c.topic: c.message_encoding for c in summary.channels.values()} == {
        STATES: 'cdr', COMMAND_TOPIC: 'cdr', '/adapter/adaptation': 'cdr'}
    schemas = {s.name: s for s in summary.schemas.values()}
    assert schemas[JOINT_STATE].encoding == 'ros2msg'
    assert b'MSG: std_msgs/Header' in schemas[JOINT_STATE].data


def test_joint_states_serialized_by_ros2_with_an_empty_effort_read(tmp_path):
    """ROS 2's serializer pads an empty sequence of doubles (most drivers' ``effort``) to 8
    bytes: 4 bytes after the message, which rosbags' own check refuses."""
    from rclpy.serialization import serialize_message
    from sensor_msgs.msg import JointState as RosJointState

    recorder = BagRecorder(tmp_path / 'bag', {STATES: JOINT_STATE, COMMAND_TOPIC: COMMANDS})
    for k in range(TICKS):
        msg = RosJointState(name=JOINTS, position=[0.1 * k, 0.0], velocity=[0.0, 0.0])
        msg.header.stamp.sec, msg.header.stamp.nanosec = int(T0), ns(k * PERIOD)
        raw = serialize_message(msg)
        assert len(raw) % 8 == 4  # the padding this is about
        recorder.write(STATES, ns(T0 + k * PERIOD + 0.001), raw)
        recorder.write(COMMAND_TOPIC, ns(T0 + k * PERIOD + 0.002),
                       TYPESTORE.serialize_cdr(command([k, -k]), COMMANDS))
    recorder.close()
    ticks = read(tmp_path / 'bag')
    assert len(ticks) == TICKS and not ticks.dropped
    np.testing.assert_allclose(ticks.states[:, 0], 0.1 * np.arange(TICKS))


def test_the_recorder_creates_missing_folders_and_writes_from_a_daemon_thread(tmp_path):
    """A recorder never blocks the node's exit: its thread is a daemon, named for listings."""
    recorder = BagRecorder(tmp_path / 'runs' / 'today' / 'bag', {COMMAND_TOPIC: COMMANDS})
    threads = [t for t in threading.enumerate() if t.name == 'bag_recorder']
    assert len(threads) == 1 and threads[0].daemon
    recorder.write(COMMAND_TOPIC, ns(T0), TYPESTORE.serialize_cdr(command([0.0, 0.0]), COMMANDS))
    recorder.close()
    assert recorder.written == 1 and not recorder.error
    assert not [t for t in threading.enumerate() if t.name == 'bag_recorder']


def test_a_bag_that_cannot_be_created_is_a_clear_error(tmp_path):
    (tmp_path / 'file').write_text('not a folder')
    with pytest.raises(BagError, match=f'^cannot create the bag {tmp_path}/file/bag: '):
        BagRecorder(tmp_path / 'file' / 'bag', {STATES: JOINT_STATE})


def test_a_failed_write_stops_the_recording_and_the_first_failure_is_kept(tmp_path, monkeypatch):
    path = tmp_path / 'bag'
    recorder = BagRecorder(path, {COMMAND_TOPIC: COMMANDS})
    data = TYPESTORE.serialize_cdr(command([0.0, 0.0]), COMMANDS)
    recorder.write(COMMAND_TOPIC, ns(T0), data)
    recorder.write('/not_a_topic_of_the_bag', ns(T0 + 0.01), data)
    recorder.write(COMMAND_TOPIC, ns(T0 + 0.02), data)  # after a failure, nothing more
    monkeypatch.setattr(recorder._writer, 'close', _fail('disk full'))
    recorder.close()
    assert recorder.written == 1
    assert recorder.error == f"writing {path} failed: '/not_a_topic_of_the_bag'"
    # A failure on closing alone is reported too.
    recorder = BagRecorder(tmp_path / 'second', {COMMAND_TOPIC: COMMANDS})
    monkeypatch.setattr(recorder._writer, 'close', _fail('disk full'))
    recorder.close()
    assert recorder.error == f'closing {tmp_path / "second"} failed: disk full'


def _fail(reason):
    def fail():
        raise OSError(reason)
    return fail


def test_an_outcome_is_recorded_and_read_back_whole():
    outcome = AdaptationOutcome(accepted=False, reason='support loss rose', loss_before=0.25,
                                loss_after=0.5, duration_ms=12.3456, transitions=200)
    values = outcome_values(outcome, method='maml', identified=None)
    assert values == {'accepted': 'False', 'reason': 'support loss rose', 'method': 'maml',
                      'rolled_back': 'False', 'support_loss_before': '0.25',
                      'support_loss_after': '0.5', 'transitions': '200', 'duration_ms': '12.346',
                      'window_end': ''}
    recorded = RecordedOutcome.from_values('adaptation rejected', values)
    assert recorded == RecordedOutcome(False, 'adaptation rejected', 200, None, values)
    # What an older recording leaves out reads as unknown, not as an error.
    assert RecordedOutcome.from_values('', {}) == RecordedOutcome(False, '', 0, None, {})


def test_a_roll_back_is_read_as_the_adaptation_it_undoes(tmp_path):
    recorder = BagRecorder(tmp_path / 'bag', {STATES: JOINT_STATE, COMMAND_TOPIC: COMMANDS,
                                              '/adapter/adaptation': OUTCOME})
    for topic, time, msg in canonical():
        recorder.write(topic, ns(time), TYPESTORE.serialize_cdr(msg, msg.__msgtype__))
    first = AdaptationOutcome(accepted=True, reason='', loss_before=0.5, loss_after=0.01,
                              duration_ms=12.5, transitions=40, window_end=T0 + 0.4)
    second = dataclasses.replace(first, window_end=T0 + 0.8)
    undone = second.rolled_back_because('rolled back after 200 ticks on the robot: ...')
    for time, outcome in [(0.5, first), (0.9, second), (1.2, undone)]:
        values = outcome_values(outcome, method='maml_physics', identified=None)
        status = TYPESTORE.types[OUTCOME](
            level=0, name='adapter', message=f'adaptation {outcome}', hardware_id='',
            values=[KeyValue(key=k, value=v) for k, v in values.items()])
        recorder.write('/adapter/adaptation', ns(T0 + time), TYPESTORE.serialize_cdr(status,
                                                                                     OUTCOME))
    recorder.close()
    ticks = read(tmp_path / 'bag', outcome_topic='/adapter/adaptation')
    assert [(o.accepted, o.rolled_back) for o in ticks.outcomes] == [(True, False),
                                                                       (False, True)]
    assert ticks.recorded_window(2) == (T0 + 0.8, 40)  # the window it was fitted on
    assert ticks.outcomes[1].message.startswith('adaptation rolled back after 200 ticks')


def test_dropped_is_true_once_something_was_dropped():
    dropped = Dropped()
    assert not dropped
    dropped.add('command', 'non-finite command')
    assert dropped and dropped.describe() == ['1 command (last: non-finite command)']


def test_command_drops_say_exactly_why(tmp_path):
    messages = canonical()
    messages.insert(21, (COMMAND_TOPIC, T0 + 0.1045, command([np.inf, 0.0])))
    messages.insert(21, (COMMAND_TOPIC, T0 + 0.1044, command([0.0])))
    ticks = read(write(tmp_path / 'bag', messages))
    assert ticks.dropped.counts == {'command': 2}
    assert ticks.dropped.last == {'command': 'non-finite command'}


def test_an_undecodable_message_is_dropped_and_the_rest_read(tmp_path):
    """Tick 10's joint state replaced by bytes that are not a message."""
    ticks = read(write(tmp_path / 'bag', canonical(), raw={20: b'\x00\x01\x00\x00\x07'}))
    assert ticks.dropped.counts == {'undecodable': 1}
    assert ticks.dropped.last['undecodable'].startswith(f'{STATES}: ')
    assert len(ticks) == TICKS  # tick 10's command goes with tick 9's state
    assert ticks.stamps[10] == ticks.stamps[9]


def test_a_command_is_fresh_by_the_receive_time_of_its_joint_state(tmp_path):
    """A joint state stamped long before it arrived (a slow driver) still makes the next
    command a tick: the watchdog measures from reception, not from the stamp."""
    messages = [(topic, time + 0.2, msg) for topic, time, msg in canonical()]
    ticks = read(write(tmp_path / 'bag', messages))
    assert len(ticks) == TICKS and not ticks.dropped


def test_a_command_exactly_the_watchdog_timeout_after_its_joint_state_is_kept(tmp_path):
    state = (STATES, 1000.0, joint_state(999.999, [0.0, 0.0], [0.0, 0.0]))
    on_time = write(tmp_path / 'on_time', [state, (COMMAND_TOPIC, 1000.25, command([0, 0]))])
    assert len(read(on_time, watchdog_timeout=0.25)) == 1
    late = write(tmp_path / 'late', [state, (COMMAND_TOPIC, 1000.2500001, command([0, 0]))])
    with pytest.raises(BagError, match='no joint state received in the 0.25 s before it'):
        read(late, watchdog_timeout=0.25)


def test_a_bag_without_ticks_says_what_it_dropped(tmp_path):
    empty = write(tmp_path / 'empty', [('/other', T0, String(data='not wanted'))])
    with pytest.raises(BagError, match=': no messages on them$'):
        read(empty)
    two_kinds = write(tmp_path / 'two', [
        (STATES, T0 + 0.001, joint_state(T0, [np.nan, 0.0], [0.0, 0.0])),
        (COMMAND_TOPIC, T0 + 0.002, command([0.0]))])
    with pytest.raises(BagError, match=r': 1 command \(last: 1 values for 2 joints\); '
                                       r'1 joint_state \(last: non-finite'):
        read(two_kinds)


def test_deserialize_takes_both_byte_orders_and_refuses_what_is_not_cdr():
    msg = command([1.0, 2.0])
    for little_endian in (True, False):
        raw = TYPESTORE.serialize_cdr(msg, COMMANDS, little_endian=little_endian)
        assert deserialize(raw, COMMANDS).data.tolist() == [1.0, 2.0]
    for raw in (b'\x00\x01\x00', b'\x05\x05\x00\x00\x00\x00\x00\x00'):
        with pytest.raises(ValueError, match='^not CDR-encoded$'):
            deserialize(raw, COMMANDS)
    with pytest.raises(struct.error):  # a header, and nothing of the message after it
        deserialize(b'\x00\x01\x00\x00', COMMANDS)
    raw = bytes(TYPESTORE.serialize_cdr(msg, COMMANDS))
    assert deserialize(raw + bytes(7), COMMANDS).data.tolist() == [1.0, 2.0]  # padding
    with pytest.raises(ValueError, match=f'^8 bytes after the {COMMANDS} message$'):
        deserialize(raw + bytes(8), COMMANDS)


def test_a_bag_without_message_definitions_reads_with_the_jazzy_types(tmp_path):
    """rosbag2 before Iron stored no message definitions in its bags."""
    path = write(tmp_path / 'humble', canonical(), StoragePlugin.SQLITE3)
    with sqlite3.connect(next(path.glob('*.db3'))) as db:
        db.execute('DELETE FROM message_definitions')
    assert_same_ticks(read(path), read(write(tmp_path / 'jazzy', canonical())))


def test_a_cut_off_bag_reports_a_topic_of_another_type(tmp_path):
    """Read record by record. This cut falls inside a record's length field, where the MCAP
    reader raises struct.error (it was not caught)."""
    messages = [(STATES, T0 + 0.001 * k, String(data=str(k))) for k in range(60000)]
    path = write(tmp_path / 'bag', messages + canonical(range(1)))  # 3.6 MB: MCAP chunks: 1 MiB
    file = path / 'bag.mcap'
    os.truncate(file, int(0.7 * file.stat().st_size))
    (path / 'metadata.yaml').unlink()
    with pytest.raises(BagError, match=r'1 topic \(last: /joint_states has type '
                                       r'std_msgs/msg/String, not sensor_msgs/msg/JointState\)'):
        read(path)


def test_a_damaged_chunk_ends_the_reading_and_what_came_before_it_stands(tmp_path):
    """A bag with its index and metadata intact, and a record of its second chunk damaged."""
    count = 8000  # two chunks: MCAP chunks are 1 MiB
    path = write(tmp_path / 'bag', canonical(range(count)))
    full = read(path)
    file = path / 'bag.mcap'
    with file.open('rb') as stream:
        second = make_reader(stream).get_summary().chunk_indexes[1].chunk_start_offset
    data = bytearray(file.read_bytes())
    # The length of the chunk's first record (after the chunk's 49 bytes of header, no
    # compression): past the end of the chunk.
    data[second + 50:second + 58] = bytes([0xFF] * 8)
    file.write_bytes(bytes(data))
    damaged = read(path)
    assert 0 < len(damaged) < count
    assert damaged.dropped.counts['unreadable'] == 1
    assert damaged.dropped.last['unreadable'].startswith('the rest of the bag: ')
    for name in ('stamps', 'states', 'commands'):
        np.testing.assert_array_equal(getattr(damaged, name), getattr(full, name)[:len(damaged)])
