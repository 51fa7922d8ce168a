"""RMSNorm vs LayerNorm on the CPU: per call (forward + backward) and per pre-LN training step.

    python benchmarks/rmsnorm.py [--repeats 9] [--threads N]

Prints JSON. Three norms: `nn.LayerNorm` (no bias, as the presets use), torch's `nn.RMSNorm` and minigpt's
`layers.RMSNorm` (the same module with a hand-written backward on the float32 CPU path). Why this exists:
issue #7 asks for RMSNorm to be faster than LayerNorm per step. On the CPU torch 2.13 has a fused LayerNorm
kernel each way and no fused RMSNorm, so the norm with fewer FLOPs is the slower one; this script shows by how
much, and how much of the gap minigpt's backward closes.

- `per_call_us`: median µs of one forward + backward of the norm alone on the activation shape of the
  cpu-tiny (8×128×128) and cpu-small (16×256×192) presets, timed round-robin.
- `step_ms`: median ms of a full pre-LN training step (forward, backward, AdamW) at cpu-tiny with each norm,
  the three models timed round-robin (each repeat times each model once, in turn), with the ratio to LayerNorm.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time

import torch
from torch import nn

import minigpt.layers as layers
from minigpt import build_model, get_preset


def _norms(dim: int) -> dict[str, nn.Module]:
    return {"layernorm": nn.LayerNorm(dim, bias=False), "torch_rmsnorm": nn.RMSNorm(dim, eps=1e-5),
            "minigpt_rmsnorm": layers.RMSNorm(dim, eps=1e-5)}


def per_call(shape: tuple[int, ...], repeats: int, calls: int = 50) -> dict[str, float]:
    x0 = torch.randn(shape)
    norms = _norms(shape[-1])
    times: dict[str, list[float]] = {k: [] for k in norms}
    for _ in range(repeats):
        for name, norm in norms.items():
            t = time.perf_counter()
            for _ in range(calls):
                x = x0.clone().requires_grad_()
                norm(x).backward(x0)
            times[name].append((time.perf_counter() - t) / calls * 1e6)
    return {k: round(statistics.median(v), 1) for k, v in times.items()}


def per_step(repeats: int, steps: int = 5) -> dict[str, dict[str, float]]:
    preset = get_preset("cpu-tiny")
    B, T = preset.train.batch_size, preset.model.block_size
    models = {}
    for name, norm in (("layernorm", "layernorm"), ("torch_rmsnorm", "rmsnorm"), ("minigpt_rmsnorm", "rmsnorm")):
        torch.manual_seed(0)
        model = build_model(dataclasses.replace(preset.model, variant="pre_ln", norm=norm))
        if name == "torch_rmsnorm":  # layers.RMSNorm only adds a forward to nn.RMSNorm: drop it
            for m in model.modules():
                if isinstance(m, layers.RMSNorm):
                    m.__class__ = nn.RMSNorm
        kinds = {type(m) for m in model.modules() if isinstance(m, (nn.LayerNorm, nn.RMSNorm))}
        assert len(kinds) == 1, kinds  # every norm of the model is the one being timed
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
    for _ in range(repeats):
        for name, (model, opt) in models.items():
            t = time.perf_counter()
            for _ in range(steps):
                step(model, opt)
            times[name].append((time.perf_counter() - t) / steps * 1e3)
    base = statistics.median(times["layernorm"])
    return {k: {"ms": round(statistics.median(v), 2), "vs_layernorm": round(statistics.median(v) / base, 3)}
            for k, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    out = {
        "torch": torch.__version__, "threads": torch.get_num_threads(),
        "per_call_us": {"cpu-tiny 8x128x128": per_call((8, 128, 128), args.repeats),
                        "cpu-small 16x256x192": per_call((16, 256, 192), args.repeats)},
        "step_ms": per_step(args.repeats),
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
