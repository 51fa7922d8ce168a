"""RMSNorm vs LayerNorm on the CPU: raw kernels, per call (forward + backward) and per pre-LN training step.

    python benchmarks/rmsnorm.py [--repeats 9] [--threads N] [--compile]

Prints JSON. Why this exists: issue #7 asks for RMSNorm to be faster than LayerNorm per step. On the CPU torch
2.13 has a fused LayerNorm kernel each way and no fused RMSNorm (`F.rms_norm` and `aten::_fused_rms_norm` are
chains of generic ops), so the norm with fewer FLOPs is the slower one. This script measures by how much, how
much of the gap minigpt's hand-written backward closes, and what a fused RMSNorm kernel would buy.

Norms compared: `nn.LayerNorm` (no bias, as the presets use), torch's `nn.RMSNorm`, minigpt's `layers.RMSNorm`
(the same module with a hand-written backward on the float32 CPU path) and, when a C compiler is on the PATH,
`fused_c_rmsnorm`: a benchmark-only C kernel (below, ~40 lines, one pass each way like LayerNorm's) called
through ctypes from an `autograd.Function`. It is here to answer "is RMSNorm cheaper once fused?", not to ship:
the package stays plain PyTorch.

- `kernels_us`: median µs of the bare kernels, no autograd: LayerNorm's `native_layer_norm` and its backward
  against the fused C RMSNorm forward and backward. This is the arithmetic each norm costs.
- `per_call_us`: median µs of one forward + backward of the norm module alone (autograd included) on the
  activation shape of the cpu-tiny (8×128×128) and cpu-small (16×256×192) presets, timed round-robin.
  `--compile` adds `torch.compile`d `F.layer_norm` / `F.rms_norm` (inductor's generated CPU kernels).
- `step_ms`: median ms of a full pre-LN training step (forward, backward, AdamW) at cpu-tiny with each norm,
  the models timed round-robin (each repeat times each model once, in turn, every other repeat in reverse
  order), with the ratio to LayerNorm.
- `norm_share_bound`: the LayerNorm kernels' µs × the number of norms in the model, over LayerNorm's step
  time: the most any RMSNorm, however fast, could take off a step.

What it found (torch 2.13, 2-core CPU; the numbers in benchmarks/results.md): the CPU `rms_norm` is a chain of
generic ops (pow, mean, add, rsqrt, mul, mul) whose autograd backward is twice as long again, while LayerNorm
has one fused kernel each way, so the "cheaper" norm was the slower one. `fast_cpu.RMSNormFunction`'s
written-out backward makes a call (forward + backward) 1.5-2x faster than torch's, but it is still several
passes against LayerNorm's one, so on the CPU RMSNorm stays slower than LayerNorm, per call and per step. The
fused C kernel is ~1.5x cheaper than LayerNorm's, but the norms' kernels are under 2% of a cpu-tiny step, so
even that does not show per step above the noise.
"""

from __future__ import annotations

import argparse
import ctypes
import dataclasses
import functools
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import minigpt.layers as layers
from minigpt import build_model, get_preset

# One pass over each row each way, as LayerNorm's ATen kernel does; rows split across OpenMP threads.
# Forward:  inv[r] = 1 / sqrt(mean(x_r^2) + eps),  y_r = x_r * inv[r] * w.
# Backward: x_hat = x_r * inv[r],  c = mean(g_r * w * x_hat),  gx_r = inv[r] * (g_r * w - x_hat * c),
#           gw = sum over rows of g_r * x_hat (one partial sum per thread in buf, added up at the end).
_C_SOURCE = r"""
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <omp.h>

void rms_forward(const float *x, const float *w, float *y, float *inv, int64_t n, int64_t d, float eps, int nt) {
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t r = 0; r < n; r++) {
        const float *xr = x + r * d;
        float *yr = y + r * d;
        float ss = 0.f;
#pragma omp simd reduction(+:ss)
        for (int64_t j = 0; j < d; j++) ss += xr[j] * xr[j];
        float s = 1.f / sqrtf(ss / (float)d + eps);
        inv[r] = s;
#pragma omp simd
        for (int64_t j = 0; j < d; j++) yr[j] = xr[j] * s * w[j];
    }
}

void rms_backward(const float *g, const float *x, const float *w, const float *inv, float *gx, float *gw,
                  float *buf, int64_t n, int64_t d, int nt) {
    memset(buf, 0, sizeof(float) * nt * d);
#pragma omp parallel num_threads(nt)
    {
        float *acc = buf + omp_get_thread_num() * d;
#pragma omp for schedule(static)
        for (int64_t r = 0; r < n; r++) {
            const float *gr = g + r * d, *xr = x + r * d;
            float *gxr = gx + r * d;
            float s = inv[r], c = 0.f;
#pragma omp simd reduction(+:c)
            for (int64_t j = 0; j < d; j++) c += gr[j] * w[j] * xr[j];
            c *= s / (float)d;
#pragma omp simd
            for (int64_t j = 0; j < d; j++) {
                float xh = xr[j] * s;
                gxr[j] = s * (gr[j] * w[j] - xh * c);
                acc[j] += gr[j] * xh;
            }
        }
    }
    for (int64_t j = 0; j < d; j++) {
        float a = 0.f;
        for (int t = 0; t < nt; t++) a += buf[t * d + j];
        gw[j] = a;
    }
}
"""


