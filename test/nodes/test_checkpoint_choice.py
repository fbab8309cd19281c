"""Which checkpoint runs: the one chosen (launch argument, parameter file) over the shipped
default and over meta_trainer's announcements; ``active_checkpoint`` always names it."""

import os
import shutil
import time
from pathlib import Path

import rclpy
from rclpy.parameter import Parameter
from std_msgs.msg import String

from maml_ros.nodes.adapter import AdapterNode
from maml_ros.nodes.meta_trainer import MetaTrainerNode
from maml_ros.resources import shipped_checkpoint

from helpers.ros_testing import spin_until

SHIPPED = str(shipped_checkpoint())


def active(node: AdapterNode) -> str:
    return node.get_parameter('active_checkpoint').value


def test_a_chosen_checkpoint_is_kept_when_meta_trainer_announces_another(make_harness,
                                                                         tmp_path):
    chosen = str(shutil.copy(SHIPPED, tmp_path / 'chosen.safetensors'))
    node = make_harness(checkpoint=chosen).node
    policy = node.loop.policy
    assert active(node) == node.choice.running == chosen
    node._on_checkpoint(String(data=SHIPPED))  # the shipped one, announced
    assert node.loop.policy is policy and active(node) == chosen
    assert node.get_parameter('checkpoint').value == chosen
    # The chosen file rewritten (retrained into the same path) is taken up.
    stat = os.stat(chosen)
    os.utime(chosen, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    node._on_checkpoint(String(data=str(Path(chosen))))
    assert node.loop.policy is not policy and active(node) == chosen
    # The same announcement again changes nothing.
    policy = node.loop.policy
    node._on_checkpoint(String(data=chosen))
    assert node.loop.policy is policy


def test_without_a_choice_the_adapter_follows_meta_trainer(make_harness, tmp_path):
    node = make_harness().node
    assert active(node) == SHIPPED
    retrained = str(shutil.copy(SHIPPED, tmp_path / 'retrained.safetensors'))
    node._on_checkpoint(String(data=retrained))
    assert active(node) == node.choice.running == retrained
    assert node.get_parameter('checkpoint').value == ''  # nothing was chosen


def test_active_checkpoint_is_read_only_for_everyone_but_the_adapter(make_harness):
    node = make_harness().node
    result = node.set_parameters([Parameter('active_checkpoint', value='/tmp/other')])[0]
    assert not result.successful
    assert result.reason == ('active_checkpoint is read-only: it names the checkpoint that runs '
                             '(choose one with the checkpoint parameter)')
    assert active(node) == SHIPPED
    assert node.problems.counts['parameter'] == 1


def test_the_parameter_file_choice_survives_meta_trainer_with_the_same_file(ros_context,
                                                                            executor, tmp_path):
    """As under maml-ros-bringup (or ros2 launch) with adapter.checkpoint in the YAML:
    meta_trainer reads the same file, has no checkpoint there, announces the shipped one."""
    chosen = shutil.copy(SHIPPED, tmp_path / 'chosen.safetensors')
    config = tmp_path / 'robot.yaml'
    config.write_text(f'meta_trainer:\n  ros__parameters:\n    mode: load\n'
                      f'adapter:\n  ros__parameters:\n    checkpoint: {chosen}\n'
                      f'    adaptation_process: false\n')
    arguments = ['--ros-args', '--params-file', str(config)]
    adapter = AdapterNode(context=ros_context, cli_args=arguments)
    trainer = MetaTrainerNode(context=ros_context, cli_args=arguments)
    announced = []
    probe = rclpy.create_node('probe', context=ros_context)
    probe.create_subscription(String, 'meta_trainer/checkpoint', announced.append,
                              trainer.publisher.qos_profile)
    try:
        for node in (adapter, trainer, probe):
            executor.add_node(node)
        assert spin_until(executor, lambda: announced)
        assert announced[0].data == SHIPPED
        assert spin_until(executor, lambda: SHIPPED in adapter._ignored_announcements)
        assert active(adapter) == adapter.choice.running == str(chosen)
    finally:
        for node in (adapter, trainer, probe):
            node.destroy_node()


def test_the_log_says_why_an_announced_checkpoint_runs_or_not(make_harness, tmp_path, capfd):
    chosen = str(shutil.copy(SHIPPED, tmp_path / 'chosen.safetensors'))
    retrained = str(shutil.copy(SHIPPED, tmp_path / 'retrained.safetensors'))
    keeping, following = make_harness(checkpoint=chosen).node, make_harness().node
    capfd.readouterr()
    for _ in range(2):  # said once
        keeping._on_checkpoint(String(data=retrained))
    following._on_checkpoint(String(data=retrained))
    time.sleep(0.05)  # let the lines reach stderr
    log = capfd.readouterr().err
    assert log.count(f'meta_trainer announced {retrained}; keeping the chosen checkpoint '
                     f'{chosen} (leave the checkpoint parameter empty to follow '
                     'meta_trainer)') == 1
    assert f'switched to the checkpoint {retrained} (announced by meta_trainer)' in log
