"""AdaptationOutcome: the line the adapter logs for each adaptation."""

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