@functools.cache
def c_kernel() -> tuple[Any, str]:
    """Compile `_C_SOURCE` once per process into a shared library: (library, "") or (None, why not).

    Linux only: on macOS a compiler's OpenMP runtime can be a second copy of the one torch loads, which
    aborts the process; on Linux the library binds to torch's own libgomp."""
    if not sys.platform.startswith("linux"):
        return None, f"the C kernel is built on Linux only (this is {sys.platform})"
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if cc is None:
        return None, "no C compiler on the PATH"
    with tempfile.TemporaryDirectory(prefix="minigpt-rmsnorm-") as tmp:
        src, lib_path = Path(tmp) / "rmsnorm.c", Path(tmp) / "librmsnorm.so"
        src.write_text(_C_SOURCE)
        cmd = [cc, "-O3", "-march=native", "-fopenmp", "-shared", "-fPIC", str(src), "-o", str(lib_path)]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        except (OSError, subprocess.TimeoutExpired) as e:
            return None, f"{' '.join(cmd)}: {e}"
        if done.returncode != 0:
            return None, f"{' '.join(cmd)} failed: {done.stderr.strip()[:300]}"
        try:
            lib = ctypes.CDLL(str(lib_path))  # mapped now: the file itself can go with the folder
        except OSError as e:
            return None, f"loading the compiled kernel failed: {e}"
    p, i64 = ctypes.c_void_p, ctypes.c_int64
    lib.rms_forward.argtypes = [p, p, p, p, i64, i64, ctypes.c_float, ctypes.c_int]
    lib.rms_backward.argtypes = [p, p, p, p, p, p, p, i64, i64, ctypes.c_int]
    return lib, ""


def _check(*tensors: Tensor) -> None:
    for t in tensors:  # raw pointers go to C: anything else would be undefined behaviour
        assert t.dtype == torch.float32 and t.is_contiguous() and t.device.type == "cpu", (t.dtype, t.stride())


def _c_forward(x: Tensor, w: Tensor, eps: float) -> tuple[Tensor, Tensor]:
    d = x.shape[-1]
    y, inv = torch.empty_like(x), torch.empty(x.numel() // d, dtype=torch.float32)
    _check(x, w, y, inv)
    c_kernel()[0].rms_forward(x.data_ptr(), w.data_ptr(), y.data_ptr(), inv.data_ptr(), x.numel() // d, d, eps,
                              torch.get_num_threads())
    return y, inv


def _c_backward(g: Tensor, x: Tensor, w: Tensor, inv: Tensor) -> tuple[Tensor, Tensor]:
    d, threads = x.shape[-1], torch.get_num_threads()
    gx, gw, buf = torch.empty_like(x), torch.empty_like(w), torch.empty(threads * d, dtype=torch.float32)
    _check(g, x, w, inv, gx, gw, buf)
    c_kernel()[0].rms_backward(g.data_ptr(), x.data_ptr(), w.data_ptr(), inv.data_ptr(), gx.data_ptr(),
                               gw.data_ptr(), buf.data_ptr(), x.numel() // d, d, threads)
    return gx, gw


class _FusedCFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: Tensor, weight: Tensor, eps: float) -> Tensor:
        x = x.contiguous()
        y, inv = _c_forward(x, weight, eps)
        ctx.save_for_backward(x, weight, inv)
        return y

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, Tensor, None]:
        x, weight, inv = ctx.saved_tensors
        return (*_c_backward(grad.contiguous(), x, weight, inv), None)


class FusedCRMSNorm(nn.RMSNorm):
    """`nn.RMSNorm` computed by the C kernel above (float32, CPU)."""

    def forward(self, x: Tensor) -> Tensor:
        return _FusedCFunction.apply(x, self.weight, self.eps)


