"""Training throughput per variant: ms per optimizer step and tokens/s (forward + backward + AdamW +
`after_optimizer_step`), against a plain nanoGPT-style pre-LN model written here as the comparator, plus a CPU
model-FLOPs utilization (MFU) per row.

    python benchmarks/throughput.py [--preset cpu-tiny|cpu-small] [--repeats 25] [--steps 2] [--threads N]

Prints JSON. Models are timed round-robin (each repeat times every model once, in turn, every other repeat in
reverse order) so that machine noise hits all of them alike; the reported number is the median over repeats.
Ratios are step-time ratios to our pre-LN at the same preset (`vs_pre_ln`) and tokens/s ratios to the nanoGPT
reference (`vs_nanogpt`).

Two pre-LN rows: `pre_ln` is the preset's block (RoPE, SwiGLU, no bias: what `compare` races), and
`pre_ln-classic` is the GPT-2 block (LayerNorm without bias, GELU, learned positions, tied embeddings), the same
computation as the reference, so `pre_ln-classic.vs_nanogpt` isolates our code's overhead. One option at a time
is changed from `pre_ln` in `pre_ln-rmsnorm` (RMSNorm for LayerNorm) and `pre_ln-gelu` (GELU for SwiGLU);
`ngpt-lerp` vs `ngpt-slerp` is the nGPT update option. The `-autograd` rows are nGPT with
`minigpt.fast_cpu.FAST_CPU_PATHS` off (autograd's backward of `l2_normalize` and SLERP instead of the written-out
ones): what the fast paths buy.

MFU: model FLOPs per token = 6·N + 12·L·T·d (PaLM, Chowdhery et al. 2022, App. B: 6 FLOPs per parameter per
token for forward + backward, plus the attention scores and values, counted as if not causal), with N the
matrix parameters the tokens go through: the blocks and the LM head (embedding lookups are free, norms and
scales are noise). MFU = FLOPs/token · tokens/s / `peak_gflops`, where the peak is measured in the same run:
the fastest of timed 2048×2048 float32 matmuls (2·n³ FLOPs each) at the same thread count. It is a CPU's
attainable matmul rate, not a datasheet number, so 100% is "every FLOP at large-matmul speed".

`targets` checks the issue's goals (#7): pre_ln-classic ≥ 1.0× the reference's tokens/s, and step time vs
pre_ln of NormFormer ≤ 1.08×, nGPT-LERP ≤ 1.20×, nGPT-SLERP ≤ 1.30×.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import platform
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

import minigpt.fast_cpu
from minigpt import build_model, get_preset
from minigpt.layers import flops_per_token
from minigpt.registry import RUNS


# --------------------------------------------------------------- the comparator: nanoGPT's model, condensed
class RefBlock(nn.Module):
    def __init__(self, d: int, h: int) -> None:
        super().__init__()
        self.h = h
        self.ln_1, self.ln_2 = nn.LayerNorm(d, bias=False), nn.LayerNorm(d, bias=False)
        self.c_attn, self.c_proj = nn.Linear(d, 3 * d, bias=False), nn.Linear(d, d, bias=False)
        self.fc, self.proj = nn.Linear(d, 4 * d, bias=False), nn.Linear(4 * d, d, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(C, dim=2)
        q, k, v = (t.view(B, T, self.h, C // self.h).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).contiguous().view(B, T, C)
        x = x + self.c_proj(y)
        return x + self.proj(F.gelu(self.fc(self.ln_2(x))))


class RefGPT(nn.Module):
    def __init__(self, V: int, T: int, L: int, d: int, h: int) -> None:
        super().__init__()
        self.wte, self.wpe = nn.Embedding(V, d), nn.Embedding(T, d)
        self.blocks = nn.ModuleList(RefBlock(d, h) for _ in range(L))
        self.ln_f = nn.LayerNorm(d, bias=False)
        self.lm_head = nn.Linear(d, V, bias=False)
        self.lm_head.weight = self.wte.weight
        for p in self.parameters():
            if p.dim() >= 2:
                nn.init.normal_(p, std=0.02)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.wte(idx) + self.wpe(torch.arange(idx.size(1), device=idx.device))
        for b in self.blocks:
            x = b(x)
        logits = self.lm_head(self.ln_f(x))
        return logits, F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))

    def after_optimizer_step(self) -> None:
        """Nothing, as on minigpt's GPTBase: the loop below calls it on every model."""

    def param_groups(self, wd: float) -> list[dict]:
        ps = list(self.parameters())
        return [{"params": [p for p in ps if p.dim() >= 2], "weight_decay": wd},
                {"params": [p for p in ps if p.dim() < 2], "weight_decay": 0.0}]


