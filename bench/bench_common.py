"""What every benchmark script shares: the machine it ran on, percentiles, the JSON file."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

import numpy as np
import torch


def machine() -> dict:
    """The machine, for the JSON next to the figures."""
    return {'platform': platform.platform(), 'processor': platform.processor(),
            'cpus': os.cpu_count(), 'python': platform.python_version(),
            'torch': torch.__version__, 'torch_threads': torch.get_num_threads(),
            'gpu': torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def percentiles(samples, *quantiles: float) -> list[float]:
    """``quantiles`` (in %) of ``samples``."""
    return [float(np.percentile(np.asarray(samples, float), q)) for q in quantiles]


def save_figure(figure, path: Path, *, dpi: int) -> None:
    """Lay ``figure`` out and write it to ``path`` (its folder made)."""
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=dpi)
    print(f'plot written to {path}')


def write_json(path: Path, results: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({'machine': machine(), **results}, indent=2))
    print(f'written to {path}')