def check_fused_c() -> float:
    """Largest difference of the C kernel's output and gradients from `nn.RMSNorm`'s (it must agree)."""
    torch.manual_seed(0)
    ref, ours = nn.RMSNorm(128, eps=1e-5), FusedCRMSNorm(128, eps=1e-5)
    nn.init.normal_(ref.weight)
    ours.load_state_dict(ref.state_dict())
    x, g = torch.randn(4, 32, 128, requires_grad=True), torch.randn(4, 32, 128)
    pairs = [(ref(x), ours(x)), *zip(torch.autograd.grad(ref(x), (x, ref.weight), g),
                                     torch.autograd.grad(ours(x), (x, ours.weight), g), strict=True)]
    worst = max(((a - b).abs().max() / a.abs().max()).item() for a, b in pairs)  # relative to the largest value
    if worst > 1e-4:
        raise SystemExit(f"the C RMSNorm kernel disagrees with nn.RMSNorm by {worst:.2e}")
    return worst


def _median_us(fn: Callable[[], Any], repeats: int, calls: int) -> float:
    for _ in range(5):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(calls):
            fn()
        times.append((time.perf_counter() - t) / calls * 1e6)
    return round(statistics.median(times), 1)


def kernels(shape: tuple[int, ...], repeats: int, calls: int = 100) -> dict[str, float]:
    """The bare kernels, no autograd: what the arithmetic of each norm costs."""
    d = shape[-1]
    x, g, w = torch.randn(shape), torch.randn(shape), torch.randn(d)
    _, mean, rstd = torch.native_layer_norm(x, (d,), w, None, 1e-5)
    out = {
        "layernorm_fwd": _median_us(lambda: torch.native_layer_norm(x, (d,), w, None, 1e-5), repeats, calls),
        "layernorm_bwd": _median_us(lambda: torch.ops.aten.native_layer_norm_backward(
            g, x, (d,), mean, rstd, w, None, [True, True, False]), repeats, calls),
    }
    if c_kernel()[0] is not None:
        _, inv = _c_forward(x, w, 1e-5)
        out["fused_c_rmsnorm_fwd"] = _median_us(lambda: _c_forward(x, w, 1e-5), repeats, calls)
        out["fused_c_rmsnorm_bwd"] = _median_us(lambda: _c_backward(g, x, w, inv), repeats, calls)
    return out


def _norms(dim: int, compiled: bool) -> dict[str, Callable[[Tensor], Tensor]]:
    norms: dict[str, Callable[[Tensor], Tensor]] = {
        "layernorm": nn.LayerNorm(dim, bias=False), "torch_rmsnorm": nn.RMSNorm(dim, eps=1e-5),
        "minigpt_rmsnorm": layers.RMSNorm(dim, eps=1e-5)}
    if c_kernel()[0] is not None:
        norms["fused_c_rmsnorm"] = FusedCRMSNorm(dim, eps=1e-5)
    if compiled:
        w = torch.ones(dim, requires_grad=True)
        ln = torch.compile(lambda x: F.layer_norm(x, (dim,), w, None, 1e-5))
        rms = torch.compile(lambda x: F.rms_norm(x, (dim,), w, 1e-5))
        norms["compiled_layernorm"], norms["compiled_rmsnorm"] = ln, rms
    return norms


def per_call(shape: tuple[int, ...], repeats: int, compiled: bool, calls: int = 50) -> dict[str, float]:
    x0 = torch.randn(shape)
    norms = _norms(shape[-1], compiled)
    for name, norm in list(norms.items()):  # warm up (and, for the compiled ones, compile) outside the timing
        try:
            for _ in range(3):
                norm(x0.clone().requires_grad_()).backward(x0)
        except Exception as e:  # torch.compile needs a working C++ toolchain for inductor's CPU kernels
            if not name.startswith("compiled_"):
                raise
            print(f"[rmsnorm] {name} skipped: {type(e).__name__}: {str(e)[:200]}", file=sys.stderr)
            del norms[name]
    times: dict[str, list[float]] = {k: [] for k in norms}
    for _ in range(repeats):
        for name, norm in norms.items():
            t = time.perf_counter()
            for _ in range(calls):
                x = x0.clone().requires_grad_()
                norm(x).backward(x0)
            times[name].append((time.perf_counter() - t) / calls * 1e6)
    return {k: round(statistics.median(v), 1) for k, v in times.items()}


