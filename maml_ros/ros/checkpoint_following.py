"""Which checkpoint the adapter runs, as ROS sees it: ``active_checkpoint`` and announcements.

:class:`FollowsCheckpoints` is a mixin of the adapter node: ``active_checkpoint`` (read-only
to everyone else) names the checkpoint that runs (:meth:`_running`), and a checkpoint that
``meta_trainer`` announces on ``meta_trainer/checkpoint`` is loaded, checked and swapped in
by the rule of :class:`~maml_ros.online.policy_choice.CheckpointChoice`
(:meth:`_on_checkpoint`). It uses the node's ``choice``, ``loop``, ``problems`` and, to load
a checkpoint (:meth:`_load_policy`), ``joints``, ``interface``, ``adaptation``, ``worker``
and ``period``; the node registers :meth:`_refuse_active_checkpoint` as an
on-set-parameters callback.
"""

from __future__ import annotations

from rcl_interfaces.msg import SetParametersResult
from rclpy.parameter import Parameter
from std_msgs.msg import String

from maml_ros.maml.checkpoint import CheckpointError
from maml_ros.online.policy_choice import Announcement, load_policy


class FollowsCheckpoints:
    """``active_checkpoint`` and ``meta_trainer``'s announcements; see the module docstring."""

    _setting_active_checkpoint = False
    _ignored_announcements: frozenset[str] = frozenset()  # logged once each

    def _load_policy(self, path: str):
        """The checkpoint at ``path``, loaded, checked and warmed up for this node."""
        return load_policy(path, joints=self.joints, command_interface=self.interface,
                           adaptation=self.adaptation, worker=self.worker, period=self.period,
                           warn=self.get_logger().warn)

    def _running(self, path: str) -> None:
        """``path`` is the checkpoint that runs: ``active_checkpoint`` says so."""
        self.choice.now_running(path)
        self._setting_active_checkpoint = True
        try:
            self.set_parameters([Parameter('active_checkpoint', value=path)])
        finally:
            self._setting_active_checkpoint = False

    def _refuse_active_checkpoint(self, parameters) -> SetParametersResult:
        if self._setting_active_checkpoint or all(p.name != 'active_checkpoint'
                                                  for p in parameters):
            return SetParametersResult(successful=True)
        return SetParametersResult(successful=False, reason=(
            'active_checkpoint is read-only: it names the checkpoint that runs (choose one with '
            'the checkpoint parameter)'))

    def _on_checkpoint(self, msg: String) -> None:
        """A checkpoint announced by meta_trainer: run it unless another one was chosen
        (:class:`CheckpointChoice`); validated first."""
        path, verdict = msg.data, self.choice.announced(msg.data)
        if verdict is Announcement.KEEP_CHOSEN and path not in self._ignored_announcements:
            self._ignored_announcements |= {path}
            self.get_logger().info(
                f'meta_trainer announced {path}; keeping the chosen checkpoint '
                f'{self.choice.chosen} (leave the checkpoint parameter empty to follow '
                'meta_trainer)')
        if verdict is not Announcement.RUN:
            return
        try:
            policy = self._load_policy(path)
        except (CheckpointError, ValueError) as error:
            self.problems.report('checkpoint', f'ignoring {path}: {error}')
            return
        self.loop.switch_policy(policy)
        self._running(path)
        self.get_logger().info(f'switched to the checkpoint {path} (announced by meta_trainer)')
