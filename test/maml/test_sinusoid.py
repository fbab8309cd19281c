"""The MAML paper's sinusoid benchmark, on a short CPU budget."""

import json

from maml_ros.cli import sinusoid as sinusoid_cli
from maml_ros.training.sinusoid import held_out_mse, meta_train, pretrain_pooled


def test_maml_after_one_step_beats_pretrained_baseline_after_ten_steps():
    maml = meta_train(iterations=1500, seed=0)
    pretrained = pretrain_pooled(iterations=1500, seed=0)
    maml_mse = held_out_mse(maml.model, lr=0.01, steps=[0, 1], num_tasks=50)
    # The baseline gets the best of its step-size grid on these very tasks,
    # which can only flatter it.
    baseline_mse = min(held_out_mse(pretrained, lr=lr, steps=[10], num_tasks=50)[10]
                       for lr in (0.001, 0.01, 0.02))
    assert maml_mse[1] < baseline_mse
    assert maml_mse[1] < 0.6 * maml_mse[0]  # the single step is what does the work


def test_cli_prints_the_table_and_writes_json_and_plot(tmp_path, capsys):
    json_path, plot_path = tmp_path / 'sinusoid.json', tmp_path / 'sinusoid.png'
    assert sinusoid_cli.main(['--iterations', '20', '--json', str(json_path),
                              '--plot', str(plot_path)]) == 0
    table = json.loads(json_path.read_text())
    assert set(table) == {'finetune_lr', 'maml', 'pretrained_finetune'}
    assert set(table['maml']) == {'0', '1', '5', '10'}
    assert plot_path.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    assert 'held-out MSE' in capsys.readouterr().out