def per_step(repeats: int, steps: int = 5) -> tuple[dict[str, dict[str, float]], int]:
    preset = get_preset("cpu-tiny")
    B, T = preset.train.batch_size, preset.model.block_size
    swap = {"torch_rmsnorm": nn.RMSNorm, "fused_c_rmsnorm": FusedCRMSNorm}  # layers.RMSNorm only adds a forward
    names = ["layernorm", "torch_rmsnorm", "minigpt_rmsnorm"]
    if c_kernel()[0] is not None:
        names.append("fused_c_rmsnorm")
    models = {}
    for name in names:
        torch.manual_seed(0)
        norm = "layernorm" if name == "layernorm" else "rmsnorm"
        model = build_model(dataclasses.replace(preset.model, variant="pre_ln", norm=norm))
        for m in model.modules():
            if name in swap and isinstance(m, layers.RMSNorm):
                m.__class__ = swap[name]
        kinds = {type(m) for m in model.modules() if isinstance(m, (nn.LayerNorm, nn.RMSNorm))}
        assert len(kinds) == 1, kinds  # every norm of the model is the one being timed
        n_norms = sum(isinstance(m, (nn.LayerNorm, nn.RMSNorm)) for m in model.modules())
        models[name] = (model, torch.optim.AdamW(model.parameters(), lr=1e-3))
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, preset.model.vocab_size, (B, T), generator=g)
    y = torch.randint(0, preset.model.vocab_size, (B, T), generator=g)

    def step(model: nn.Module, opt: torch.optim.Optimizer) -> None:
        _, loss = model(x, y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    for model, opt in models.values():
        for _ in range(2):
            step(model, opt)
    times: dict[str, list[float]] = {k: [] for k in models}
    for r in range(repeats):
        for name in (list(models) if r % 2 == 0 else list(reversed(models))):  # A B C, C B A, ...
            model, opt = models[name]
            t = time.perf_counter()
            for _ in range(steps):
                step(model, opt)
            times[name].append((time.perf_counter() - t) / steps * 1e3)
    base = statistics.median(times["layernorm"])
    result = {}
    for name, v in times.items():
        paired = [a / b for a, b in zip(v, times["layernorm"], strict=True)]  # same repeat, back to back
        result[name] = {"ms": round(statistics.median(v), 2), "vs_layernorm": round(statistics.median(v) / base, 3),
                        "vs_layernorm_paired_range": [round(min(paired), 3), round(max(paired), 3)]}
    return result, n_norms


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    ap.add_argument("--compile", action="store_true", help="add torch.compile'd norms to per_call_us")
    return ap.parse_args(argv)


def run(args: argparse.Namespace) -> dict:
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    tiny, small = (8, 128, 128), (16, 256, 192)
    out: dict[str, Any] = {"benchmark": "rmsnorm", "torch": torch.__version__, "threads": torch.get_num_threads(),
                           "repeats": args.repeats}
    out["fused_c_kernel"] = (f"built; max relative difference from nn.RMSNorm {check_fused_c():.1e}"
                             if c_kernel()[0] is not None else f"skipped: {c_kernel()[1]}")
    out["kernels_us"] = {"cpu-tiny 8x128x128": kernels(tiny, args.repeats),
                         "cpu-small 16x256x192": kernels(small, args.repeats)}
    out["per_call_us"] = {"cpu-tiny 8x128x128": per_call(tiny, args.repeats, args.compile),
                          "cpu-small 16x256x192": per_call(small, args.repeats, args.compile)}
    out["step_ms"], n_norms = per_step(args.repeats)
    ln = out["kernels_us"]["cpu-tiny 8x128x128"]
    ln_ms = n_norms * (ln["layernorm_fwd"] + ln["layernorm_bwd"]) / 1e3
    out["norm_share_bound"] = {"norms_per_model": n_norms, "layernorm_kernels_ms_per_step": round(ln_ms, 2),
                               "share_of_layernorm_step": round(ln_ms / out["step_ms"]["layernorm"]["ms"], 4)}
    ours = out["step_ms"]["minigpt_rmsnorm"]
    out["target"] = {"row": "minigpt_rmsnorm", "vs": "layernorm", "metric": "step-time ratio", "target": "< 1.0",
                     "value": ours["vs_layernorm"], "paired_range": ours["vs_layernorm_paired_range"],
                     "pass": ours["vs_layernorm"] < 1.0}
    return out


def main() -> None:
    print(json.dumps(run(parse_args()), indent=2))


if __name__ == "__main__":
    main()
