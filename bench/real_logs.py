"""Real robots' logs: held-out torque prediction, unadapted and adapted, against the rivals.

Each shipped log (``bench/data/``) is written as the bag a ros2_control robot records
(``maml-ros-log-to-bag``) and read back by the adapter's own rules, as
``maml-ros-replay`` does. For every support size and start time, the model adapts on that
window exactly as the adapter would (``maml_ros.evaluation.replay``), and five models
predict the torques of every transition after the window: the URDF's computed torque,
the checkpoint's model unadapted (the prior), the adapted one, and the two classical
rivals fitted on the same window: ``sysid``, the identification an engineer writes (every
link's inertial parameters, per-joint friction, delay and lag, a ridge toward the URDF;
``maml_ros.model.inertial_identification``) and ``sysid_simple`` (a scale per joint on the
URDF's torque). The figure is the RMS error over all joints and held-out transitions
(N·m). Every fit is judged as on the robot (``maml_ros.model.held_out``): the joints it
predicts worse on held-out support transitions keep the unadapted model (``kept``).

    python bench/real_logs.py [--sizes 100 200 500 1000] [--starts 0 8]
        [--json bench/results/real_logs.json] [--plot bench/results/real_logs.png]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import matplotlib
import numpy as np

from maml_ros.evaluation.replay import predict, replay
from maml_ros.model.model_based import JointModel, sysid_policy
from maml_ros.model.trained_models import TrainedModels
from maml_ros.resources import shipped_checkpoint
from maml_ros.ros.bag import read_ticks
from maml_ros.ros.log_bag import PlainLog, write_log_bag

from bench_common import save_figure, write_json

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402

DATA = Path(__file__).resolve().parent / 'data'
#: The logs, with the checkpoint that models their robot.
LOGS = {'panda_gaz2019': (DATA / 'panda_gaz2019' / 'exciting_traj.csv.gz', None)}
MODELS = ('urdf', 'unadapted', 'adapted', 'sysid', 'sysid_simple')


def log_transitions(log: Path, models: TrainedModels):
    """The log's transitions as the adapter pairs them, their stamps, and the first tick's."""
    robot = models.formulation.robot
    with tempfile.TemporaryDirectory() as folder:
        write_log_bag(PlainLog.load(log), Path(folder) / 'bag', joints=list(robot.joints),
                      period=robot.control_period)
        ticks = read_ticks(Path(folder) / 'bag', joints=list(robot.joints),
                           command_topic='/effort_controller/commands')
    transitions, stamps, _ = ticks.transitions(control_period=robot.control_period)
    return transitions, stamps, float(ticks.stamps[0])


def judge(models: TrainedModels, transitions, stamps, origin: float, *, size: int,
          start: float) -> dict:
    """The four models' held-out RMS (all joints and per joint), and the adaptation's
    outcome, for one support window."""
    result = replay(transitions, stamps, models, method='maml_physics', support_size=size,
                    start=start, origin=origin)
    held_out = result.held_out
    urdf = predict(models, JointModel.nominal(models.formulation.n_joints, 0), held_out)
    simple = sysid_policy(models, simple=True)
    simple.start(result.support, inner_steps=1)
    predictions = {'urdf': urdf, **result.predictions,
                   'sysid_simple': predict(models, simple.model, held_out)}
    figures = {}
    for label, prediction in predictions.items():
        rms = prediction.rms(held_out)
        figures[label] = {'all': float(np.sqrt(np.mean(rms ** 2))), 'per_joint': rms.tolist()}
    outcome = result.outcome
    return {'support': size, 'start': start, 'held_out': len(held_out), 'rms': figures,
            'accepted': outcome.accepted, 'support_loss': [outcome.loss_before,
                                                           outcome.loss_after],
            'judged_within_support': outcome.judged(),
            'identified': result.identified}


def plot(path: Path, runs: list[dict], title: str) -> None:
    starts = sorted({run['start'] for run in runs})
    figure, axes = plt.subplots(1, len(starts), figsize=(5 * len(starts), 4), squeeze=False,
                                sharey=True)
    for axis, start in zip(axes[0], starts, strict=True):
        chosen = [run for run in runs if run['start'] == start]
        sizes = [run['support'] for run in chosen]
        for offset, label in enumerate(MODELS):
            axis.bar(np.arange(len(sizes)) + 0.16 * (offset - 2), [run['rms'][label]['all']
                                                                   for run in chosen],
                     width=0.16, label=label)
        axis.set_xticks(np.arange(len(sizes)), [f'{n}\n({n / 100:g} s)' for n in sizes])
        axis.set_xlabel(f'support transitions, from {start:g} s')
        axis.set_title(title)
    axes[0][0].set_ylabel('held-out torque error, RMS (N·m)')
    axes[0][0].legend()
    save_figure(figure, path, dpi=120)


def main(args: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--sizes', type=int, nargs='+', default=[100, 200, 500, 1000])
    parser.add_argument('--starts', type=float, nargs='+', default=[0.0, 8.0])
    parser.add_argument('--json', type=Path, default=Path('bench/results/real_logs.json'))
    parser.add_argument('--plot', type=Path, default=Path('bench/results/real_logs.png'))
    options = parser.parse_args(args)
    report = {}
    for name, (log, checkpoint) in LOGS.items():
        models = TrainedModels.load(checkpoint or shipped_checkpoint())
        transitions, stamps, origin = log_transitions(log, models)
        print(f'{name}: {len(transitions)} transitions at '
              f'{1 / models.formulation.robot.control_period:g} Hz; held-out torque error, '
              'RMS over all joints (N*m)')
        print(f'{"support":>8}{"from s":>8}{"held out":>9}' + ''.join(f'{m:>16}' for m in MODELS)
              + '  adaptation')
        runs = []
        for start in options.starts:
            for size in options.sizes:
                run = judge(models, transitions, stamps, origin, size=size, start=start)
                runs.append(run)
                before, after = run['support_loss']
                print(f'{size:>8}{start:>8g}{run["held_out"]:>9}'
                      + ''.join(f'{run["rms"][m]["all"]:>16.3f}' for m in MODELS)
                      + f'  {"accepted" if run["accepted"] else "rejected"} '
                        f'({before:.3g} -> {after:.3g}; kept '
                        f'{run["judged_within_support"].get("kept_joints", "-")})')
        report[name] = {'log': str(log.relative_to(DATA.parent.parent)),
                        'checkpoint': str(checkpoint or 'shipped'), 'runs': runs}
        plot(options.plot.with_name(f'{options.plot.stem}_{name}{options.plot.suffix}')
             if len(LOGS) > 1 else options.plot, runs, name)
    write_json(options.json, {'sizes': options.sizes, 'starts': options.starts,
                              'logs': report})


if __name__ == '__main__':
    main()
