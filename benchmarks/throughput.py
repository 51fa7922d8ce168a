"""Training throughput per variant: ms per optimizer step and tokens/s (forward + backward + AdamW +
`after_optimizer_step`), against a plain nanoGPT-style pre-LN model written here as the comparator.

    python benchmarks/throughput.py [--preset cpu-tiny] [--repeats 5] [--steps 10] [--threads N]

Prints JSON. Models are timed round-robin (each repeat times every model once, in turn) so that machine noise
hits all of them alike; the reported number is the median over repeats. Ratios are step-time ratios to our
pre-LN at the same preset (`vs_pre_ln`) and tokens/s ratios to the nanoGPT reference (`vs_nanogpt`).

Two pre-LN rows: `pre_ln` is the preset's block (RoPE, SwiGLU, no bias: what `compare` races), and
`pre_ln-classic` is the GPT-2 block (LayerNorm without bias, GELU, learned positions, tied embeddings), the same
computation as the reference, so `pre_ln-classic.vs_nanogpt` isolates our code's overhead.
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

from minigpt import build_model, get_preset


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
        x = self.wte(idx) + self.wpe(torch.arange(idx.size(1)))
        for b in self.blocks:
            x = b(x)
        logits = self.lm_head(self.ln_f(x))
        return logits, F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))

    def param_groups(self, wd: float) -> list[dict]:
        ps = list(self.parameters())
        return [{"params": [p for p in ps if p.dim() >= 2], "weight_decay": wd},
                {"params": [p for p in ps if p.dim() < 2], "weight_decay": 0.0}]


# ------------------------------------------------------------------------------------------------ timing
def make_models(preset_name: str) -> dict[str, tuple[nn.Module, float]]:
    preset = get_preset(preset_name)
    models: dict[str, tuple[nn.Module, float]] = {}
    for label, variant, extra in [
        ("post_ln", "post_ln", {}),
        ("pre_ln", "pre_ln", {}),
        ("normformer", "normformer", {}),
        ("ngpt-lerp", "ngpt", {"ngpt_update": "lerp"}),
        ("ngpt-slerp", "ngpt", {"ngpt_update": "slerp"}),
        ("pre_ln-classic", "pre_ln", {"position": "learned", "mlp": "gelu", "bias": False,
                                      "tie_embeddings": True}),
    ]:
        mcfg, tcfg = preset.configs(variant, **extra)
        torch.manual_seed(0)
        models[label] = (build_model(mcfg), tcfg.weight_decay)
    m = preset.model
    torch.manual_seed(0)
    models["nanogpt-ref"] = (RefGPT(m.vocab_size, m.block_size, m.n_layer, m.n_embd, m.n_head), 0.1)
    return models


def time_steps(model: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, n: int) -> float:
    """Mean seconds per optimizer step over `n` steps."""
    after = getattr(model, "after_optimizer_step", None)
    t0 = time.perf_counter()
    for _ in range(n):
        _, loss = model(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if after is not None:
            after()
    return (time.perf_counter() - t0) / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="cpu-tiny")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--steps", type=int, default=10, help="timed steps per repeat")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    preset = get_preset(args.preset)
    B, T, V = preset.train.batch_size, preset.model.block_size, preset.model.vocab_size
    g = torch.Generator().manual_seed(0)
    data = torch.randint(0, V, (B, T + 1), generator=g)
    x, y = data[:, :-1], data[:, 1:]

    models = make_models(args.preset)
    opts = {k: torch.optim.AdamW(m.param_groups(wd), lr=1e-4, betas=(0.9, 0.95), foreach=True)
            for k, (m, wd) in models.items()}
    for k, (m, _) in models.items():  # warm up allocator and kernels
        time_steps(m, opts[k], x, y, 3)
    samples: dict[str, list[float]] = {k: [] for k in models}
    for _ in range(args.repeats):
        for k, (m, _) in models.items():
            samples[k].append(time_steps(m, opts[k], x, y, args.steps))

    med = {k: statistics.median(v) for k, v in samples.items()}
    rows = {}
    for k, (m, _) in models.items():
        rows[k] = {
            "params": sum(p.numel() for p in m.parameters()),
            "ms_per_step": round(1e3 * med[k], 2),
            "tokens_per_s": round(B * T / med[k]),
            "vs_pre_ln": round(med[k] / med["pre_ln"], 3),
            "vs_nanogpt": round(med["nanogpt-ref"] / med[k], 3),
            "spread_ms": [round(1e3 * min(samples[k]), 2), round(1e3 * max(samples[k]), 2)],
        }
    out = {
        "preset": args.preset,
        "shape": dataclasses.asdict(preset.model) | {"batch_size": B},
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "torch": torch.__version__, "threads": torch.get_num_threads()},
        "repeats": args.repeats, "steps_per_repeat": args.steps,
        "tokens_per_step": B * T,
        "log_vocab": round(math.log(V), 3),
        "results": rows,
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
