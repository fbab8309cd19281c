"""Pictures of adaptation: joint tracking before and after, on one robot."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from maml_ros.sim import Dynamics, SimRobot  # noqa: E402
from maml_ros.training.evaluation import EvalSettings, adapted_state, track  # noqa: E402
from maml_ros.training.models import TrainedModels  # noqa: E402


def plot_tracking(path: Path, models: TrainedModels, dynamics: Dynamics, *,
                  settings: EvalSettings, seed: int) -> None:
    """Reference vs. the meta-policy before and after MAML adaptation, and the error norm."""
    with SimRobot(config=models.formulation.robot) as robot:
        before = track(models, models.meta_policy.state_dict(), dynamics, seed=seed,
                       settings=settings, robot=robot)
        state, _ = adapted_state(models, 'maml', dynamics, seed=seed, settings=settings,
                                 robot=robot)
        after = track(models, state, dynamics, seed=seed, settings=settings, robot=robot)
    n = len(before.joint_names)
    time = np.arange(before.steps) * before.control_period
    shown = [1, 3] if n > 3 else list(range(min(n, 2)))
    figure, axes = plt.subplots(len(shown) + 1, 1, figsize=(10, 2.6 * (len(shown) + 1)),
                                sharex=True)
    for axis, joint in zip(axes, shown, strict=False):
        axis.plot(time, before.goal_states[:, joint], 'k', label='reference')
        axis.plot(time, before.true_next_states[:, joint], ':', label='before adapting')
        axis.plot(time, after.true_next_states[:, joint], '--', label='after adapting')
        axis.set_ylabel(f'{before.joint_names[joint]} (rad)')
        axis.legend(loc='upper right')
    for rollout, label in [(before, 'before'), (after, 'after')]:
        error = np.linalg.norm(rollout.true_next_states[:, :n] - rollout.goal_states[:, :n],
                               axis=1)
        axes[-1].plot(time, error, label=f'{label} adapting (RMSE {rollout.tracking_rmse:.4f})')
    axes[-1].set_ylabel('|tracking error| (rad)')
    axes[-1].set_xlabel('time (s)')
    axes[-1].legend(loc='upper right')
    figure.suptitle(f'MAML adaptation with {settings.support_size} support transitions, '
                    f'{settings.inner_steps} steps')
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
