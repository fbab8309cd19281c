"""meta_trainer loads (or trains) the checkpoint and hands it to the adapter."""

import re
import shutil
import threading
import time
from pathlib import Path

import pytest
import rclpy
from diagnostic_msgs.msg import DiagnosticStatus
from rclpy.parameter import Parameter
from std_msgs.msg import String
from std_srvs.srv import Trigger

from maml_ros.nodes import meta_trainer
from maml_ros.nodes.adapter import AdapterNode
from maml_ros.nodes.meta_trainer import MetaTrainerNode
from maml_ros.resources import default_config, shipped_checkpoint
from maml_ros.ros.qos import CHECKPOINT_QOS
from maml_ros.ros.spin import StartupError

from helpers.ros_testing import diagnostics, refusal, spin_for, spin_until

SHIPPED = Path(__file__).resolve().parents[2] / 'checkpoints' / 'panda_effort.safetensors'


def test_checkpoint_hand_over_from_meta_trainer_to_adapter(ros_context, executor, tmp_path):
    copy = shutil.copy(SHIPPED, tmp_path / 'retrained.safetensors')
    adapter = AdapterNode(context=ros_context)
    assert adapter.choice.running.endswith('panda_effort.safetensors')
    trainer = MetaTrainerNode(context=ros_context, parameter_overrides=[
        Parameter('mode', value='load'), Parameter('checkpoint', value=str(copy))])
    late: list[String] = []
    probe = rclpy.create_node('probe', context=ros_context)
    probe.create_subscription(String, 'meta_trainer/checkpoint', late.append, CHECKPOINT_QOS)
    try:
        for node in (adapter, trainer, probe):
            executor.add_node(node)
        assert spin_until(executor, lambda: adapter.choice.running == str(copy))
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


class FakeTraining:
    """``meta_train`` replaced: records what it was given, waits for ``release``, then writes
    a copy of the shipped checkpoint, or raises ``error``."""

    def __init__(self, error: Exception | None = None) -> None:
        self.calls: list[tuple] = []
        self.release = threading.Event()
        self.error = error

    def __call__(self, config, *, out, progress, log) -> None:
        self.calls.append((config, Path(out), progress))
        assert self.release.wait(30.0)
        if self.error is not None:
            raise self.error
        shutil.copy(SHIPPED, out)

    def called(self) -> list[tuple]:
        """The calls, once the training thread has made one."""
        deadline = time.monotonic() + 10.0
        while not self.calls and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.calls


@pytest.fixture
def fake_training(monkeypatch) -> FakeTraining:
    fake = FakeTraining()
    monkeypatch.setattr(meta_trainer, 'meta_train', fake)
    return fake


def _call_train(executor, probe) -> Trigger.Response:
    client = probe.create_client(Trigger, 'meta_trainer/train')
    assert client.wait_for_service(timeout_sec=5.0)
    future = client.call_async(Trigger.Request())
    assert spin_until(executor, future.done)
    return future.result()


def test_training_gets_the_node_parameters_and_publishes_what_it_wrote(
        ros_context, executor, tmp_path, fake_training, capfd):
    out = tmp_path / 'trained.safetensors'
    trainer = MetaTrainerNode(context=ros_context, parameter_overrides=[
        Parameter('mode', value='train'), Parameter('checkpoint', value=str(out)),
        Parameter('workers', value=3), Parameter('device', value='cuda:1'),
        Parameter('ray_address', value='auto'), Parameter('force', value=True)])
    probe = rclpy.create_node('probe', context=ros_context)
    announced: list[String] = []
    probe.create_subscription(String, 'meta_trainer/checkpoint', announced.append, CHECKPOINT_QOS)
    try:
        for node in (trainer, probe):
            executor.add_node(node)
        assert trainer.state == 'training' and trainer.config == default_config()
        # A daemon thread: stopping the program does not wait for the training to end.
        assert (trainer._thread.name, trainer._thread.daemon) == ('meta_training', True)
        assert f'[meta_trainer]: meta-training into {out} with {default_config()}' in \
            capfd.readouterr().err
        answer = _call_train(executor, probe)  # while training
        assert (answer.success, answer.message) == (False, 'training is already running')
        status = diagnostics(executor, probe, 'meta_trainer')[0]
        assert (status.name, status.level, status.message) == (
            'maml_ros meta_trainer', DiagnosticStatus.OK, 'training')
        assert {kv.key: kv.value for kv in status.values} == {'state': 'training',
                                                              'checkpoint': str(out)}
        ((config, written, progress),) = fake_training.called()
        assert (config.workers, config.device, config.ray_address) == (3, 'cuda:1', 'auto')
        assert (written, progress) == (out, False)
        fake_training.release.set()
        assert spin_until(executor, lambda: announced)
        assert announced[0].data == str(out) and trainer.state == 'ready'
        trainer._thread.join(5.0)  # it logs after publishing
        assert f'[meta_trainer]: checkpoint ready: {out}' in capfd.readouterr().err
        status = diagnostics(executor, probe, 'meta_trainer')[0]
        assert (status.level, status.message) == (DiagnosticStatus.OK, 'ready')
    finally:
        fake_training.release.set()
        for node in (trainer, probe):
            node.destroy_node()


