"""``maml-ros-sinusoid``: the MAML paper's sinusoid benchmark on this machine.

Meta-trains the 1-40-40-1 regressor, pretrains the pooled baseline on the same
data budget, and prints the held-out MSE after 0, 1, 5 and 10 adaptation steps
on K=10 points (the baseline gets its best step size from a small grid).
``--plot`` draws one held-out task before and after adaptation.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from torch.nn.functional import mse_loss

from maml_ros.maml import MAML
from maml_ros.training.sinusoid import (
    SinusoidTasks,
    held_out_mse,
    meta_train,
    pretrain_pooled,
)

STEPS = [0, 1, 5, 10]
FINETUNE_LRS = [0.001, 0.01, 0.02]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--iterations', type=int, default=3000, help='meta-steps (default 3000)')
    parser.add_argument('--inner-lr', type=float, default=0.01, help='inner step size')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--json', type=Path, help='write the MSE table here')
    parser.add_argument('--plot', type=Path, help='write a PNG of one adapted task here')
    return parser.parse_args(argv)


def plot_task(path: Path, maml: MAML, pretrained: torch.nn.Module, finetune_lr: float,
              inner_lr: float, seed: int) -> None:
    """One held-out task: the truth, K=10 points, both models after 0 and 10 steps."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    generator = torch.Generator().manual_seed(seed)
    task = SinusoidTasks.sample(1, generator)
    support_x, support_y = task.points(10, generator)
    support = (support_x[0], support_y[0])
    x = torch.linspace(-5, 5, 200).reshape(1, -1, 1)
    figure, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for axis, (title, model, lr) in zip(axes, [('MAML', maml.model, inner_lr),
                                              ('pretrained + fine-tune', pretrained,
                                               finetune_lr)], strict=True):
        learner = MAML(model, inner_lr=lr, inner_steps=0)
        axis.plot(x[0, :, 0], task.curve(x)[0, :, 0], 'k', label='true task')
        axis.plot(support_x[0, :, 0], support_y[0, :, 0], 'o', color='tab:red', label='K=10')
        for steps, style in [(0, ':'), (1, '--'), (10, '-')]:
            with torch.no_grad():
                prediction = learner.predict(learner.adapt(support, mse_loss, steps=steps), x[0])
            axis.plot(x[0, :, 0], prediction[:, 0], style, label=f'{steps} steps')
        axis.set_title(f'{title} (step size {lr:g})')
        axis.set_xlabel('x')
        axis.legend()
    axes[0].set_ylabel('y')
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def main(args: list[str] | None = None) -> int:
    options = parse_args(args)
    maml = meta_train(iterations=options.iterations, inner_lr=options.inner_lr,
                      seed=options.seed, progress=True)
    pretrained = pretrain_pooled(iterations=options.iterations, seed=options.seed,
                                 progress=True)
    # The baseline's step size is picked on validation tasks, not the test tasks.
    validation = {lr: held_out_mse(pretrained, lr=lr, steps=[10], seed=options.seed + 1)[10]
                  for lr in FINETUNE_LRS}
    finetune_lr = min(validation, key=validation.get)
    table = {
        'maml': held_out_mse(maml.model, lr=options.inner_lr, steps=STEPS),
        'pretrained_finetune': held_out_mse(pretrained, lr=finetune_lr, steps=STEPS),
    }
    print(f'\nheld-out MSE, 100 tasks, K=10 (fine-tune step size {finetune_lr:g})')
    print(f'{"steps":>6} ' + ' '.join(f'{name:>20}' for name in table))
    for steps in STEPS:
        print(f'{steps:>6} ' + ' '.join(f'{table[name][steps]:>20.3f}' for name in table))
    if options.json:
        options.json.write_text(json.dumps({'finetune_lr': finetune_lr, **table}, indent=2))
    if options.plot:
        plot_task(options.plot, maml, pretrained, finetune_lr, options.inner_lr, options.seed)
        print(f'plot written to {options.plot}')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
