"""The notebooks' scale, defined once: the overrides and step budgets the notebooks run the experiments at,
which the README figures (figures.py) reuse so that they show what the notebooks assert.
notebooks/build_notebooks.py writes `notebook_scale(PRESET)` and `notebook_steps(...)` into the notebooks.

On a CPU, cpu-tiny is narrowed (d=64, T=64, batch 8) so that each experiment takes seconds on two cores. On a
GPU the preset runs as is; runs are short, so torch.compile would cost more than it saves.
"""

from __future__ import annotations

from typing import Any

CPU_SCALE: dict[str, Any] = dict(n_embd=64, block_size=64, batch_size=8, eval_batches=4)
GPU_SCALE: dict[str, Any] = dict(compile=False)

# Optimizer steps per experiment, (on a cpu-* preset, on a gpu-* preset). gpu-small overfits the corpus after
# ~500 steps, hence no longer races there.
STEPS: dict[str, tuple[int, int]] = {
    "depth": (150, 500),
    "race": (150, 500),
    "lr_stability": (100, 200),
    "hypersphere": (150, 1000),
}


# torch threads for the notebooks' runs on a CPU preset. Their models are tiny, so a second thread gains little
# while it waits on the first, and a waiting OpenMP thread either spins (and starves when another process holds
# a core: CI runs two notebooks at once) or sleeps and wakes for every small op. One thread was the fastest or
# close to it, idle and beside a busy process: `python benchmarks/readme_measurements.py --only threads`.
CPU_THREADS = 1


def use_notebook_threads(preset: str) -> int:
    """Set torch's thread count for runs at `preset` as the notebooks, the playground and the README figures
    train: CPU_THREADS on a CPU preset, torch's own choice left alone on a GPU one. Returns the count before,
    for a caller that puts it back."""
    import torch

    before = torch.get_num_threads()
    if not preset.startswith("gpu"):
        torch.set_num_threads(CPU_THREADS)
    return before


def notebook_scale(preset: str) -> dict[str, Any]:
    """The overrides every notebook experiment adds to `preset`."""
    return dict(GPU_SCALE if preset.startswith("gpu") else CPU_SCALE)


def notebook_steps(experiment: str, preset: str) -> int:
    """The step budget of `experiment` (a key of STEPS) at `preset`."""
    cpu, gpu = STEPS[experiment]
    return gpu if preset.startswith("gpu") else cpu