# ------------------------------------------------------------------------------------------------ timing
# label -> (variant, overrides of the preset's ModelConfig). First the runs `compare` races (the registry's),
# then single-ingredient changes of pre-LN and the nGPT runs without the CPU fast paths.
ROWS: dict[str, tuple[str, dict]] = {
    **{label: (run.variant, dict(run.overrides)) for label, run in RUNS.items()},
    "pre_ln-rmsnorm": ("pre_ln", {"norm": "rmsnorm"}),
    "pre_ln-gelu": ("pre_ln", {"mlp": "gelu"}),
    "pre_ln-classic": ("pre_ln", {"position": "learned", "mlp": "gelu", "bias": False, "tie_embeddings": True}),
    "ngpt-lerp-autograd": ("ngpt", {"ngpt_update": "lerp"}),
    "ngpt-slerp-autograd": ("ngpt", {"ngpt_update": "slerp"}),
}

# (row, compared with, field, bound): the goals of issue #7
TARGETS: list[tuple[str, str, str, float]] = [
    ("pre_ln-classic", "nanogpt-ref", "tokens/s ratio >=", 1.0),
    ("normformer", "pre_ln", "step-time ratio <=", 1.08),
    ("ngpt-lerp", "pre_ln", "step-time ratio <=", 1.20),
    ("ngpt-slerp", "pre_ln", "step-time ratio <=", 1.30),
]


def make_models(preset_name: str, rows: list[str] | None = None) -> dict[str, tuple[nn.Module, float]]:
    """The models of `rows` (default: all of ROWS) plus `pre_ln` and `nanogpt-ref`, which the ratios need."""
    preset = get_preset(preset_name)
    wanted = set(rows or ROWS) | {"pre_ln"}
    models: dict[str, tuple[nn.Module, float]] = {}
    for label, (variant, extra) in ROWS.items():
        if label not in wanted:
            continue
        mcfg, tcfg = preset.configs(variant, **extra)
        torch.manual_seed(0)
        models[label] = (build_model(mcfg), tcfg.weight_decay)
    m = preset.model
    torch.manual_seed(0)
    models["nanogpt-ref"] = (RefGPT(m.vocab_size, m.block_size, m.n_layer, m.n_embd, m.n_head), 0.1)
    return models


