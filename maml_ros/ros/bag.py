"""rosbag2 bags of support data: what the adapter records, and the control ticks a bag holds.

:class:`BagRecorder` writes serialized messages, each with the time it was received or
sent, into a new rosbag2 bag in MCAP storage (the default since Iron; written with
``rosbags``, no ROS install needed), from a thread of its own so that the control loop
never waits for the disk. MCAP keeps up to 1 MiB in memory before it writes a chunk:
a process killed while recording loses at most that much, and :func:`read_ticks` still
reads the chunks written before.

:func:`read_ticks` turns a bag (one the adapter recorded, or one ``ros2 bag record`` wrote
on a robot run by another controller; MCAP or SQLite3) back into control ticks: each
command on the command topic with the newest joint state received before it. The
messages meet the rules live messages meet in the adapter: a joint state goes through
:func:`~maml_ros.ros.joint_state.joint_state_arrays` and
:func:`~maml_ros.online.control_loop.stamp_rejection` (joints matched by name, stamps
rising and not ahead of their receive time), a command needs one value per joint, all
finite, and a joint state received within ``watchdog_timeout`` before it (else the
adapter would not have sent one). A message that breaks a rule is dropped and counted
with its reason; a bag whose end is cut off is read up to its last complete chunk. The
ticks then pair into transitions by the support buffer's own rules
(:meth:`BagTicks.transitions`).
"""

from __future__ import annotations

import collections
import json
import math
import queue
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from mcap.exceptions import InvalidMagic, McapError
from mcap.records import Channel, Message, Schema
from mcap.stream_reader import StreamReader
from rosbags.highlevel import AnyReader, AnyReaderError
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from maml_ros.model.transitions import Transitions
from maml_ros.online.control_loop import stamp_rejection
from maml_ros.online.support_buffer import SupportBuffer
from maml_ros.ros.joint_state import JointStateError, joint_state_arrays

TYPESTORE = get_typestore(Stores.ROS2_JAZZY)
JOINT_STATE = 'sensor_msgs/msg/JointState'
COMMANDS = 'std_msgs/msg/Float64MultiArray'
OUTCOME = 'diagnostic_msgs/msg/DiagnosticStatus'  # one per adaptation (see outcome_values)
NS = 1_000_000_000


class BagError(Exception):
    """A bag that cannot be written, or holds nothing this package can read."""


class BagRecorder:
    """Serialized messages into a new bag at ``path``, in the order :meth:`write` gets them.

    :param path: the bag's folder; it must not exist (a bag is never overwritten).
    :param topics: the message type of each topic that will be written.
    :raises BagError: when the bag cannot be created.
    """

    def __init__(self, path: Path | str, topics: dict[str, str]) -> None:
        self.path = Path(path)
        if self.path.exists():
            raise BagError(f'{self.path} exists: a bag is never overwritten')
        self.written, self.error = 0, ''
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = Writer(self.path, version=9, storage_plugin=StoragePlugin.MCAP)
            self._writer.open()
            self._connections = {topic: self._writer.add_connection(topic, msgtype,
                                                                    typestore=TYPESTORE)
                                 for topic, msgtype in topics.items()}
        except Exception as error:  # rosbags raises its own errors, OSError, ...
            raise BagError(f'cannot create the bag {self.path}: {error}') from error
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name='bag_recorder', daemon=True)
        self._thread.start()

    def write(self, topic: str, time_ns: int, data: bytes) -> None:
        """Queue one serialized message (any thread; returns at once)."""
        self._queue.put((topic, time_ns, data))

    def close(self) -> None:
        """Write what is queued and close the bag (its ``metadata.yaml`` is written now)."""
        self._queue.put(None)
        self._thread.join()

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            if self.error:
                continue
            topic, time_ns, data = item
            try:
                self._writer.write(self._connections[topic], time_ns, data)
                self.written += 1
            except Exception as error:  # a full disk: stop writing, say why
                self.error = f'writing {self.path} failed: {error}'
        try:
            self._writer.close()
        except Exception as error:
            self.error = self.error or f'closing {self.path} failed: {error}'


def outcome_values(outcome, *, method: str, identified: dict | None) -> dict[str, str]:
    """The key-value pairs of a recorded adaptation outcome (``DiagnosticStatus.values``):
    what :class:`RecordedOutcome` reads back."""
    values = {'accepted': str(outcome.accepted), 'reason': outcome.reason, 'method': method,
              'rolled_back': str(outcome.rolled_back),
              'support_loss_before': repr(outcome.loss_before),
              'support_loss_after': repr(outcome.loss_after),
              'transitions': str(outcome.transitions),
              'duration_ms': f'{outcome.duration_ms:.3f}',
              'window_end': '' if outcome.window_end is None else repr(outcome.window_end)}
    values.update({name: json.dumps(value) for name, value in outcome.judged().items()})
    if identified:
        values['identified'] = json.dumps(identified)
    return values


