"""``meta_trainer``: provides the meta-trained checkpoint, by loading or training it.

``mode``: ``load`` validates ``checkpoint``; ``train`` meta-trains into it with
the ``meta_trainer`` settings of ``config`` (minutes to hours: in a worker
thread, progress in the log); ``auto`` loads it when it exists and trains it
otherwise. The path of the ready checkpoint is published on ``~/checkpoint``
(transient-local: late subscribers such as the adapter get it too);
``~/train`` retrains. ``/diagnostics`` says idle, training or ready.
Training starts only for a robot that passes the robot check
(``maml-ros-check-robot``), unless ``force`` is set.
"""

from __future__ import annotations

import threading
from pathlib import Path

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.node import Node
from std_msgs.msg import String
from std_srvs.srv import Trigger

from maml_ros.maml.checkpoint import CheckpointError
from maml_ros.model.trained_models import TrainedModels
from maml_ros.resources import default_config, shipped_checkpoint
from maml_ros.ros.diagnostics import diagnostic_array
from maml_ros.ros.params import ParamSpec, declare_parameters
from maml_ros.ros.qos import CHECKPOINT_QOS
from maml_ros.ros.spin import StartupError, spin_node
from maml_ros.sim.robot_check import require_robot
from maml_ros.training.config import load_train_config
from maml_ros.training.meta_train import meta_train

MODES = ('auto', 'train', 'load')

PARAMETERS = [
    ParamSpec('mode', 'auto', f'one of {list(MODES)}', read_only=True),
    ParamSpec('checkpoint', '', 'checkpoint to load or to train into; empty: the shipped '
              'one', read_only=True),
    ParamSpec('config', '', 'YAML with the meta_trainer training settings; empty: the '
              'shipped config/adapt.yaml', read_only=True),
    ParamSpec('workers', 0, 'rollout worker processes; 0: one per CPU', 0, 256,
              read_only=True),
    ParamSpec('device', 'cpu', 'where meta-steps run: cpu or cuda', read_only=True),
    ParamSpec('ray_address', '', 'collect rollouts on Ray (pip install .[ray]): local, auto '
              'or HOST:PORT; empty: local worker processes', read_only=True),
    ParamSpec('force', False, 'train even when the robot check (maml-ros-check-robot) fails',
              read_only=True),
]


class MetaTrainerNode(Node):
    """Loads or trains the checkpoint; see the module docstring."""

    def __init__(self, **kwargs) -> None:
        super().__init__('meta_trainer', **kwargs)
        declare_parameters(self, PARAMETERS)
        value = lambda name: self.get_parameter(name).value  # noqa: E731
        self.mode = value('mode')
        if self.mode not in MODES:
            raise StartupError(f'parameter mode: {self.mode!r} is not one of {list(MODES)}')
        self.path = Path(value('checkpoint') or shipped_checkpoint())
        self.config = Path(value('config') or default_config())
        self.state = 'idle'
        self.error = ''
        self._thread: threading.Thread | None = None
        self.publisher = self.create_publisher(String, '~/checkpoint', CHECKPOINT_QOS)
        self.diagnostics = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self.create_service(Trigger, '~/train', self._on_train)
        self.create_timer(1.0, self._publish_diagnostics)
        if self.mode == 'train' or (self.mode == 'auto' and not self.path.is_file()):
            self.start_training()
        else:
            self._load()

    def _load(self) -> None:
        """Validate the checkpoint; publish its path when it loads, else say why not."""
        try:
            TrainedModels.load(self.path)
        except CheckpointError as error:
            self.state, self.error = 'idle', str(error)
            self.get_logger().error(f'cannot load the checkpoint: {error}')
            return
        self.state, self.error = 'ready', ''
        self.publisher.publish(String(data=str(self.path)))
        self.get_logger().info(f'checkpoint ready: {self.path}')

    def start_training(self) -> bool:
        """Meta-train into ``checkpoint`` in a worker thread; False if already training."""
        if self.state == 'training':  # not the thread: it is still ending once 'ready'
            return False
        workers = self.get_parameter('workers').value or None
        try:
            config = load_train_config(self.config, workers=workers,
                                       device=self.get_parameter('device').value,
                                       ray_address=self.get_parameter('ray_address').value or None)
            if not self.get_parameter('force').value:
                require_robot(config.robot, ranges=config.ranges, reference=config.reference)
        except (OSError, ValueError) as error:  # RobotCheckError is a ValueError
            self.state, self.error = 'idle', str(error)
            self.get_logger().error(f'cannot train: {error}')
            return False

        def train() -> None:
            try:
                meta_train(config, out=self.path, progress=False, log=self.get_logger().info)
            except Exception as error:  # noqa: BLE001 - reported, the node keeps running
                self.state, self.error = 'idle', f'training failed: {error}'
                self.get_logger().error(self.error)
                return
            self._load()

        self.state = 'training'
        self.get_logger().info(f'meta-training into {self.path} with {self.config}')
        self._thread = threading.Thread(target=train, name='meta_training', daemon=True)
        self._thread.start()
        return True

    def _on_train(self, request: Trigger.Request, response: Trigger.Response
                  ) -> Trigger.Response:
        response.success = self.start_training()
        response.message = 'training started' if response.success else (
            self.error or 'training is already running')
        return response

    def _publish_diagnostics(self) -> None:
        level = DiagnosticStatus.ERROR if self.error else DiagnosticStatus.OK
        self.diagnostics.publish(diagnostic_array(
            self, level=level, name='maml_ros meta_trainer', message=self.error or self.state,
            values={'state': self.state, 'checkpoint': str(self.path)}))


def main(args: list[str] | None = None) -> None:
    spin_node(MetaTrainerNode, args, name='meta_trainer')


if __name__ == '__main__':
    main()
