"""What the adapter records: each message it receives and sends, by name, into a new bag.

A :class:`Recording` is one rosbag2 bag (:class:`~maml_ros.ros.bag.BagRecorder`) named
``support_<UTC time>`` in the folder given, by default ``$ROS_HOME/maml_ros/bags``
(``ROS_HOME`` defaults to ``~/.ros``, as in ROS 2). Messages are written by the name the
node uses for them, each going to its resolved topic.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path

from diagnostic_msgs.msg import DiagnosticStatus, KeyValue
from rclpy.serialization import serialize_message

from maml_ros.ros.bag import BagError, BagRecorder, outcome_values


def ros_home() -> Path:
    """``$ROS_HOME``, or ``~/.ros`` without it (where ROS 2 keeps its logs)."""
    return Path(os.environ.get('ROS_HOME', Path.home() / '.ros'))


class Recording(BagRecorder):
    """A new bag in ``folder`` for these messages.

    :param folder: where the bag goes; empty: ``$ROS_HOME/maml_ros/bags``.
    :param topics: per name the node uses, the resolved topic and its message type.
    :raises BagError: when the bag cannot be created.
    """

    def __init__(self, folder: str | Path, topics: dict[str, tuple[str, str]]) -> None:
        self.topics = {name: topic for name, (topic, _) in topics.items()}
        bag = Path(folder or ros_home() / 'maml_ros' / 'bags') / datetime.now(
            timezone.utc).strftime('support_%Y%m%d_%H%M%S_%f')
        super().__init__(bag, dict(topics.values()))

    def record(self, name: str, time_ns: int, msg) -> None:
        """Queue ``msg`` as ``name`` received or sent at ``time_ns`` (any thread)."""
        self.write(self.topics[name], time_ns, serialize_message(msg))


class RecordingSwitch:
    """Recording switched on (a new bag each time) and off (the bag closed), as the
    adapter's ``record`` parameter and ``~/record`` say.

    :param topics: per name the node uses, the resolved topic and its message type.
    :param logger: where starting and closing a bag are said.
    :param problems: where a bag that cannot be created is counted.
    """

    def __init__(self, *, topics: dict[str, tuple[str, str]], logger, problems) -> None:
        self.topics, self.logger, self.problems = topics, logger, problems
        self.bag: Recording | None = None

    def switch(self, on: bool, folder: str) -> None:
        """Start a new bag in ``folder`` (see :class:`Recording`), or close the one open."""
        bag = self.bag
        if not on and bag is not None:
            self.bag = None
            bag.close()
            self.logger.info(f'recorded {bag.written} messages into {bag.path}')
        if not on or bag is not None:
            return
        try:
            self.bag = Recording(folder, self.topics)
        except BagError as error:
            self.problems.report('record', str(error))
            return
        self.logger.info(f'recording into {self.bag.path}')

    def record(self, name: str, time_ns: int, msg) -> None:
        """Queue ``msg`` as ``name`` if recording (any thread)."""
        bag = self.bag
        if bag is not None:
            bag.record(name, time_ns, msg)

    def values(self) -> dict[str, str]:
        """For ``/diagnostics``: the bag, and why writing it failed."""
        bag = self.bag
        if bag is None:
            return {'recording': 'off'}
        return {'recording': str(bag.path), **({'recording_error': bag.error} if bag.error
                                               else {})}


def outcome_status(outcome, *, name: str, method: str,
                   identified: dict | None) -> DiagnosticStatus:
    """A recorded adaptation outcome: OK when accepted, WARN when not, with
    :func:`outcome_values`."""
    return DiagnosticStatus(
        level=DiagnosticStatus.OK if outcome.accepted else DiagnosticStatus.WARN, name=name,
        message=f'adaptation {outcome}',
        values=[KeyValue(key=k, value=v) for k, v in outcome_values(
            outcome, method=method, identified=identified).items()])
