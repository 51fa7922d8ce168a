"""Share of a training step's CPU time spent in normalization, against normalization's share of the FLOPs.

    python benchmarks/norm_share.py [--preset cpu-tiny] [--steps 3] [--threads N] [--top 8]

Lecture notes often quote ~25% of runtime for ~0.17% of FLOPs; this measures ours, per variant and per norm
type (LayerNorm vs RMSNorm; nGPT has no norm layers, only its L2 normalizations), for one training step:
forward, backward, clipping, AdamW and nGPT's `after_optimizer_step`.

Time, by `torch.profiler` (CPU), attributed by *where an op came from*, not by its name. Op names alone cannot
do it: nGPT's `l2_normalize` is `square`, `sum`, `clamp_min`, `rsqrt` and `mul`, ops the rest of the model
also calls. So, while profiling:
- every norm module's forward (nn.LayerNorm, nn.RMSNorm: pre/post/final norms, NormFormer's extra norms,
  QK-norm if on) and every `l2_normalize` call is wrapped in a `record_function("norm::...")` range;
- forward time = the ranges' total CPU time;
- backward time = the autograd nodes (`autograd::engine::evaluate_function: ...Backward0`) whose
  `sequence_nr` is that of a forward op inside a norm range: autograd stamps each backward node with the
  sequence number of the forward op that created it, so this is the backward of exactly those ops;
- nGPT's weight projection after the optimizer step (`after_optimizer_step`, in place, no grad) is wrapped
  in a `norm::l2-weights` range: reported apart (`optimizer_ms`) and counted in the total;
- SLERP's own final Norm runs inside `fast_cpu.SlerpFunction`, fused with the interpolation, and is counted with the
  update, not here: ngpt-slerp has one normalization per update fewer in its tally than ngpt-lerp.
The denominator is a `record_function("step")` range around the whole step. Profiling adds a fixed cost per op,
which weighs more on the many small norm ops than on the matmuls, so the time share is an upper-side estimate;
`step_ms_unprofiled` is the same step timed without the profiler, for scale.

FLOPs, counted analytically from the elements each norm call actually saw (recorded by the same wrappers):
forward FLOPs per element LayerNorm 7 (mean: add; centre: sub; variance: square, add; scale by 1/σ: mul; γ:
mul; β: add), RMSNorm 4 (square, add, mul by 1/rms, mul by γ), L2 normalize 3 (square, add, mul by 1/‖x‖);
the per-row rsqrt is ignored. Backward is taken as 2× forward (the same convention as 6N = 2N forward + 4N
backward), so a norm call on E elements costs 3·c·E per step; the weight projection costs c·E (no
backward). Model FLOPs per step: `model.flops_per_token(T)`·B·T (6·N + 12·L·T·d, N = block + LM-head parameters).
Norm share = norm FLOPs / (model FLOPs + norm FLOPs).

`top_ops`: the step's heaviest ops by self CPU time (where nGPT's extra time goes). Prints JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import time
from collections.abc import Callable, Iterator

import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile, record_function

import minigpt.ngpt
from minigpt import build_model, get_preset
from minigpt.config import NORMS
from minigpt.experiments.modern_block import NORM_FWD_FLOPS_PER_ELEMENT
from minigpt.registry import RUNS, VARIANTS

FWD_FLOPS_PER_ELEMENT = NORM_FWD_FLOPS_PER_ELEMENT  # the experiments' table (modern_block.py)

# label -> (variant, ModelConfig overrides): each registered variant with norm layers under both norms, and the
# runs of the variants without (nGPT's LERP and SLERP), all from the registry
ROWS: dict[str, tuple[str, dict]] = {
    **{f"{v}-{norm}": (v, {"norm": norm}) for v, cls in VARIANTS.items() if not cls.unit_norm_weights
       for norm in NORMS},
    **{label: (run.variant, dict(run.overrides)) for label, run in RUNS.items()
       if VARIANTS[run.variant].unit_norm_weights},
}


class NormTally:
    """Elements seen by each kind of norm call, split into calls with autograd on (forward of a training
    step: they get a backward) and off (nGPT's weight projection)."""

    def __init__(self) -> None:
        self.grad: dict[str, int] = {}
        self.no_grad: dict[str, int] = {}

    def add(self, kind: str, numel: int) -> None:
        d = self.grad if torch.is_grad_enabled() else self.no_grad
        d[kind] = d.get(kind, 0) + numel

    def flops(self) -> int:
        fwd_bwd = sum(3 * FWD_FLOPS_PER_ELEMENT[k] * n for k, n in self.grad.items())
        return fwd_bwd + sum(FWD_FLOPS_PER_ELEMENT[k] * n for k, n in self.no_grad.items())


@contextlib.contextmanager
def instrument(model: nn.Module, tally: NormTally) -> Iterator[None]:
    """Wrap the model's norm modules and minigpt's `l2_normalize` in `norm::` profiler ranges that also count
    elements; everything is restored on exit (the package itself is not modified)."""
    wrapped: list[nn.Module] = []
    for mod in model.modules():
        kind = "layernorm" if isinstance(mod, nn.LayerNorm) else "rmsnorm" if isinstance(mod, nn.RMSNorm) else None
        if kind is None:
            continue

        def fwd(x: torch.Tensor, _f: Callable = mod.forward, _k: str = kind) -> torch.Tensor:
            tally.add(_k, x.numel())
            with record_function(f"norm::{_k}"):
                return _f(x)

        mod.forward = fwd
        wrapped.append(mod)
    original = minigpt.ngpt.l2_normalize

    def l2(x: torch.Tensor, dim: int = -1, eps: float = 1e-6) -> torch.Tensor:
        tally.add("l2", x.numel())
        with record_function("norm::l2"):
            return original(x, dim, eps)

    minigpt.ngpt.l2_normalize = l2  # the name ngpt.py's q/k normalization, blocks and LERP update look up
    project = model.after_optimizer_step if model.unit_norm_weights else None
    if project is not None:  # nGPT's weight projection: in place, one norm and one division per matrix

        def projection(_f: Callable = project) -> None:
            with torch.no_grad():
                for module, _ in model._sphere:
                    tally.add("l2", module.weight.numel())
                with record_function("norm::l2-weights"):
                    _f()

        model.after_optimizer_step = projection
    try:
        yield
    finally:
        minigpt.ngpt.l2_normalize = original
        for mod in wrapped:
            del mod.forward  # back to the class's forward
        if project is not None:
            del model.after_optimizer_step


def train_step(model: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor) -> None:
    """One step as `minigpt.train` takes it (no LR schedule, no NaN guard: they cost nothing here)."""
    _, loss = model(x, y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0, foreach=True)
    opt.step()
    model.after_optimizer_step()


def profile_row(preset_name: str, variant: str, extra: dict, steps: int, top: int) -> dict:
    preset = get_preset(preset_name)
    mcfg, tcfg = preset.configs(variant, **extra)
    B, T = preset.train.batch_size, mcfg.block_size
    torch.manual_seed(0)
    model = build_model(mcfg)
    opt = torch.optim.AdamW(model.param_groups(tcfg.weight_decay), lr=1e-4, betas=(0.9, 0.95), foreach=True)
    g = torch.Generator().manual_seed(0)
    data = torch.randint(0, mcfg.vocab_size, (B, T + 1), generator=g)
    x, y = data[:, :-1].contiguous(), data[:, 1:].contiguous()
    for _ in range(2):  # warm-up
        train_step(model, opt, x, y)
    plain = []
    for _ in range(steps):
        t0 = time.perf_counter()
        train_step(model, opt, x, y)
        plain.append(time.perf_counter() - t0)

    tally = NormTally()
    with instrument(model, tally), profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            with record_function("step"):
                train_step(model, opt, x, y)
    events = prof.events()
    total = sum(e.cpu_time_total for e in events if e.name == "step")
    fwd = sum(e.cpu_time_total for e in events if e.name.startswith("norm::") and e.name != "norm::l2-weights")
    opt_proj = sum(e.cpu_time_total for e in events if e.name == "norm::l2-weights")

    seq: set[int] = set()

    def collect(e: object) -> None:
        for c in e.cpu_children:
            if c.sequence_nr >= 0:
                seq.add(c.sequence_nr)
            collect(c)

    for e in events:
        if e.name.startswith("norm::") and e.name != "norm::l2-weights":
            collect(e)
    bwd = sum(e.cpu_time_total for e in events
              if e.name.startswith("autograd::engine::evaluate_function:") and e.sequence_nr in seq)

    ops = prof.key_averages()
    heavy = sorted((o for o in ops if o.key.startswith("aten::") or "Backward" in o.key),
                   key=lambda o: o.self_cpu_time_total, reverse=True)[:top]

    per_step_tally = NormTally()  # elements per step (the tally saw `steps` steps)
    per_step_tally.grad = {k: n // steps for k, n in tally.grad.items()}
    per_step_tally.no_grad = {k: n // steps for k, n in tally.no_grad.items()}
    model_flops = model.flops_per_token(T) * B * T
    norm_flops = per_step_tally.flops()
    norm_ms = (fwd + bwd + opt_proj) / 1e3 / steps
    return {
        "variant": variant, **extra,
        "step_ms_profiled": round(total / 1e3 / steps, 2),
        "step_ms_unprofiled": round(1e3 * statistics.median(plain), 2),
        "norm_ms": round(norm_ms, 2),
        "norm_forward_ms": round(fwd / 1e3 / steps, 2),
        "norm_backward_ms": round(bwd / 1e3 / steps, 2),
        "optimizer_ms": round(opt_proj / 1e3 / steps, 2),
        "time_share": round(norm_ms / (total / 1e3 / steps), 4),
        "norm_elements_per_step": per_step_tally.grad
        | {f"{k} (no grad)": v for k, v in per_step_tally.no_grad.items()},
        "norm_flops": norm_flops,
        "model_flops": model_flops,
        "flop_share": round(norm_flops / (model_flops + norm_flops), 5),
        "top_ops": [{"op": o.key, "self_ms": round(o.self_cpu_time_total / 1e3 / steps, 2), "calls": o.count // steps}
                    for o in heavy],
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="cpu-tiny", choices=["cpu-tiny", "cpu-small"])
    ap.add_argument("--steps", type=int, default=3, help="profiled steps per row (after 2 warm-up steps)")
    ap.add_argument("--rows", default=",".join(ROWS), help=f"comma-separated subset of {', '.join(ROWS)}")
    ap.add_argument("--top", type=int, default=8, help="heaviest ops listed per row")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    return ap.parse_args(argv)


def run(args: argparse.Namespace) -> dict:
    """Profile every row and return the JSON-ready result."""
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = {}
    for label in args.rows.split(","):
        variant, extra = ROWS[label]
        rows[label] = profile_row(args.preset, variant, extra, args.steps, args.top)
    return {
        "benchmark": "norm_share",
        "preset": args.preset,
        "steps": args.steps,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "fwd_flops_per_element": FWD_FLOPS_PER_ELEMENT,
        "method": "torch.profiler CPU; norm::* record_function ranges + their autograd nodes by sequence_nr",
        "results": rows,
    }


def main() -> None:
    print(json.dumps(run(parse_args()), indent=2))


if __name__ == "__main__":
    main()