def test_force_trains_a_robot_that_fails_the_check_with_the_file_settings(
        ros_context, tmp_path, fake_training):
    """``force``: the robot check is skipped; ``workers: 0`` and an empty ``ray_address`` leave
    the file's settings (one worker per CPU, local processes)."""
    config = tmp_path / 'placeholder_inertia.yaml'
    config.write_text('/**:\n  ros__parameters:\n    inertia: urdf\n')
    trainer = MetaTrainerNode(context=ros_context, parameter_overrides=[
        Parameter('mode', value='train'), Parameter('checkpoint', value=str(tmp_path / 'c')),
        Parameter('config', value=str(config)), Parameter('force', value=True)])
    try:
        assert trainer.state == 'training' and trainer.error == ''
        ((settings, _, _),) = fake_training.called()
        assert (settings.workers, settings.ray_address, settings.device) == (None, '', 'cpu')
    finally:
        fake_training.release.set()
        trainer._thread.join(10.0)
        trainer.destroy_node()


def test_a_failed_training_or_missing_settings_file_is_an_error_in_the_diagnostics_and_the_answer(
        ros_context, executor, tmp_path, fake_training, capfd):
    fake_training.error = RuntimeError('CUDA out of memory')
    out = tmp_path / 'never.safetensors'
    trainer = MetaTrainerNode(context=ros_context, parameter_overrides=[
        Parameter('mode', value='train'), Parameter('checkpoint', value=str(out)),
        Parameter('force', value=True)])
    probe = rclpy.create_node('probe', context=ros_context)
    try:
        for node in (trainer, probe):
            executor.add_node(node)
        fake_training.release.set()
        assert spin_until(executor, lambda: trainer.state == 'idle')
        assert trainer.error == 'training failed: CUDA out of memory' and not out.exists()
        assert '[meta_trainer]: training failed: CUDA out of memory' in capfd.readouterr().err
        status = diagnostics(executor, probe, 'meta_trainer')[0]
        assert (status.level, status.message) == (DiagnosticStatus.ERROR, trainer.error)
        # ~/train again, with a settings file that has gone: refused with the reason.
        trainer.config = tmp_path / 'missing.yaml'
        answer = _call_train(executor, probe)
        assert not answer.success and answer.message == trainer.error
        assert 'missing.yaml' in trainer.error and len(fake_training.calls) == 1
        assert f'[meta_trainer]: cannot train: {trainer.error}' in capfd.readouterr().err
    finally:
        for node in (trainer, probe):
            node.destroy_node()


def test_a_bad_checkpoint_is_an_error_in_the_diagnostics_and_the_log(ros_context, executor,
                                                                     tmp_path, capfd):
    bad = tmp_path / 'bad.safetensors'
    bad.write_bytes(b'\x00' * 100)
    trainer = MetaTrainerNode(context=ros_context, parameter_overrides=[
        Parameter('mode', value='load'), Parameter('checkpoint', value=str(bad))])
    probe = rclpy.create_node('probe', context=ros_context)
    try:
        assert f'[meta_trainer]: cannot load the checkpoint: {trainer.error}' in \
            capfd.readouterr().err
        for node in (trainer, probe):
            executor.add_node(node)
        status = diagnostics(executor, probe, 'meta_trainer')[0]
        assert (status.level, status.message) == (DiagnosticStatus.ERROR, trainer.error)
        assert {kv.key: kv.value for kv in status.values}['state'] == 'idle'
    finally:
        for node in (trainer, probe):
            node.destroy_node()


def test_empty_checkpoint_loads_the_shipped_one_and_an_unknown_mode_is_refused(ros_context):
    trainer = MetaTrainerNode(context=ros_context, parameter_overrides=[
        Parameter('mode', value='load')])
    try:
        assert trainer.path == shipped_checkpoint() and trainer.state == 'ready'
        timers = [(timer.timer_period_ns, timer.callback) for timer in trainer.timers]
        assert (1_000_000_000, trainer._publish_diagnostics) in timers  # at 1 Hz
    finally:
        trainer.destroy_node()
    with pytest.raises(StartupError, match=re.escape(
            "parameter mode: 'often' is not one of ['auto', 'train', 'load']")):
        MetaTrainerNode(context=ros_context, parameter_overrides=[
            Parameter('mode', value='often')])


def test_the_program_refuses_an_unknown_mode_in_one_line(restore_handlers, capfd):
    """``ros2 run maml_ros meta_trainer --ros-args -p mode:=often``: exit status 1, one line."""
    line = refusal(meta_trainer.main, ['--ros-args', '-p', 'mode:=often'], capfd)
    assert line.endswith("[meta_trainer]: cannot start: parameter mode: 'often' is not one of "
                         "['auto', 'train', 'load']")


@pytest.mark.parametrize('reference, refused', [
    ('', True), ('    reference: {velocity_fraction: 0.1, max_amplitude: 0.1}\n', False)])
def test_the_robot_check_judges_the_files_ranges_and_references(ros_context, tmp_path,
                                                               fake_training, reference,
                                                               refused):
    """Payloads up to 7 kg: the default references ask 100% of panda_joint6's effort limit
    (refused), slow ones 76% (trained)."""
    config = tmp_path / 'heavy.yaml'
    config.write_text('meta_trainer:\n  ros__parameters:\n'
                      '    randomization: {payload_mass: [0.0, 7.0]}\n' + reference)
    trainer = MetaTrainerNode(context=ros_context, parameter_overrides=[
        Parameter('mode', value='train'), Parameter('checkpoint', value=str(tmp_path / 'c')),
        Parameter('config', value=str(config))])
    try:
        assert trainer.state == ('idle' if refused else 'training')
        assert ('FAIL references' in trainer.error) == refused
        assert len(fake_training.calls if refused else fake_training.called()) == (not refused)
    finally:
        fake_training.release.set()
        if trainer._thread is not None:
            trainer._thread.join(10.0)
        trainer.destroy_node()
