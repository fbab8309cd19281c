"""Processes as a terminal runs them: Ctrl-C (SIGINT to the whole process group) and SIGTERM
stop every node cleanly (exit 0, no traceback, the adaptation worker gone with them), and a
bad parameter is refused in one line."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from maml_ros.cli.bringup import DEFAULT_CONFIG


@pytest.fixture
def environment(private_ros_domain, tmp_path):
    return dict(os.environ, ROS_LOG_DIR=str(tmp_path / 'log'))


def wait_for(path: Path, text: str, process: subprocess.Popen, timeout: float) -> str:
    """The output in ``path`` once it holds ``text`` (fails if the process ends first)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        output = path.read_text()
        if text in output:
            return output
        assert process.poll() is None, output
        time.sleep(0.2)
    raise AssertionError(f'no {text!r} within {timeout} s:\n{path.read_text()}')


def assert_clean(output: str) -> None:
    for sign in ('Traceback', 'Exception ignored', 'KeyboardInterrupt', 'pybullet build time'):
        assert sign not in output, output


def group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True


def test_ctrl_c_stops_bringup_its_nodes_and_the_adaptation_worker(environment, tmp_path):
    log = tmp_path / 'bringup.log'
    with log.open('w') as out:
        bringup = subprocess.Popen([sys.executable, '-m', 'maml_ros.cli.bringup', '--config',
                                    str(DEFAULT_CONFIG)], env=environment, stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for(log, 'support loss', bringup, 120.0)  # adapted: the worker process runs
        os.killpg(bringup.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
        assert bringup.wait(30.0) == 0
        deadline = time.monotonic() + 10.0
        while group_alive(bringup.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not group_alive(bringup.pid)  # nodes and the adaptation worker are gone
        output = log.read_text()
        assert_clean(output)
        assert 'sent the stop command' in output
    finally:
        if group_alive(bringup.pid):
            os.killpg(bringup.pid, signal.SIGKILL)


def test_sigterm_stops_a_node_cleanly_after_its_stop_command(environment, tmp_path):
    processes, logs = {}, {}
    for node in ('pybullet_sim', 'adapter'):
        logs[node] = tmp_path / f'{node}.log'
        with logs[node].open('w') as out:
            processes[node] = subprocess.Popen(
                [sys.executable, '-m', f'maml_ros.nodes.{node}', '--ros-args', '--params-file',
                 str(DEFAULT_CONFIG)], env=environment, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for(logs['adapter'], 'support loss', processes['adapter'], 120.0)  # adapted
        processes['adapter'].send_signal(signal.SIGTERM)
        assert processes['adapter'].wait(30.0) == 0
        processes['pybullet_sim'].send_signal(signal.SIGTERM)
        assert processes['pybullet_sim'].wait(30.0) == 0
        output = logs['adapter'].read_text()
        assert 'shutting down: sent the stop command' in output
        assert_clean(output + logs['pybullet_sim'].read_text())
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()


@pytest.mark.parametrize('parameter, says', [
    ('inner_lr:=1', 'write a number with a decimal point (1.0, not 1)'),
    ('support_size:=1', 'out of range'),
])
def test_a_bad_parameter_is_refused_in_one_line(environment, parameter, says):
    result = subprocess.run([sys.executable, '-m', 'maml_ros.nodes.adapter', '--ros-args',
                             '-p', parameter, '-p', 'autostart:=false'], env=environment,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    lines = (result.stdout + result.stderr).strip().splitlines()
    assert len(lines) == 1 and 'cannot start' in lines[0] and says in lines[0], lines
