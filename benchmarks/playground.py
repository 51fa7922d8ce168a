"""Wall-clock of the playground's default run (issue #5: "on CPU a default run finishes in <= 20 s").

    python benchmarks/playground.py [--repeats 3] [--threads N] [--live] [--omp passive] [--busy]

Builds `Playground()` exactly as notebook 04 does (gpu-small on CUDA; on a CPU, cpu-tiny with the playground's
CPU_DEFAULTS on `CPU_THREADS` torch threads), and times `run()` with every control at its default: pre-LN, 150
steps, the swept LR, no warmup. `--live` also redraws the figure during the run as the widget does once it is
displayed (frames are rendered to an Agg canvas: what a browser adds on top is not counted). `--threads N`
trains on N threads instead; with more than one, `--omp passive` sets OMP_WAIT_POLICY=PASSIVE (waiting threads
sleep) instead of OpenMP's default (they spin). `--busy` keeps one other process spinning on a core during the
runs, as a second job on a laptop (or CI's second notebook) would. Prints JSON.
"""

from __future__ import annotations

import os
import sys

# before torch loads OpenMP
_argv = sys.argv[1:]
if "--omp=passive" in _argv or ("--omp", "passive") in zip(_argv, _argv[1:], strict=False):
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"

import argparse  # noqa: E402
import json  # noqa: E402
import multiprocessing  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402

from minigpt.experiments.scale import use_notebook_threads  # noqa: E402
from minigpt.widgets import Playground  # noqa: E402


def _spin() -> None:
    while True:
        pass


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=3, help="default runs to time (default 3)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads (default: as notebook 04, CPU_THREADS on a CPU, torch's choice on CUDA)")
    p.add_argument("--live", action="store_true", help="redraw the figure during the run, as the widget does")
    p.add_argument("--omp", choices=["default", "passive"], default="default",
                   help="OpenMP wait policy with several threads: its default (spin) or PASSIVE (sleep)")
    p.add_argument("--busy", action="store_true", help="one other process spins on a core during the runs")
    args = p.parse_args()
    busy = None
    if args.busy:
        busy = multiprocessing.get_context("spawn").Process(target=_spin, daemon=True)
        busy.start()

    pg = Playground(live=args.live)
    use_notebook_threads(pg.preset_name)
    if args.threads:
        torch.set_num_threads(args.threads)
    seconds, summaries = [], []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        run = pg.run()  # every argument from the controls' defaults, as the Train button does
        seconds.append(round(time.perf_counter() - t0, 2))
        summaries.append(run.summary())
    if busy is not None:
        busy.terminate()
    print(json.dumps({
        "preset": pg.preset_name, "overrides": pg.overrides, "steps": pg.steps.value, "live": args.live,
        "threads": torch.get_num_threads(), "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default"),
        "busy_process": args.busy,
        "cpu": platform.processor() or platform.machine(), "torch": torch.__version__,
        "seconds": seconds, "median_s": statistics.median(seconds), "target_s": 20,
        "runs": summaries,
    }, indent=2))


if __name__ == "__main__":
    main()
