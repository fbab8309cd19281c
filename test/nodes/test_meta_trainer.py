"""meta_trainer loads (or trains) the checkpoint and hands it to the adapter."""

import shutil
from pathlib import Path

import rclpy
from rclpy.parameter import Parameter
from ros_testing import spin_for, spin_until
from std_msgs.msg import String
from std_srvs.srv import Trigger

from maml_ros.nodes.adapter import AdapterNode
from maml_ros.nodes.meta_trainer import MetaTrainerNode
from maml_ros.ros.qos import CHECKPOINT_QOS

SHIPPED = Path(__file__).resolve().parents[2] / 'checkpoints' / 'panda_effort.safetensors'


def test_checkpoint_hand_over_from_meta_trainer_to_adapter(ros_context, executor, tmp_path):
    copy = shutil.copy(SHIPPED, tmp_path / 'retrained.safetensors')
    adapter = AdapterNode(context=ros_context)
    assert adapter.checkpoint_path.endswith('panda_effort.safetensors')
    trainer = MetaTrainerNode(context=ros_context, parameter_overrides=[
        Parameter('mode', value='load'), Parameter('checkpoint', value=str(copy))])
    late: list[String] = []
    probe = rclpy.create_node('probe', context=ros_context)
    probe.create_subscription(String, 'meta_trainer/checkpoint', late.append, CHECKPOINT_QOS)
    try:
        for node in (adapter, trainer, probe):
            executor.add_node(node)
        assert spin_until(executor, lambda: adapter.checkpoint_path == str(copy))
        assert spin_until(executor, lambda: late and late[0].data == str(copy))  # late joiner
        assert trainer.state == 'ready'
    finally:
        for node in (adapter, trainer, probe):
            node.destroy_node()


def test_bad_checkpoint_in_load_mode_is_reported_not_published(ros_context, executor,
                                                                tmp_path):
    bad = tmp_path / 'bad.safetensors'
    bad.write_bytes(b'\x00' * 100)
    announced: list[String] = []
    probe = rclpy.create_node('probe', context=ros_context)
    probe.create_subscription(String, 'meta_trainer/checkpoint', announced.append, CHECKPOINT_QOS)
    trainer = MetaTrainerNode(context=ros_context, parameter_overrides=[
        Parameter('mode', value='load'), Parameter('checkpoint', value=str(bad))])
    try:
        assert trainer.state == 'idle' and 'truncated or corrupt' in trainer.error
        for node in (trainer, probe):
            executor.add_node(node)
        spin_for(executor, 1.0)  # a late joiner would get it (transient-local): nothing
        assert announced == []
    finally:
        for node in (trainer, probe):
            node.destroy_node()


def test_auto_mode_loads_an_existing_checkpoint_and_does_not_retrain_it(ros_context, tmp_path):
    existing = Path(shutil.copy(SHIPPED, tmp_path / 'existing.safetensors'))
    before = existing.read_bytes(), existing.stat().st_mtime_ns
    trainer = MetaTrainerNode(context=ros_context, parameter_overrides=[
        Parameter('mode', value='auto'), Parameter('checkpoint', value=str(existing))])
    try:
        assert trainer.state == 'ready' and trainer._thread is None
        assert (existing.read_bytes(), existing.stat().st_mtime_ns) == before
    finally:
        trainer.destroy_node()


def test_auto_mode_trains_when_the_checkpoint_is_missing(ros_context, executor, tmp_path):
    config = tmp_path / 'tiny.yaml'
    config.write_text(
        'meta_trainer:\n  ros__parameters:\n    training:\n'
        '      {tasks: 16, steps_per_task: 300, support_size: 100, query_size: 100,\n'
        '       meta_iterations: 4, meta_batch: 4, pretrain_iterations: 20, refresh_tasks: 4,\n'
        '       validation_tasks: 4, closed_loop_tasks: 1, validation_every: 2}\n'
        '    policy: {hidden: [32, 32]}\n'
        '    physics: {physics_iterations: 10, physics_features: 2, physics_hidden: [8]}\n')
    out = tmp_path / 'new.safetensors'
    trainer = MetaTrainerNode(context=ros_context, parameter_overrides=[
        Parameter('checkpoint', value=str(out)), Parameter('config', value=str(config)),
        Parameter('workers', value=2)])
    probe = rclpy.create_node('probe', context=ros_context)
    try:
        assert trainer.state == 'training'
        executor.add_node(trainer)
        assert spin_until(executor, lambda: trainer.state == 'ready', timeout=120.0), \
            trainer.error
        assert out.is_file()
        first = out.stat().st_mtime_ns
        executor.add_node(probe)
        client = probe.create_client(Trigger, 'meta_trainer/train')
        assert client.wait_for_service(timeout_sec=5.0)
        future = client.call_async(Trigger.Request())
        assert spin_until(executor, future.done)
        assert future.result().success and future.result().message == 'training started'
        assert spin_until(executor, lambda: trainer.state == 'ready', timeout=120.0)
        assert out.stat().st_mtime_ns > first
    finally:
        for node in (trainer, probe):
            node.destroy_node()


def test_training_refuses_a_robot_that_fails_the_robot_check(ros_context, tmp_path):
    """The same check as maml-ros-check-robot, before any rollout: the reason is in the
    diagnostics and the checkpoint is not written."""
    config = tmp_path / 'placeholder_inertia.yaml'
    config.write_text('/**:\n  ros__parameters:\n    inertia: urdf\n')
    out = tmp_path / 'never.safetensors'
    trainer = MetaTrainerNode(context=ros_context, parameter_overrides=[
        Parameter('mode', value='train'), Parameter('checkpoint', value=str(out)),
        Parameter('config', value=str(config))])
    try:
        assert trainer.state == 'idle' and trainer._thread is None
        assert 'FAIL inertia' in trainer.error and 'placeholders' in trainer.error
        assert not out.exists()
    finally:
        trainer.destroy_node()


def test_a_ray_address_that_does_not_answer_is_reported(ros_context, executor, tmp_path):
    """``ray_address`` reaches the training: nothing listens there, so training fails at
    once with the reason in the diagnostics, and nothing is written."""
    out = tmp_path / 'never.safetensors'
    trainer = MetaTrainerNode(context=ros_context, parameter_overrides=[
        Parameter('mode', value='train'), Parameter('checkpoint', value=str(out)),
        Parameter('ray_address', value='127.0.0.2:1')])
    try:
        executor.add_node(trainer)
        assert spin_until(executor, lambda: trainer.state == 'idle', timeout=60.0)
        assert 'training failed' in trainer.error and 'nothing answers' in trainer.error
        assert not out.exists()
    finally:
        trainer.destroy_node()