@dataclass(frozen=True)
class RecordedOutcome:
    """One adaptation the adapter recorded: its support window is the ``transitions``
    transitions up to the state stamped ``window_end``. ``rolled_back``: accepted, then
    rolled back on the robot (a second record; ``message`` is that record's)."""

    accepted: bool
    message: str
    transitions: int
    window_end: float | None
    values: dict[str, str]
    rolled_back: bool = False

    @classmethod
    def from_values(cls, message: str, values: dict[str, str]) -> RecordedOutcome:
        end = values.get('window_end', '')
        return cls(values.get('accepted') == 'True', message,
                   int(values.get('transitions', 0)), float(end) if end else None, values,
                   values.get('rolled_back') == 'True')


@dataclass
class Dropped:
    """Messages dropped, per kind: how many, and the last reason (as the adapter's
    :class:`~maml_ros.ros.problems.Problems` counts live ones)."""

    counts: collections.Counter = field(default_factory=collections.Counter)
    last: dict[str, str] = field(default_factory=dict)

    def add(self, kind: str, reason: str) -> None:
        self.counts[kind] += 1
        self.last[kind] = reason

    def __bool__(self) -> bool:
        return bool(self.counts)

    def describe(self) -> list[str]:
        return [f'{count} {kind} (last: {self.last[kind]})'
                for kind, count in sorted(self.counts.items())]


@dataclass(frozen=True)
class BagTicks:
    """The control ticks of a bag, in time order: each command's receive time (s), the stamp
    of the joint state it was computed from (s), that state ``(q, qd)``, and the command.
    Also what was dropped, and the adaptations the adapter recorded."""

    times: np.ndarray
    stamps: np.ndarray
    states: np.ndarray
    commands: np.ndarray
    dropped: Dropped
    outcomes: list[RecordedOutcome]

    def __len__(self) -> int:
        return len(self.times)

    def transitions(self, *, control_period: float, until: float | None = None,
                    capacity: int | None = None) -> tuple[Transitions, np.ndarray, int]:
        """The transitions the ticks make in a :class:`SupportBuffer` (the adapter's own
        pairing rules), the stamp of each one's next state, and how many ticks broke the
        chain. ``until``: only ticks whose state is stamped at or before it; ``capacity``:
        keep the newest that many (what the adapter's buffer held)."""
        keep = np.ones(len(self), bool) if until is None else self.stamps <= until
        buffer = SupportBuffer(capacity=capacity or max(1, int(keep.sum())),
                               n_joints=self.commands.shape[1], control_period=control_period)
        for stamp, state, command in zip(self.stamps[keep], self.states[keep],
                                         self.commands[keep], strict=True):
            buffer.record(stamp, state, command)
        return buffer.transitions(), buffer.stamps(), buffer.broken

    def recorded_window(self, recorded: int) -> tuple[float, int]:
        """The support window of the adapter's ``recorded``-th adaptation (from 1) as
        ``(window_end, transitions)``, for :func:`maml_ros.evaluation.replay.split`.

        :raises ValueError: no such recorded adaptation, or one without its window.
        """
        if not 1 <= recorded <= len(self.outcomes):
            raise ValueError(f'the bag records {len(self.outcomes)} adaptations, not {recorded}')
        outcome = self.outcomes[recorded - 1]
        if outcome.window_end is None:
            raise ValueError(f'adaptation {recorded} has no recorded support window')
        return outcome.window_end, outcome.transitions


def read_ticks(path: Path | str, *, joints: list[str], command_topic: str,
               joint_state_topic: str = '/joint_states', outcome_topic: str | None = None,
               watchdog_timeout: float = 0.1) -> BagTicks:
    """The control ticks of the bag at ``path`` (module docstring).

    :param joints: the controlled joints, in command order.
    :param command_topic: where the commands went (``/<controller>/commands``).
    :param outcome_topic: where the adapter recorded its adaptations (None: not read).
    :param watchdog_timeout: a command's joint state must be received at most this long
        before it (s).
    :raises BagError: when ``path`` is not a bag, or holds no tick.
    """
    path, n, dropped = Path(path), len(joints), Dropped()
    latest: tuple[float, float, np.ndarray] | None = None  # receive time, stamp, state
    last_stamp = -math.inf
    ticks: list[tuple[float, float, np.ndarray, np.ndarray]] = []
    outcomes: list[RecordedOutcome] = []
    wanted = {joint_state_topic: JOINT_STATE, command_topic: COMMANDS}
    if outcome_topic:
        wanted[outcome_topic] = OUTCOME
    for topic, msgtype, time_ns, raw in _messages(path, wanted, dropped):
        received = time_ns / NS
        try:
            msg = deserialize(raw, msgtype)
        except Exception as error:  # a message cut short, a wrong type
            dropped.add('undecodable', f'{topic}: {error}')
            continue
        if topic == joint_state_topic:
            try:
                q, qd, stamp = joint_state_arrays(msg, joints)
            except JointStateError as error:
                dropped.add('joint_state', str(error))
                continue
            reason = stamp_rejection(stamp, last_stamp, received)
            if reason:
                dropped.add('joint_state', reason)
                continue
            last_stamp, latest = stamp, (received, stamp, np.concatenate([q, qd]))
        elif topic == command_topic:
            command = np.asarray(msg.data, dtype=float)
            if command.shape != (n,) or not np.all(np.isfinite(command)):
                dropped.add('command', f'{command.size} values for {n} joints'
                            if command.shape != (n,) else 'non-finite command')
            elif latest is None or received - latest[0] > watchdog_timeout:
                dropped.add('command', f'no joint state received in the {watchdog_timeout:g} s '
                            'before it')
            else:
                ticks.append((received, latest[1], latest[2], command))
        else:
            outcome = RecordedOutcome.from_values(
                msg.message, {pair.key: pair.value for pair in msg.values})
            if outcome.rolled_back and outcomes:  # replaces the adaptation it undoes
                outcomes[-1] = outcome
            else:
                outcomes.append(outcome)
    if not ticks:
        problems = '; '.join(dropped.describe()) or 'no messages on them'
        raise BagError(f'{path}: no control tick ({command_topic} with {joint_state_topic} '
                       f'of {joints}): {problems}')
    times, stamps, states, commands = (np.array(column) for column in zip(*ticks, strict=True))
    return BagTicks(times, stamps, states, commands, dropped, outcomes)


