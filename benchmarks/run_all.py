"""Every benchmark of issue #7 in one run, written up as benchmarks/results.md (+ the raw results.json).

    python benchmarks/run_all.py            # the full run: 3-4 minutes on an idle 2-core CPU
    python benchmarks/run_all.py --quick    # smoke run (well under a minute), written to a temp folder

Runs, in this order, by importing each script's `run(args) -> dict`:
1. throughput.py at cpu-tiny and at cpu-small (ms/step, tokens/s, ratios, MFU; targets PASS/MISS),
2. norm_share.py at cpu-tiny (profiler time share of normalization vs its FLOP share),
3. rmsnorm.py (RMSNorm vs LayerNorm: bare kernels, per call, per pre-LN step; the RMSNorm target),
4. steps_to_target.py at cpu-tiny (steps and wall-clock to pre-LN's final val loss).

Timings are only as good as the machine is idle: run it with nothing else on the CPU. The full run writes
benchmarks/results.md and benchmarks/results.json; `--quick` (tiny settings, numbers meaningless) writes them
to a fresh temp folder, or to `--out`, and never touches benchmarks/results.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import sys
import tempfile
import time
from pathlib import Path

import norm_share
import rmsnorm
import steps_to_target
import throughput
import torch

HERE = Path(__file__).resolve().parent

# (name, module, argv) of each sub-benchmark, full and quick
FULL = [
    ("throughput cpu-tiny", throughput, ["--preset", "cpu-tiny", "--repeats", "25", "--steps", "2"]),
    ("throughput cpu-small", throughput, ["--preset", "cpu-small", "--repeats", "9", "--steps", "1",
                                          "--warmup", "1"]),
    ("norm share cpu-tiny", norm_share, ["--preset", "cpu-tiny", "--steps", "3"]),
    ("rmsnorm vs layernorm", rmsnorm, ["--repeats", "9"]),
    ("steps to target cpu-tiny", steps_to_target, ["--preset", "cpu-tiny"]),
]
QUICK = [
    ("throughput cpu-tiny", throughput, ["--preset", "cpu-tiny", "--repeats", "1", "--steps", "1", "--warmup", "1",
                                         "--peak-repeats", "1"]),
    ("throughput cpu-small", throughput, ["--preset", "cpu-small", "--repeats", "1", "--steps", "1", "--warmup",
                                          "1", "--peak-repeats", "1", "--rows", "pre_ln"]),
    ("norm share cpu-tiny", norm_share, ["--preset", "cpu-tiny", "--steps", "1",
                                         "--rows", "pre_ln-layernorm,pre_ln-rmsnorm,ngpt-lerp"]),
    ("rmsnorm vs layernorm", rmsnorm, ["--repeats", "1"]),
    ("steps to target cpu-tiny", steps_to_target, ["--preset", "cpu-tiny", "--steps", "4", "--eval-interval", "2"]),
]


def cpu_model() -> str:
    """The CPU's marketing name from /proc/cpuinfo (Linux), else whatever platform knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict:
    return {
        "cpu": cpu_model(),
        "logical_cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


# ------------------------------------------------------------------------------------------------ tables
def _table(header: list[str], rows: list[list]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join("—" if c is None else str(c) for c in r) + " |" for r in rows]
    return out


def _pct(x: float | None, digits: int = 1) -> str | None:
    return None if x is None else f"{100 * x:.{digits}f}%"


def throughput_md(r: dict) -> list[str]:
    s = r["shape"]
    lines = [f"### Throughput, {r['preset']} (L{s['n_layer']} d{s['n_embd']} h{s['n_head']} T{s['block_size']} "
             f"B{s['batch_size']}, {r['tokens_per_step']} tokens/step)", "",
             f"Median of {r['repeats']} round-robin repeats × {r['steps_per_repeat']} steps (after "
             f"{r['warmup_steps']} warm-up steps); fwd + bwd + clip + AdamW (+ nGPT's projection). Measured matmul "
             f"peak: **{r['peak_gflops']} GFLOP/s** (2048² fp32). MFU = {r['mfu_formula']}.", ""]
    rows = [[k, f"{v['params']:,}", v["ms_per_step"], f"{v['tokens_per_s']:,}", v["vs_pre_ln"], v["vs_nanogpt"],
             _pct(v["mfu"])] for k, v in r["results"].items()]
    lines += _table(["row", "params", "ms/step", "tokens/s", "time vs pre_ln", "tokens/s vs nanoGPT", "MFU"], rows)
    if r["targets"]:
        lines += ["", "Targets (issue #7):", ""]
        lines += _table(["row", "vs", "metric", "target", "measured (median)", "range over repeats", "result"],
                        [[t["row"], t["vs"], t["metric"], t["target"], t["value"],
                          f"{t['repeat_range'][0]} - {t['repeat_range'][1]}",
                          ("PASS" if t["pass"] else "MISS") + (" (bound within noise)" if t["within_noise"] else "")]
                         for t in r["targets"]])
    return lines


def norm_share_md(r: dict) -> list[str]:
    fpe = ", ".join(f"{k} {v}" for k, v in r["fwd_flops_per_element"].items())
    lines = [f"### Normalization: share of CPU time vs share of FLOPs, {r['preset']}", "",
             f"torch.profiler over {r['steps']} training steps per row; time in `norm::` ranges (norm modules, "
             f"`l2_normalize`) plus their autograd nodes (matched by `sequence_nr`), over the step. FLOPs "
             f"analytic: forward FLOPs/element {fpe}, backward 2× forward. The profiler's "
             f"per-op cost inflates the many small norm ops, so the time share leans high. No target in #7 "
             f"(the lecture-notes figure to compare with: ~25% of time for ~0.17% of FLOPs).", ""]
    rows = [[k, v["step_ms_unprofiled"], v["step_ms_profiled"], v["norm_forward_ms"], v["norm_backward_ms"],
             v["optimizer_ms"], _pct(v["time_share"]), _pct(v["flop_share"], 2)] for k, v in r["results"].items()]
    lines += _table(["row", "step ms", "step ms (profiled)", "norm fwd ms", "norm bwd ms", "nGPT proj. ms",
                     "time share", "FLOP share"], rows)
    return lines


def rmsnorm_md(r: dict) -> list[str]:
    shapes = list(r["per_call_us"])
    names = list(r["per_call_us"][shapes[0]])
    lines = ["### RMSNorm vs LayerNorm on the CPU", "",
             f"Median µs over {r['repeats']} round-robin repeats. *Kernels*: the bare ATen LayerNorm kernels "
             "against a fused C RMSNorm kernel (benchmark-only, one pass each way like LayerNorm's; "
             f"{r['fused_c_kernel']}), no autograd. *Per call*: the norm module's forward + backward with autograd. "
             "torch's `nn.RMSNorm` is a chain of generic ops on the CPU; minigpt's `layers.RMSNorm` has a "
             "hand-written backward; `fused_c_rmsnorm` wraps the C kernel in an `autograd.Function`.", ""]
    kern = r["kernels_us"]
    lines += _table(["kernel (µs)", *shapes], [[k, *(kern[s].get(k) for s in shapes)] for k in kern[shapes[0]]])
    lines += [""]
    lines += _table(["norm, per call (µs)", *shapes], [[k, *(r["per_call_us"][s][k] for s in shapes)]
                                                      for k in names])
    lines += ["", "Pre-LN training step at cpu-tiny with each norm (models timed round-robin):", ""]
    lines += _table(["norm", "ms/step", "vs layernorm", "paired range"],
                    [[k, v["ms"], v["vs_layernorm"], f"{v['vs_layernorm_paired_range'][0]} - "
                      f"{v['vs_layernorm_paired_range'][1]}"] for k, v in r["step_ms"].items()])
    b, t = r["norm_share_bound"], r["target"]
    lines += ["", f"Bound: the {b['norms_per_model']} LayerNorms' bare kernels take "
              f"{b['layernorm_kernels_ms_per_step']} ms of the step, {_pct(b['share_of_layernorm_step'])}; that "
              "is the most any RMSNorm, however fast, could save per step.", "", "Target (issue #7):", ""]
    lines += _table(["row", "vs", "metric", "target", "measured (median)", "paired range", "result"],
                    [[t["row"], t["vs"], t["metric"], t["target"], t["value"],
                      f"{t['paired_range'][0]} - {t['paired_range'][1]}", "PASS" if t["pass"] else "MISS"]])
    return lines


def steps_md(r: dict) -> list[str]:
    lines = [f"### Steps and wall-clock to val loss {r['target_val_loss']} ({r['target_source']}), {r['preset']}",
             "", f"{r['steps']} steps per run, eval every {r['eval_interval']}; crossing step {r['interpolation']}; "
             f"wall-clock = the run's own training time to that step (evals excluded). Speedup = pre_ln's / the "
             f"run's (> 1: sooner). No target in #7: reported, not judged.", ""]
    rows = [[k, v["lr"], v["final_val_loss"], v["ms_per_step"], v["step_to_target"], v["seconds_to_target"],
             v["speedup_steps"], v["speedup_wall"]] for k, v in r["results"].items()]
    lines += _table(["run", "lr", "final val", "ms/step", "step to target", "s to target", "speedup (steps)",
                     "speedup (wall)"], rows)
    return lines


def write_markdown(results: dict, path: Path) -> None:
    m = results["machine"]
    lines = ["# Benchmarks (issue #7)", "",
             f"Generated by `{results['command']}` in {results['wall_s']:.0f} s. Raw numbers: `results.json`.", "",
             f"- CPU: {m['cpu']}; {m['logical_cores']} logical cores ({m['usable_cores']} usable); "
             f"torch {m['torch']}, {m['threads']} threads; Python {m['python']}; {m['platform']}",
             f"- Date: {m['date_utc']}", ""]
    for name, r in results["benchmarks"].items():
        if r["benchmark"] == "throughput":
            lines += throughput_md(r)
        elif r["benchmark"] == "norm_share":
            lines += norm_share_md(r)
        elif r["benchmark"] == "rmsnorm":
            lines += rmsnorm_md(r)
        else:
            lines += steps_md(r)
        lines += ["", f"Command: `python benchmarks/{r['benchmark']}.py {shlex.join(results['argv'][name])}`", ""]
    path.write_text("\n".join(lines), encoding="utf-8")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny settings, written to a temp folder (or --out)")
    ap.add_argument("--out", default=None, help="folder for results.md/json (default: benchmarks/, or a temp "
                                                "folder with --quick)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads for every benchmark")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out) if args.out else (Path(tempfile.mkdtemp(prefix="minigpt-bench-")) if args.quick else HERE)
    out.mkdir(parents=True, exist_ok=True)
    plan = QUICK if args.quick else FULL
    thread_arg = ["--threads", str(args.threads)] if args.threads else []

    t0 = time.perf_counter()
    results: dict = {"command": shlex.join(["python", "benchmarks/run_all.py", *sys.argv[1:]]),
                     "machine": machine(), "benchmarks": {}, "argv": {}}
    for name, module, argv in plan:
        t = time.perf_counter()
        print(f"[run_all] {name} ...", file=sys.stderr, flush=True)
        results["benchmarks"][name] = module.run(module.parse_args(argv + thread_arg))
        results["argv"][name] = argv + thread_arg
        print(f"[run_all] {name}: {time.perf_counter() - t:.0f} s", file=sys.stderr, flush=True)
    results["wall_s"] = round(time.perf_counter() - t0, 1)

    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    write_markdown(results, out / "results.md")
    print(f"[run_all] wrote {out / 'results.md'} and {out / 'results.json'} in {results['wall_s']:.0f} s",
          file=sys.stderr)


if __name__ == "__main__":
    main()
