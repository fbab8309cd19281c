"""The README's main command: the demo runs end to end and adaptation helps."""

import pytest

from maml_ros.cli import demo


@pytest.mark.parametrize('simulator', ['pybullet', 'mujoco'])
def test_demo_adapts_and_lowers_tracking_error(private_ros_domain, tmp_path, capsys,
                                               simulator):
    plot = tmp_path / 'demo.png'
    assert demo.main(['--simulator', simulator, '--after', '4', '--timeout', '90',
                      '--plot', str(plot)]) == 0
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if line.startswith('tracking RMSE'))
    before, after = (float(word) for word in line.split() if word.replace('.', '').isdigit())
    assert after < before
    assert 'accepted' in out and '200/200' in out and f'started {simulator}_sim' in out
    assert plot.read_bytes()[:4] == b'\x89PNG'
