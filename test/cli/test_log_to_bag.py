"""maml-ros-log-to-bag, then maml-ros-replay on its bag: a plain log of a Panda (torques
from its URDF) adapted on and judged as a recorded robot's bag is."""

import json
from pathlib import Path

import numpy as np

from maml_ros.cli import log_to_bag, replay
from maml_ros.resources import shipped_checkpoint
from maml_ros.sim import PANDA_HOME, InverseDynamicsModel, RobotConfig


def test_a_plain_log_becomes_a_bag_that_replays(tmp_path, capsys):
    t = np.arange(0, 6.0, 0.001)
    phase = np.arange(7)[None, :]
    q = np.array(PANDA_HOME)[None, :] + 0.3 * np.sin(0.8 * t[:, None] + phase)
    qd = 0.24 * np.cos(0.8 * t[:, None] + phase)
    qdd = -0.192 * np.sin(0.8 * t[:, None] + phase)
    urdf = InverseDynamicsModel.shared(RobotConfig())
    effort = np.array([urdf.torques(*row) for row in zip(q, qd, qdd, strict=True)])
    np.savez(tmp_path / 'log.npz', time=t, position=q, velocity=qd, effort=effort)
    bag = tmp_path / 'bag'
    assert log_to_bag.main([str(tmp_path / 'log.npz'), str(bag)]) == 0
    assert '6000 samples over 6.00 s (0 repeated rows dropped) -> 599 ticks at 100 Hz' in \
        capsys.readouterr().out
    report = tmp_path / 'replay.json'
    assert replay.main([str(bag), '--support-size', '200', '--json', str(report)]) in (0, 1)
    figures = json.loads(report.read_text())
    assert (figures['support'], figures['chain_breaks'], figures['dropped']) == (200, 0, {})
    assert figures['held_out'] == 598 - 200
    rms = {label: value['all'] for label, value in figures['held_out_rms'].items()}
    assert set(rms) == {'unadapted', 'adapted', 'sysid'} and all(np.isfinite(list(rms.values())))
    assert figures['checkpoint'] == str(shipped_checkpoint())


def test_an_unusable_log_is_refused_in_one_line(tmp_path, capsys):
    (tmp_path / 'log.csv').write_text('time,position_1\n0,0\n')
    assert log_to_bag.main([str(tmp_path / 'log.csv'), str(tmp_path / 'bag')]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith('maml-ros-log-to-bag: ') and 'needs the columns' in error
    assert '\n' not in error and not (tmp_path / 'bag').exists()


def test_the_shipped_real_log_converts_and_replays(tmp_path, capsys):
    """The real Panda's log (bench/data/panda_gaz2019): every sample read, the repeated rows
    dropped, a chain of transitions without a break, and a replay that judges all three
    models on the transitions after the support."""
    log = Path(__file__).resolve().parents[2] / 'bench/data/panda_gaz2019/exciting_traj.csv.gz'
    assert log_to_bag.main([str(log), str(tmp_path / 'bag')]) == 0
    assert '20544 samples over 21.00 s (1131 repeated rows dropped) -> 2099 ticks at 100 Hz' \
        in capsys.readouterr().out
    report = tmp_path / 'replay.json'
    assert replay.main([str(tmp_path / 'bag'), '--json', str(report)]) in (0, 1)
    figures = json.loads(report.read_text())
    assert (figures['transitions'], figures['chain_breaks'], figures['dropped']) == (2098, 0, {})
    assert (figures['support'], figures['held_out']) == (200, 1898)
    assert all(np.isfinite(value['all']) for value in figures['held_out_rms'].values())
    # judged by the never-worse rule on held-out support transitions
    assert len(figures['held_out_rms_before']) == len(figures['held_out_rms_after']) == 7
    assert set(figures['kept_joints']) <= set(range(1, 8))
