"""Pictures: joint tracking before and after adapting on one robot, meta-training curves."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from maml_ros.evaluation.tracking import EvalSettings, run_loop  # noqa: E402
from maml_ros.model.trained_models import TrainedModels  # noqa: E402
from maml_ros.online.adaptive_policy import AdaptivePolicy  # noqa: E402
from maml_ros.sim import Dynamics, make_robot  # noqa: E402


def plot_tracking(path: Path, models: TrainedModels, dynamics: Dynamics, *,
                  settings: EvalSettings, seed: int) -> None:
    """Reference vs. the meta-policy without and with MAML adaptation (the scored part of the
    evaluation's run), and the error norm."""
    with make_robot(settings.engine, config=models.formulation.robot) as robot:
        runs = {label: run_loop(AdaptivePolicy(models=models, method=method, worker='inline',
                                               initial_state=models.meta_policy.state_dict()),
                                dynamics, seed=seed, settings=settings, robot=robot)
                for label, method in (('before', None), ('after', 'maml'))}
    first = settings.scored_from
    names = models.formulation.robot.joints
    reference = runs['before'].reference_positions[first:]
    time = np.arange(len(reference)) * models.formulation.robot.control_period
    n = len(names)
    shown = [1, 3] if n > 3 else list(range(min(n, 2)))
    figure, axes = plt.subplots(len(shown) + 1, 1, figsize=(10, 2.6 * (len(shown) + 1)),
                                sharex=True)
    for axis, joint in zip(axes, shown, strict=False):
        axis.plot(time, reference[:, joint], 'k', label='reference')
        for label, style in (('before', ':'), ('after', '--')):
            axis.plot(time, runs[label].true_positions[first:, joint], style,
                      label=f'{label} adapting')
        axis.set_ylabel(f'{names[joint]} (rad)')
        axis.legend(loc='upper right')
    for label, run in runs.items():
        error = np.linalg.norm(run.true_positions[first:] - run.reference_positions[first:],
                               axis=1)
        axes[-1].plot(time, error, label=f'{label} adapting (RMSE {run.rmse(first):.4f})')
    axes[-1].set_ylabel('|tracking error| (rad)')
    axes[-1].set_xlabel('time after adapting (s)')
    axes[-1].legend(loc='upper right')
    figure.suptitle(f'MAML adaptation with {settings.support_size} support transitions, '
                    f'{settings.inner_steps} steps')
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def plot_learning_curves(path: Path, rows: list[dict]) -> None:
    """Meta-training's validation rows: query loss before/after adapting, and closed-loop
    tracking after adapting, against meta-steps."""
    figure, (losses, tracking) = plt.subplots(1, 2, figsize=(11, 4))
    iterations = [row['iteration'] for row in rows]
    losses.plot(iterations, [row['query_loss_before'] for row in rows], label='before adapting')
    losses.plot(iterations, [row['query_loss_after'] for row in rows], label='after adapting')
    losses.set_xlabel('meta-step')
    losses.set_ylabel('validation query loss (scaled MSE)')
    losses.set_yscale('log')
    losses.legend()
    tracking.plot(iterations, [row['tracking_rmse'] for row in rows], 'o-')
    tracking.set_xlabel('meta-step')
    tracking.set_ylabel('closed-loop tracking RMSE after adapting (rad)')
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def plot_replay(path: Path, replay, *, joints: list[str], control_period: float) -> None:
    """The held-out commands sent and those the unadapted model, the adapted one and
    ``sysid`` predict, per joint (:class:`~maml_ros.evaluation.replay.Replay`)."""
    held_out = replay.held_out.commands
    time = np.arange(len(held_out)) * control_period
    figure, axes = plt.subplots(len(joints), 1, figsize=(10, 1.9 * len(joints)), sharex=True,
                                squeeze=False)
    rms = replay.held_out_rms()
    for joint, (axis,) in enumerate(axes):
        axis.plot(time, held_out[:, joint], 'k', lw=1.5, label='sent')
        for label, style in (('unadapted', ':'), ('sysid', '-.'), ('adapted', '--')):
            prediction = replay.predictions[label]
            axis.plot(time[prediction.rows], prediction.commands[:, joint], style, lw=1,
                      label=f'{label} ({rms[label]["per_joint"][joint]:.3g} RMS)')
        axis.set_ylabel(joints[joint], fontsize=8)
        axis.legend(loc='upper right', fontsize=7, ncol=4)
    axes[-1][0].set_xlabel('held-out time (s, the transitions after the support, gaps left out)')
    figure.suptitle('commands predicted for the held-out transitions vs. sent')
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