def peak_gflops(n: int = 2048, repeats: int = 10) -> float:
    """Best rate of an n×n float32 matmul (2·n³ FLOPs) at the current thread count: the machine's
    attainable peak that MFU is measured against. The fastest repeat, not the median: on a shared VM a
    slow repeat is noise, and a median peak read low once put MFU above 100%."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t0)
    return 2 * n**3 / min(times) / 1e9


def time_steps(model: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, n: int,
               fast_cpu_paths: bool = True) -> float:
    """Mean seconds per optimizer step over `n` steps."""
    minigpt.fast_cpu.FAST_CPU_PATHS = fast_cpu_paths
    t0 = time.perf_counter()
    for _ in range(n):
        _, loss = model(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        model.after_optimizer_step()
    return (time.perf_counter() - t0) / n


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="cpu-tiny", choices=["cpu-tiny", "cpu-small"])
    ap.add_argument("--repeats", type=int, default=25, help="round-robin repeats (many short ones: a shared "
                                                             "machine's speed drifts within a run)")
    ap.add_argument("--steps", type=int, default=2, help="timed steps per model per repeat")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps per model before the repeats")
    ap.add_argument("--peak-repeats", type=int, default=10, help="timed 2048x2048 matmuls for the peak")
    ap.add_argument("--rows", default=",".join(ROWS),
                    help="comma-separated subset of the rows (pre_ln and nanogpt-ref are always timed)")
    return ap.parse_args(argv)


def run(args: argparse.Namespace) -> dict:
    """Time every row and return the JSON-ready result (what `main` prints and run_all.py tabulates)."""
    if args.threads:
        torch.set_num_threads(args.threads)

    preset = get_preset(args.preset)
    m = preset.model
    B, T, V = preset.train.batch_size, m.block_size, m.vocab_size
    g = torch.Generator().manual_seed(0)
    data = torch.randint(0, V, (B, T + 1), generator=g)
    x, y = data[:, :-1].contiguous(), data[:, 1:].contiguous()

    peak = peak_gflops(repeats=args.peak_repeats)  # before the models, on a quiet allocator
    models = make_models(args.preset, args.rows.split(","))
    opts = {k: torch.optim.AdamW(mod.param_groups(wd), lr=1e-4, betas=(0.9, 0.95), foreach=True)
            for k, (mod, wd) in models.items()}
    for k, (mod, _) in models.items():  # warm up allocator and kernels
        time_steps(mod, opts[k], x, y, args.warmup, not k.endswith("-autograd"))
    samples: dict[str, list[float]] = {k: [] for k in models}
    for r in range(args.repeats):
        # every other repeat in reverse order (A B C, C B A, ...): a model's place in the round cannot bias it
        for k in (list(models) if r % 2 == 0 else list(reversed(models))):
            samples[k].append(time_steps(models[k][0], opts[k], x, y, args.steps, not k.endswith("-autograd")))
    minigpt.fast_cpu.FAST_CPU_PATHS = True

    med = {k: statistics.median(v) for k, v in samples.items()}
    rows = {}
    for k, (mod, _) in models.items():
        fpt = flops_per_token(mod, m.n_layer, T, m.n_embd)
        rows[k] = {
            "params": sum(p.numel() for p in mod.parameters()),
            "ms_per_step": round(1e3 * med[k], 2),
            "tokens_per_s": round(B * T / med[k]),
            "vs_pre_ln": round(med[k] / med["pre_ln"], 3),
            "vs_nanogpt": round(med["nanogpt-ref"] / med[k], 3),
            "spread_ms": [round(1e3 * min(samples[k]), 2), round(1e3 * max(samples[k]), 2)],
            "flops_per_token": fpt,
            "mfu": round(fpt * B * T / med[k] / (peak * 1e9), 3),
        }
    targets = []
    for row, base, what, bound in TARGETS:
        if row not in rows:
            continue
        value = rows[row]["vs_nanogpt"] if base == "nanogpt-ref" else rows[row]["vs_pre_ln"]
        ok = value >= bound if ">=" in what else value <= bound
        # The same ratio within each repeat (the round-robin times both models back to back): its range is
        # the run-to-run noise, so a verdict whose bound lies inside it is a coin toss, and is marked so.
        paired = [(b / r if base == "nanogpt-ref" else r / b) for r, b in zip(samples[row], samples[base], strict=True)]
        low, high = round(min(paired), 3), round(max(paired), 3)
        targets.append({"row": row, "vs": base, "metric": what[:-3].strip(), "target": f"{what[-2:]} {bound}",
                        "value": value, "pass": ok, "repeat_range": [low, high],
                        "within_noise": low <= bound <= high})
    return {
        "benchmark": "throughput",
        "preset": args.preset,
        "shape": dataclasses.asdict(m) | {"batch_size": B},
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "torch": torch.__version__, "threads": torch.get_num_threads()},
        "repeats": args.repeats, "steps_per_repeat": args.steps, "warmup_steps": args.warmup,
        "tokens_per_step": B * T,
        "log_vocab": round(math.log(V), 3),
        "peak_gflops": round(peak, 1),
        "mfu_formula": "(6*N + 12*L*T*d) * tokens/s / peak; N = block + LM-head parameters",
        "results": rows,
        "targets": targets,
    }


def main() -> None:
    print(json.dumps(run(parse_args()), indent=2))


if __name__ == "__main__":
    main()
