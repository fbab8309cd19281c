"""``maml-ros-replay``: adapt offline from a recorded bag, and judge it on what followed.

    maml-ros-replay BAG [--checkpoint CKPT] [--command-topic /effort_controller/commands]
        [--support-size 200] [--start SECONDS | --recorded K] [--out ADAPTED.safetensors]
        [--plot PNG] [--json PATH]

BAG is a rosbag2 bag (MCAP or SQLite3) with ``/joint_states`` and the command topic: one
the adapter recorded (``record``), or one ``ros2 bag record`` wrote on a robot run by any
controller. Messages that break the adapter's rules are dropped and counted. The support is
the first ``--support-size`` transitions from ``--start`` seconds on (or, ``--recorded K``,
the window of the adapter's K-th recorded adaptation, by default adapted by the method it
used); everything after it is held out.
Prints the support loss before and after adapting, the held-out command prediction error of
the unadapted model, the adapted one and ``sysid`` fitted on the same support, and what the
adapted model identified. ``--out`` writes the adapted checkpoint (the adapter loads it like
any other); exit status 1 when the adaptation was rejected, 2 for unusable input.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from maml_ros.evaluation.replay import replay
from maml_ros.maml.checkpoint import CheckpointError
from maml_ros.model.trained_models import TrainedModels
from maml_ros.online.policy_choice import ADAPTATION_CHOICES, ON_ROBOT, adaptation_method
from maml_ros.resources import shipped_checkpoint
from maml_ros.ros.bag import BagError, BagTicks, read_ticks


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('bag', type=Path)
    parser.add_argument('--checkpoint', type=Path, help='default: the shipped one')
    parser.add_argument('--joint-states', default='/joint_states')
    parser.add_argument('--command-topic', default='/effort_controller/commands')
    parser.add_argument('--outcome-topic', default='/adapter/adaptation',
                        help="where the adapter recorded its adaptations")
    parser.add_argument('--support-size', type=int, default=200)
    window = parser.add_mutually_exclusive_group()
    window.add_argument('--start', type=float, default=0.0,
                        help='support from this many seconds after the first tick')
    window.add_argument('--recorded', type=int,
                        help="the support window of the adapter's K-th recorded adaptation")
    parser.add_argument('--adaptation', default='auto', choices=ADAPTATION_CHOICES,
                        help="auto: the recorded adaptation's (--recorded), else the "
                        "checkpoint's physics model when it has one")
    parser.add_argument('--inner-steps', type=int, default=5)
    parser.add_argument('--inner-lr', type=float, help="default: the checkpoint's")
    parser.add_argument('--watchdog-timeout', type=float, default=0.1)
    parser.add_argument('--out', type=Path, help='write the adapted checkpoint here')
    parser.add_argument('--plot', type=Path, help='write a PNG of predicted vs. sent commands')
    parser.add_argument('--json', type=Path, help='write the report here')
    return parser.parse_args(argv)


def replayed_method(adaptation: str, *, ticks: BagTicks, recorded: int | None,
                    models: TrainedModels) -> str:
    """``--adaptation``, where ``auto`` is the method of the adapter's ``recorded``-th
    adaptation when the bag says which, else the adapter's own ``auto``."""
    if adaptation == 'auto' and recorded is not None and 1 <= recorded <= len(ticks.outcomes):
        method = ticks.outcomes[recorded - 1].values.get('method')
        if method in ON_ROBOT:
            return method
    return adaptation_method(adaptation, models)


def main(args: list[str] | None = None) -> int:
    options = parse_args(args)
    try:
        checkpoint = options.checkpoint or shipped_checkpoint()
        models = TrainedModels.load(checkpoint)
        robot = models.formulation.robot
        ticks = read_ticks(options.bag, joints=list(robot.joints),
                           command_topic=options.command_topic,
                           joint_state_topic=options.joint_states,
                           outcome_topic=options.outcome_topic,
                           watchdog_timeout=options.watchdog_timeout)
        method = replayed_method(options.adaptation, ticks=ticks, recorded=options.recorded,
                                   models=models)
        transitions, stamps, broken = ticks.transitions(control_period=robot.control_period)
        window = None if options.recorded is None else ticks.recorded_window(options.recorded)
        result = replay(transitions, stamps, models, method=method,
                        support_size=options.support_size, start=options.start,
                        origin=ticks.stamps[0], window=window,
                        inner_steps=options.inner_steps, inner_lr=options.inner_lr)
    except (BagError, CheckpointError, ValueError) as error:
        print(f'maml-ros-replay: {error}', file=sys.stderr)
        return 2
    outcome = result.outcome
    print(f'{options.bag}: {len(ticks)} control ticks, {len(transitions)} transitions '
          f'({broken} chain breaks), {len(ticks.outcomes)} recorded adaptations')
    for line in ticks.dropped.describe():
        print(f'  dropped: {line}')
    start, end = (value - ticks.stamps[0] for value in result.support_span)
    print(f'support: {len(result.support)} transitions ({start:.2f}-{end:.2f} s); held out: '
          f'{len(result.held_out)}')
    print(f'{method} adaptation {outcome}')
    rms = result.held_out_rms()
    print(f'\nheld-out command prediction error (RMS, command units; {robot.command_interface})')
    print(f'{"model":<12}{"all joints":>11}  per joint')
    for label, figures in rms.items():
        print(f'{label:<12}{figures["all"]:>11.4f}  {figures["per_joint"]}')
    for label, identified in result.identified.items():
        if identified:
            print(f'\nidentified ({label}):')
            for name, value in identified.items():
                print(f'  {name}: {value}')
    report = {'bag': str(options.bag), 'checkpoint': str(checkpoint), 'method': method,
              'ticks': len(ticks), 'transitions': len(transitions), 'chain_breaks': broken,
              'dropped': dict(ticks.dropped.counts), 'support': len(result.support),
              'held_out': len(result.held_out), 'accepted': outcome.accepted,
              'reason': outcome.reason, 'support_loss_before': outcome.loss_before,
              'support_loss_after': outcome.loss_after, **outcome.judged(),
              'held_out_rms': rms,
              'identified': result.identified}
    if options.json:
        options.json.parent.mkdir(parents=True, exist_ok=True)
        options.json.write_text(json.dumps(report, indent=2))
    if options.plot:
        from maml_ros.evaluation.plots import plot_replay
        plot_replay(options.plot, result, joints=list(robot.joints),
                    control_period=robot.control_period)
        print(f'plot written to {options.plot}')
    if not outcome.accepted:
        written = ': no checkpoint written' if options.out else ''
        print(f'the adaptation was rejected ({outcome.reason}){written}', file=sys.stderr)
        return 1
    if options.out:
        result.policy.active_models().save(options.out)
        print(f'adapted checkpoint written to {options.out}')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
