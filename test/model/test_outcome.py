"""AdaptationOutcome: the line the adapter logs for each adaptation."""

import numpy as np

from maml_ros.model.held_out import HeldOut
from maml_ros.model.outcome import AdaptationOutcome


def test_an_outcome_reads_as_its_verdict_losses_support_and_time():
    accepted = AdaptationOutcome(accepted=True, reason='', loss_before=0.123456,
                                 loss_after=0.000123456, duration_ms=16.25, transitions=200)
    assert str(accepted) == ('accepted; support loss 0.1235 -> 0.0001235 on 200 transitions '
                             'in 16.2 ms')
    rejected = AdaptationOutcome(accepted=False, reason='support loss rose', loss_before=0.5,
                                 loss_after=0.75, duration_ms=3.0, transitions=40)
    assert str(rejected) == ('rejected: support loss rose; support loss 0.5 -> 0.75 on 40 '
                             'transitions in 3.0 ms')


def test_a_judged_outcome_reads_with_its_held_out_figures_and_the_joints_kept():
    held_out = HeldOut(before=np.array([[2.0, 1.0], [2.0, 1.0]]),
                       after=np.array([[1.0, 2.0], [1.0, 2.0]]), rows=np.array([90, 90]))
    outcome = AdaptationOutcome(accepted=True, reason='', loss_before=0.5, loss_after=0.25,
                                duration_ms=3.0, transitions=200, held_out=held_out, kept=(2,))
    assert str(outcome) == ('accepted (joints [2] kept their model); support loss 0.5 -> 0.25; '
                            'held-out RMS 1.581 -> 1.581 on 200 transitions in 3.0 ms')
    assert outcome.judged() == {'held_out_rms_before': [2.0, 1.0],
                                'held_out_rms_after': [1.0, 2.0], 'kept_joints': [2]}
    short = HeldOut(held_out.before, held_out.after, rows=np.array([40, 40]))
    assert AdaptationOutcome(accepted=True, reason='', loss_before=0.5, loss_after=0.25,
                             duration_ms=3.0, transitions=100, held_out=short).judged() == {}