def deserialize(raw: bytes, msgtype: str):
    """A CDR-encoded message. Up to 7 bytes after it are alignment padding, not an error:
    ROS 2's serializer (Fast CDR) aligns an empty sequence of doubles, such as the ``effort``
    of most joint states, to 8 bytes (``TYPESTORE.deserialize_cdr`` allows 3).

    :raises ValueError: (or ``struct.error``) for data that is not such a message.
    """
    if len(raw) < 4 or bytes(raw[:2]) not in {b'\x00\x00', b'\x00\x01'}:
        raise ValueError('not CDR-encoded')
    msgdef = TYPESTORE.get_msgdef(msgtype)
    decode = msgdef.deserialize_cdr_le if raw[1] else msgdef.deserialize_cdr_be
    message, size = decode(raw[4:], 0, msgdef.cls, TYPESTORE)
    if len(raw) - 4 - size > 7:
        raise ValueError(f'{len(raw) - 4 - size} bytes after the {msgtype} message')
    return message


def _messages(path: Path, wanted: dict[str, str], dropped: Dropped
              ) -> Iterator[tuple[str, str, int, bytes]]:
    """``(topic, type, log time ns, data)`` of the ``wanted`` topics (topic -> type), in time
    order. A topic of another type is dropped whole, with its reason."""
    if not path.exists():
        raise BagError(f'{path} does not exist')
    try:
        reader = AnyReader([path], default_typestore=TYPESTORE)
        reader.open()
    except (AnyReaderError, OSError) as error:  # no index or metadata.yaml (cut off, or
        # never closed): read the MCAP record by record
        mcaps = [path] if path.suffix == '.mcap' else sorted(path.glob('*.mcap')) \
            if path.is_dir() else []
        if not mcaps:
            raise BagError(f'{path} is not a rosbag2 bag: {error}') from error
        yield from sorted(_stream(mcaps, wanted, dropped), key=lambda message: message[2])
        return
    try:
        connections = [c for c in reader.connections if _wanted(c.topic, c.msgtype, wanted,
                                                                 dropped)]
        for connection, time_ns, raw in reader.messages(connections=connections) \
                if connections else ():  # none: messages() would read every topic
            yield connection.topic, connection.msgtype, time_ns, raw
    except Exception as error:  # a damaged chunk: what came before it stands
        dropped.add('unreadable', f'the rest of the bag: {error}')
    finally:
        reader.close()


def _wanted(topic: str, msgtype: str, wanted: dict[str, str], dropped: Dropped) -> bool:
    if topic not in wanted:
        return False
    if msgtype != wanted[topic]:
        dropped.add('topic', f'{topic} has type {msgtype}, not {wanted[topic]}')
        return False
    return True


def _stream(files: list[Path], wanted: dict[str, str], dropped: Dropped
            ) -> Iterator[tuple[str, str, int, bytes]]:
    """The messages of MCAP files record by record, up to where each one is cut off."""
    for file in files:
        schemas: dict[int, str] = {}
        channels: dict[int, tuple[str, str]] = {}
        with file.open('rb') as stream:
            try:
                for record in StreamReader(stream, skip_magic=False, emit_chunks=False).records:
                    if isinstance(record, Schema):
                        schemas[record.id] = record.name
                    elif isinstance(record, Channel):
                        channels[record.id] = (record.topic, schemas.get(record.schema_id, ''))
                        _wanted(*channels[record.id], wanted, dropped)
                    elif isinstance(record, Message) and record.channel_id in channels:
                        topic, msgtype = channels[record.channel_id]
                        if wanted.get(topic) == msgtype:
                            yield topic, msgtype, record.log_time, record.data
            except InvalidMagic as error:
                raise BagError(f'{file} is not an MCAP file: {error}') from error
            # struct.error: cut off inside a record's length field
            except (McapError, EOFError, ValueError, struct.error) as error:
                dropped.add('unreadable', f'{file.name} is cut off after byte {stream.tell()} '
                            f'({type(error).__name__}: {error})')
